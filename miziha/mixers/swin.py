"""Swin V1 as a mixer: ``SwinT`` (window attention used like ``nn.Conv2D``), its
transformer block and its patch merging."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.attention import WindowAttention, attention_repr
from ..layers.basic import DropPath, Mlp, layer_norm, linear
from .base import IntPair, TokenMixer
from ..layers.shapes import Size
from ..layers.windows import WindowGeometry, merge_tables, window_tables
from ..paddle_fixes.workarounds import pad_bottom_right

__all__ = ["SwinT", "SwinTransformerBlock", "PatchMerging"]


class SwinT(TokenMixer):
    """Window attention with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` Swin V1 blocks run at ``in_channels``, alternating W-MSA and SW-MSA (shifted
    windows with the cyclic-shift mask), each with relative position bias. Then either patch
    merging (``downsample=True``: ``H' = ceil(H/2)``, ``W' = ceil(W/2)``), or a linear
    projection to ``out_channels`` when it differs from ``in_channels``.

    Any input size works: maps are padded up to a multiple of the window and padded tokens
    are masked out as keys; where a map side is no larger than the window, the window
    shrinks to it on that side and that side is not shifted.

    SwinT owns the window state: :attr:`window_size` and :attr:`shifts` (the configured
    shift of each block, half a window on odd blocks); :meth:`layout` gives each block its
    :class:`~miziha.layers.windows.WindowGeometry` for an input size.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        num_heads: attention heads; must divide ``in_channels``. Default: about 32
            channels a head.
        window_size: window side, an int or ``(Wh, Ww)``.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: attention score scale; default ``head_dim ** -0.5``.
        dropout: dropout after the attention projection and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with 2x2 patch merging to ``out_channels``.
        depth: number of blocks, even (W-MSA, SW-MSA pairs).
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
        attention: ``"auto"`` (default: Paddle's fused ``scaled_dot_product_attention``
            for float16/bfloat16 on a GPU, else the math path), ``"math"`` or ``"sdpa"``;
            see :mod:`miziha.layers.attention`.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 window_size: IntPair = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW",
                 use_recompute: bool = False, attention: str = "auto") -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        self._init_windows(num_heads, window_size, mlp_ratio)
        block_options = checks.attention_options(qkv_bias, qk_scale, dropout,
                                                 attention_dropout, attention)
        self.attention = block_options["attention"]
        self.blocks = nn.LayerList([
            SwinTransformerBlock(self.in_channels, self.num_heads, self.window_size,
                                 self.mlp_hidden, droppath=rate, **block_options)
            for rate in self.droppaths])
        self._build_output(PatchMerging)

    def _init_windows(self, num_heads: Optional[int], window_size: IntPair,
                      mlp_ratio: float) -> None:
        """The window state (Swin V1 and V2): checked heads, window, the shift of each
        block, the MLP width."""
        if self.depth % 2:
            raise ValueError(f"depth must be even (W-MSA and SW-MSA blocks in pairs), "
                             f"got {self.depth}")
        self.num_heads = checks.heads(self.in_channels, num_heads)
        self.window_size = checks.int_pair("window_size", window_size)
        half = (self.window_size[0] // 2, self.window_size[1] // 2)
        #: Configured shift of each block: W-MSA on even blocks, SW-MSA on odd ones.
        self.shifts: Tuple[Tuple[int, int], ...] = tuple(
            half if i % 2 else (0, 0) for i in range(self.depth))
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[WindowGeometry]:
        """Each block's windows on a ``height x width`` map (plain or shifted, padded and
        shrunk as the map needs)."""
        tables = {shift: window_tables(height, width, self.window_size, shift, like=like)
                  for shift in set(self.shifts)}
        return [tables[shift] for shift in self.shifts]

    def sample_bytes(self, layout: List[WindowGeometry], element_size: int) -> int:
        """The MLP hidden layer, ``qkv`` or the attention scores, over padded tokens."""
        geometry = layout[0]
        width = max(self.mlp_hidden, 3 * self.in_channels,
                    self.num_heads * geometry.window_tokens)
        return geometry.num_windows * geometry.window_tokens * width * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``QK^T`` and ``AV`` of every block, padded windows included."""
        return sum(2 * batch * geometry.num_windows * geometry.window_tokens ** 2
                   * self.in_channels for geometry in self.layout(height, width))

    def _repr_options(self) -> List[str]:
        return [f"num_heads={self.num_heads}", f"window_size={self.window_size}"] + \
            attention_repr(self.attention)


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
        x = self.merge(x, height, width)
        return self.reduction(self.norm(x, affine=False), self.norm.affine_terms)

    def merge(self, x: paddle.Tensor, height: Size, width: Size) -> paddle.Tensor:
        """Each 2x2 neighbourhood concatenated: ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2),
        4C]`` (zero padding at the bottom/right for odd sides)."""
        x = pad_bottom_right(x, 2, height, width, height_axis=1)
        half_h, half_w = (height + 1) // 2, (width + 1) // 2
        order = merge_tables(2 * half_h, 2 * half_w, like=x)
        x = paddle.index_select(x.reshape([0, -1, self.dim]), order, axis=1)
        return x.reshape([0, half_h, half_w, 4 * self.dim])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out_dim={self.out_dim}"
