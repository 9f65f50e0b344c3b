"""Window geometry and masks, checked by what they do: which tokens can see which."""

import numpy as np
import paddle
import pytest

from miziha.layers.size_cache import clear_cache
from miziha.mixers.swin import SwinTransformerBlock
from miziha.layers.windows import MASK_VALUE, window_geometry, window_tables


def _changed_by(shifted, size, window, token):
    """Output tokens of one block that change when input token (row, col) changes."""
    h, w = size
    # Default init: near-uniform attention, so every key a query may see visibly moves it.
    block = SwinTransformerBlock(8, 2, (window, window), mlp_hidden=32)
    block.eval()
    shift = (window // 2, window // 2) if shifted else (0, 0)
    geometry = window_tables(h, w, (window, window), shift)
    x = np.random.randn(1, h * w, 8).astype("float32")
    base = block(paddle.to_tensor(x), geometry).numpy()
    x[0, token[0] * w + token[1]] += np.linspace(-3.0, 3.0, 8, dtype="float32")  # not a constant: LayerNorm removes those
    moved = block(paddle.to_tensor(x), geometry).numpy()
    return (np.abs(moved - base).max(-1) > 0).reshape(h, w)


def _box(size, rows, cols):
    box = np.zeros(size, dtype=bool)
    box[rows[0]:rows[1], cols[0]:cols[1]] = True
    return box


@pytest.mark.parametrize("size, window, token, rows, cols", [
    ((8, 8), 4, (5, 2), (4, 8), (0, 4)),
    ((10, 10), 7, (8, 3), (7, 10), (0, 7)),   # padded: the last window row holds 3 real rows
    ((10, 13), 4, (9, 12), (8, 10), (12, 13)),  # a corner window with 2x1 real tokens
])
def test_wmsa_only_mixes_within_its_window(size, window, token, rows, cols):
    assert (_changed_by(False, size, window, token) == _box(size, rows, cols)).all()


@pytest.mark.parametrize("size, window, token, rows, cols", [
    # 8x8, window 4, shift 2: shifted windows are rows/cols [0,2), [2,6), [6,8) on the map
    ((8, 8), 4, (3, 4), (2, 6), (2, 6)),
    ((8, 8), 4, (0, 0), (0, 2), (0, 2)),   # wraps to the far corner, but must not mix there
    ((8, 8), 4, (7, 7), (6, 8), (6, 8)),
    ((8, 8), 4, (7, 0), (6, 8), (0, 2)),
    # 10x10 padded to 14x14, window 7, shift 3: windows [0,3), [3,10) (+4 padded rows)
    ((10, 10), 7, (0, 9), (0, 3), (3, 10)),
    ((10, 10), 7, (9, 9), (3, 10), (3, 10)),
    ((10, 10), 7, (2, 2), (0, 3), (0, 3)),
])
def test_swmsa_mixes_within_its_shifted_window_and_never_across_the_border(
        size, window, token, rows, cols):
    assert (_changed_by(True, size, window, token) == _box(size, rows, cols)).all()


def test_small_map_is_one_unshifted_window():
    changed = _changed_by(True, (5, 6), 7, (0, 0))
    assert changed.all()


@pytest.mark.parametrize("size, window, shift", [
    ((8, 8), (4, 4), (2, 2)), ((10, 13), (4, 4), (2, 2)), ((3, 20), (7, 7), (3, 3)),
    ((14, 14), (7, 7), (0, 0)), ((1, 1), (7, 7), (3, 3))])
def test_gather_and_scatter_are_inverse(size, window, shift):
    geometry = window_tables(*size, window, shift)
    tokens = size[0] * size[1]
    gather, scatter = geometry.gather.numpy(), geometry.scatter.numpy()
    assert gather.shape == (geometry.num_windows * geometry.window_tokens,)
    np.testing.assert_array_equal(gather[scatter], np.arange(tokens))
    assert sorted(scatter.tolist()) == sorted(set(scatter.tolist()))  # each slot once


def test_effective_window_and_shift_follow_the_map():
    assert window_tables(56, 56, (7, 7), (3, 3)).window == (7, 7)
    small = window_tables(5, 20, (7, 7), (3, 3))
    assert (small.window, small.shift) == ((5, 7), (0, 3))
    assert window_tables(7, 7, (7, 7), (3, 3)).shift == (0, 0)
    assert window_tables(14, 14, (7, 7), (0, 0)).mask is None  # nothing to mask
    assert window_tables(15, 14, (7, 7), (0, 0)).mask is not None  # padding


def test_geometry_is_cached_per_size_and_place():
    first = window_tables(12, 12, (4, 4), (2, 2))
    assert window_tables(12, 12, (4, 4), (2, 2), like=paddle.zeros([1])) is first
    assert window_tables(12, 16, (4, 4), (2, 2)) is not first
    assert str(first.gather.place) == str(paddle.CPUPlace())
    clear_cache()
    assert window_tables(12, 12, (4, 4), (2, 2)) is not first


def test_tensor_sizes_give_the_same_tables_as_int_sizes():
    eager = window_tables(10, 13, (4, 4), (2, 2))
    traced = window_geometry(paddle.to_tensor(10), paddle.to_tensor(13), (4, 4), (2, 2))
    for name in ("gather", "scatter", "relative_index", "mask"):
        np.testing.assert_array_equal(getattr(eager, name).numpy(),
                                      getattr(traced, name).numpy())


def test_relative_index_of_a_full_window_matches_the_official_layout():
    index = window_tables(7, 7, (7, 7), (0, 0)).relative_index.numpy().reshape(49, 49)
    # The official table puts offset (0, 0) in the middle row and (+6, +6) last.
    assert (np.diag(index) == 84).all()
    assert index[48, 0] == 168 and index[0, 48] == 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mask_value_is_finite_in_half_precision(dtype):
    mask = window_tables(8, 8, (4, 4), (2, 2)).mask.astype(dtype)
    values = mask.astype("float32").numpy()
    assert np.isfinite(values).all()
    assert values.min() <= MASK_VALUE * 0.99
    # after the round trip through half precision it still removes a key from a softmax
    # (run in float32: Paddle's CPU kernels have no half-precision layer_norm or matmul)
    scores = paddle.to_tensor([[3.0, 1.0 + MASK_VALUE]]).astype(dtype)
    weights = paddle.nn.functional.softmax(scores.astype("float32"), axis=-1).numpy()
    assert weights[0, 1] < 1e-20  # Paddle CPU softmax clamps exponents at -64: exp(-64)
