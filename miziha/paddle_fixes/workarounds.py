"""Every place where miziha works around a problem of Paddle (3.3.1, CPU wheel): the index is
this docstring; entries 1-3 and 5 live in this module, the others name the module that
holds them. Each entry names the problem as measured; ``tests/test_workarounds.py`` has,
for entries 1-4, 9 and 13, a check marked ``xfail`` (not strict) that shows the problem in the
installed Paddle: when an upgrade fixes one, that check reports XPASS, and the entry here
can go.

1. :class:`LayerNorm`. Paddle 3.3's CPU ``layer_norm`` backward leaves the weight out of
   the input gradient whenever the weight's own gradient is not computed (a frozen weight,
   or ``paddle.grad(out, x)``): ``dx`` is then that of weight 1. To drop it once fixed:
   delete :class:`LayerNorm` and the ``input_affine`` fold of :class:`Linear`, and let
   :func:`layer_norm` return ``nn.LayerNorm`` (its callers' ``affine=False`` /
   ``input_affine`` arguments go with them).
2. :class:`Linear` (:func:`linear_forward`), own backward. Paddle's CPU bias gradient is a
   column sum, 15-60x slower than a GEMV at power-of-two widths of 256 and more (16 ms
   against 0.6 ms for ``[6272, 512]``; a speed problem, measured, not checked by a test;
   at narrower widths it is cheap, see :data:`SLOW_BIAS_GRAD_WIDTH`), and ``addmm``'s
   backward crashes the process (SIGSEGV in ``AddmmGradKernel``) when the bias gradient
   is not computed (a frozen bias, or ``paddle.grad`` for the input only). On eager CPU
   with gradients on, :class:`LinearInputFunction` and :class:`LinearParamsFunction`
   compute the gradients themselves (the bias's as a GEMV; ``addmm`` only in forward).
   Two single-input PyLayers, not one: Paddle 3.3's ``paddle.grad`` for some of a
   PyLayer's inputs marks the others stop-gradient and then rejects the gradient its
   backward returns for them ("should return None at ... position"). They also keep
   less for backward than autograd through the same ops would (``docs/performance.md``,
   Memory). When ``addmm`` is fixed and Paddle's bias gradient is a GEMV, ``F.linear``
   can take over, at that memory cost. PyLayers bring a Paddle 3.3 crash of their own: a
   second backward through any of them (``backward(retain_graph=True)``, then again)
   ends in SIGSEGV; :data:`OWN_BACKWARD` = False turns the own backwards (these,
   :class:`NormalizeFunction`'s and ``DropPath``'s) off for such graphs.
3. :func:`pad_bottom_right` concatenates zeros and crops instead of calling ``F.pad``:
   Paddle 3.3's oneDNN pad in ``paddle.inference`` ignores ``data_format="NHWC"`` and pads
   the last two axes (W and C) as if the input were NCHW (``[2, 5, 7, 4]`` padded by one
   row and column comes out ``[2, 5, 8, 5]``).
4. Index tables add axes with ``reshape``, never ``unsqueeze``: Paddle 3.3's oneDNN
   inference pass ``operator_unsqueeze_onednn_fuse_pass`` fuses an ``unsqueeze`` into a
   ``multiply`` (or ``transpose``) before it and drops the axis for int64 tensors
   (:mod:`miziha.layers.windows`, :mod:`miziha.layers.groups` follow this).
5. :func:`conv_channels_last` runs a ``Conv2D`` built for NCHW between two transposes
   instead of using ``data_format="NHWC"``: Paddle 3.3's ``paddle.inference`` (oneDNN)
   reads an NHWC conv's input as NCHW ("input's channels is 14, the input's shape is
   [2, 14, 14, 16] ... data_format is NHWC"); ``jit.load`` and eager mode are right.
   To drop it: build the convs with ``data_format="NHWC"`` and call them directly.
6. Integer index arithmetic uses tensors only (:func:`miziha.layers.shifts.shift_index`): an
   int64 tensor times or plus a Python number becomes a ``scale`` op, which Paddle 3.3's
   oneDNN inference kernel ignores for int64 (wrong tables in ``paddle.inference``).
7. ``GroupNorm(1, C)`` on channels-last ``[B, ..., C]`` runs, in eager mode and in graphs
   alike, as ``instance_norm`` without affine terms on each sample seen as one 4-D NCHW
   channel ``[B, 1, N*C, 1]``, then the affine terms as elementwise ops
   (:class:`miziha.mixers.asmlp.GroupNorm1`). The other forms fail somewhere: Paddle 3.3's
   CPU ``group_norm`` backward gives a wrong input gradient when it has no weight (off by
   0.045 on a ``[3, 6, 5, 7]`` map; with weight and bias it is right); oneDNN's
   inference ``layer_norm`` takes the last axis only; paddle2onnx 2.1 ends the process
   ("cannot create std::vector larger than max_size()") on a ``layer_norm`` over a
   flattened axis of unknown size, aborts on a 3-D ``group_norm`` ("Only support
   4D-Tensor as input for GroupNorm"), writes a 4-D one with a wrong ``epsilon`` (0.0,
   1.0 or 4.7e-20 seen for 1e-5), and applies an NHWC one's affine terms along the wrong
   axis.
8. A batched ``matmul`` whose weight is broadcast over the batch (``[B, 2, N, K] @
   [2, K, C]``) fails in backward on CPU ("Input dimension size should be equal to 2"), so
   :mod:`miziha.mixers.asmlp` expands the weight first.
9. Devices are compared as strings (:func:`miziha.paddle_fixes.cpu.place_key`), not with
   ``place.is_cpu_place()``, which breaks SOT's to_static in some forwards (Paddle 3.3,
   ``UnboundLocalError`` in its generated code).
10. Paddle 3.3's GPU flash attention takes a dense ``attn_mask`` but its backward
    (``FlashAttnGradKernel``) returns no gradient for it, so a relative position bias
    passed as the mask would not train: :func:`miziha.layers.attention.fused_attention` enables
    only the memory-efficient and math backends of ``scaled_dot_product_attention`` when
    the mask needs a gradient. GPU only, so no CPU check; it can go when Paddle's flash
    backward returns the mask gradient.
11. :func:`line_conv` runs a depthwise 3x3 conv on images one row or column wide (CSWin's
    LePE on ``split_size=1`` stripes, :meth:`miziha.mixers.cswin.LePEAttention.lepe`) as a
    3-tap 1-D conv with its own backward (entry 2's pattern and its GEMV column sums):
    Paddle 3.3's CPU depthwise conv is slow on such images (forward and backward of
    ``[224, 32, 56, 1]`` about 80 ms, against 7 ms; a speed problem, measured, not checked
    by a test). It can go when Paddle's depthwise conv on line images is as fast.
12. :func:`exact_gelu`, :func:`exact_gelu_grad` and :class:`NormalizeFunction`'s backward
    compose exact GELU, its derivative and LayerNorm's input gradient from in-place
    elementwise ops and GEMVs instead of Paddle 3.3's CPU ``gelu``, ``gelu_grad`` and
    ``layer_norm_grad`` kernels, which are slow: on ``[12544, 64]`` float32, 1.7, 4.3 and
    8.2 ms against 0.7, 3.3 and 2.0 ms; and ``gelu_grad`` allocates three temporaries the
    size of its input besides its output (4x the page faults of a multiply at ``[12544,
    256]``, where a fresh 12.8 MB buffer costs about 7 ms in faults here). Used by the own
    forwards and backwards of entry 2 (an MLP's ``fc2`` with ``input_gelu``, LayerNorm),
    which run on eager CPU, where Paddle 3.3 computes these ops in float32 and float64
    only; a speed problem, measured, not checked by a test. It can go when those kernels
    are as fast.
13. :func:`_kept` makes contiguous what the PyLayers of entries 2 and 11 keep for backward
    from their input (``x`` of :class:`LinearParamsFunction`, ``rows`` of
    :class:`LineConvParamsFunction`): under Paddle 3.3's non-reentrant ``recompute``
    (``use_recompute=True``), a tensor a PyLayer saves that is a strided view (e.g. a
    transpose) comes back in backward with its strides lost, its storage read in
    row-major order, so the gradient is wrong without an error (CSWin's last-stage
    ``proj``, whose input is an attention output transposed as a view, got a wrong weight
    gradient). It can go when recompute restores such views.
14. :class:`LeakyReLU` computes ``maximum(x, slope * x)`` instead of Paddle's
    ``leaky_relu``: paddle2onnx 2.1 reads that op's ``negative_slope``, which Paddle 3.3
    stores as a float64 attribute, as a float32 one, and writes an ONNX ``LeakyRelu`` with
    ``alpha`` 4.3e-43 for 0.01 (a ReLU: SwinResNet50's logits were 1.9e-2 off). It can go
    when paddle2onnx reads the attribute right.
15. Nearest upsampling by an integer factor repeats each pixel with ``reshape`` +
    ``expand`` (:func:`miziha.models.hrnet._upsample_like`) instead of ``F.interpolate``:
    its ``nearest_interp`` op keeps ``scale`` as an array of float64 attributes, which
    paddle2onnx 2.1 rejects ("the 0th elementwise MUST be ir::FloatAttribute", after which
    its Python wrapper ends the process) and Paddle 3.3's oneDNN ``paddle.inference``
    cannot run ("ConvertPirAttribute2RuntimeAttribute not support
    [pir::ArrayAttribute<pir::DoubleAttribute>]"), also when given ``size`` instead.

The Linear and LayerNorm here keep the parameters and names of ``nn.Linear`` and
``nn.LayerNorm``, so state dicts are Paddle's usual ones.
"""

