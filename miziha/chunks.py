"""Sub-batches that keep eager CPU temporaries below glibc's mmap threshold.

Paddle's CPU allocator takes every tensor from ``malloc``. glibc serves a request of 32 MiB
or more (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit, the ceiling of its dynamic threshold)
with fresh pages from ``mmap`` and unmaps them on ``free``, so each such tensor pays a page
fault per 4 KiB page, every time it is allocated. Swin's widest temporaries (the MLP hidden
layer, ``qkv``, the attention scores) cross that size at ordinary batch sizes: at batch 8,
``SwinT(128, 128, downsample=True)`` on 56x56 maps ran forward+backward in 3.8 s, and in
2.9 s as two batches of 4 (see the README's Performance section).

:data:`BATCH_CHUNK_BYTES` is process-wide, like the allocator it works around; set it to
None to run every batch whole (for instance under jemalloc or tcmalloc, or with
``MALLOC_MMAP_THRESHOLD_`` raised).
"""

from __future__ import annotations

from typing import List, Optional

__all__ = ["BATCH_CHUNK_BYTES", "batch_chunks"]

#: Largest temporary one sub-batch may allocate, in bytes: 30 MiB, under glibc's 32 MiB
#: with room for allocator alignment. None disables sub-batching.
BATCH_CHUNK_BYTES: Optional[int] = 16 * 2 ** 20


def batch_chunks(batch: int, sample_bytes: int, budget: Optional[int]) -> List[int]:
    """Split ``batch`` samples into the fewest near-equal sub-batches whose largest
    temporary, ``sample_bytes`` per sample, fits in ``budget`` bytes.

    Returns the sub-batch sizes (they sum to ``batch``, larger ones first). The batch stays
    whole (``[batch]``) when it already fits, when ``budget`` is None, or when one sample
    alone exceeds the budget (splitting would then only add work).
    """
    if budget is None or batch * sample_bytes <= budget or sample_bytes > budget:
        return [batch]
    count = -(-batch // (budget // sample_bytes))  # ceil(batch / samples that fit)
    base, extra = divmod(batch, count)
    return [base + 1] * extra + [base] * (count - extra)
