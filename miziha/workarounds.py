"""Every place where miziha works around a problem of Paddle (3.3.1, CPU wheel): the index is
this docstring; entries 1-3 and 5 live in this module, the others name the module that
holds them. Each entry names the problem as measured; ``tests/test_workarounds.py`` has,
for entries 1-4 and 9, a check marked ``xfail`` (not strict) that shows the problem in the
installed Paddle: when an upgrade fixes one, that check reports XPASS, and the entry here
can go.

1. :class:`LayerNorm`. Paddle 3.3's CPU ``layer_norm`` backward leaves the weight out of
   the input gradient whenever the weight's own gradient is not computed (a frozen weight,
   or ``paddle.grad(out, x)``): ``dx`` is then that of weight 1. To drop it once fixed:
   delete :class:`LayerNorm` and the ``input_affine`` fold of :class:`Linear`, and let
   :func:`layer_norm` return ``nn.LayerNorm`` (its callers' ``affine=False`` /
   ``input_affine`` arguments go with them).
2. :class:`Linear` (:func:`linear_forward`), bias row. Paddle's CPU bias gradient is a
   column sum, 15-60x slower than a GEMV at power-of-two widths of 256 and more (16 ms
   against 0.6 ms for ``[6272, 512]``; a speed problem, measured, not checked by a test;
   at narrower widths the bias row's copies cost more, see :data:`SLOW_BIAS_GRAD_WIDTH`),
   and ``addmm``'s backward crashes the process (SIGSEGV in ``AddmmGradKernel``) when the
   bias gradient is not computed (a frozen bias, or ``paddle.grad`` for the input only).
   The bias row answers both; when ``addmm`` is fixed, the no-gradient path may keep
   ``addmm``, and the bias row can go once Paddle's bias gradient is a GEMV.
3. :func:`pad_bottom_right` concatenates zeros and crops instead of calling ``F.pad``:
   Paddle 3.3's oneDNN pad in ``paddle.inference`` ignores ``data_format="NHWC"`` and pads
   the last two axes (W and C) as if the input were NCHW (``[2, 5, 7, 4]`` padded by one
   row and column comes out ``[2, 5, 8, 5]``).
4. Index tables add axes with ``reshape``, never ``unsqueeze``: Paddle 3.3's oneDNN
   inference pass ``operator_unsqueeze_onednn_fuse_pass`` fuses an ``unsqueeze`` into a
   ``multiply`` (or ``transpose``) before it and drops the axis for int64 tensors
   (:mod:`miziha.windows`, :mod:`miziha.groups` follow this).
5. :func:`conv_channels_last` runs a ``Conv2D`` built for NCHW between two transposes
   instead of using ``data_format="NHWC"``: Paddle 3.3's ``paddle.inference`` (oneDNN)
   reads an NHWC conv's input as NCHW ("input's channels is 14, the input's shape is
   [2, 14, 14, 16] ... data_format is NHWC"); ``jit.load`` and eager mode are right.
   To drop it: build the convs with ``data_format="NHWC"`` and call them directly.
6. Integer index arithmetic uses tensors only (:func:`miziha.shifts.shift_index`): an
   int64 tensor times or plus a Python number becomes a ``scale`` op, which Paddle 3.3's
   oneDNN inference kernel ignores for int64 (wrong tables in ``paddle.inference``).
7. ``GroupNorm(1, C)`` runs as ``layer_norm`` over each flattened sample in graphs
   (:class:`miziha.asmlp.GroupNorm1`; eager CPU takes Paddle's faster ``group_norm``):
   oneDNN's inference ``layer_norm`` takes the last axis only.
8. A batched ``matmul`` whose weight is broadcast over the batch (``[B, 2, N, K] @
   [2, K, C]``) fails in backward on CPU ("Input dimension size should be equal to 2"), so
   :mod:`miziha.asmlp` expands the weight first.
9. Devices are compared as strings (:func:`miziha.cpu.place_key`), not with
   ``place.is_cpu_place()``, which breaks SOT's to_static in some forwards (Paddle 3.3,
   ``UnboundLocalError`` in its generated code).
10. Paddle 3.3's GPU flash attention takes a dense ``attn_mask`` but its backward
    (``FlashAttnGradKernel``) returns no gradient for it, so a relative position bias
    passed as the mask would not train: :func:`miziha.attention.fused_attention` enables
    only the memory-efficient and math backends of ``scaled_dot_product_attention`` when
    the mask needs a gradient. GPU only, so no CPU check; it can go when Paddle's flash
    backward returns the mask gradient.

The Linear and LayerNorm here keep the parameters and names of ``nn.Linear`` and
``nn.LayerNorm``, so state dicts are Paddle's usual ones.
"""

from typing import Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .cpu import eager_on_cpu

__all__ = ["Linear", "linear_forward", "LayerNorm", "pad_bottom_right", "conv_channels_last"]

