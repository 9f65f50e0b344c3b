"""Layers with the official Swin initialisation, shared by miziha's modules."""

from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .shapes import eager_on_cpu

__all__ = ["TRUNC_NORMAL", "Linear", "LayerNorm", "linear", "layer_norm"]

#: The official code's ``trunc_normal_(std=.02)``: its cutoffs are absolute (-2, 2), as are
#: Paddle's ``a``/``b``, so at std 0.02 this is in effect a plain normal. Kept as is so that
#: a model trained from scratch starts where the official one does.
TRUNC_NORMAL = nn.initializer.TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)


class Linear(nn.Linear):
    """``nn.Linear`` that can fold a preceding LayerNorm's affine terms into its weights,
    with a faster eager CPU path.

    ``forward(x, input_affine=(scale, shift))`` computes ``(x * scale + shift) @ W + b``, as
    ``x @ (scale[:, None] * W) + (shift @ W + b)`` when ``x`` has more elements than ``W``:
    the per-token work is then one GEMM, and the affine gradients come from ops the size of
    ``W`` (see :class:`LayerNorm`).

    On CPU in eager mode, with gradients on, the bias is one more row of the weight, against
    a column of ones: ``[x, 1] @ [[W], [b]]``. Its gradient then comes out of the weight's
    GEMM. Paddle's own bias gradients on CPU are column sums, 15-60x slower than a GEMV at
    power-of-two widths of 256 and more (16 ms against 0.6 ms for ``[6272, 512]``), and
    ``addmm``'s backward crashes the process when the bias is left without a gradient.
    Without gradients it is one ``addmm``. Elsewhere (GPU, static graphs, which inference
    passes fuse into ``fc``) it is ``F.linear``. Parameters and their names are
    ``nn.Linear``'s.
    """

    def forward(self, x: paddle.Tensor, input_affine: Optional[Tuple[paddle.Tensor,
                                                                     paddle.Tensor]] = None
                ) -> paddle.Tensor:
        """Args: x ``[..., in]``; input_affine: ``(scale [in], shift [in])`` or None.

        Returns: ``[..., out]``.
        """
        weight, bias = self.weight, self.bias
        if input_affine is not None:
            scale, shift = input_affine  # either may be None (a LayerNorm without it)
            if paddle.in_dynamic_mode() and x.size < weight.size:  # few tokens: on x
                if scale is not None:
                    x = x * scale.astype(x.dtype)
                if shift is not None:
                    x = x + shift.astype(x.dtype)
            else:
                if shift is not None:
                    shift_out = paddle.matmul(shift.astype(weight.dtype), weight)
                    bias = shift_out if bias is None else bias + shift_out
                if scale is not None:
                    weight = scale.astype(weight.dtype).reshape([-1, 1]) * weight
        if bias is None or not eager_on_cpu(x) or x.dtype != weight.dtype:
            return F.linear(x, weight, bias)
        shape = x.shape
        x2d = x.reshape([-1, shape[-1]])
        if paddle.is_grad_enabled():
            out = paddle.matmul(
                paddle.concat([x2d, paddle.ones_like(x2d[:, :1])], axis=1),
                paddle.concat([weight, bias.reshape([1, -1])], axis=0))
        else:
            out = paddle.addmm(bias, x2d, weight)
        return out.reshape(shape[:-1] + [out.shape[-1]])


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` whose input gradient is right when its weight gets no gradient.

    Paddle 3.3's CPU ``layer_norm`` backward leaves the weight out of the input gradient
    whenever the weight's own gradient is not computed: a frozen weight, or
    ``paddle.grad(out, x)`` that does not ask for it (then ``dx`` is that of weight 1).
    So on CPU in eager mode with gradients on, this normalises with Paddle's kernel without
    affine terms and applies them as elementwise ops; elsewhere it is ``nn.LayerNorm``.

    ``forward(x, affine=False)`` returns the normalised ``x`` only, for a following
    :class:`Linear` that takes ``(weight, bias)`` as its ``input_affine``: the same maths
    with no per-token affine work (miziha's blocks and patch merging do this).
    """

    def forward(self, x: paddle.Tensor, affine: bool = True) -> paddle.Tensor:
        """Args: x ``[..., C]``; affine: apply weight and bias. Returns: ``[..., C]``."""
        if affine and (self.weight is None or self.bias is None
                       or not paddle.is_grad_enabled() or not eager_on_cpu(x)):
            return super().forward(x)
        normalized = F.layer_norm(x, self._normalized_shape, None, None, self._epsilon)
        if not affine:
            return normalized
        shape = list(self._normalized_shape)  # the parameters are stored flat
        return normalized * self.weight.reshape(shape) + self.bias.reshape(shape)

    @property
    def affine_terms(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """``(weight, bias)``, for :meth:`Linear.forward`'s ``input_affine`` (either may be
        None for a LayerNorm built without it)."""
        return self.weight, self.bias


def linear(in_features: int, out_features: int, bias: bool = True) -> Linear:
    """:class:`Linear` with truncated-normal weights and zero bias."""
    return Linear(in_features, out_features,
                     weight_attr=paddle.ParamAttr(initializer=TRUNC_NORMAL),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
                     if bias else False)


def layer_norm(dim: int) -> LayerNorm:
    """:class:`LayerNorm` with eps 1e-5 (PyTorch's default, used by the official code)."""
    return LayerNorm(dim, epsilon=1e-5)
