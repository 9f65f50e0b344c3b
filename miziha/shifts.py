"""Per-channel spatial shifts with zero fill: the token mixing of the shift MLPs (CycleMLP's
Cycle FC, AS-MLP's axial shift).

A shift moves each channel ``c`` of a channels-last map by a fixed whole number of pixels
along one spatial axis, reading zeros from outside the map::

    out[..., k, ..., c] = x[..., k + offsets[c], ..., c]     (0 where k + offsets[c] is off the map)

The offsets are known when a layer is built (:func:`cycle_offsets`, :func:`chunk_offsets`);
the map size may be a 0-D tensor under ``to_static``: :func:`shift_channels` slices relative
to the ends of the map and never needs its size. It runs on contiguous runs of channels with
the same offset (one split, one zero-pad and slice per run, one concat); channels whose equal
offsets are interleaved should be reordered first (:func:`grouping_order`).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import paddle

__all__ = ["cycle_offsets", "chunk_offsets", "offset_runs", "grouping_order", "shift",
           "shift_channels"]


def cycle_offsets(channels: int, kernel: int = 3) -> Tuple[int, ...]:
    """CycleMLP's offsets for a pseudo-kernel of ``kernel`` along the shifted axis (the
    official ``gen_offset``): ``d(c) = (c + K // 2) % K - K // 2``, for K = 3
    0, +1, -1, 0, +1, -1, ... (channel ``c`` reads ``d(c)`` pixels forward)."""
    half = kernel // 2
    return tuple((c + half) % kernel - half for c in range(channels))


def chunk_offsets(channels: int, shift_size: int) -> Tuple[int, ...]:
    """AS-MLP's offsets: channels split as ``torch.chunk(x, shift_size)`` (groups of
    ``ceil(C / shift_size)``, the last one smaller, possibly fewer than ``shift_size``
    groups); group ``g`` moves its content by ``g - shift_size // 2`` pixels, i.e. reads at
    offset ``shift_size // 2 - g`` (the official CUDA kernel's ``pad - c // chunk``)."""
    chunk = -(-channels // shift_size)
    return tuple(shift_size // 2 - c // chunk for c in range(channels))


def offset_runs(offsets: Sequence[int]) -> List[Tuple[int, int]]:
    """``(length, offset)`` of each run of consecutive channels sharing an offset."""
    runs: List[Tuple[int, int]] = []
    for offset in offsets:
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0] + 1, offset)
        else:
            runs.append((1, offset))
    return runs


def grouping_order(offsets: Sequence[int]) -> List[int]:
    """A channel order that makes equal offsets contiguous (stable, in order of first
    appearance): ``x[..., order]`` has offsets ``[offsets[c] for c in order]`` in
    ``len(set(offsets))`` runs."""
    first = {}
    for offset in offsets:
        first.setdefault(offset, len(first))
    return sorted(range(len(offsets)), key=lambda c: first[offsets[c]])


def shift(x: paddle.Tensor, offset: int, axis: int) -> paddle.Tensor:
    """All channels by one ``offset`` along ``axis``: ``out[k] = x[k + offset]``, zero off
    the map. Any map size (also smaller than ``|offset|``, giving zeros)."""
    if offset == 0:
        return x
    zeros = paddle.zeros_like(paddle.slice(x, [axis], [0], [1]))
    zeros = paddle.concat([zeros] * abs(offset), axis=axis) if abs(offset) > 1 else zeros
    if offset > 0:  # [x, 0...] from offset on: exactly the map's length
        return paddle.slice(paddle.concat([x, zeros], axis=axis), [axis], [offset],
                            [2 ** 31 - 1])
    return paddle.slice(paddle.concat([zeros, x], axis=axis), [axis], [0], [offset])


def shift_channels(x: paddle.Tensor, offsets: Sequence[int], axis: int) -> paddle.Tensor:
    """Shift channel ``c`` of ``x [..., C]`` by ``offsets[c]`` along ``axis`` (a spatial
    axis, not the last): ``out[..., k, ..., c] = x[..., k + offsets[c], ..., c]``, zero
    where that is off the map.

    Args:
        x: channels-last map, e.g. ``[B, H, W, C]``.
        offsets: one int per channel (``C`` of them), fixed at construction.
        axis: the axis to shift along (e.g. 1 for H, 2 for W of ``[B, H, W, C]``).

    Returns:
        A tensor of ``x``'s shape.
    """
    if len(offsets) != x.shape[-1]:
        raise ValueError(f"shift_channels needs one offset per channel: expected "
                         f"{x.shape[-1]}, got {len(offsets)}")
    if axis % x.ndim == x.ndim - 1:
        raise ValueError(f"shift_channels shifts along a spatial axis, not the channel "
                         f"axis {axis}")
    runs = offset_runs(offsets)
    if len(runs) == 1:
        return shift(x, runs[0][1], axis)
    parts = paddle.split(x, [length for length, _ in runs], axis=-1)
    return paddle.concat([shift(part, offset, axis) for part, (_, offset) in zip(parts, runs)],
                         axis=-1)
