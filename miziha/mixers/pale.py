"""``PaleT``: Pale Transformer's pale-shaped self-attention (PS-Attention) used like
``nn.Conv2D``.

Wu, Wu, Tan, Guo, "Pale Transformer: A General Vision Transformer Backbone with Pale-Shaped
Attention", AAAI 2022 (arXiv 2112.14000). No official code was released; this follows the
paper's text (see ``tests/reference_pale.py`` for what it specifies and what is inferred).
The file holds the attention (:class:`PaleAttention`), the block (:class:`PaleBlock`) and
the mixer (:class:`PaleT`); the interlaced token groups are :mod:`miziha.layers.groups`'.
"""

from __future__ import annotations

from functools import partial

from typing import List, NamedTuple, Optional, Sequence, Union

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.attention import attention_repr, two_branch_attention
from ..layers.groups import TokenGroups, group_tables
from ..layers.basic import ConvMerge, DropPath, Mlp, layer_norm, linear
from .base import IntPair, TokenMixer
from ..layers.shapes import Size
from ..paddle_fixes.workarounds import Affine, conv_channels_last

__all__ = ["PaleT", "PaleBlock", "PaleAttention", "PaleGeometry"]


class PaleGeometry(NamedTuple):
    """The token groups of the two PS-Attention branches on one map size.

    Attributes:
        rows: groups of ``pale_size`` interlaced rows (all columns), for channels
            ``[0, C/2)``; extent ``(pale_size, W)``.
        cols: groups of ``pale_size`` interlaced columns (all rows), for channels
            ``[C/2, C)``; extent ``(H, pale_size)``.
    """

    rows: TokenGroups
    cols: TokenGroups

    @property
    def height(self) -> Size:
        """``H`` of the map (a column group spans every row)."""
        return self.cols.extent[0]

    @property
    def width(self) -> Size:
        """``W`` of the map (a row group spans every column)."""
        return self.rows.extent[1]


