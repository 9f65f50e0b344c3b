"""``ASMLPT``: AS-MLP (Lian et al., ICLR 2022, "AS-MLP: An Axial Shifted MLP Architecture for
Vision") blocks used like ``nn.Conv2D``.

The official model runs in NCHW with 1x1 ``Conv2d`` layers and ``GroupNorm(1, C)``
everywhere; here the same parameters (official names, conv weights ``[out, in, 1, 1]``) are
applied to channels-last tokens as matmuls, and ``GroupNorm(1, C)`` as Paddle's
``instance_norm`` over each sample's ``(H, W, C)`` values seen as one channel. The
axial shift (channels in ``torch.chunk`` groups, group ``g`` moved by
``g - shift_size // 2`` pixels, zero fill) along W and along H is one gather
(:mod:`miziha.layers.shifts`); the two shifted maps then go through ``conv2_1`` and ``conv2_2`` in
one batched matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..layers.size_cache import size_cached
from ..layers.basic import DropPath
from .base import IntPair, TokenMixer
from .swin import PatchMerging as SwinPatchMerging
from ..layers.shapes import Size, shape_of
from ..layers.shifts import chunk_offsets, one_slot, shift_index, take
from ..paddle_fixes.workarounds import Affine, linear_forward

__all__ = ["ASMLPT", "AxialShiftedBlock", "AxialShift", "PatchMerging", "GroupNorm1",
           "Conv1x1", "ShiftGeometry"]


class GroupNorm1(nn.GroupNorm):
    """``GroupNorm(1, C)`` (the official ``MyNorm``, eps 1e-5) on channels-last
    ``[B, ..., C]``: mean and variance over all of a sample, then a per-channel affine.
    Parameters ``weight`` / ``bias`` ``[C]`` as ``nn.GroupNorm``'s."""

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels, epsilon=1e-5)

    def forward(self, x: paddle.Tensor, affine: bool = True) -> paddle.Tensor:
        """Args: x ``[B, ..., C]``; affine: apply weight and bias (False: for a following
        :class:`Conv1x1` that takes :attr:`affine_terms`). Returns: ``x``'s shape."""
        # An instance norm of one 4-D channel of N*C values per sample (workaround 7): the
        # form that eager mode, paddle.inference (oneDNN) and paddle2onnx all compute right.
        normalized = F.instance_norm(x.reshape([0, 1, -1, 1]), eps=self._epsilon
                                     ).reshape(shape_of(x))
        return normalized * self.weight + self.bias if affine else normalized

    @property
    def affine_terms(self) -> Affine:
        return self.weight, self.bias


