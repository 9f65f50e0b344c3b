"""Small layers every mixer shares: initialised Linear and LayerNorm, the MLP, stochastic
depth."""

from __future__ import annotations

from typing import List, Optional

import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

from .. import checks
from ..paddle_fixes import workarounds
from ..paddle_fixes.workarounds import Affine, LayerNorm, Linear, conv_channels_last

__all__ = ["TRUNC_NORMAL", "linear", "layer_norm", "Mlp", "DropPath", "ScaleSamples",
           "droppath_schedule", "ConvMerge"]

#: The official code's ``trunc_normal_(std=.02)``: its cutoffs are absolute (-2, 2), as are
#: Paddle's ``a``/``b``, so at std 0.02 this is in effect a plain normal. Kept as is so that
#: a model trained from scratch starts where the official one does.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)


def linear(in_features: int, out_features: int, bias: bool = True) -> Linear:
    """:class:`~miziha.paddle_fixes.workarounds.Linear` with truncated-normal weights and zero bias."""
    return Linear(in_features, out_features,
                  weight_attr=paddle.ParamAttr(initializer=TRUNC_NORMAL),
                  bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
                  if bias else False)


def layer_norm(dim: int, epsilon: float = 1e-5, zero: bool = False) -> LayerNorm:
    """:class:`~miziha.paddle_fixes.workarounds.LayerNorm` with eps 1e-5 (PyTorch's default, used by the
    official codes); ``zero``: weight and bias start at 0 (Swin V2's res-post-norm)."""
    if not zero:
        return LayerNorm(dim, epsilon=epsilon)
    zeros = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
    return LayerNorm(dim, epsilon=epsilon, weight_attr=zeros, bias_attr=zeros)


class Mlp(nn.Layer):
    """Linear -> GELU (exact) -> dropout -> Linear -> dropout, on ``[..., C]``."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0,
                 out_dim: Optional[int] = None) -> None:
        super().__init__()
        self.fc1 = linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = linear(hidden_dim, out_dim or dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor, input_affine: Optional[Affine] = None) -> paddle.Tensor:
        """Args: x ``[..., C]``; input_affine: a LayerNorm's ``(weight, bias)`` not yet
        applied to ``x`` (folded into ``fc1``). Returns: ``[..., out_dim]``."""
        hidden = self.fc1(x, input_affine)
        if self.drop.p == 0 or not self.training:
            # GELU inside fc2: backward keeps the hidden layer once (before GELU), not
            # before and after it (miziha.paddle_fixes.workarounds.linear_forward).
            return self.drop(self.fc2(hidden, input_gelu=True))
        return self.drop(self.fc2(self.drop(self.act(hidden))))


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
        scale = (paddle.rand(shape, dtype=x.dtype) < keep).astype(x.dtype) / keep
        if paddle.in_dynamic_mode() and workarounds.OWN_BACKWARD:
            return ScaleSamples.apply(x, scale)
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ScaleSamples(PyLayer):
    """``x * scale`` for a per-sample ``scale`` that needs no gradient, keeping only
    ``scale`` for backward (``x * scale`` as an op would also keep ``x``, a full-size
    tensor, for a gradient of ``scale`` never asked for)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensor()
        return grad * scale, None  # scale: drawn, no gradient


def droppath_schedule(rate: float, blocks: int) -> List[float]:
    """Stochastic depth rates rising linearly from 0 to ``rate`` over ``blocks`` blocks, as in
    the official Swin; ``rate`` is validated as the ``droppath`` argument."""
    return paddle.linspace(0.0, checks.rate("droppath", rate), blocks).tolist()


class ConvMerge(nn.Layer):
    """Stride-2 3x3 convolution (padding 1) to ``out_dim``, then optionally LayerNorm: the
    downsampling between stages of CSWin (``Merge_Block``), Pale and CycleMLP
    (``Downsample``, no norm). ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_dim]``.

    Parameter names: ``conv.weight`` ``[out, in, 3, 3]``, ``conv.bias``, ``norm.weight``,
    ``norm.bias`` (CSWin's; CycleMLP's ``proj`` is this ``conv``).
    """

    def __init__(self, dim: int, out_dim: int, norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2D(dim, out_dim, 3, stride=2, padding=1)
        self.norm = layer_norm(out_dim) if norm else None

    def forward(self, x: paddle.Tensor, height=None, width=None) -> paddle.Tensor:
        """Args: x ``[B, H, W, C]`` (``height``/``width`` unused: the conv pads itself).

        Returns: ``[B, ceil(H/2), ceil(W/2), out_dim]``."""
        x = conv_channels_last(self.conv, x)
        return x if self.norm is None else self.norm(x)
