"""Layers with the official Swin initialisation, shared by miziha's modules."""

import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

__all__ = ["TRUNC_NORMAL", "Linear", "linear", "layer_norm"]

#: The official code's ``trunc_normal_(std=.02)``: its cutoffs are absolute (-2, 2), as are
#: Paddle's ``a``/``b``, so at std 0.02 this is in effect a plain normal. Kept as is so that
#: a model trained from scratch starts where the official one does.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)


class _AddmmWithFastBiasGrad(PyLayer):
    """``addmm(bias, x, weight)`` on 2-D ``x [M, in]``; the bias gradient is a GEMV
    (``ones[1, M] @ dy``). Paddle's ``addmm`` backward sums ``dy [M, out]`` over its rows
    with a column reduction that is 15-60x slower than that GEMV on CPU when ``out`` is a
    power of two of 256 or more: 16 ms against 0.6 ms for ``[6272, 512]``."""

    @staticmethod
    def forward(ctx, x: paddle.Tensor, weight: paddle.Tensor,
                bias: paddle.Tensor) -> paddle.Tensor:
        ctx.save_for_backward(x, weight)
        # Saved tensors lose stop_gradient when recompute's hooks repack them.
        ctx.needs_grad = [not t.stop_gradient for t in (x, weight, bias)]
        return paddle.addmm(bias, x, weight)

    @staticmethod
    def backward(ctx, dy: paddle.Tensor):
        x, weight = ctx.saved_tensor()
        x_needs, weight_needs, bias_needs = ctx.needs_grad
        dx = paddle.matmul(dy, weight, transpose_y=True) if x_needs else None
        dweight = paddle.matmul(x, dy, transpose_x=True) if weight_needs else None
        dbias = paddle.matmul(paddle.ones([1, dy.shape[0]], dy.dtype), dy).reshape([-1]) \
            if bias_needs else None
        return dx, dweight, dbias


class Linear(nn.Linear):
    """``nn.Linear`` whose eager CPU forward is one ``addmm`` (the bias enters the GEMM as
    its beta term) on ``[..., in]`` flattened to 2-D, with a fast bias gradient.

    On Paddle's CPU kernels, matmul followed by a broadcast bias add costs an extra pass
    and a slow bias-gradient reduction: together about 9% of a SwinResNet50 training step
    at 224. Elsewhere (GPU, static graphs, which inference passes fuse into ``fc``) it is
    ``nn.Linear``. Parameters and their names are ``nn.Linear``'s.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.bias is None or not paddle.in_dynamic_mode() or not x.place.is_cpu_place() \
                or x.dtype != self.weight.dtype:
            return super().forward(x)
        shape = x.shape
        out = _AddmmWithFastBiasGrad.apply(x.reshape([-1, shape[-1]]), self.weight, self.bias)
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
