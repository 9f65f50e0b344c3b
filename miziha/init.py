"""Layers with the official Swin initialisation, shared by miziha's modules."""

import paddle
import paddle.nn as nn

__all__ = ["TRUNC_NORMAL", "linear", "layer_norm"]

#: The official code's ``trunc_normal_(std=.02)``: its cutoffs are absolute (-2, 2), as are
#: Paddle's ``a``/``b``, so at std 0.02 this is in effect a plain normal. Kept as is so that
#: a model trained from scratch starts where the official one does.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` with truncated-normal weights and zero bias."""
    return nn.Linear(in_features, out_features,
                     weight_attr=paddle.ParamAttr(initializer=TRUNC_NORMAL),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
                     if bias else False)


def layer_norm(dim: int) -> nn.LayerNorm:
    """``nn.LayerNorm`` with eps 1e-5 (PyTorch's default, used by the official code)."""
    return nn.LayerNorm(dim, epsilon=1e-5)