class Conv1x1(nn.Conv2D):
    """A 1x1 ``Conv2D`` (weight ``[out, in, 1, 1]``, PyTorch's default init as in the
    official code) applied to channels-last ``[..., in]`` as a matmul; ``miziha.flops``
    counts it as the convolution it is."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        bound = 1.0 / math.sqrt(in_channels)  # kaiming_uniform(a=sqrt(5)) and its bias
        init = paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
        super().__init__(in_channels, out_channels, 1, weight_attr=init,
                         bias_attr=paddle.ParamAttr(
                             initializer=nn.initializer.Uniform(-bound, bound))
                         if bias else False, data_format="NHWC")

    def matrix(self) -> paddle.Tensor:
        """The weight as ``[in, out]``."""
        return self.weight.reshape(self.weight.shape[:2]).t()

    def forward(self, x: paddle.Tensor, input_affine: Optional[Affine] = None
                ) -> paddle.Tensor:
        """Args: x ``[..., in]``; input_affine: a norm's ``(scale [in], shift [in])`` not yet
        applied to ``x``, folded into the weight. Returns: ``[..., out]``."""
        return linear_forward(x, self.matrix(), self.bias, input_affine, wide_bias_row=True)


@dataclass
class ShiftGeometry:
    """``index [2, H, W, C + 1]``: the :func:`~miziha.layers.shifts.take` table of the axial shift
    along W (``[0]``) and along H (``[1]``), each with a column of ones (bias row)."""

    index: paddle.Tensor


def shift_geometry(height: Size, width: Size, channels: int, shift_size: int
                   ) -> ShiftGeometry:
    """:class:`ShiftGeometry` of a ``height x width`` map with ``channels`` channels."""
    offsets = chunk_offsets(channels, shift_size)
    ones = one_slot(height, width, channels)
    return ShiftGeometry(paddle.stack([
        paddle.concat([shift_index(height, width, offsets, axis), ones], axis=-1)
        for axis in (2, 1)]))


shift_tables = size_cached(shift_geometry)


class AxialShift(nn.Layer):
    """The official ``AxialShift`` on tokens ``[B, H*W, C]`` (normalised)::

        a = GELU(norm1(conv1(x)))
        conv3(norm2(GELU(conv2_1(shift_W(a))) + GELU(conv2_2(shift_H(a)))))
    """

    def __init__(self, dim: int, as_bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.conv1 = Conv1x1(dim, dim, as_bias)
        self.conv2_1 = Conv1x1(dim, dim, as_bias)  # after the shift along W ("lr")
        self.conv2_2 = Conv1x1(dim, dim, as_bias)  # after the shift along H ("td")
        self.conv3 = Conv1x1(dim, dim, as_bias)
        self.act = nn.GELU()
        self.norm1 = GroupNorm1(dim)
        self.norm2 = GroupNorm1(dim)

    def forward(self, x: paddle.Tensor, geometry: ShiftGeometry,
                input_affine: Optional[Affine] = None) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: the shift tables of the map; input_affine: the
        preceding norm's affine terms, not yet applied to ``x``. Returns: ``[B, H*W, C]``."""
        a = self.act(self.norm1(self.conv1(x, input_affine)))
        shifted = take(a, geometry.index).reshape([0, 2, -1, self.dim + 1])  # [B, 2, N, C+1]
        weights = paddle.stack([self._with_bias(conv) for conv in (self.conv2_1, self.conv2_2)])
        # Expanded over the batch: the backward of a matmul broadcasting [2, C+1, C] fails
        # (Paddle 3.3 CPU, "Input dimension size should be equal to 2").
        weights = weights.expand([shape_of(x)[0], 2, self.dim + 1, self.dim])
        branches = self.act(paddle.matmul(shifted, weights))  # [B, 2, N, C]: x_lr, x_td
        # x_lr + x_td as [1, 2] @ [B, 2, N*C]: half the time of Paddle's CPU sum over axis 1.
        pair = paddle.ones([1, 2], branches.dtype)
        mixed = paddle.matmul(pair, branches.reshape([0, 2, -1])).reshape(shape_of(x))
        return self.conv3(self.norm2(mixed, affine=False), self.norm2.affine_terms)

    def _with_bias(self, conv: Conv1x1) -> paddle.Tensor:
        """``[in + 1, out]``: the weight with the bias (or zeros) as its last row."""
        bias = conv.bias if conv.bias is not None else paddle.zeros([self.dim], conv.weight.dtype)
        return paddle.concat([conv.matrix(), bias.reshape([1, -1])])


class AxialShiftedBlock(nn.Layer):
    """The official ``AxialShiftedBlock`` (GroupNorm(1, C) norms) on tokens ``[B, H*W, C]``:
    ``x + axial_shift(norm1(x))``, then ``x + mlp(norm2(x))`` with 1x1-conv ``fc1``/``fc2``.

    Args:
        dim: channels ``C``.
        mlp_hidden: MLP hidden width.
        as_bias: biases of the four axial-shift convolutions.
        dropout: dropout in the MLP.
        droppath: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, mlp_hidden: int, as_bias: bool = True, dropout: float = 0.0,
                 droppath: float = 0.0) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.axial_shift = AxialShift(dim, as_bias)
        self.drop_path = DropPath(droppath)
        self.norm2 = GroupNorm1(dim)
        self.mlp = nn.Sequential(("fc1", Conv1x1(dim, mlp_hidden)),  # official names
                                 ("fc2", Conv1x1(mlp_hidden, dim)))
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor, geometry: ShiftGeometry) -> paddle.Tensor:
        """Args: x ``[B, H*W, C]``; geometry: the map's shift tables. Returns: ``[B, H*W, C]``."""
        x = x + self.drop_path(self.axial_shift(self.norm1(x, affine=False), geometry,
                                                self.norm1.affine_terms))
        hidden = self.drop(self.act(self.mlp.fc1(self.norm2(x, affine=False),
                                                 self.norm2.affine_terms)))
        return x + self.drop_path(self.drop(self.mlp.fc2(hidden)))


