"""Swin V1 building blocks: MLP, stochastic depth, the transformer block, patch merging."""

from __future__ import annotations

from typing import List, Optional, Tuple

import paddle
import paddle.nn as nn

from . import checks
from .attention import WindowAttention
from .init import layer_norm, linear
from .shapes import pad_bottom_right
from .windows import WindowGeometry, cached_merge_order, merge_order

__all__ = ["Mlp", "DropPath", "droppath_schedule", "SwinTransformerBlock", "PatchMerging"]


class Mlp(nn.Layer):
    """Linear -> GELU (exact) -> dropout -> Linear -> dropout, on ``[..., C]``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor,
                input_affine: Optional[Tuple[paddle.Tensor, paddle.Tensor]] = None
                ) -> paddle.Tensor:
        """Args: x ``[..., C]``; input_affine: a LayerNorm's ``(weight, bias)`` not yet
        applied to ``x`` (folded into ``fc1``). Returns: ``[..., C]``."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x, input_affine)))))


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
        # Each LayerNorm's affine terms are folded into the Linear after it.
        windows = paddle.index_select(self.norm1(x, affine=False), geometry.gather,
                                      axis=1)  # [B, nW*N, C]
        attn = self.attn(windows, geometry, self.norm1.affine_terms)
        x = x + self.drop_path(paddle.index_select(attn, geometry.scatter, axis=1))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))

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
        half_h, half_w = (height + 1) // 2, (width + 1) // 2
        if paddle.in_dynamic_mode():
            order = cached_merge_order(2 * half_h, 2 * half_w, x.place)
        else:
            order = merge_order(2 * half_h, 2 * half_w)
        x = paddle.index_select(x.reshape([0, -1, self.dim]), order, axis=1)
        x = x.reshape([0, half_h, half_w, 4 * self.dim])
        return self.reduction(self.norm(x, affine=False), self.norm.affine_terms)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}"
