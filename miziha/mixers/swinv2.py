"""Swin V2 as a mixer: ``SwinV2T`` (Liu et al., CVPR 2022, "Swin Transformer V2: Scaling Up
Capacity and Resolution"), its attention (:class:`WindowAttentionV2`: scaled cosine
attention, continuous position bias), its res-post-norm block and its patch merging, with
the official parameter names (microsoft/Swin-Transformer ``models/swin_transformer_v2.py``).

The windows, shifts, masks and padding are Swin V1's (:class:`~miziha.SwinT`,
:mod:`miziha.layers.windows`), and the attention core is the shared
:func:`~miziha.layers.attention.window_attention` (math or sdpa path).
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..layers.attention import merge_heads, split_heads, window_attention, with_window_mask
from ..layers.basic import DropPath, Mlp, layer_norm, linear
from ..layers.shapes import Size, shape_of
from ..layers.windows import WindowGeometry, coords_tables
from ..paddle_fixes.workarounds import linear_forward
from .base import IntPair, TokenMixer
from .swin import PatchMerging, SwinT

#: What the official V2 code adds to masked scores. Cosine attention bounds the scores, so
#: this is not "minus infinity" there: kept as is for equality with trained weights.
OFFICIAL_MASK_VALUE = -100.0

__all__ = ["SwinV2T", "SwinV2Block", "WindowAttentionV2", "PatchMergingV2", "SwinV2Geometry",
           "LOGIT_SCALE_MAX", "CPB_HIDDEN"]

#: ``logit_scale`` is clamped at log(1 / 0.01) = log(100) before ``exp``, as officially.
LOGIT_SCALE_MAX = math.log(100.0)
#: Hidden width of the continuous position bias MLP (``cpb_mlp``).
CPB_HIDDEN = 512


@dataclasses.dataclass
class SwinV2Geometry(WindowGeometry):
    """A block's :class:`~miziha.layers.windows.WindowGeometry` and the continuous position
    bias input: ``coords`` float32 ``[(2Wh-1)*(2Ww-1), 2]``
    (:func:`~miziha.layers.windows.log_spaced_coords`), whose rows ``relative_index``
    picks."""

    coords: Optional[paddle.Tensor] = None


def pretrained_window(value: IntPair) -> Tuple[int, int]:
    """``pretrained_window_size`` checked: an int or a pair, each 0 (none) or at least 2."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) \
        else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(
            isinstance(p, int) and not isinstance(p, bool) and (p == 0 or p >= 2)
            for p in pair):
        raise ValueError(f"pretrained_window_size must be 0 (none) or an int >= 2, or a pair "
                         f"of them, got {value!r}")
    return pair