import math
from typing import Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from .cpu import eager_on_cpu, place_key

__all__ = ["Linear", "linear_forward", "LinearInputFunction", "LinearParamsFunction",
           "LayerNorm", "NormalizeFunction", "exact_gelu", "exact_gelu_grad", "line_conv",
           "LineConvInputFunction", "LineConvParamsFunction", "pad_bottom_right",
           "conv_channels_last", "LeakyReLU"]

Affine = Tuple[Optional[paddle.Tensor], Optional[paddle.Tensor]]
#: Output width from which Paddle's CPU bias gradient (a column sum) is slow (workaround 2):
#: 8-16 ms for ``[12544, 256]`` and ``[6272, 512]``, about 1 ms for ``[12544, 64]``,
#: ``[6272, 128]`` and ``[1568, 256]``.
SLOW_BIAS_GRAD_WIDTH = 256
#: Whether :class:`Linear`, :class:`LayerNorm` (and ``miziha.layers``' ``DropPath``) compute
#: their own backward on eager CPU (workaround 2), which keeps less for it. Process-wide, as
#: Paddle's fact behind it: Paddle 3.3 crashes (SIGSEGV) on a second backward through any
#: ``PyLayer`` (``loss.backward(retain_graph=True)`` then ``loss.backward()``). Set it to
#: False before the forward of a graph that is run backward twice; those layers then take
#: Paddle's own ops (``F.linear`` with its slower CPU bias gradient, ``F.layer_norm``).
OWN_BACKWARD = True
Size = Union[int, paddle.Tensor]


