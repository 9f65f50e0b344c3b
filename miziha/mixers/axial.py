"""``AxialT``: axial self-attention used like ``nn.Conv2D``: half the heads attend along the
token's whole row, half along its whole column, in parallel (the axial attention of Pale
Transformer's Figure 1(c), Wu et al., AAAI 2022; axial attention itself: Ho et al., 2019,
Wang et al., ECCV 2020), with a Swin-like pre-norm block.

No official code exists for this form. It is built on the group attention CSWin and Pale
use (:mod:`miziha.layers.groups`, :func:`~miziha.layers.attention.group_attention`): a
row is a horizontal stripe one token high spanning the map, a column a vertical stripe one
token wide, so no window size and no padding, at any map size. Parameter names follow
CSWin's block (``norm1``, ``qkv``, ``proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; no LePE).
"""

from __future__ import annotations

from functools import partial
from typing import List, NamedTuple, Optional, Sequence, Union

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.attention import attention_repr, two_branch_attention
from ..layers.basic import ConvMerge, DropPath, Mlp, layer_norm, linear
from ..layers.groups import TokenGroups, group_tables
from ..layers.shapes import Size
from .base import IntPair, TokenMixer

__all__ = ["AxialT", "AxialBlock", "AxialGeometry"]


class AxialGeometry(NamedTuple):
    """The token groups of the two branches on one map size.

    Attributes:
        rows: one group per row (extent ``(1, W)``), for channels ``[0, C/2)``.
        cols: one group per column (extent ``(H, 1)``), for channels ``[C/2, C)``.
    """

    rows: TokenGroups
    cols: TokenGroups


class AxialBlock(nn.Layer):
    """Pre-norm axial attention block on tokens ``[B, H*W, C]``.

    ``x + DropPath(proj(attention(LN(x))))`` then ``x + DropPath(Mlp(LN(x)))``. One
    ``qkv`` Linear ``C -> 3C``; its first half of channels and heads (branch 0) attends
    along rows, its second half (branch 1) along columns
    (:func:`~miziha.layers.attention.qkv_half`, the layout CSWin's ``qkv`` has); the two
    outputs are concatenated in that order and projected by ``proj``. No position bias or
    encoding: within a row or column the attention is permutation-equivariant (positions
    come from the network around it).

    Args:
        dim: channels ``C``.
        num_heads: heads over both branches (even).
        mlp_hidden: MLP hidden width.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: score scale; default ``head_dim ** -0.5``.
        dropout: dropout after ``proj`` and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate of both residual branches.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (:mod:`miziha.layers.attention`).
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = qk_scale if qk_scale is not None else (dim // num_heads) ** -0.5
        self.attention = checks.attention_mode(attention)
        self.norm1 = layer_norm(dim)
        self.qkv = linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, geometry: AxialGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: the rows and columns of this map size.

        Returns: ``[B, H*W, C]``.
        """
        mixed = two_branch_attention(self.norm1(x, affine=False), self.qkv,
                                     self.norm1.affine_terms, geometry, self.num_heads,
                                     self.scale, self.attn_drop, self.attention)
        x = x + self.drop_path(self.proj_drop(self.proj(mixed)))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, scale={self.scale:.4g}, "
                f"attention={self.attention!r}")


class AxialT(TokenMixer):
    """Axial attention with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` :class:`AxialBlock` s at ``in_channels``: half the heads (channels ``[0, C/2)``)
    attend along the token's whole row, the other half along its whole column, so one block
    sees a cross through the token spanning the map, two blocks the whole map. No window
    or size argument, any ``H, W >= 1``, nothing padded. Then a 3x3 stride-2 conv +
    LayerNorm (``downsample=True``, CSWin's ``Merge_Block``: ``H' = ceil(H/2)``), or a linear
    projection to ``out_channels`` when it differs from ``in_channels``.

    Parameter names per block: ``norm1``, ``qkv`` (``[C, 3C]``: q, k, v, each the row
    half then the column half), ``proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``;
    downsampling ``downsample.conv``, ``downsample.norm``. These are CSWin's names for the
    same roles (there is no official axial code for this form).

    Cost per block and image: ``QK^T`` and ``AV`` take ``H*W*(W+H)*C`` MACs (rows:
    ``H * W^2 * C/2`` each, columns ``W * H^2 * C/2``), against ``H*W*N*2C`` for windows of
    ``N`` tokens.

    Args:
        in_channels: input channels ``C_in`` (even).
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        num_heads: heads, even, dividing ``in_channels``. Default: about 32 channels a head,
            the same number in each half.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: attention score scale; default ``head_dim ** -0.5``.
        dropout: dropout after the attention projection and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with the 3x3 stride-2 conv + LayerNorm to ``out_channels``.
        depth: number of blocks.
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in :class:`~miziha.SwinT`.
    """

    two_branches = True

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW", use_recompute: bool = False,
                 attention: str = "auto") -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        self.num_heads = checks.branch_heads(self.in_channels, num_heads,
                                             "a row half and a column half")
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)
        block_options = checks.attention_options(qkv_bias, qk_scale, dropout,
                                                 attention_dropout, attention)
        self.attention = block_options["attention"]
        self.blocks = nn.LayerList([
            AxialBlock(self.in_channels, self.num_heads, self.mlp_hidden, droppath=rate,
                       **block_options)
            for rate in self.droppaths])
        self._build_output(partial(ConvMerge, norm=True))

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[AxialGeometry]:
        """Every block's rows and columns on a ``height x width`` map."""
        geometry = AxialGeometry(
            rows=group_tables(height, width, ("stripes", 1), ("full", 0), like=like),
            cols=group_tables(height, width, ("full", 0), ("stripes", 1), like=like))
        return [geometry] * self.depth

    def sample_bytes(self, layout: List[AxialGeometry], element_size: int) -> int:
        """The MLP hidden layer, ``qkv``, or a branch's q, k, v or its scores."""
        geometry = layout[0]
        tokens = geometry.rows.scatter.shape[0]
        widest = max([tokens * max(self.mlp_hidden, 3 * self.in_channels)]
                     + [tokens * max(3 * self.in_channels // 2,
                                     self.num_heads // 2 * g.group_tokens)
                        for g in geometry])
        return widest * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``QK^T`` and ``AV`` of both branches of every block, and ``qkv``, whose weight is
        used in two halves without calling the layer (no hook sees it)."""
        tokens = batch * height * width
        per_block = tokens * self.in_channels * 3 * self.in_channels \
            + 2 * tokens * (width + height) * (self.in_channels // 2)
        return self.depth * per_block

    def _repr_options(self) -> List[str]:
        return [f"num_heads={self.num_heads}"] + attention_repr(self.attention)