class PaleAttention(nn.Layer):
    """PS-Attention on normalised tokens ``[B, H*W, C]`` (paper Sec. "Efficient Parallel
    Implementation").

    ``q, k, v = qkv(x)``; channels ``[0, C/2)`` (heads ``0 .. h/2-1``) attend within groups of
    interlaced rows, channels ``[C/2, C)`` (the other heads) within groups of interlaced
    columns; the two halves are concatenated (rows first) and projected by ``proj``.
    Each head has ``C / num_heads`` channels.

    Args:
        dim: channels ``C`` (even).
        num_heads: heads, even; ``num_heads / 2`` per branch.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: score scale; default ``head_dim ** -0.5``.
        attention_dropout: dropout on the attention weights.
        dropout: dropout after the output projection.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (see :mod:`miziha.layers.attention`).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attention_dropout: float = 0.0,
                 dropout: float = 0.0, attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.attention = checks.attention_mode(attention)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else self.head_dim ** -0.5
        self.qkv = linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor, geometry: PaleGeometry,
                input_affine: Optional[Affine] = None) -> paddle.Tensor:
        """Args:
            x: ``[B, H*W, C]``, row-major tokens of the map.
            geometry: the row and column groups for this map size.
            input_affine: a LayerNorm's ``(weight, bias)`` not yet applied to ``x`` (folded
                into ``qkv``), or None.

        Returns: ``[B, H*W, C]``.
        """
        out = two_branch_attention(x, self.qkv, input_affine, geometry, self.num_heads,
                                   self.scale, self.attn_drop, self.attention)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, scale={self.scale:.4g}, "
                f"attention={self.attention!r}")


class PaleBlock(nn.Layer):
    """Pale Transformer block on tokens ``[B, H*W, C]`` (paper Sec. "Pale Transformer
    Block"):

    ``x = x + CPE(x)`` (depthwise 3x3 conv with bias, zero padding 1, on the ``H x W`` map), then
    ``x + DropPath(PaleAttention(LN(x)))``, then ``x + DropPath(Mlp(LN(x)))``.

    Args:
        dim: channels ``C``.
        num_heads: attention heads (even).
        mlp_hidden: MLP hidden width.
        qkv_bias, qk_scale, attention_dropout, dropout, attention: see
            :class:`PaleAttention`.
        droppath: stochastic depth rate of the attention and MLP branches.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.cpe = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = layer_norm(dim)
        self.attn = PaleAttention(dim, num_heads, qkv_bias, qk_scale, attention_dropout,
                                  dropout, attention)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, geometry: PaleGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: the token groups for this map size.

        Returns: ``[B, H*W, C]``.
        """
        image = x.reshape([0, geometry.height, geometry.width, self.dim])
        x = x + conv_channels_last(self.cpe, image).reshape([0, -1, self.dim])
        # Each LayerNorm's affine terms are folded into the Linear after it.
        x = x + self.drop_path(self.attn(self.norm1(x, affine=False), geometry,
                                         self.norm1.affine_terms))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))


class PaleT(TokenMixer):
    """Pale-shaped attention with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` Pale blocks run at ``in_channels``: each adds a conditional position encoding
    (depthwise 3x3 conv) and then PS-Attention, in which half of the channels and heads
    attend within groups of ``pale_size`` interlaced rows (rows ``g, g + G, g + 2G, ...`` with
    ``G = H / pale_size``) and the other half within groups of ``pale_size`` interlaced
    columns, so a token sees a pale of ``pale_size`` rows and ``pale_size`` columns spread
    over the whole map; then an MLP. No relative position bias. Then either a stride-2 3x3
    conv + LayerNorm (``downsample=True``, the paper's patch merging: ``H' = ceil(H/2)``,
    ``W' = ceil(W/2)``), or a linear projection to ``out_channels`` when it differs from
    ``in_channels``.

    Any input size works: an axis not a multiple of ``pale_size`` is padded at its end
    (``G = ceil(n / pale_size)``) for its branch only; padded tokens are never keys and their
    outputs are dropped.

    Difference from the paper: q, k, v come from one Linear ``attn.qkv`` (``C -> 3C``). The
    paper, following CvT, makes them with three separable convolutions (a depthwise 3x3 conv,
    then this pointwise projection), which lets a token also see the 3x3 neighbourhood of its
    pale; here it sees exactly its pale (positions come from the CPE).

    Parameter names per block: ``cpe`` (``[C, 1, 3, 3]`` and bias), ``norm1``,
    ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; downsampling
    ``downsample.conv``, ``downsample.norm``.

    Args:
        in_channels: input channels ``C_in`` (even).
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        num_heads: attention heads, even, dividing ``in_channels``. Default: about 32
            channels a head, the same number in each half.
        pale_size: interlaced rows (and columns) per group, ``s_r = s_c``.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: attention score scale; default ``head_dim ** -0.5``.
        dropout: dropout after the attention projection and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with the stride-2 conv merging to ``out_channels``.
        depth: number of blocks.
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in :class:`~miziha.SwinT`; the
            padded-key mask is the fused attention's additive mask.
    """

    two_branches = True

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 pale_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW",
                 use_recompute: bool = False, attention: str = "auto") -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        self.num_heads = checks.branch_heads(self.in_channels, num_heads,
                                             "half the channels and heads attend along "
                                             "rows, half along columns")
        self.pale_size = checks.positive_int("pale_size", pale_size)
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)
        block_options = checks.attention_options(qkv_bias, qk_scale, dropout,
                                                 attention_dropout, attention)
        self.attention = block_options["attention"]
        self.blocks = nn.LayerList([
            PaleBlock(self.in_channels, self.num_heads, self.mlp_hidden, droppath=rate,
                      **block_options)
            for rate in self.droppaths])
        self._build_output(partial(ConvMerge, norm=True))

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[PaleGeometry]:
        """The interlaced row and column groups of a ``height x width`` map (the same for
        every block)."""
        interlaced, full = ("interlaced", self.pale_size), ("full", 0)
        geometry = PaleGeometry(group_tables(height, width, interlaced, full, like=like),
                                group_tables(height, width, full, interlaced, like=like))
        return [geometry] * self.depth

    def sample_bytes(self, layout: List[PaleGeometry], element_size: int) -> int:
        """The widest of: the MLP hidden layer, ``qkv``, a branch's grouped q/k/v or its
        attention scores (padded tokens included)."""
        geometry = layout[0]
        tokens = geometry.height * geometry.width
        widest = max(tokens * max(self.mlp_hidden, 3 * self.in_channels),
                     *(groups.num_groups * groups.group_tokens
                       * max(3 * self.in_channels // 2,
                             self.num_heads // 2 * groups.group_tokens)
                       for groups in geometry))
        return widest * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``QK^T`` and ``AV`` of each branch over its padded groups, every block:
        ``2 * B * nG * N^2 * C/2`` a branch; and ``qkv``, whose weight is used in two halves
        without calling the layer (no hook sees it)."""
        qkv = batch * height * width * self.in_channels * 3 * self.in_channels
        return sum(qkv + sum(2 * batch * groups.num_groups * groups.group_tokens ** 2
                             * (self.in_channels // 2) for groups in geometry)
                   for geometry in self.layout(height, width))

    def _repr_options(self) -> List[str]:
        return [f"num_heads={self.num_heads}", f"pale_size={self.pale_size}"] + \
            attention_repr(self.attention)