class Linear(nn.Linear):
    """``nn.Linear`` with its own backward on eager CPU (workaround 2), and an optional
    preceding LayerNorm's affine terms folded into its weights (workaround 1).

    ``forward(x, input_affine=(scale, shift))`` computes ``(x * scale + shift) @ W + b``, as
    ``x @ (scale[:, None] * W) + (shift @ W + b)`` when ``x`` has more elements than ``W``:
    the per-token work is then one GEMM, and the affine gradients come from ops the size of
    ``W``. ``forward(x, input_gelu=True)`` computes ``GELU(x) @ W + b`` (exact GELU): the
    second layer of an MLP, which then keeps only its hidden layer before GELU for backward.

    On CPU in eager mode with gradients on it runs as :func:`linear_forward` describes: the
    bias gradient is a GEMV, and backward keeps ``x`` itself (no copy of it, nor of the
    folded weight). Without gradients it is one ``addmm``. Elsewhere (GPU, static graphs,
    which inference passes fuse into ``fc``) it is ``F.linear``.
    """

    def forward(self, x: paddle.Tensor, input_affine: Optional[Affine] = None,
                input_gelu: bool = False) -> paddle.Tensor:
        """Args: x ``[..., in]``; input_affine: ``(scale [in], shift [in])`` or None;
        input_gelu: apply exact GELU to ``x`` first.

        Returns: ``[..., out]``.
        """
        return linear_forward(x, self.weight, self.bias, input_affine,
                              input_gelu=input_gelu)


