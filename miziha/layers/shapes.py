"""Shape helpers that work in eager mode (Python ints) and in static graphs with dynamic
sizes (0-D/1-D integer tensors), so one forward serves training and ``jit.save`` export."""

from __future__ import annotations

from typing import List, Tuple, Union

import paddle

__all__ = ["Size", "shape_of", "spatial_size"]

Size = Union[int, paddle.Tensor]


def shape_of(x: paddle.Tensor) -> Union[List[int], paddle.Tensor]:
    """``x.shape`` as ints in eager mode; ``paddle.shape(x)`` (1-D int tensor) in a static
    graph, where dimensions may be unknown until run time. Both are valid ``reshape``
    targets."""
    return x.shape if paddle.in_dynamic_mode() else paddle.shape(x)


def spatial_size(x: paddle.Tensor, height_axis: int) -> Tuple[Size, Size]:
    """``(H, W)`` at axes ``height_axis`` and ``height_axis + 1`` (see :func:`shape_of`)."""
    shape = shape_of(x)
    return shape[height_axis], shape[height_axis + 1]
