"""Layers with the official Swin initialisation, shared by miziha's modules."""

import paddle
import paddle.nn as nn

__all__ = ["TRUNC_NORMAL", "Linear", "linear", "layer_norm"]

#: The official code's ``trunc_normal_(std=.02)``: its cutoffs are absolute (-2, 2), as are
#: Paddle's ``a``/``b``, so at std 0.02 this is in effect a plain normal. Kept as is so that
#: a model trained from scratch starts where the official one does.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)


class Linear(nn.Linear):
    """``nn.Linear`` whose eager CPU forward is one ``addmm`` (the bias enters the GEMM as
    its beta term) on ``[..., in]`` flattened to 2-D.

    On Paddle's CPU kernels, matmul followed by a broadcast bias add costs an extra pass
    and a slow bias-gradient reduction: about 6% of a SwinResNet50 training step at 224.
    Elsewhere (GPU, static graphs, which inference passes fuse into ``fc``) it is
    ``nn.Linear``. Parameters and their names are ``nn.Linear``'s.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.bias is None or not paddle.in_dynamic_mode() or not x.place.is_cpu_place() \
                or x.dtype != self.weight.dtype:
            return super().forward(x)
        shape = x.shape
        out = paddle.addmm(self.bias, x.reshape([-1, shape[-1]]), self.weight)
        return out.reshape(shape[:-1] + [out.shape[-1]])


def linear(in_features: int, out_features: int, bias: bool = True) -> Linear:
    """:class:`Linear` with truncated-normal weights and zero bias."""
    return Linear(in_features, out_features,
                     weight_attr=paddle.ParamAttr(initializer=TRUNC_NORMAL),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
                     if bias else False)


def layer_norm(dim: int) -> nn.LayerNorm:
    """``nn.LayerNorm`` with eps 1e-5 (PyTorch's default, used by the official code)."""
    return nn.LayerNorm(dim, epsilon=1e-5)