def linear_forward(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor],
                   input_affine: Optional[Affine] = None, wide_bias_row: bool = False,
                   input_gelu: bool = False) -> paddle.Tensor:
    """``(x * scale + shift) @ weight + bias`` as :class:`Linear` computes it (the affine fold
    of workaround 1, the own backward of workaround 2), for any layer holding such a weight
    (e.g. a 1x1 convolution's, as ``[in, out]``).

    On eager CPU with gradients on, two single-input autograd functions share the work:
    :class:`LinearInputFunction` computes the output and the input's gradient,
    :class:`LinearParamsFunction` the gradient of the (folded) weight with the bias as its
    last row (the bias gradient a GEMV: Paddle's column sum is 15-60x slower). Each keeps
    ``x`` itself for backward, not a copy, and no folded weight.

    Args:
        x: ``[..., in]``.
        weight: ``[in, out]``.
        bias: ``[out]`` or None.
        input_affine: ``(scale [in], shift [in])`` (either may be None) or None.
        wide_bias_row: the own backward only for outputs of at least
            :data:`SLOW_BIAS_GRAD_WIDTH` columns; narrower ones with a bias use
            ``F.linear``, whose column-sum bias gradient is then cheap (measured with 1x1
            convolutions of ``ASMLPT``).
        input_gelu: ``GELU(x) @ weight + bias`` (exact GELU); not with ``input_affine``.

    Returns: ``[..., out]``.
    """
    if input_gelu and input_affine is not None:
        raise ValueError("linear_forward takes input_affine or input_gelu, not both")
    scale = shift = None
    if input_affine is not None:
        scale, shift = (_same_dtype(t, weight.dtype) for t in input_affine)
        if paddle.in_dynamic_mode() and x.size < weight.size:  # few tokens: on x
            if scale is not None:
                x = x * scale
            if shift is not None:
                x = x + shift
            scale = shift = None
    if OWN_BACKWARD and eager_on_cpu(x) and paddle.is_grad_enabled() \
            and x.dtype == weight.dtype and not (wide_bias_row and bias is not None
                                                 and weight.shape[-1] < SLOW_BIAS_GRAD_WIDTH):
        return _own_backward_linear(x, weight, bias, scale, shift, input_gelu)
    if input_gelu:
        x = F.gelu(x)
    weight, bias = _folded(weight, bias, scale, shift)
    if bias is None or not eager_on_cpu(x) or x.dtype != weight.dtype \
            or paddle.is_grad_enabled():
        return F.linear(x, weight, bias)
    shape = x.shape
    out = paddle.addmm(bias, x.reshape([-1, shape[-1]]), weight)  # no gradients here
    return out.reshape(shape[:-1] + [out.shape[-1]])


def _folded(weight: paddle.Tensor, bias: Optional[paddle.Tensor],
            scale: Optional[paddle.Tensor], shift: Optional[paddle.Tensor]):
    """``(scale[:, None] * weight, shift @ weight + bias)``, either term may be absent."""
    if shift is not None:
        shift_out = paddle.matmul(shift, weight)
        bias = shift_out if bias is None else bias + shift_out
    if scale is not None:
        weight = scale.reshape([-1, 1]) * weight
    return weight, bias


