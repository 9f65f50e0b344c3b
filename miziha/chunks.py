"""Sub-batches that keep eager CPU temporaries small enough for glibc's heap.

Paddle's CPU allocator takes every tensor from ``malloc``. glibc serves a request of 32 MiB
or more (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit, the ceiling of its dynamic threshold)
with fresh pages from ``mmap`` and unmaps them on ``free``; smaller buffers come from the
heap, whose top is trimmed back to the OS once more than twice the current threshold is
free. Either way a large temporary page-faults (the kernel zeroes each 4 KiB page) every
time it is made, which can cost more than the arithmetic. Swin's widest temporaries (the
MLP hidden layer, ``qkv``, the attention scores) reach that size at ordinary batch sizes:
``SwinT(128, 128, downsample=True)`` on 56x56 maps at batch 8 makes 51 MB ones.
``benchmarks/bench_layers.py`` times SwinT with and without sub-batches.

:data:`BATCH_CHUNK_BYTES` is process-wide, like the allocator it works around; set it to
None to run every batch whole (for instance under jemalloc or tcmalloc).
"""

from __future__ import annotations

from typing import List, Optional

__all__ = ["BATCH_CHUNK_BYTES", "batch_chunks"]

#: Largest temporary one sub-batch may allocate, in bytes; None disables sub-batching. A
#: SwinResNet50 step at 224 (batch 8) was fastest at 8-16 MiB, slower at 30 MiB.
BATCH_CHUNK_BYTES: Optional[int] = 16 * 2 ** 20


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
        raise TypeError(f"the sub-batch budget (miziha.chunks.BATCH_CHUNK_BYTES) must be an "
                        f"int number of bytes or None, got {type(budget).__name__}")
    if budget is not None and budget <= 0:
        raise ValueError(f"the sub-batch budget (miziha.chunks.BATCH_CHUNK_BYTES) must be "
                         f"positive, got {budget}")
    if budget is None or batch * sample_bytes <= budget or sample_bytes > budget:
        return [batch]
    count = -(-batch // (budget // sample_bytes))  # ceil(batch / samples that fit)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)
