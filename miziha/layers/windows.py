"""Window geometry for (shifted) window attention on a map of any size.

Pure functions: sizes in, index tables and masks out; no parameters. Every table is
built from Paddle tensor ops, so the same code serves eager mode (where
:data:`window_tables` keeps one copy per map size) and static graphs exported with
dynamic height and width (where it runs inside the graph). Axes are added with
``reshape``, not ``unsqueeze`` (:mod:`miziha.paddle_fixes.workarounds`, item 4).

Conventions, per spatial axis of length ``n`` with configured window ``w0`` and shift
``s0`` (the official Swin rules, applied to each axis on its own):

* the effective window is ``w = min(n, w0)``; the shift is ``s0`` only where ``n > w0``;
* the axis is padded at its end to ``np = ceil(n / w) * w``;
* the shifted map is the padded one rolled by ``-s``: position ``i'`` holds ``(i' + s) % np``.

Tokens of one window attend to each other only if they also lie in the same region of
the official cyclic-shift mask, and never to padded tokens. Seen on the unrolled map, a
region is simply the window grid offset by ``s``: token ``i`` belongs to region
``(i + w - s) // w`` along each axis, so attention never wraps across the border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import paddle

from .size_cache import size_cached
from .shapes import Size

__all__ = ["MASK_VALUE", "WindowGeometry", "window_geometry", "window_tables",
           "relative_position_index", "log_spaced_coords", "coords_tables", "merge_order",
           "merge_tables"]

#: Added to the scores of masked (query, key) pairs. exp() of it underflows to exactly 0
#: in float32 softmax, and it is finite in float16 (max 65504) and bfloat16.
MASK_VALUE = -1.0e4


@dataclass  # not frozen: to_static (SOT) rebuilds dataclasses field by field
class WindowGeometry:
    """Index tables for one map size and one block kind (plain or shifted windows).

    Attributes:
        gather: int64 ``[nW * N]``; token ``gather[k]`` of the ``[B, H*W, C]`` map is
            window slot ``k`` (padding slots point at token 0, and are masked as keys).
        scatter: int64 ``[H * W]``; the window slot of each real token (inverse of gather).
        relative_index: int64 ``[N * N]``; row of the relative position bias table for each
            (query, key) pair of a window.
        mask: float32 ``[nW, N, N]`` with 0 or :data:`MASK_VALUE`, or None where no pair is
            masked (no shift and no padding, known from Python-int sizes).
        num_windows: ``nW``.
        window_tokens: ``N``, tokens per window.
        window: effective window ``(wh, ww)``.
        shift: effective shift ``(sh, sw)``.
    """

    gather: paddle.Tensor
    scatter: paddle.Tensor
    relative_index: paddle.Tensor
    mask: Optional[paddle.Tensor]
    num_windows: Size
    window_tokens: Size
    window: Tuple[Size, Size]
    shift: Tuple[Size, Size]


def _int64(size: Size) -> paddle.Tensor:
    return paddle.to_tensor(size, dtype="int64") if isinstance(size, int) else size.astype("int64")


def _axis_layout(n: paddle.Tensor, window: int, shift: int):
    """Layout of one spatial axis of length ``n`` (0-D int64 tensor).

    Returns:
        w, s, padded: effective window, shift and padded length (0-D tensors).
        source: ``[padded]`` unrolled coordinate held by each shifted position.
        region: ``[padded]`` mask region of each shifted position.
    """
    w = paddle.minimum(n, paddle.full([], window, "int64"))
    s = (n > window).astype("int64") * shift
    padded = (n + w - 1) // w * w
    source = (paddle.arange(padded, dtype="int64") + s) % padded
    region = (source + w - s) // w
    return w, s, padded, source, region


def _masked(height: int, width: int, window_size: Tuple[int, int],
             shift_size: Tuple[int, int]) -> bool:
    """Whether any (query, key) pair is masked: a shifted axis, or one that is padded."""
    return any(n > w0 and (s0 or n % w0)
               for n, w0, s0 in zip((height, width), window_size, shift_size))


def relative_position_index(window: Tuple[Size, Size],
                            table_window: Tuple[int, int]) -> paddle.Tensor:
    """Row of the bias table for each (query, key) pair of a ``window`` (``[N * N]``).

    The table is laid out for ``table_window`` (the configured window, ``(2Wh-1)*(2Ww-1)``
    rows); a smaller effective window uses the rows of the offsets it can hold.
    """
    wh, ww = window
    rows = paddle.arange(wh, dtype="int64").reshape([-1, 1]).expand([wh, ww]).flatten()
    cols = paddle.arange(ww, dtype="int64").reshape([1, -1]).expand([wh, ww]).flatten()
    d_rows = rows.reshape([-1, 1]) - rows.reshape([1, -1]) + (table_window[0] - 1)
    d_cols = cols.reshape([-1, 1]) - cols.reshape([1, -1]) + (table_window[1] - 1)
    return (d_rows * (2 * table_window[1] - 1) + d_cols).flatten()


def window_geometry(height: Size, width: Size, window_size: Tuple[int, int],
                    shift_size: Tuple[int, int]) -> WindowGeometry:
    """Build the tables for a ``height x width`` map with Paddle ops.

    Args:
        height, width: map size, Python ints or 0-D integer tensors (dynamic shapes).
        window_size: configured window ``(Wh, Ww)``.
        shift_size: configured shift ``(Sh, Sw)``; ``(0, 0)`` for plain windows.

    Returns:
        A :class:`WindowGeometry`; its mask is None only for Python-int sizes where no pair
        is masked.
    """
    h, w = _int64(height), _int64(width)
    wh, sh, hp, src_h, reg_h = _axis_layout(h, window_size[0], shift_size[0])
    ww, sw, wp, src_w, reg_w = _axis_layout(w, window_size[1], shift_size[1])
    n_rows, n_cols = hp // wh, wp // ww
    num_windows, tokens = n_rows * n_cols, wh * ww

    # Broadcast both axes to the window layout [nWh, nWw, wh, ww].
    rows = src_h.reshape([n_rows, 1, wh, 1])
    cols = src_w.reshape([1, n_cols, 1, ww])
    real = paddle.logical_and(rows < h, cols < w)
    gather = ((rows * w + cols) * real.astype("int64")).flatten()

    # Slot of real token (i, j): invert the roll, then split into window and offset.
    i = (paddle.arange(h, dtype="int64") - sh) % hp
    j = (paddle.arange(w, dtype="int64") - sw) % wp
    slot_h = (i // wh * n_cols * tokens + i % wh * ww).reshape([-1, 1])
    slot_w = (j // ww * tokens + j % ww).reshape([1, -1])
    scatter = (slot_h + slot_w).flatten()

    region = (reg_h.reshape([n_rows, 1, wh, 1]) * (n_cols + 2)
              + reg_w.reshape([1, n_cols, 1, ww])).reshape([num_windows, tokens])
    real = real.reshape([num_windows, 1, tokens])
    allowed = paddle.logical_and(region.reshape([num_windows, tokens, 1]) == region.reshape(
        [num_windows, 1, tokens]), real)
    mask = paddle.where(allowed, paddle.zeros([], "float32"),
                        paddle.full([], MASK_VALUE, "float32"))
    relative_index = relative_position_index((wh, ww), window_size)
    if isinstance(height, int) and isinstance(width, int) and not _masked(
            height, width, window_size, shift_size):
        mask = None
    return WindowGeometry(gather, scatter, relative_index, mask, num_windows, tokens,
                          (wh, ww), (sh, sw))


def log_spaced_coords(height: Size, width: Size, window_size: Tuple[int, int],
                      pretrained_window: Tuple[int, int]) -> paddle.Tensor:
    """Swin V2's continuous position bias input: the log-spaced relative coordinates of
    every offset a configured ``window_size`` window holds.

    Returns float32 ``[(2Wh-1) * (2Ww-1), 2]``, row ``i * (2Ww-1) + j`` for the offset
    ``(i - (Wh-1), j - (Ww-1))``: the layout of the V1 bias table, so
    :func:`relative_position_index` picks each (query, key) pair's row. Per axis, offsets
    are divided by ``p - 1`` for a pretrained window ``p > 0``, else by ``w - 1`` for the
    effective window ``w = min(n, W)`` on a side ``n`` (the official rule: a stage no
    larger than the window clips it, and its table uses the clipped window; 1 where that
    is 0, a window one token wide, whose only offset is 0), times 8, then
    ``sign(x) * log2(|x| + 1) / log2(8)``.

    Args:
        height, width: map size (ints or 0-D integer tensors).
        window_size: configured window ``(Wh, Ww)``.
        pretrained_window: ``(ph, pw)``, 0 for none.
    """
    axes = []
    for n, window, pretrained in zip((height, width), window_size, pretrained_window):
        offsets = paddle.arange(-(window - 1), window, dtype="float32")
        if pretrained > 0:
            offsets = offsets / float(pretrained - 1) * 8.0
        else:
            effective = paddle.minimum(_int64(n), paddle.full([], window, "int64"))
            span = paddle.maximum(effective - 1, paddle.ones([], "int64")).astype("float32")
            offsets = offsets / span * 8.0
        axes.append(paddle.sign(offsets) * paddle.log2(paddle.abs(offsets) + 1.0)
                    / math.log2(8.0))
    rows, cols = (2 * window_size[0] - 1), (2 * window_size[1] - 1)
    return paddle.stack([axes[0].reshape([-1, 1]).expand([rows, cols]).flatten(),
                         axes[1].reshape([1, -1]).expand([rows, cols]).flatten()], axis=1)


def merge_order(height: Size, width: Size) -> paddle.Tensor:
    """Token order of 2x2 patch merging on an even-sided ``height x width`` map.

    Returns ``[H * W]`` int64: gathering the ``[B, H*W, C]`` tokens in this order and
    reshaping to ``[B, H/2, W/2, 4C]`` concatenates each 2x2 patch in the official order,
    offsets (row, column) = (0,0), (1,0), (0,1), (1,1). A gather, because the equivalent
    6-D transpose is a slow per-element copy in Paddle's CPU kernels.
    """
    h, w = _int64(height), _int64(width)
    rows = (paddle.arange(0, h, 2, dtype="int64").reshape([-1, 1, 1, 1])
            + paddle.arange(2, dtype="int64").reshape([1, 1, 1, 2]))  # row offset fastest
    cols = (paddle.arange(0, w, 2, dtype="int64").reshape([1, -1, 1, 1])
            + paddle.arange(2, dtype="int64").reshape([1, 1, 2, 1]))
    return (rows * w + cols).flatten()


#: Eager-cached / traced forms (:func:`miziha.layers.size_cache.size_cached`): what layers call.
window_tables = size_cached(window_geometry)
merge_tables = size_cached(merge_order)
coords_tables = size_cached(log_spaced_coords)
