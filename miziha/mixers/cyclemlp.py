"""``CycleMLPT``: CycleMLP (Chen et al., ICLR 2022) blocks used like ``nn.Conv2D``.

Cycle FC is a per-channel spatial shift followed by a 1x1 channel mix (the official code
runs it as a deformable convolution with fixed integer offsets): channel ``c`` is read
``d(c) = (c + 1) % 3 - 1`` pixels along W (``sfc_h``, pseudo-kernel 1x3) or along H
(``sfc_w``, 3x1), zero off the map. Here one gather (:mod:`miziha.layers.shifts`) lays the map
shifted along W, shifted along H and unshifted side by side, and the split-attention
weighted sum of the three branches is one batched matmul of that by the three 1x1 weights
scaled per image (:class:`CycleMLP`); the stored weights keep the official layouts
(``sfc_*.weight [out, in, 1, 1]``, ``mlp_c`` a Linear ``[in, out]``).

Official checkpoints also hold the fixed ``attn.sfc_h.offset`` / ``attn.sfc_w.offset``
buffers (``[1, 2C, 1, 1]``, the (dy, dx) pair of each channel); they are not parameters
here: drop them when loading (they always equal :func:`miziha.layers.shifts.cycle_offsets`).
"""

from __future__ import annotations

from functools import partial

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..layers.size_cache import size_cached
from ..layers.basic import TRUNC_NORMAL, ConvMerge, DropPath, Mlp, layer_norm, linear
from .base import IntPair, TokenMixer
from ..layers.shapes import Size
from ..layers.shifts import cycle_offsets, one_slot, shift_index, take

__all__ = ["CycleMLPT", "CycleBlock", "CycleMLP", "CycleFC", "CycleGeometry"]


@dataclass
class CycleGeometry:
    """What a CycleBlock needs for one map: its size, how :class:`CycleMLP` mixes the
    branches there (``per_image``, :func:`mixes_per_image`) and ``index``, the
    :func:`~miziha.layers.shifts.take` table of the token mixer's matmul input
    ``[shifted_W(x), shifted_H(x), x]`` (``[H, W, 3C]``), with a column of ones appended
    (``[H, W, 3C + 1]``) when ``per_image``."""

    height: Size
    width: Size
    index: paddle.Tensor
    per_image: bool


def mixes_per_image(height: Size, width: Size, channels: int) -> bool:
    """Whether :class:`CycleMLP` folds the branch weights into one ``[3C + 1, C]`` matrix
    per image (maps of more than ``C`` tokens) rather than weighting the three branch
    outputs (small maps, and sizes known only at run time).

    The per-image matrices cost ``B * 3C * C`` in the forward and again in the backward,
    whatever the map size; the branch outputs cost ``B * H * W * 3C``. On small maps the
    first dominated the step: ``cyclemlp_resnet50`` at 32x32 (maps 8x8 down to 1x1 at 64 to
    512 channels) spent over half its time building them (docs/performance.md).
    """
    return isinstance(height, int) and isinstance(width, int) and height * width > channels


def cycle_geometry(height: Size, width: Size, channels: int) -> CycleGeometry:
    """:class:`CycleGeometry` of a ``height x width`` map with ``channels`` channels."""
    offsets = cycle_offsets(channels)
    per_image = mixes_per_image(height, width, channels)
    tables = [shift_index(height, width, offsets, axis=2),  # sfc_h: along W
              shift_index(height, width, offsets, axis=1),  # sfc_w: along H
              shift_index(height, width, offsets, axis=None)]  # mlp_c
    if per_image:
        tables.append(one_slot(height, width, channels))
    return CycleGeometry(height, width, paddle.concat(tables, axis=-1), per_image)


cycle_tables = size_cached(cycle_geometry)


