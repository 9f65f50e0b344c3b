"""``CSWinT``: CSWin Transformer cross-shaped window attention (Dong et al., CVPR 2022, "CSWin
Transformer: A General Vision Transformer Backbone with Cross-Shaped Windows") used like
``nn.Conv2D``, and its block (:class:`CSWinBlock`, :class:`LePEAttention`) with the official
parameter names.
"""

from __future__ import annotations

from functools import partial

from typing import List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.attention import (attention_repr, group_attention, group_heads, qkv_half,
                                ungroup)
from ..layers.groups import TokenGroups, group_tables
from ..layers.basic import ConvMerge, DropPath, Mlp, layer_norm, linear
from .base import IntPair, TokenMixer
from ..layers.shapes import Size
from ..paddle_fixes.workarounds import line_conv

__all__ = ["CSWinT", "CSWinBlock", "LePEAttention"]

#: Per block, the groups of each branch: (vertical stripes, horizontal stripes), or
#: (whole map,) for a last-stage block.
BranchGroups = Tuple[TokenGroups, ...]


class LePEAttention(nn.Layer):
    """Multi-head attention within token groups (stripes, or the whole map) plus the
    locally-enhanced positional encoding: a depthwise 3x3 conv (``get_v``, with bias) on
    the values of each group alone, so it sees zeros at the group's edges.

    Args:
        dim: channels ``c`` of this branch.
        num_heads: heads of this branch; must divide ``dim``.
        scale: score scale.
        attention_dropout: dropout on the attention weights.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (see :mod:`miziha.layers.attention`); LePE
            is added to either's output.
    """

    def __init__(self, dim: int, num_heads: int, scale: float,
                 attention_dropout: float = 0.0, attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.attention = checks.attention_mode(attention)
        self.num_heads = num_heads
        self.scale = scale
        self.get_v = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.attn_drop = nn.Dropout(attention_dropout)

    def forward(self, qkv: paddle.Tensor, groups: TokenGroups) -> paddle.Tensor:
        """Args: qkv ``[B, H*W, 3c]`` (q, k, v channels in that order); groups: the groups
        to attend within (padded tokens are masked keys and zero values).

        Returns: ``[B, H*W, c]``.
        """
        n, c = groups.group_tokens, self.dim
        # Channels-first within a group: V is then an NCHW image of the group (its tokens
        # are row-major over its extent).
        q, k, v = group_heads(qkv, groups, self.num_heads)  # [B*nG, heads, d, N]
        if groups.valid is not None:  # LePE sees zeros where a stripe is padded
            v = (v.reshape([-1, groups.num_groups, c, n])
                 * groups.valid.astype(v.dtype).reshape([groups.num_groups, 1, n])
                 ).reshape([-1, self.num_heads, c // self.num_heads, n])
        lepe = self.lepe(v.reshape([-1, c, n]), groups.extent)  # [B*nG, c, N]
        out = group_attention(q, k, v, groups, self.scale, self.attn_drop, self.attention)
        return ungroup(out.reshape([-1, c, n]) + lepe, groups)  # [B, H*W, c]

    def lepe(self, v: paddle.Tensor, extent: Tuple[Size, Size]) -> paddle.Tensor:
        """``get_v`` on each group's image: ``v [B*nG, c, N]`` (a group's tokens row-major
        over its ``extent``) -> ``[B*nG, c, N]``.

        A group one row high or one column wide (``split_size=1`` stripes) is a line: its
        zero padding leaves only the kernel's middle row or column, which
        :func:`~miziha.paddle_fixes.workarounds.line_conv` applies along the line (in eager mode, where
        the extent is known): Paddle's CPU depthwise conv is slow on such images
        (workaround 11; ``[224, 32, 56, 1]``, a stripe branch of ``CSWinT(64, 64,
        split_size=1)`` at batch 4 on 56x56, took about 80 ms forward and backward, the
        1-D conv 7 ms).
        """
        rows, cols = extent
        if isinstance(rows, int) and isinstance(cols, int) and 1 in (rows, cols):
            weight = self.get_v.weight  # [c, 1, 3, 3]
            taps = weight[:, 0, 1, :] if rows == 1 else weight[:, 0, :, 1]
            return line_conv(v, taps, self.get_v.bias)
        return self.get_v(v.reshape([-1, self.dim, rows, cols])).reshape(
            [-1, self.dim, rows * cols])

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, scale={self.scale:.4g}, "
                f"attention={self.attention!r}")


class CSWinBlock(nn.Layer):
    """Pre-norm CSWin block on tokens ``[B, H*W, C]`` (the official ``CSWinBlock``).

    ``x + DropPath(proj(attention(LN(x))))`` then ``x + DropPath(Mlp(LN(x)))``. One shared
    ``qkv`` Linear; with two branches, the first half of the channels and heads
    (``attns.0``) attends within vertical stripes, the second half (``attns.1``) within
    horizontal stripes (each with its columns of ``qkv``: :meth:`branch_qkv`), and their
    outputs are concatenated in that order. A last-stage block has one branch (``attns.0``)
    with all channels and heads. The groups come from the owning :class:`CSWinT`.

    Args:
        dim: channels ``C``.
        num_heads: heads over all branches.
        mlp_hidden: MLP hidden width.
        last_stage: one branch over the whole map instead of two stripe branches.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: score scale; default ``head_dim ** -0.5``.
        dropout: dropout in the MLP (the official block defines an unused ``proj_drop``).
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate of both residual branches.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (see :class:`LePEAttention`).
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, last_stage: bool = False,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        branches = 1 if last_stage else 2
        scale = qk_scale if qk_scale is not None else (dim // num_heads) ** -0.5
        self.norm1 = layer_norm(dim)
        self.qkv = linear(dim, 3 * dim, bias=qkv_bias)
        self.attns = nn.LayerList([
            LePEAttention(dim // branches, num_heads // branches, scale, attention_dropout,
                          attention)
            for _ in range(branches)])
        self.proj = linear(dim, dim)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, groups: BranchGroups) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; groups: one :class:`TokenGroups` per branch.

        Returns: ``[B, H*W, C]``.
        """
        normed = self.norm1(x, affine=False)
        if len(self.attns) == 1:
            mixed = self.attns[0](self.qkv(normed, self.norm1.affine_terms), groups[0])
        else:
            mixed = paddle.concat([attn(self.branch_qkv(normed, i), g)
                                   for i, (attn, g) in enumerate(zip(self.attns, groups))],
                                  axis=-1)
        x = x + self.drop_path(self.proj(mixed))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))

    def branch_qkv(self, normed: paddle.Tensor, branch: int) -> paddle.Tensor:
        """``qkv`` of branch ``branch`` (0 or 1) of two
        (:func:`~miziha.layers.attention.qkv_half`, ``norm1``'s affine terms folded in):
        ``[B, H*W, C]`` -> ``[B, H*W, 3 * C/2]``."""
        return qkv_half(normed, self.qkv, branch, self.norm1.affine_terms)


