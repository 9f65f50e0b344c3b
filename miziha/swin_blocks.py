"""Swin V1 blocks: the transformer block and patch merging."""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
import paddle.nn as nn

from .attention import WindowAttention
from .layers import DropPath, Mlp, layer_norm, linear
from .shapes import Size
from .windows import WindowGeometry, merge_tables
from .workarounds import pad_bottom_right

__all__ = ["SwinTransformerBlock", "PatchMerging"]


class SwinTransformerBlock(nn.Layer):
    """Pre-norm Swin V1 block on tokens ``[B, H*W, C]``.

    ``x + DropPath(WindowAttention(LN(x)))`` then ``x + DropPath(Mlp(LN(x)))``. Whether
    windows are shifted, padded or shrunk is decided by the :class:`WindowGeometry`
    passed to :meth:`forward` (the owning :class:`~miziha.SwinT` decides), so one block
    serves any map size and either kind of window.

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        window_size: configured window ``(Wh, Ww)`` (sizes the bias table).
        mlp_hidden: MLP hidden width.
        qkv_bias, qk_scale, attention_dropout, dropout, attention: see
            :class:`WindowAttention`.
        droppath: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Tuple[int, int], mlp_hidden: int,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, qk_scale,
                                    attention_dropout, dropout, attention)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, geometry: WindowGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: this block's windows for this map size.

        Returns: ``[B, H*W, C]``.
        """
        # One gather does shift, padding and window partition; its inverse undoes them.
        # Each LayerNorm's affine terms are folded into the Linear after it. Gathering
        # before the (per-token) norm1 lets qkv keep the norm's output for backward, not a
        # second, gathered copy of it.
        windows = self.norm1(paddle.index_select(x, geometry.gather, axis=1),
                             affine=False)  # [B, nW*N, C]
        attn = self.attn(windows, geometry, self.norm1.affine_terms)
        x = x + self.drop_path(paddle.index_select(attn, geometry.scatter, axis=1))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))


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

    def forward(self, x: paddle.Tensor, height: Size, width: Size) -> paddle.Tensor:
        """Args: x ``[B, H, W, C]``; height, width: ``H``, ``W`` (ints or 0-D tensors).

        Returns: ``[B, ceil(H/2), ceil(W/2), out_dim]``.
        """
        x = pad_bottom_right(x, 2, height, width, height_axis=1)
        half_h, half_w = (height + 1) // 2, (width + 1) // 2
        order = merge_tables(2 * half_h, 2 * half_w, like=x)
        x = paddle.index_select(x.reshape([0, -1, self.dim]), order, axis=1)
        x = x.reshape([0, half_h, half_w, 4 * self.dim])
        return self.reduction(self.norm(x, affine=False), self.norm.affine_terms)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}"