class CycleFC(nn.Layer):
    """The parameters of a Cycle FC (pseudo-kernel 1x3 along W for ``sfc_h``, 3x1 along H
    for ``sfc_w``): shift channel ``c`` by ``d(c)`` (:func:`~miziha.layers.shifts.cycle_offsets`),
    then a 1x1 channel mix, as the official ``weight [C_out, C_in, 1, 1]`` (conv layout)
    and ``bias``. :class:`CycleMLP` applies both Cycle FCs and ``mlp_c`` in one batched
    matmul.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = self.create_parameter(
            [out_dim, dim, 1, 1], attr=paddle.ParamAttr(initializer=TRUNC_NORMAL))
        self.bias = self.create_parameter(
            [out_dim], attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)),
            is_bias=True)

    def matrix(self) -> paddle.Tensor:
        """The weight as a ``[C_in, C_out]`` matrix."""
        return self.weight.reshape(self.weight.shape[:2]).t()

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}"


class CycleMLP(nn.Layer):
    """The CycleMLP token mixer (the official block's ``attn``) on ``[B, H, W, C]``.

    Three branches, ``h = sfc_h(x)`` (along W), ``w = sfc_w(x)`` (along H), ``c = mlp_c(x)``;
    their sum averaged over the map goes through ``reweight`` (C -> C/4 -> GELU -> 3C), read
    as ``[C, 3]`` (index ``3 * channel + branch``) and softmaxed over the branches; the
    weighted sum goes through ``proj``.

    One gather lays out ``[shifted_W(x), shifted_H(x), x]`` (``[B, H*W, 3C]``); the pooled
    vector is its mean times the stacked 1x1 weights ``[3C, C]``. Then, as the geometry
    says (:func:`mixes_per_image`): on maps of more than ``C`` tokens, the per-image branch
    weights scale the output columns of the three 1x1 weights, so ``a_h * h + a_w * w +
    a_c * c`` is one batched matmul by a per-image ``[3C + 1, C]`` weight (biases in the
    last row, against a column of ones in the gather) and the branch maps are never
    formed; on smaller maps the three branches are one branch-major matmul by the shared
    weights (``[3, B*H*W, C] @ [3, C, C]``), weighted and summed. ``mlp_c`` is a Linear for
    its name and init.
    """

    def __init__(self, dim: int, qkv_bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.mlp_c = linear(dim, dim, bias=qkv_bias)
        self.sfc_h = CycleFC(dim, dim)
        self.sfc_w = CycleFC(dim, dim)
        self.reweight = Mlp(dim, dim // 4, out_dim=3 * dim)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor, geometry: CycleGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]`` (normalised tokens); geometry: the map's tables.

        Returns: ``[B, H*W, C]``.
        """
        c_bias = self.mlp_c.bias if self.mlp_c.bias is not None \
            else paddle.zeros([self.dim], x.dtype)
        weights = paddle.stack([self.sfc_h.matrix(), self.sfc_w.matrix(),
                                self.mlp_c.weight])  # [3, C, C]
        biases = paddle.stack([self.sfc_h.bias, self.sfc_w.bias, c_bias])  # [3, C]
        width = 3 * self.dim + (1 if geometry.per_image else 0)
        inputs = take(x, geometry.index).reshape([0, -1, width])  # [B, H*W, 3C (+ 1)]
        # The mean over tokens as a matmul: Paddle's CPU reduction over the middle axis
        # (forward and backward) takes about 2.5 times as long.
        ones = paddle.ones_like(paddle.slice(inputs, [2], [0], [1]))  # [B, H*W, 1]
        mean = paddle.matmul(ones, inputs, transpose_x=True) / ones.sum(1, keepdim=True)
        stacked = weights.reshape([-1, self.dim])  # [3C, C]
        if geometry.per_image:
            stacked = paddle.concat([stacked, biases.sum(0, keepdim=True)])
        pooled = paddle.matmul(mean, stacked)  # [B, 1, C]
        if not geometry.per_image:
            pooled = pooled + biases.sum(0)
        branch = F.softmax(self.reweight(pooled).reshape([-1, self.dim, 3]), axis=-1)
        branch = branch.transpose([0, 2, 1])  # [B, 3, C]: weight of branch k, channel c
        bias = (biases * branch).sum(1, keepdim=True)  # [B, 1, C]
        if geometry.per_image:
            mixing = paddle.concat([
                (weights.reshape([1, 3, self.dim, self.dim])
                 * branch.reshape([-1, 3, 1, self.dim])).reshape([-1, 3 * self.dim, self.dim]),
                bias], axis=1)  # [B, 3C + 1, C]
            mixed = paddle.bmm(inputs, mixing)
        else:
            # Branch-major [3, B*H*W, C] @ [3, C, C]: one bmm with the shared weights.
            shape = inputs.shape if paddle.in_dynamic_mode() else paddle.shape(inputs)
            outputs = paddle.bmm(inputs.reshape([-1, 3, self.dim]).transpose([1, 0, 2]),
                                 weights).reshape([3, shape[0], shape[1], self.dim])
            mixed = (outputs * branch.transpose([1, 0, 2]).unsqueeze(2)).sum(0) + bias
        return self.proj_drop(self.proj(mixed))


class CycleBlock(nn.Layer):
    """Pre-norm CycleMLP block on tokens ``[B, H*W, C]``: ``x + attn(LN(x))``, then
    ``x + mlp(LN(x))`` (official ``skip_lam`` 1), each with stochastic depth.

    Args:
        dim: channels ``C``.
        mlp_hidden: MLP hidden width.
        qkv_bias: bias of ``mlp_c`` (none in the official models).
        dropout: dropout after ``attn.proj`` and in the MLP.
        droppath: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, mlp_hidden: int, qkv_bias: bool = False,
                 dropout: float = 0.0, droppath: float = 0.0) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = CycleMLP(dim, qkv_bias, dropout)
        self.drop_path = DropPath(droppath)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)

    def forward(self, x: paddle.Tensor, geometry: CycleGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: the map's size and shift tables.

        Returns: ``[B, H*W, C]``.
        """
        x = x + self.drop_path(self.attn(self.norm1(x), geometry))
        return x + self.drop_path(self.mlp(self.norm2(x, affine=False), self.norm2.affine_terms))


class CycleMLPT(TokenMixer):
    """CycleMLP with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` CycleMLP blocks at ``in_channels`` (Cycle FC along W and H plus a channel FC,
    mixed by split attention), then either CycleMLP's downsampling, a 3x3 stride-2
    convolution (``downsample=True``: ``H' = ceil(H/2)``, ``W' = ceil(W/2)``,
    :class:`~miziha.layers.ConvMerge` without norm, official ``proj`` = ``conv`` here), or a
    linear projection to ``out_channels`` when it differs from ``in_channels``. Any
    ``H, W >= 1``: Cycle FC reads zeros off the map.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for the channel FC ``mlp_c`` (the official models do not).
        dropout: dropout after the token mixer's projection and in the MLP.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with the 3x3 stride-2 convolution to ``out_channels``.
        depth: number of blocks.
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW",
                 use_recompute: bool = False) -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        if self.in_channels < 4:
            raise ValueError(f"in_channels must be at least 4 (the split-attention hidden "
                             f"width is in_channels // 4), got {self.in_channels}")
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)
        block_options = dict(qkv_bias=checks.flag("qkv_bias", qkv_bias),
                             dropout=checks.rate("dropout", dropout))
        self.blocks = nn.LayerList([
            CycleBlock(self.in_channels, self.mlp_hidden, droppath=rate, **block_options)
            for rate in self.droppaths])
        self._build_output(partial(ConvMerge, norm=False))

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[CycleGeometry]:
        """The same geometry for every block: the map size and the Cycle FC gather table."""
        return [cycle_tables(height, width, self.in_channels, like=like)] * self.depth

    def sample_bytes(self, layout: List[CycleGeometry], element_size: int) -> int:
        """The MLP hidden layer twice (``fc1``'s output and its GELU, both alive in the
        forward), or the token mixer's ``[H*W, 3C + 1]`` matmul input."""
        geometry = layout[0]
        return geometry.height * geometry.width \
            * max(2 * self.mlp_hidden, 3 * self.in_channels + 1) * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``sfc_h``, ``sfc_w`` and ``mlp_c`` (one batched matmul, unseen by the layer
        hooks): ``3 * B * H * W * C^2`` a block."""
        return self.depth * 3 * batch * height * width * self.in_channels ** 2

    def _repr_options(self) -> List[str]:
        return [f"mlp_ratio={self.mlp_hidden / self.in_channels:g}"]