class CSWinT(TokenMixer):
    """Cross-shaped window attention with a Conv2D interface:
    ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` CSWin blocks at ``in_channels``: half the heads attend within vertical stripes
    (``H x split_size`` windows), the other half within horizontal stripes
    (``split_size x W``), each with LePE (a depthwise 3x3 conv on the values of each stripe);
    or, as the official last stage, all heads over the whole map. Then CSWin's
    ``Merge_Block`` (``downsample=True``: 3x3 stride-2 conv + LayerNorm, ``H' = ceil(H/2)``),
    or a linear projection to ``out_channels`` when it differs from ``in_channels``.

    Any input size works: the striped axis is padded at its end to a multiple of
    ``split_size`` (a side smaller than it gives one partly padded stripe), padded tokens are
    masked out as keys and are zero values for LePE, and their outputs are dropped. On
    divisible square maps this is exactly the official block.

    Official checkpoints: key ``stage{i}.{j}.<name>`` of a ``CSWinTransformer`` state dict
    is ``blocks.{j}.<name>`` here (the same names: ``norm1``, ``qkv``, ``attns.{0,1}.get_v``,
    ``proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), with the weights of the Linear layers
    ``qkv``, ``proj``, ``mlp.fc1``, ``mlp.fc2`` transposed (Paddle's ``[in, out]``); conv
    weights, norms and biases are copied as they are. ``merge{i}.{conv,norm}.*`` (after stage
    ``i``) is ``downsample.{conv,norm}.*`` of the layer built for stage ``i`` with
    ``downsample=True``. Stage 4 is built with ``last_stage=True`` (no ``attns.1``).

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None; decides ``last_stage`` when that is
            None.
        num_heads: heads; must divide ``in_channels``, and be even with two branches.
            Default: about 32 channels a head (an even count with two branches).
        split_size: stripe width.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: attention score scale; default ``head_dim ** -0.5``.
        dropout: dropout in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with the 3x3 stride-2 conv + LayerNorm to ``out_channels``.
        last_stage: one branch with all heads over the whole map (the official stage 4).
            None: True when ``input_resolution`` is given and no side exceeds
            ``split_size`` (as the official builder's stage 4), else False.
        depth: number of blocks.
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in :class:`~miziha.SwinT`; the
            padded-key mask is the fused attention's additive mask, and LePE is added after
            the attention either way.
    """

    two_branches = True

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 split_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, last_stage: Optional[bool] = None, depth: int = 2,
                 data_format: str = "NCHW", use_recompute: bool = False,
                 attention: str = "auto") -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        self.split_size = checks.positive_int("split_size", split_size)
        if last_stage is None:
            last_stage = self.input_resolution is not None and \
                max(self.input_resolution) <= self.split_size
        self.last_stage = checks.flag("last_stage", last_stage)
        self.num_heads = self._heads(num_heads)
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)
        block_options = dict(checks.attention_options(qkv_bias, qk_scale, dropout,
                                                      attention_dropout, attention),
                             last_stage=self.last_stage)
        self.attention = block_options["attention"]
        self.blocks = nn.LayerList([
            CSWinBlock(self.in_channels, self.num_heads, self.mlp_hidden, droppath=rate,
                       **block_options)
            for rate in self.droppaths])
        self._build_output(partial(ConvMerge, norm=True))

    def _heads(self, num_heads: Optional[int]) -> int:
        """Checked heads; two branches split channels and heads in halves."""
        if self.last_stage:
            return checks.heads(self.in_channels, num_heads)
        return checks.branch_heads(self.in_channels, num_heads, "two branches of half the "
                                   "channels and heads each; or last_stage=True")

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[BranchGroups]:
        """Each block's groups on a ``height x width`` map: (vertical stripes, horizontal
        stripes), or (whole map,) for a last-stage layer."""
        full, stripes = ("full", 0), ("stripes", self.split_size)
        if self.last_stage:
            groups = (group_tables(height, width, full, full, like=like),)
        else:
            groups = (group_tables(height, width, full, stripes, like=like),
                      group_tables(height, width, stripes, full, like=like))
        return [groups] * self.depth

    def sample_bytes(self, layout: List[BranchGroups], element_size: int) -> int:
        """The MLP hidden layer, ``qkv``, or a branch's gathered q, k, v or its scores."""
        groups = layout[0]
        heads = self.num_heads // len(groups)
        tokens = groups[0].scatter.shape[0]
        widest = max([tokens * max(self.mlp_hidden, 3 * self.in_channels)]
                     + [g.num_groups * g.group_tokens
                        * max(3 * self.in_channels // len(groups), heads * g.group_tokens)
                        for g in groups])
        return widest * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``QK^T`` and ``AV`` of every branch of every block, padded stripes included; and
        the layers whose weights are used without calling the layer, so that no hook sees
        them, counted as their hooks would: ``qkv`` of two-branch blocks
        (:meth:`CSWinBlock.branch_qkv`) and ``get_v`` on line groups
        (:meth:`LePEAttention.lepe`; 9 MACs an element, as the 3x3 conv)."""
        channels = self.in_channels // (1 if self.last_stage else 2)
        macs = 0
        for groups in self.layout(height, width):
            if len(groups) == 2:
                macs += batch * height * width * self.in_channels * 3 * self.in_channels
            for g in groups:
                macs += 2 * batch * g.num_groups * g.group_tokens ** 2 * channels
                if 1 in g.extent:
                    macs += 9 * batch * g.num_groups * g.group_tokens * channels
        return macs

    def _repr_options(self) -> List[str]:
        return [f"num_heads={self.num_heads}", f"split_size={self.split_size}"] + \
            (["last_stage=True"] if self.last_stage else []) + \
            attention_repr(self.attention)
