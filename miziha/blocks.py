"""Swin V1 building blocks: MLP, stochastic depth, the transformer block, patch merging."""

from __future__ import annotations

from typing import List, Optional, Tuple

import paddle
import paddle.nn as nn

from . import checks
from .attention import WindowAttention
from .init import layer_norm, linear
from .windows import WindowGeometry

__all__ = ["Mlp", "DropPath", "droppath_schedule", "SwinTransformerBlock", "PatchMerging", "pad_bottom_right",
           "spatial_size"]


def spatial_size(x: paddle.Tensor, height_axis: int):
    """``(H, W)`` at axes ``height_axis`` and ``height_axis + 1``: ints in eager mode, 0-D
    tensors in a static graph, where sizes may be dynamic."""
    if paddle.in_dynamic_mode():
        return x.shape[height_axis], x.shape[height_axis + 1]
    shape = paddle.shape(x)
    return shape[height_axis], shape[height_axis + 1]


def pad_bottom_right(x: paddle.Tensor, multiple: int, height, width,
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


class Mlp(nn.Layer):
    """Linear -> GELU (exact) -> dropout -> Linear -> dropout, on ``[..., C]``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Layer):
    """Stochastic depth: in training, zero a whole sample's residual branch with
    probability ``p`` and scale the kept ones by ``1 / (1 - p)``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        return x * (paddle.rand(shape, dtype=x.dtype) < keep).astype(x.dtype) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def droppath_schedule(rate: float, blocks: int) -> List[float]:
    """Stochastic depth rates rising linearly from 0 to ``rate`` over ``blocks`` blocks, as in
    the official Swin; ``rate`` is validated as the ``droppath`` argument."""
    return paddle.linspace(0.0, checks.rate("droppath", rate), blocks).tolist()


class SwinTransformerBlock(nn.Layer):
    """Pre-norm Swin V1 block on tokens ``[B, H*W, C]``.

    ``x + DropPath(WindowAttention(LN(x)))`` then ``x + DropPath(Mlp(LN(x)))``. Whether
    windows are shifted, padded or shrunk is decided by the :class:`WindowGeometry`
    passed to :meth:`forward`, so one block serves any map size.

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        window_size: configured window ``(Wh, Ww)``.
        shifted: SW-MSA (shift by half a window) instead of W-MSA.
        mlp_ratio: MLP hidden width over ``C``.
        qkv_bias, qk_scale, attention_dropout, dropout: see :class:`WindowAttention`.
        droppath: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Tuple[int, int],
                 shifted: bool = False, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = tuple(window_size)
        self.shift_size = (self.window_size[0] // 2, self.window_size[1] // 2) if shifted \
            else (0, 0)
        self.norm1 = layer_norm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias, qk_scale,
                                    attention_dropout, dropout)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: paddle.Tensor, geometry: WindowGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry for this map size and ``shift_size``.

        Returns: ``[B, H*W, C]``.
        """
        # One gather does shift, padding and window partition; its inverse undoes them.
        windows = paddle.index_select(self.norm1(x), geometry.gather, axis=1)
        windows = windows.reshape([0, geometry.num_windows, -1, self.dim])  # [B, nW, N, C]
        bias_mask = self.attn.bias_and_mask(geometry.relative_index, geometry.window_tokens,
                                            geometry.mask)
        attn = self.attn(windows, bias_mask).reshape([0, -1, self.dim])
        x = x + self.drop_path(paddle.index_select(attn, geometry.scatter, axis=1))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, shift_size={self.shift_size}"


class PatchMerging(nn.Layer):
    """Concatenate each 2x2 neighbourhood, LayerNorm(4C), Linear(4C -> out_dim, no bias).

    Maps ``[B, H, W, C]`` to ``[B, ceil(H/2), ceil(W/2), out_dim]``; odd sizes are padded
    with zeros at the bottom/right first, as in the official code. The concatenation
    order is the official one: (0,0), (1,0), (0,1), (1,1) as (row, column) offsets.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim
        self.norm = layer_norm(4 * dim)
        self.reduction = linear(4 * dim, out_dim, bias=False)

    def forward(self, x: paddle.Tensor, height, width) -> paddle.Tensor:
        """Args: x ``[B, H, W, C]``; height, width: ``H``, ``W`` (ints or 0-D tensors).

        Returns: ``[B, ceil(H/2), ceil(W/2), out_dim]``.
        """
        x = pad_bottom_right(x, 2, height, width, height_axis=1)
        half_w = (width + 1) // 2
        # [B, H/2, 2 (row), W/2, 2 (col), C] -> [B, H/2, W/2, col, row, C]
        x = x.reshape([0, -1, 2, half_w, 2, self.dim]).transpose([0, 1, 3, 4, 2, 5])
        x = x.reshape([0, 0, 0, 4 * self.dim])
        return self.reduction(self.norm(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}"
