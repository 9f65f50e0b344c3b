"""Per-channel spatial shifts with zero fill: the token mixing of the shift MLPs (CycleMLP's
Cycle FC, AS-MLP's axial shift).

A shift moves each channel ``c`` of a channels-last map by a fixed whole number of pixels
along one spatial axis, reading zeros from outside the map::

    out[h, w, c] = x[h + dy(c), w + dx(c), c]     (0 off the map)

The offsets are fixed when a layer is built (:func:`cycle_offsets`, :func:`chunk_offsets`).
A shift is one gather: :func:`shift_index` gives, for every output element, its position in
the flattened sample (or the zero slot), built with Paddle ops so that it follows sizes
known only at run time under ``to_static``; :func:`take` gathers several such tables at
once (e.g. a map shifted along W, along H and unshifted side by side, as one matmul input).
On Paddle's CPU kernels one ``gather`` (backward: one scatter-add) costs a fraction of the
split / pad / slice / concat sequence that does the same per channel group.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import paddle

from .shapes import Size

__all__ = ["cycle_offsets", "chunk_offsets", "shift_index", "one_slot", "take",
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


def _int64(size: Size) -> paddle.Tensor:
    return paddle.to_tensor(size, dtype="int64") if isinstance(size, int) \
        else size.astype("int64")


def shift_index(height: Size, width: Size, offsets: Optional[Sequence[int]],
                axis: Optional[int]) -> paddle.Tensor:
    """Where each element of a shifted ``[H, W, C]`` map comes from.

    Args:
        height, width: the map size (ints, or 0-D int tensors in a static graph).
        offsets: one int per channel (``C``); channel ``c`` reads ``offsets[c]`` pixels
            forward along ``axis``.
        axis: 1 (H) or 2 (W), the axes of a ``[B, H, W, C]`` map; None: no shift (the
            identity table; ``offsets`` only gives ``C``).

    Returns:
        ``[H, W, C]`` int64: the flat position ``(h' * W + w') * C + c`` of the source
        element, or ``H * W * C`` (the zero slot of :func:`take`) where it is off the map.
    """
    if axis not in (1, 2, None):
        raise ValueError(f"axis must be 1 (H), 2 (W) or None, got {axis!r}")
    # Integer arithmetic with tensors only: an int64 tensor times or plus a Python number
    # becomes a ``scale`` op, which Paddle 3.3's oneDNN inference kernel ignores for int64.
    channels = _int64(len(offsets))
    h, w = _int64(height), _int64(width)
    rows = paddle.arange(h, dtype="int64").reshape([-1, 1, 1])
    cols = paddle.arange(w, dtype="int64").reshape([1, -1, 1])
    chans = paddle.arange(len(offsets), dtype="int64").reshape([1, 1, -1])
    if axis is not None:
        shift = paddle.to_tensor(list(offsets), dtype="int64").reshape([1, 1, -1])
        if axis == 1:
            rows = rows + shift
        else:
            cols = cols + shift
    index = (rows * w + cols) * channels + chans  # broadcast to [H, W, C]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    return paddle.where(inside, index, h * w * channels)


def one_slot(height: Size, width: Size, channels: int) -> paddle.Tensor:
    """``[H, W, 1]``: a column of :func:`take`'s slot of ones (``H * W * C + 1``) for a
    ``[H, W, C]`` map (e.g. the bias row of a matmul after the gather)."""
    h, w = _int64(height), _int64(width)
    rows = paddle.zeros_like(paddle.arange(h, dtype="int64")).reshape([-1, 1, 1])
    cols = paddle.zeros_like(paddle.arange(w, dtype="int64")).reshape([1, -1, 1])
    return rows + cols + h * w * _int64(channels) + _int64(1)


def take(x: paddle.Tensor, index: paddle.Tensor) -> paddle.Tensor:
    """Gather from each sample of ``x`` by a flat index with two constant slots.

    Args:
        x: ``[B, ...]``, ``M`` elements a sample.
        index: int tensor of positions in a sample's flattened ``x``; ``M`` reads 0 and
            ``M + 1`` reads 1 (a column of ones, e.g. for a bias row in a matmul).

    Returns:
        ``[B, index.size]`` (reshape it to the table's shape).
    """
    flat = x.reshape([0, -1])
    first = paddle.slice(flat, [1], [0], [1])
    flat = paddle.concat([flat, paddle.zeros_like(first), paddle.ones_like(first)], axis=1)
    return paddle.gather(flat, index.reshape([-1]), axis=1)


def shift_channels(x: paddle.Tensor, offsets: Sequence[int], axis: int) -> paddle.Tensor:
    """Shift channel ``c`` of ``x [B, H, W, C]`` by ``offsets[c]`` along ``axis`` (1: H, 2:
    W): ``out[:, h, w, c] = x[:, h + dy(c), w + dx(c), c]``, zero off the map. One gather
    by :func:`shift_index` (built per call: layers cache theirs by map size).

    Returns: a tensor of ``x``'s shape.
    """
    if len(offsets) != x.shape[-1]:
        raise ValueError(f"shift_channels needs one offset per channel: expected "
                         f"{x.shape[-1]}, got {len(offsets)}")
    shape = x.shape if paddle.in_dynamic_mode() else paddle.shape(x)
    return take(x, shift_index(shape[1], shape[2], offsets, axis)).reshape(shape)