Affine = Tuple[Optional[paddle.Tensor], Optional[paddle.Tensor]]
#: Output width from which Paddle's CPU bias gradient (a column sum) is slow (workaround 2):
#: 8-16 ms for ``[12544, 256]`` and ``[6272, 512]``, about 1 ms for ``[12544, 64]``,
#: ``[6272, 128]`` and ``[1568, 256]``.
SLOW_BIAS_GRAD_WIDTH = 256
Size = Union[int, paddle.Tensor]


class Linear(nn.Linear):
    """``nn.Linear`` with the bias as a weight row on eager CPU (workaround 2), and an
    optional preceding LayerNorm's affine terms folded into its weights (workaround 1).

    ``forward(x, input_affine=(scale, shift))`` computes ``(x * scale + shift) @ W + b``, as
    ``x @ (scale[:, None] * W) + (shift @ W + b)`` when ``x`` has more elements than ``W``:
    the per-token work is then one GEMM, and the affine gradients come from ops the size of
    ``W``.

    On CPU in eager mode, with gradients on, the bias is one more row of the weight, against
    a column of ones: ``[x, 1] @ [[W], [b]]``, so its gradient comes out of the weight's
    GEMM. Without gradients it is one ``addmm``. Elsewhere (GPU, static graphs, which
    inference passes fuse into ``fc``) it is ``F.linear``.
    """

    def forward(self, x: paddle.Tensor, input_affine: Optional[Affine] = None) -> paddle.Tensor:
        """Args: x ``[..., in]``; input_affine: ``(scale [in], shift [in])`` or None.

        Returns: ``[..., out]``.
        """
        return linear_forward(x, self.weight, self.bias, input_affine)


def linear_forward(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor],
                   input_affine: Optional[Affine] = None, wide_bias_row: bool = False
                   ) -> paddle.Tensor:
    """``(x * scale + shift) @ weight + bias`` as :class:`Linear` computes it (the affine fold
    of workaround 1, the bias row of workaround 2), for any layer holding such a weight
    (e.g. a 1x1 convolution's, as ``[in, out]``).

    Args:
        x: ``[..., in]``.
        weight: ``[in, out]``.
        bias: ``[out]`` or None.
        input_affine: ``(scale [in], shift [in])`` (either may be None) or None.
        wide_bias_row: take the bias row only for outputs of at least
            :data:`SLOW_BIAS_GRAD_WIDTH` columns; narrower ones use ``F.linear``, whose
            column-sum bias gradient is then cheaper than the bias row's copies of ``x``
            and of its gradient (measured with 1x1 convolutions of ``ASMLPT``).

    Returns: ``[..., out]``.
    """
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
    if bias is None or not eager_on_cpu(x) or x.dtype != weight.dtype \
            or (wide_bias_row and weight.shape[-1] < SLOW_BIAS_GRAD_WIDTH):
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
    """``nn.LayerNorm`` whose input gradient is right when its weight gets no gradient
    (workaround 1).

    On CPU in eager mode with gradients on, it normalises with Paddle's kernel without
    affine terms and applies them as elementwise ops; elsewhere it is ``nn.LayerNorm``.

    ``forward(x, affine=False)`` returns the normalised ``x`` only, for a following
    :class:`Linear` that takes :attr:`affine_terms` as its ``input_affine``: the same maths
    with no per-token affine work.
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
    def affine_terms(self) -> Affine:
        """``(weight, bias)``, for :meth:`Linear.forward`'s ``input_affine`` (either may be
        None for a LayerNorm built without it)."""
        return self.weight, self.bias


def pad_bottom_right(x: paddle.Tensor, multiple: int, height: Size, width: Size,
                     height_axis: int) -> paddle.Tensor:
    """Zero-pad the spatial axes ``height_axis`` and ``height_axis + 1`` at the bottom and
    right up to multiples of ``multiple``; ``height``/``width`` are ints or 0-D tensors
    (workaround 3: concatenates zeros then crops, which also works for sizes known only in
    a static graph)."""
    if isinstance(height, int) and isinstance(width, int) \
            and height % multiple == 0 and width % multiple == 0:
        return x
    for axis in (height_axis, height_axis + 1):
        zeros = paddle.zeros_like(paddle.slice(x, [axis], [0], [1]))
        x = paddle.concat([x] + [zeros] * (multiple - 1), axis=axis)
    ends = [(height + multiple - 1) // multiple * multiple,
            (width + multiple - 1) // multiple * multiple]
    return paddle.slice(x, [height_axis, height_axis + 1], [0, 0], ends)


def conv_channels_last(conv: nn.Conv2D, x: paddle.Tensor) -> paddle.Tensor:
    """``conv`` (an NCHW ``Conv2D``) on ``x [B, H, W, C]`` -> ``[B, H', W', C']``
    (workaround 5)."""
    return conv(x.transpose([0, 3, 1, 2])).transpose([0, 2, 3, 1])