class PatchMerging(SwinPatchMerging):
    """AS-MLP's patch merging: concatenate each 2x2 neighbourhood (Swin's order (0,0), (1,0),
    (0,1), (1,1)), ``GroupNorm(1, 4C)``, 1x1 conv to ``out_dim`` without bias.

    ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_dim]``; odd sizes are zero-padded at the
    bottom/right first (the official asserts even sizes), and the padding is part of the
    norm's statistics. Parameters ``norm.weight``/``norm.bias`` ``[4C]``,
    ``reduction.weight`` ``[out_dim, 4C, 1, 1]``.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__(dim, out_dim)
        self.norm = GroupNorm1(4 * dim)
        self.reduction = Conv1x1(4 * dim, out_dim, bias=False)


class ASMLPT(TokenMixer):
    """AS-MLP with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` AS-MLP blocks at ``in_channels`` (axial shifts along W and H of ``shift_size``
    channel groups, each followed by a 1x1 mix), then either AS-MLP's patch merging
    (``downsample=True``: ``H' = ceil(H/2)``, ``W' = ceil(W/2)``) or a 1x1 projection to
    ``out_channels`` when it differs from ``in_channels``. Any ``H, W >= 1``.

    Note: ``GroupNorm(1, C)`` normalises over the whole map, so (unlike the per-token
    LayerNorm of Swin) every output pixel depends on the whole input.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr).
        shift_size: channel groups of the axial shift (official 5); shifts run from
            ``-(shift_size // 2)`` to ``shift_size // 2`` pixels.
        mlp_ratio: MLP hidden width over ``in_channels``.
        as_bias: biases of the axial-shift convolutions.
        dropout: dropout in the MLP.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with patch merging to ``out_channels``.
        depth: number of blocks.
        data_format, use_recompute: see :class:`~miziha.mixers.base.TokenMixer`.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, shift_size: int = 5,
                 mlp_ratio: float = 4.0, as_bias: bool = True, dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW",
                 use_recompute: bool = False) -> None:
        super().__init__(in_channels, out_channels, input_resolution, downsample, depth=depth,
                         droppath=droppath, data_format=data_format,
                         use_recompute=use_recompute)
        self.shift_size = checks.positive_int("shift_size", shift_size)
        self.mlp_hidden = checks.mlp_width(self.in_channels, mlp_ratio)
        block_options = dict(as_bias=checks.flag("as_bias", as_bias),
                             dropout=checks.rate("dropout", dropout))
        self.blocks = nn.LayerList([
            AxialShiftedBlock(self.in_channels, self.mlp_hidden, droppath=rate, **block_options)
            for rate in self.droppaths])
        self._build_output(PatchMerging)

    def layout(self, height: Size, width: Size,
               like: Optional[paddle.Tensor] = None) -> List[ShiftGeometry]:
        """The same shift tables for every block."""
        return [shift_tables(height, width, self.in_channels, self.shift_size,
                             like=like)] * self.depth

    def sample_bytes(self, layout: List[ShiftGeometry], element_size: int) -> int:
        """The MLP hidden layer twice (``fc1``'s output and its GELU, both kept for the
        backward), or the two shifted maps."""
        tokens = layout[0].index.shape[1] * layout[0].index.shape[2]
        return tokens * max(2 * self.mlp_hidden, 2 * (self.in_channels + 1)) * element_size

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """``conv2_1`` and ``conv2_2`` (one batched matmul, unseen by the layer hooks):
        ``2 * B * H * W * C^2`` a block."""
        return self.depth * 2 * batch * height * width * self.in_channels ** 2

    def _repr_options(self) -> List[str]:
        return [f"shift_size={self.shift_size}",
                f"mlp_ratio={self.mlp_hidden / self.in_channels:g}"]