def _same_dtype(t: Optional[paddle.Tensor], dtype) -> Optional[paddle.Tensor]:
    return t if t is None or t.dtype == dtype else t.astype(dtype)


class _Hidden:
    """A tensor handed to a PyLayer without becoming one of its inputs (PyLayer treats
    tensors, and lists of them, as inputs that take a gradient)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Optional[paddle.Tensor]) -> None:
        self.tensor = tensor


#: (dtype, device) -> a flat zero tensor, grown to the largest ``[tokens, out]`` Linear
#: output trained so far and kept for the process: 12 MiB for a SwinResNet50 step at 224,
#: batch 8, in CPU sub-batches; without them (``miziha.paddle_fixes.cpu.BATCH_CHUNK_BYTES = None``) as
#: large as the widest Linear output of a whole batch. Only ever read.
_ZEROS: dict = {}


def _zeros_view(shape, like: paddle.Tensor) -> paddle.Tensor:
    """Zeros of ``shape`` with ``like``'s dtype and device: a view of a cached buffer, so
    neither allocated nor filled."""
    numel = 1
    for n in shape:
        numel *= n
    key = (like.dtype, place_key(like.place))
    buffer = _ZEROS.get(key)
    if buffer is None or buffer.shape[0] < numel:
        buffer = _ZEROS[key] = paddle.zeros([numel], like.dtype, device=like.place)
    return buffer[:numel].reshape(shape)


def _column_sums(t: paddle.Tensor) -> paddle.Tensor:
    """``t [M, n]`` -> its column sums ``[1, n]``, as a GEMV with a row of ones: Paddle's CPU
    column sum is 15-60x slower at wide ``n`` (entry 2)."""
    return paddle.matmul(paddle.ones_like(t[:, :1]).reshape([1, -1]), t)


_SQRT_HALF, _INV_SQRT_2PI = math.sqrt(0.5), 1.0 / math.sqrt(2.0 * math.pi)


def _normal_cdf(x: paddle.Tensor) -> paddle.Tensor:
    """``Phi(x) = (1 + erf(x / sqrt 2)) / 2``, a new tensor of ``x``'s shape (entry 12)."""
    cdf = paddle.scale(x, _SQRT_HALF)
    paddle.erf_(cdf)
    return cdf.scale_(0.5, 0.5)


def exact_gelu(x: paddle.Tensor) -> paddle.Tensor:
    """``x * Phi(x)``: exact GELU, without autograd (entry 12). Any shape."""
    return _normal_cdf(x).multiply_(x)


def exact_gelu_grad(x: paddle.Tensor, grad: paddle.Tensor) -> paddle.Tensor:
    """``grad * (Phi(x) + x phi(x))``, the gradient through exact GELU at ``x``, written into
    ``grad`` (which must be the caller's own tensor), without autograd (entry 12). ``x`` and
    ``grad`` of one shape."""
    slope = paddle.square(x)
    slope.scale_(-0.5).exp_().multiply_(x)  # x exp(-x^2 / 2)
    slope.scale_(_INV_SQRT_2PI).add_(_normal_cdf(x))  # x phi(x) + Phi(x)
    return grad.multiply_(slope)


def _no_second_order(name: str) -> None:
    """Refuse a backward run with ``create_graph=True`` through ``name``, whose backward
    uses what it kept in a way autograd cannot differentiate."""
    if paddle.is_grad_enabled():
        raise NotImplementedError(
            f"second-order gradients (paddle.grad(..., create_graph=True) differentiated "
            f"again) through {name} on eager CPU: its own backward keeps less than its "
            f"derivative needs (miziha/paddle_fixes/workarounds.py, entry 2); set "
            f"miziha.paddle_fixes.workarounds.OWN_BACKWARD = False before the forward for Paddle's "
            f"own ops")