class WindowAttentionV2(nn.Layer):
    """Swin V2 window attention on tokens already grouped into windows.

    ``softmax(cos(q, k) * exp(min(logit_scale, log 100)) + 16 sigmoid(cpb_mlp(coords))[index]
    + mask) v`` per head, then ``proj``. ``q, k, v = x W_qkv + (q_bias, 0, v_bias)``: the
    ``qkv`` Linear has no bias; q and v have their own, k none.

    Parameter names as in the official code: ``logit_scale`` ``[heads, 1, 1]`` (init log 10),
    ``cpb_mlp.0`` (Linear(2, 512)), ``cpb_mlp.2`` (Linear(512, heads), no bias), ``qkv``,
    ``q_bias``, ``v_bias``, ``proj``. Paddle's ``Linear.weight`` is ``[in, out]``.

    Args:
        dim: channels ``C``.
        num_heads: heads; must divide ``dim``.
        qkv_bias: learn ``q_bias`` and ``v_bias``.
        attention_dropout: dropout on the attention weights.
        dropout: dropout after the output projection.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (:mod:`miziha.layers.attention`).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 attention_dropout: float = 0.0, dropout: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.attention = checks.attention_mode(attention)
        self.num_heads = num_heads
        self.logit_scale = self.create_parameter(
            [num_heads, 1, 1], default_initializer=nn.initializer.Constant(math.log(10.0)))
        self.cpb_mlp = nn.Sequential(linear(2, CPB_HIDDEN), nn.ReLU(),
                                     linear(CPB_HIDDEN, num_heads, bias=False))
        self.qkv = linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            zeros = nn.initializer.Constant(0.0)
            self.q_bias = self.create_parameter([dim], default_initializer=zeros)
            self.v_bias = self.create_parameter([dim], default_initializer=zeros)
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def position_bias(self, geometry: SwinV2Geometry) -> paddle.Tensor:
        """``16 * sigmoid(cpb_mlp(coords))`` at each (query, key) pair: ``[1, heads, N, N]``
        (the sigmoid on the table, before the gather: the same values, fewer of them)."""
        n = geometry.window_tokens
        coords = geometry.coords
        weight = self.cpb_mlp[0].weight
        if coords.dtype != weight.dtype:
            coords = coords.astype(weight.dtype)
        table = 16.0 * F.sigmoid(self.cpb_mlp(coords))  # [(2Wh-1)*(2Ww-1), heads]
        bias = paddle.index_select(table, geometry.relative_index)  # [N*N, heads]
        return bias.transpose([1, 0]).reshape([1, self.num_heads, n, n])

    def forward(self, windows: paddle.Tensor, geometry: SwinV2Geometry) -> paddle.Tensor:
        """Args: windows ``[B, nW * N, C]`` (the tokens of each window consecutive);
        geometry: the windows and the position bias input.

        Returns: ``[B, nW * N, C]``.
        """
        n = geometry.window_tokens
        bias = None
        if self.q_bias is not None:
            bias = paddle.concat([self.q_bias, paddle.zeros_like(self.v_bias), self.v_bias])
        # qkv's weight with the composed bias (the Linear itself has none).
        q, k, v = split_heads(linear_forward(windows, self.qkv.weight, bias), n,
                              self.num_heads)  # [B*nW, heads, d, N]
        scale = paddle.exp(paddle.clip(self.logit_scale, max=LOGIT_SCALE_MAX))
        q = F.normalize(q, axis=2) * scale.astype(q.dtype)  # cosine, scaled per head
        k = F.normalize(k, axis=2)
        bias_mask = with_window_mask(self.position_bias(geometry), geometry, OFFICIAL_MASK_VALUE)
        out = window_attention(q, k, v, bias_mask,
                               geometry, None, self.attn_drop, self.attention)
        out = merge_heads(out, n).reshape([-1, self.dim])
        return self.proj_drop(self.proj(out)).reshape(shape_of(windows))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, attention={self.attention!r}"


class SwinV2Block(nn.Layer):
    """Res-post-norm Swin V2 block on tokens ``[B, H*W, C]``:
    ``x + DropPath(norm1(attn(x)))`` then ``x + DropPath(norm2(Mlp(x)))``.

    ``norm1`` and ``norm2`` start at zero weight and bias (the official
    ``_init_respostnorm``), so a new block is the identity. The windows come from the
    :class:`SwinV2Geometry` passed to :meth:`forward`, as in
    :class:`~miziha.mixers.swin.SwinTransformerBlock`.

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        mlp_hidden: MLP hidden width.
        qkv_bias, attention_dropout, dropout, attention: see :class:`WindowAttentionV2`.
        droppath: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True,
                 dropout: float = 0.0, attention_dropout: float = 0.0, droppath: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.norm1 = layer_norm(dim, zero=True)
        self.attn = WindowAttentionV2(dim, num_heads, qkv_bias, attention_dropout, dropout,
                                      attention)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim, zero=True)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, geometry: SwinV2Geometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: this block's windows for this map size.

        Returns: ``[B, H*W, C]``.
        """
        attn = self.attn(paddle.index_select(x, geometry.gather, axis=1), geometry)
        x = x + self.drop_path(self.norm1(paddle.index_select(attn, geometry.scatter, axis=1)))
        return x + self.drop_path(self.norm2(self.mlp(x)))


class PatchMergingV2(PatchMerging):
    """Swin V2 patch merging: each 2x2 neighbourhood concatenated (V1's order and odd-size
    padding), ``reduction`` Linear(4C -> out_dim, no bias), then ``norm`` LayerNorm(out_dim).
    ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_dim]``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__(dim, out_dim)
        self.norm = layer_norm(out_dim)  # after the reduction: over out_dim, not 4C

    def forward(self, x: paddle.Tensor, height: Size, width: Size) -> paddle.Tensor:
        return self.norm(self.reduction(self.merge(x, height, width)))


