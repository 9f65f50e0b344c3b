import itertools

import pytest

from miziha.paddle_fixes.cpu import batch_chunks


@pytest.mark.parametrize("batch, sample_bytes, budget, expected", [
    (8, 10, 100, [8]),      # the whole batch fits
    (8, 10, None, [8]),     # sub-batching switched off
    (8, 200, 100, [8]),     # one sample alone is over budget: splitting gains nothing
    (8, 10, 40, [4, 4]),
    (5, 10, 25, [2, 2, 1]),
    (7, 10, 30, [3, 2, 2]),
    (3, 10, 10, [1, 1, 1]),
])
def test_batch_chunks_examples(batch, sample_bytes, budget, expected):
    assert batch_chunks(batch, sample_bytes, budget) == expected


def test_batch_chunks_are_the_fewest_that_fit():
    for batch, sample_bytes, budget in itertools.product(range(1, 20), range(1, 12),
                                                         range(1, 60)):
        sizes = batch_chunks(batch, sample_bytes, budget)
        assert sum(sizes) == batch and min(sizes) >= 1
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        if sample_bytes > budget:
            assert sizes == [batch]
            continue
        assert max(sizes) * sample_bytes <= budget
        per_chunk = budget // sample_bytes
        assert len(sizes) == -(-batch // per_chunk)


@pytest.mark.parametrize("budget, error, message", [
    (16e6, TypeError, "int number of bytes or None, got float"),
    (True, TypeError, "got bool"),
    (0, ValueError, "must be positive, got 0"),
    (-5, ValueError, "must be positive, got -5"),
])
def test_batch_chunks_rejects_bad_budgets(budget, error, message):
    with pytest.raises(error, match=message):
        batch_chunks(8, 10, budget)
