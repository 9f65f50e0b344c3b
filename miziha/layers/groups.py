"""Token groups for attention inside stripes (CSWin) and interlaced rows or columns (Pale).

Pure functions: sizes in, index tables out; Paddle ops only, so they also run inside a
static graph with dynamic sizes (:data:`group_tables` is the eager-cached / traced form).
Axes are added with ``reshape``, never ``unsqueeze`` (:mod:`miziha.paddle_fixes.workarounds`, item 4).

Each spatial axis of length ``n`` is laid out in one of three ways, with ``s`` the design's
size argument and ``np = ceil(n / s) * s`` the axis padded at its end:

* ``"full"``: one group spans the whole axis (no padding);
* ``"stripes"``: consecutive runs of ``s`` positions (CSWin's stripe width ``split_size``):
  position ``i`` is in group ``i // s`` at slot ``i % s``;
* ``"interlaced"``: ``s`` positions spaced ``G = np / s`` apart (Pale's interlaced rows or
  columns): position ``i`` is in group ``i % G`` at slot ``i // G``.

A group of the map is one group of each axis; its ``N`` tokens are ordered row-major over
its ``(rows, cols)`` extent, so the tokens of a stripe reshape to the stripe's image.
Padded positions are gathered as token 0 and masked out as keys.

Two groupings need no table (:attr:`TokenGroups.order`): whole rows (``"full"`` columns,
rows ``"full"`` or unpadded ``"stripes"``) keep the map's order, and whole columns one wide
(rows ``"full"``, columns ``("stripes", 1)``) are the map transposed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import paddle

from .size_cache import size_cached
from .shapes import Size
from .windows import MASK_VALUE

__all__ = ["AXIS_LAYOUTS", "TokenGroups", "token_groups", "group_tables", "group_order"]

AXIS_LAYOUTS = ("full", "stripes", "interlaced")


@dataclass
class TokenGroups:
    """Index tables of one grouping of a ``[B, H*W, C]`` map.

    Attributes:
        gather: int64 ``[nG * N]``; the token of each group slot (padding: token 0).
        scatter: int64 ``[H * W]``; the group slot of each real token.
        key_mask: float32 ``[nG, N]``, 0 for real tokens and :data:`MASK_VALUE` for padding;
            None where nothing is padded (known from Python-int sizes).
        valid: float32 ``[nG * N]``, 1 for real tokens and 0 for padding; None likewise.
        num_groups: ``nG``.
        group_tokens: ``N``.
        extent: ``(rows, cols)`` of a group, ``N = rows * cols``.
        order: ``"same"`` where ``gather`` and ``scatter`` are the identity, ``"transposed"``
            where the groups are the map's columns (``gather`` takes ``[H, W]`` to ``[W,
            H]``), else None, also for a height that is not a Python int
            (:func:`group_order`).
    """

    gather: paddle.Tensor
    scatter: paddle.Tensor
    key_mask: Optional[paddle.Tensor]
    valid: Optional[paddle.Tensor]
    num_groups: Size
    group_tokens: Size
    extent: Tuple[Size, Size]
    order: Optional[str]


def _axis(n: paddle.Tensor, layout: str, size: int):
    """One axis of length ``n`` (0-D int64).

    Returns: groups ``G``, extent ``E`` (slots a group has on this axis), and
    ``position [G, E]``: the (padded) coordinate of each group's slot.
    """
    if layout == "full":
        return paddle.ones([], "int64"), n, paddle.arange(n, dtype="int64").reshape([1, -1])
    size = paddle.full([], size, "int64")  # 0-D: floor_divide by a Python int gives [1]
    groups = (n + size - 1) // size
    if layout == "stripes":
        position = paddle.arange(groups, dtype="int64").reshape([-1, 1]) * size \
            + paddle.arange(size, dtype="int64").reshape([1, -1])
        return groups, size, position
    position = paddle.arange(groups, dtype="int64").reshape([-1, 1]) \
        + paddle.arange(size, dtype="int64").reshape([1, -1]) * groups
    return groups, size, position


def _slot_of(n: paddle.Tensor, layout: str, size: int) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """Group and slot of each real coordinate ``0..n-1`` of one axis."""
    i = paddle.arange(n, dtype="int64")
    if layout == "full":
        return paddle.zeros_like(i), i
    size = paddle.full([], size, "int64")
    if layout == "stripes":
        return i // size, i % size
    groups = (n + size - 1) // size
    return i % groups, i // groups


def token_groups(height: Size, width: Size, rows: Tuple[str, int],
                 cols: Tuple[str, int]) -> TokenGroups:
    """Group the tokens of a ``height x width`` map.

    Args:
        height, width: Python ints or 0-D integer tensors.
        rows, cols: ``(layout, size)`` of each axis, layout one of :data:`AXIS_LAYOUTS`
            (size ignored for ``"full"``).
    """
    for name, (layout, size) in (("rows", rows), ("cols", cols)):
        if layout not in AXIS_LAYOUTS or (layout != "full" and size < 1):
            raise ValueError(f"{name} must be (layout, size) with layout in {AXIS_LAYOUTS} "
                             f"and size >= 1, got {(layout, size)}")
    h = paddle.to_tensor(height, dtype="int64") if isinstance(height, int) \
        else height.astype("int64")
    w = paddle.to_tensor(width, dtype="int64") if isinstance(width, int) \
        else width.astype("int64")
    groups_h, extent_h, pos_h = _axis(h, *rows)
    groups_w, extent_w, pos_w = _axis(w, *cols)
    num_groups, tokens = groups_h * groups_w, extent_h * extent_w

    # [Gh, Gw, Eh, Ew]: group (gh, gw), slot (eh, ew).
    r = pos_h.reshape([groups_h, 1, extent_h, 1])
    c = pos_w.reshape([1, groups_w, 1, extent_w])
    real = paddle.logical_and(r < h, c < w)
    gather = ((r * w + c) * real.astype("int64")).flatten()

    group_h, slot_h = _slot_of(h, *rows)
    group_w, slot_w = _slot_of(w, *cols)
    scatter = ((group_h.reshape([-1, 1]) * groups_w + group_w.reshape([1, -1])) * tokens
               + slot_h.reshape([-1, 1]) * extent_w + slot_w.reshape([1, -1])).flatten()

    valid = real.astype("float32").flatten()
    key_mask = ((1.0 - valid) * MASK_VALUE).reshape([num_groups, tokens])
    if isinstance(height, int) and isinstance(width, int) and all(
            layout == "full" or n % size == 0
            for n, (layout, size) in ((height, rows), (width, cols))):
        key_mask = valid = None
    return TokenGroups(gather, scatter, key_mask, valid, num_groups, tokens,
                       (extent_h, extent_w), group_order(height, rows, cols))


def group_order(height: Size, rows: Tuple[str, int], cols: Tuple[str, int]) -> Optional[str]:
    """:attr:`TokenGroups.order` of a grouping: ``"same"`` for whole rows (columns
    ``"full"``; rows ``"full"``, or ``"stripes"`` whose size divides ``height``), the map's
    own token order; ``"transposed"`` for columns one wide (rows ``"full"``, columns
    ``("stripes", 1)``), the map's tokens column by column; None otherwise, and for a
    ``height`` that is not a Python int."""
    if not isinstance(height, int):
        return None
    if cols[0] == "full" and (rows[0] == "full"
                              or (rows[0] == "stripes" and height % rows[1] == 0)):
        return "same"
    if rows[0] == "full" and cols == ("stripes", 1):
        return "transposed"
    return None


#: Eager-cached / traced form of :func:`token_groups` (:func:`miziha.layers.size_cache.size_cached`).
group_tables = size_cached(token_groups)