class SwinV2T(SwinT):
    """Swin V2 window attention with a Conv2D interface:
    ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` Swin V2 blocks at ``in_channels``, alternating plain and shifted windows as
    :class:`~miziha.SwinT` (the same window state, masks, padding and clipping: on a side no
    longer than the window, the window shrinks to it and that side is not shifted), with
    scaled cosine attention, the continuous position bias and res-post-norm
    (:class:`SwinV2Block`). Then V2 patch merging (``downsample=True``) or a linear
    projection to ``out_channels`` when it differs from ``in_channels``.

    The position bias MLP sees log-spaced relative coordinates normalised by the effective
    window (``min(side, window) - 1``, the official rule for a stage no larger than the
    window) or by ``pretrained_window_size - 1`` when that is set, so a checkpoint trained
    with window 8 runs with window 16 and ``pretrained_window_size=8``, nothing resized.

    Official checkpoints: ``layers.{i}.blocks.{j}.<name>`` of a ``SwinTransformerV2`` is
    ``blocks.{j}.<name>`` of the layer for stage ``i`` (``norm1``, ``attn.logit_scale``,
    ``attn.cpb_mlp.{0,2}``, ``attn.qkv``, ``attn.q_bias``, ``attn.v_bias``, ``attn.proj``,
    ``norm2``, ``mlp.fc1``, ``mlp.fc2``), ``layers.{i}.downsample.{reduction,norm}`` its
    ``downsample``; Linear weights transposed. The buffers ``relative_coords_table``,
    ``relative_position_index`` and ``attn_mask`` are derived here, per map size.

    Masked pairs (the shifted-window regions, and padding, which the official code does not
    have) get the official -100 (:data:`OFFICIAL_MASK_VALUE`), not V1's -1e4: cosine scores
    are at most 100 plus a bias of at most 16, so with a logit scale near its clamp -100
    leaves masked pairs a small weight, and trained V2 weights expect exactly that.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        num_heads: attention heads; must divide ``in_channels``. Default: about 32
            channels a head.
        window_size: window side, an int or ``(Wh, Ww)``.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn ``q_bias`` and ``v_bias``.
        dropout: dropout after the attention projection and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with V2 patch merging to ``out_channels``.
        pretrained_window_size: the window the weights were trained with (int or pair; 0:
            this window). Normalises the position bias coordinates.
        depth: number of blocks, even (plain, shifted pairs).
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in :class:`~miziha.SwinT`.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 window_size: IntPair = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 dropout: float = 0.0, attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, pretrained_window_size: IntPair = 0, depth: int = 2,
                 data_format: str = "NCHW", use_recompute: bool = False,
                 attention: str = "auto") -> None:
        TokenMixer.__init__(self, in_channels, out_channels, input_resolution, downsample,
                            depth=depth, droppath=droppath, data_format=data_format,
                            use_recompute=use_recompute)
        self._init_windows(num_heads, window_size, mlp_ratio)
        self.pretrained_window_size = pretrained_window(pretrained_window_size)
        block_options = checks.attention_options(qkv_bias, None, dropout, attention_dropout,
                                                 attention)
        del block_options["qk_scale"]  # cosine attention: the scale is learned
        self.attention = block_options["attention"]
        self.blocks = nn.LayerList([
            SwinV2Block(self.in_channels, self.num_heads, self.mlp_hidden, droppath=rate,
                        **block_options)
            for rate in self.droppaths])
        self._build_output(PatchMergingV2)

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[SwinV2Geometry]:
        """:meth:`SwinT.layout`'s windows, each with the position bias coordinates for this
        size."""
        coords = coords_tables(height, width, self.window_size, self.pretrained_window_size,
                               like=like)
        return [SwinV2Geometry(**{f.name: getattr(g, f.name)
                                  for f in dataclasses.fields(WindowGeometry)}, coords=coords)
                for g in super().layout(height, width, like)]

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """:meth:`SwinT.mixing_macs` (``QK^T``, ``AV``), and ``qkv``, whose weight is used
        with the composed q/k/v bias without calling the layer (no hook sees it): ``3C^2``
        per token, padded windows included."""
        qkv = sum(batch * g.num_windows * g.window_tokens * 3 * self.in_channels ** 2
                  for g in self.layout(height, width))
        return super().mixing_macs(batch, height, width) + qkv

    def _repr_options(self) -> List[str]:
        options = super()._repr_options()
        if self.pretrained_window_size != (0, 0):
            options.insert(2, f"pretrained_window_size={self.pretrained_window_size}")
        return options
