"""Shape helpers that work in eager mode (Python ints) and in static graphs with dynamic
sizes (0-D/1-D integer tensors), so one forward serves training and ``jit.save`` export;
and :func:`place_key` / :func:`eager_on_cpu`, device checks that are also safe under SOT's
to_static."""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import paddle

__all__ = ["shape_of", "spatial_size", "pad_bottom_right", "place_key", "eager_on_cpu"]

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


def pad_bottom_right(x: paddle.Tensor, multiple: int, height: Size, width: Size,
                     height_axis: int) -> paddle.Tensor:
    """Zero-pad the spatial axes ``height_axis`` and ``height_axis + 1`` at the bottom and
    right up to multiples of ``multiple``; ``height``/``width`` are ints or 0-D tensors.

    Concatenates zeros then crops, which works for sizes known only in a static graph. Not
    ``F.pad``: its NHWC kernel corrupts memory in Paddle 3.3's oneDNN inference.
    """
    if isinstance(height, int) and isinstance(width, int) \
            and height % multiple == 0 and width % multiple == 0:
        return x
    for axis in (height_axis, height_axis + 1):
        zeros = paddle.zeros_like(paddle.slice(x, [axis], [0], [1]))
        x = paddle.concat([x] + [zeros] * (multiple - 1), axis=axis)
    ends = [(height + multiple - 1) // multiple * multiple,
            (width + multiple - 1) // multiple * multiple]
    return paddle.slice(x, [height_axis, height_axis + 1], [0, 0], ends)


def place_key(place: Optional[paddle.Place]) -> str:
    """``Place(gpu:0)`` / ``gpu:0`` -> ``gpu:0`` (default: Paddle's current device): one
    key per device, in the form that ``Tensor.to`` takes. Layers compare it with ``"cpu"``
    because calling ``place.is_cpu_place()`` in some forwards breaks SOT's to_static
    (Paddle 3.3: ``UnboundLocalError`` in its generated code)."""
    place = str(place) if place is not None else str(paddle.get_device())
    return place[len("Place("):-1] if place.startswith("Place(") else place


def eager_on_cpu(x: paddle.Tensor) -> bool:
    """Eager mode with ``x`` on a CPU: where miziha works around Paddle's CPU kernels
    (sub-batches, the Linear bias row, LayerNorm's affine terms). A graph being built is
    never asked for its place (Paddle warns that it has none)."""
    return paddle.in_dynamic_mode() and place_key(x.place) == "cpu"
