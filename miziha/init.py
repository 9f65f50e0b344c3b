"""Layers with the official Swin initialisation, shared by miziha's modules."""

import paddle
import paddle.nn as nn

__all__ = ["TRUNC_NORMAL", "linear", "layer_norm"]

#: Truncated normal, std 0.02, cut at 2 sigma. Paddle's cutoffs ``a``/``b`` are absolute
#: values, not multiples of std.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-0.04, b=0.04)


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with truncated-normal weights and zero bias."""
    return nn.Linear(in_features, out_features,
                     weight_attr=paddle.ParamAttr(initializer=TRUNC_NORMAL),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
                     if bias else False)


def layer_norm(dim: int) -> nn.LayerNorm:
    """``nn.LayerNorm`` with eps 1e-5 (PyTorch's default, used by the official code)."""
    return nn.LayerNorm(dim, epsilon=1e-5)