def _kept(t: paddle.Tensor) -> paddle.Tensor:
    """``t``, contiguous: what a PyLayer keeps for backward (entry 13)."""
    return t if t.is_contiguous() else t.contiguous()


def _own_backward_linear(x, weight, bias, scale, shift, gelu):
    """:func:`linear_forward` on eager CPU with gradients on."""
    shape = x.shape
    x2d = _kept(x.reshape([-1, shape[-1]]))
    effective, effective_bias = _folded(weight, bias, scale, shift)  # autograd: params only
    params = effective if effective_bias is None else paddle.concat(
        [effective, effective_bias.reshape([1, -1])], axis=0)  # [in (+1), out]
    out = LinearInputFunction.apply(x2d, _Hidden(params), _Hidden(weight), _Hidden(scale),
                                    gelu)
    if not params.stop_gradient:
        out.add_(LinearParamsFunction.apply(params, _Hidden(x2d), effective_bias is not None,
                                            gelu))
    return out.reshape(shape[:-1] + [out.shape[-1]])


class LinearInputFunction(PyLayer):
    """``(GELU(x) or x) @ W + b`` for 2-D ``x`` from ``params = [[W], [b]]`` (``[in + 1,
    out]``, or ``W`` alone), and the gradient of ``x`` only.

    Backward keeps ``x`` and the unfolded ``weight`` and ``scale`` (the folded weight is
    recomputed, ``W = scale[:, None] * weight``). With ``gelu``, ``GELU(x)`` is not kept.
    Single-input by design: ``paddle.grad`` skips it when ``x`` needs no gradient, whereas a
    PyLayer with several inputs fails when some are pruned.
    """

    @staticmethod
    def forward(ctx, x, params, weight, scale, gelu):
        params, weight, scale = params.tensor, weight.tensor, scale.tensor
        inputs = exact_gelu(x) if gelu else x
        if params.shape[0] == x.shape[1]:
            out = paddle.matmul(inputs, params)
        else:
            out = paddle.addmm(params[-1], inputs, params[:-1])
        ctx.save_for_backward(x, weight, scale)
        ctx.gelu = gelu
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, scale = ctx.saved_tensor()
        effective = weight if scale is None else scale.reshape([-1, 1]) * weight
        grad_x = paddle.matmul(grad, effective, transpose_y=True)
        if ctx.gelu:
            _no_second_order("an MLP's fc2 with GELU recomputed")
            grad_x = exact_gelu_grad(x, grad_x)
        return grad_x


class LinearParamsFunction(PyLayer):
    """The gradient of ``params = [[W], [b]]`` (or ``W``) of :class:`LinearInputFunction`:
    ``[GELU(x) or x, 1]^T @ grad``, the bias row a GEMV. Its forward returns zeros of the
    output's shape (a view of a cached buffer), added to that output so that backward
    reaches it; it keeps ``x`` (the same tensor as :class:`LinearInputFunction`)."""

    @staticmethod
    def forward(ctx, params, x, bias_row, gelu):
        x = x.tensor
        ctx.save_for_backward(x)
        ctx.bias_row, ctx.gelu = bias_row, gelu
        return _zeros_view([x.shape[0], params.shape[1]], params)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensor()
        inputs = exact_gelu(x) if ctx.gelu else x
        grad_params = paddle.matmul(inputs, grad, transpose_x=True)  # [in, out]
        if ctx.bias_row:
            grad_params = paddle.concat([grad_params, _column_sums(grad)], axis=0)
        return grad_params


