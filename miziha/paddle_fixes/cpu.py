"""The CPU policy: where miziha's layers take a different path on a CPU in eager mode, and
the sub-batches that keep their temporaries small.

* :func:`eager_on_cpu` is the one test every layer asks ("eager mode, input on a CPU?").
  The workarounds of :mod:`miziha.paddle_fixes.workarounds` (the Linear's own backward, LayerNorm's
  affine terms) and the sub-batches below apply only where it is true; static graphs,
  exports and GPUs take Paddle's plain ops.
* :func:`place_key` names a device as a string, for caches keyed by device.
* Sub-batches. Paddle's CPU allocator takes every tensor from ``malloc``. glibc serves a
  request of 32 MiB or more (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit, the ceiling of its
  dynamic threshold) with fresh pages from ``mmap`` and unmaps them on ``free``; smaller
  buffers come from the heap, whose top is trimmed back to the OS once more than twice the
  current threshold is free. Either way a large temporary page-faults (the kernel zeroes
  each 4 KiB page) every time it is made, which can cost more than the arithmetic. A
  mixer's widest temporaries (MLP hidden layer, ``qkv``, attention scores) reach that size
  at ordinary batch sizes: ``SwinT(128, 128, downsample=True)`` on 56x56 maps at batch 8
  makes 51 MB ones. So on eager CPU a mixer runs its blocks on the fewest near-equal
  sub-batches whose widest temporary fits :data:`BATCH_CHUNK_BYTES`
  (:func:`run_in_sub_batches`); ``benchmarks/bench_layers.py`` times it on and off. In
  training the price is resident memory: the heap then also holds what backward keeps,
  and the gaps between those tensors stay resident (a SwinResNet50 step at 224, batch 8,
  peaked about 300 MB lower without sub-batches, and took about 5% longer;
  ``docs/performance.md``, Memory).

:data:`BATCH_CHUNK_BYTES` is process-wide, like the allocator it works around; set it to
None to run every batch whole (for instance under jemalloc or tcmalloc).
"""

from __future__ import annotations

from typing import Callable, List, Optional

import paddle

__all__ = ["BATCH_CHUNK_BYTES", "batch_chunks", "run_in_sub_batches", "place_key",
           "eager_on_cpu"]

#: Largest temporary one sub-batch may allocate, in bytes; None disables sub-batching. A
#: SwinResNet50 step at 224 (batch 8) was fastest at 8-16 MiB, slower at 30 MiB.
BATCH_CHUNK_BYTES: Optional[int] = 16 * 2 ** 20


def place_key(place: Optional[paddle.Place]) -> str:
    """``Place(gpu:0)`` / ``gpu:0`` -> ``gpu:0`` (default: Paddle's current device): one
    key per device, in the form that ``Tensor.to`` takes.

    A string compared with ``"cpu"`` instead of ``place.is_cpu_place()``: calling that in
    some forwards breaks SOT's to_static (Paddle 3.3, ``UnboundLocalError`` in its generated
    code; see :mod:`miziha.paddle_fixes.workarounds`)."""
    place = str(place) if place is not None else str(paddle.get_device())
    return place[len("Place("):-1] if place.startswith("Place(") else place


def eager_on_cpu(x: paddle.Tensor) -> bool:
    """Eager mode with ``x`` on a CPU. A graph being built is never asked for its place
    (Paddle warns that it has none)."""
    return paddle.in_dynamic_mode() and place_key(x.place) == "cpu"


def batch_chunks(batch: int, sample_bytes: int, budget: Optional[int]) -> List[int]:
    """Split ``batch`` samples into the fewest near-equal sub-batches whose largest
    temporary, ``sample_bytes`` per sample, fits in ``budget`` bytes.

    Returns the sub-batch sizes (they sum to ``batch``, larger ones first). The batch stays
    whole (``[batch]``) when it already fits, when ``budget`` is None, or when one sample
    alone exceeds the budget (splitting would then only add work).

    Raises:
        TypeError: ``budget`` is neither None nor an int.
        ValueError: ``budget`` is not positive.
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise TypeError(f"the sub-batch budget (miziha.paddle_fixes.cpu.BATCH_CHUNK_BYTES) must be an "
                        f"int number of bytes or None, got {type(budget).__name__}")
    if budget is not None and budget <= 0:
        raise ValueError(f"the sub-batch budget (miziha.paddle_fixes.cpu.BATCH_CHUNK_BYTES) must be "
                         f"positive, got {budget}")
    if budget is None or batch * sample_bytes <= budget or sample_bytes > budget:
        return [batch]
    count = -(-batch // (budget // sample_bytes))  # ceil(batch / samples that fit)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)


def run_in_sub_batches(fn: Callable[[paddle.Tensor], paddle.Tensor], x: paddle.Tensor,
                       sample_bytes: Callable[[], int]) -> paddle.Tensor:
    """``fn(x)`` along the batch axis in sub-batches (:func:`batch_chunks` with
    :data:`BATCH_CHUNK_BYTES`) on eager CPU; elsewhere ``fn(x)`` on the whole batch.

    Args:
        fn: maps ``[b, ...]`` to ``[b, ...]`` sample by sample.
        x: ``[B, ...]``.
        sample_bytes: returns the widest temporary ``fn`` makes per sample (asked only on
            eager CPU).
    """
    if not eager_on_cpu(x):
        return fn(x)
    sizes = batch_chunks(x.shape[0], sample_bytes(), BATCH_CHUNK_BYTES)
    if len(sizes) == 1:
        return fn(x)
    return paddle.concat([fn(part) for part in paddle.split(x, sizes, axis=0)], axis=0)