class NormalizeFunction(PyLayer):
    """Layer normalisation without affine terms over the axes from ``begin_axis``, keeping
    its output (and the variance) for backward instead of its input.

    The layer after a LayerNorm (:class:`LinearInputFunction`, or the affine multiply) keeps
    the same output, so backward holds one tensor where ``F.layer_norm`` would add its input. The
    gradient is computed from that output ``y`` and the saved variance, ``(g - mean(g) - y
    mean(g y)) / sqrt(var + eps)`` (entry 12).
    """

    @staticmethod
    def forward(ctx, x, begin_axis, epsilon):
        # The legacy op returns the variance that the current one keeps to itself.
        out, _, variance = paddle._legacy_C_ops.layer_norm(
            x, None, None, "epsilon", epsilon, "begin_norm_axis", begin_axis)
        ctx.save_for_backward(out.detach(), variance)  # detached: no reference cycle
        ctx.attributes = (begin_axis, epsilon)
        return out

    @staticmethod
    def backward(ctx, grad):
        _no_second_order("LayerNorm")
        out, variance = ctx.saved_tensor()
        begin_axis, epsilon = ctx.attributes
        rstd = paddle.rsqrt(variance + epsilon).reshape([-1, 1])  # [rows, 1]
        # dx = (g - mean(g) - y * mean(g * y)) / sqrt(var + eps), means over the normalised
        # axes as GEMVs (entry 12).
        width = math.prod(out.shape[begin_axis:])
        y, g = out.reshape([-1, width]), grad.reshape([-1, width])
        mean = paddle.full([width, 1], 1.0 / width, y.dtype, device=y.place)
        grad_x = g - paddle.matmul(g, mean)
        grad_x.subtract_(y * paddle.matmul(g * y, mean))
        return grad_x.multiply_(rstd).reshape(out.shape)


def line_conv(v: paddle.Tensor, taps: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """Depthwise 1-D convolution of width 3 with zero padding along the last axis:
    ``out[..., l] = taps[:, 0] v[..., l-1] + taps[:, 1] v[..., l] + taps[:, 2] v[..., l+1]
    + bias`` (cross-correlation, as ``F.conv2d``).

    Args:
        v: ``[M, c, L]``.
        taps: ``[c, 3]``.
        bias: ``[c]``.

    Returns: ``[M, c, L]``. On eager CPU with gradients on (and
    :data:`OWN_BACKWARD`) it computes its own backward, as :class:`Linear` does:
    :class:`LineConvInputFunction` and
    :class:`LineConvParamsFunction`; elsewhere :func:`line_conv_rows` under autograd.
    """
    shape = v.shape
    kernel = line_kernel(taps, bias, shape[-1])
    rows = v.reshape([shape[0], -1])
    if not (OWN_BACKWARD and paddle.is_grad_enabled() and eager_on_cpu(v)):
        return line_conv_rows(rows, kernel).reshape(shape)
    out = LineConvInputFunction.apply(rows, _Hidden(kernel))
    if not kernel.stop_gradient:
        out.add_(LineConvParamsFunction.apply(kernel, _Hidden(_kept(rows))))
    return out.reshape(shape)


def line_kernel(taps: paddle.Tensor, bias: paddle.Tensor, length: int) -> paddle.Tensor:
    """``taps [c, 3]`` and ``bias [c]`` spread over lines of ``length``: ``[4, c*length]``,
    rows ``before``, ``centre``, ``after``, ``bias`` (the weight of each element's flat left
    neighbour, of itself, of its right neighbour, and its bias); ``before`` is 0 where a line
    starts and ``after`` where it ends, so the flat neighbours stand for zero padding."""
    channels = taps.shape[0]
    position = paddle.arange(length)
    edges = paddle.stack([position > 0, position >= 0, position < length - 1])  # [3, L]
    weights = taps.transpose([1, 0]).reshape([3, channels, 1]) \
        * edges.astype(taps.dtype).reshape([3, 1, length])
    bias_row = bias.reshape([1, channels, 1]).expand([1, channels, length])
    return paddle.concat([weights, bias_row]).reshape([4, channels * length])


def _flat_shift(x: paddle.Tensor, step: int) -> paddle.Tensor:
    """``x [M, n]`` moved by ``step`` (1 or -1) over its flat elements, a zero moved in:
    ``out[i] = x[i - step]`` (a concat: faster than ``paddle.roll`` on CPU)."""
    flat = x.flatten()
    zero = paddle.zeros_like(flat[:1])
    moved = [zero, flat[:-1]] if step == 1 else [flat[1:], zero]
    return paddle.concat(moved).reshape(x.shape)


def line_conv_rows(rows: paddle.Tensor, kernel: paddle.Tensor) -> paddle.Tensor:
    """:func:`line_conv` on ``rows [M, c*L]`` with ``kernel [4, c*L]`` (:func:`line_kernel`):
    ``rows * centre + bias`` plus each flat neighbour times its weight."""
    before, centre, after, bias = paddle.unbind(kernel)
    return rows * centre + bias + _flat_shift(rows, 1) * before \
        + _flat_shift(rows, -1) * after


class LineConvInputFunction(PyLayer):
    """:func:`line_conv_rows` and the gradient of its ``rows`` only (single-input, as
    :class:`LinearInputFunction`, so that ``paddle.grad`` for the input
    alone works); keeps only the kernel for backward."""

    @staticmethod
    def forward(ctx, rows, kernel):
        kernel = kernel.tensor
        ctx.save_for_backward(kernel)
        return line_conv_rows(rows, kernel)

    @staticmethod
    def backward(ctx, grad):
        (kernel,) = ctx.saved_tensor()
        before, centre, after, _ = paddle.unbind(kernel)
        return grad * centre + _flat_shift(grad * before, -1) + _flat_shift(grad * after, 1)


class LineConvParamsFunction(PyLayer):
    """The gradient of :func:`line_conv_rows`' ``kernel``: column sums as GEMVs (Paddle's
    CPU column sum is slow: entry 2). Its forward returns zeros of the output's shape,
    added to the output so that backward reaches it, as :class:`LinearParamsFunction`; it
    keeps ``rows``."""

    @staticmethod
    def forward(ctx, kernel, rows):
        rows = rows.tensor
        ctx.save_for_backward(rows)
        return _zeros_view(rows.shape, kernel)

    @staticmethod
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensor()
        return paddle.concat([_column_sums(t) for t in (
            _flat_shift(rows, 1) * grad, rows * grad, _flat_shift(rows, -1) * grad, grad)])


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` whose input gradient is right when its weight gets no gradient
    (workaround 1).

    On CPU in eager mode with gradients on, it normalises with :class:`NormalizeFunction`
    (Paddle's forward kernel without affine terms, the output kept for backward, a composed
    backward) and applies the affine terms as elementwise ops; elsewhere it is
    ``nn.LayerNorm``.

    ``forward(x, affine=False)`` returns the normalised ``x`` only, for a following
    :class:`Linear` that takes :attr:`affine_terms` as its ``input_affine``: the same maths
    with no per-token affine work.
    """

    def forward(self, x: paddle.Tensor, affine: bool = True) -> paddle.Tensor:
        """Args: x ``[..., C]``; affine: apply weight and bias. Returns: ``[..., C]``."""
        eager_training = paddle.is_grad_enabled() and eager_on_cpu(x)
        if affine and (self.weight is None or self.bias is None or not eager_training):
            return super().forward(x)
        if eager_training and OWN_BACKWARD:
            normalized = NormalizeFunction.apply(x, x.ndim - len(self._normalized_shape),
                                                 self._epsilon)
        else:
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


class LeakyReLU(nn.LeakyReLU):
    """``nn.LeakyReLU`` as ``maximum(x, slope * x)`` (for slopes in ``[0, 1]``), which
    paddle2onnx converts right (workaround 14); same arguments, no parameters."""

    def __init__(self, negative_slope: float = 0.01, name: Optional[str] = None) -> None:
        if not 0.0 <= negative_slope <= 1.0:
            raise ValueError(f"LeakyReLU takes a negative_slope in [0, 1], got {negative_slope}")
        super().__init__(negative_slope, name)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.maximum(x, x * self._negative_slope)
