"""The ``attention=`` option of the attention mixers: the backend decision, Paddle's fused
``scaled_dot_product_attention`` against the math path (values and every gradient), export,
and half precision (finite masks, softmax in float32, autocast)."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import miziha
from miziha.layers import attention
from miziha.layers.attention import attention_backend, fused_attention, softmax_float32
from miziha.export import Predictor, save_for_inference
from miziha.layers.windows import MASK_VALUE, window_geometry
from conftest import outputs_and_gradients, randomize

# Small layers whose 9x11 input pads every design (window / pale / stripe 4 and 3x5).
DESIGNS = {
    "swin": (miziha.SwinT, dict(num_heads=2, window_size=4)),
    "swin, rectangular window, qk_scale": (miziha.SwinT, dict(num_heads=4, window_size=(3, 5),
                                                              qk_scale=0.3)),
    "pale": (miziha.PaleT, dict(num_heads=4, pale_size=4)),
    "cswin": (miziha.CSWinT, dict(num_heads=4, split_size=4)),
    "cswin, last stage, qk_scale": (miziha.CSWinT, dict(num_heads=4, last_stage=True,
                                                        qk_scale=0.2)),
    "swinv2": (miziha.SwinV2T, dict(num_heads=2, window_size=4)),
    "swinv2, pretrained window": (miziha.SwinV2T, dict(num_heads=4, window_size=(3, 5),
                                                       pretrained_window_size=6)),
    "axial": (miziha.AxialT, dict(num_heads=4)),
}
ATTENTION_MIXERS = [miziha.SwinT, miziha.SwinV2T, miziha.PaleT, miziha.CSWinT, miziha.AxialT]


def _on_gpu() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


@pytest.mark.parametrize("mode, place, dtype, expected", [
    ("auto", "cpu", "float32", "math"),
    ("auto", "cpu", "bfloat16", "math"),          # a CPU never takes a GPU kernel
    ("auto", "cpu", paddle.float16, "math"),
    ("auto", "gpu:0", "float32", "math"),         # float32 on a GPU keeps the math path
    ("auto", "gpu:0", "float16", "sdpa"),
    ("auto", "Place(gpu:1)", paddle.bfloat16, "sdpa"),
    ("auto", "gpu", "bfloat16", "sdpa"),
    ("auto", "Place(gpu_pinned)", "float16", "math"),  # pinned host memory is not a GPU
    ("auto", "xpu:0", "float16", "math"),
    ("math", "gpu:0", "float16", "math"),
    ("sdpa", "cpu", "float32", "sdpa"),
])
def test_attention_backend_is_a_pure_decision(mode, place, dtype, expected):
    assert attention_backend(mode, place, dtype) == expected


def test_attention_backend_rejects_unknown_modes():
    with pytest.raises(ValueError, match="attention must be one of 'auto', 'math', 'sdpa', "
                                         "got 'flash'"):
        attention_backend("flash", "gpu:0", "float16")


@pytest.mark.parametrize("layer_class", ATTENTION_MIXERS)
@pytest.mark.parametrize("value", ["fast", "SDPA", None, 1])
def test_bad_attention_value_raises_value_error(layer_class, value):
    with pytest.raises(ValueError, match=r"attention must be one of 'auto', 'math', 'sdpa', "
                                         rf"got {value!r}"):
        layer_class(16, 16, attention=value)


@pytest.mark.parametrize("layer_class", [miziha.CycleMLPT, miziha.ASMLPT])
def test_mixers_without_attention_do_not_take_the_option(layer_class):
    with pytest.raises(TypeError, match="attention"):
        layer_class(16, 16, attention="math")


@pytest.mark.parametrize("layer_class", ATTENTION_MIXERS)
def test_mode_reaches_every_attention_layer_and_the_repr(layer_class):
    layer = layer_class(16, 16, attention="sdpa")
    modes = {sub.attention for sub in layer.sublayers() if hasattr(sub, "attention")}
    assert modes == {"sdpa"} and "attention='sdpa'" in layer.extra_repr()
    assert "attention" not in layer_class(16, 16).extra_repr()  # "auto", the default


def _pair(name, mode, **extra):
    """A randomised ``"math"`` layer and a ``mode`` layer with the same weights."""
    layer_class, options = DESIGNS[name]
    math = randomize(layer_class(16, 24, downsample=True, attention="math", **options,
                                 **extra))
    other = layer_class(16, 24, downsample=True, attention=mode, **options, **extra)
    other.set_state_dict(math.state_dict())
    return math, other


@pytest.mark.parametrize("size", [(9, 11), (8, 8)], ids=["padded", "divisible"])
@pytest.mark.parametrize("name", list(DESIGNS))
def test_sdpa_matches_math_values_and_every_gradient(name, size):
    """Swin's 9x11 with window 4: padded, and shifted in its second block; 8x8: no mask in
    the first block, the shift mask in the second."""
    math, sdpa = _pair(name, "sdpa")
    x = np.random.default_rng(0).standard_normal((2, 16, *size)).astype("float32")
    out, x_grad, grads = outputs_and_gradients(math, x)
    out_s, x_grad_s, grads_s = outputs_and_gradients(sdpa, x)
    np.testing.assert_allclose(out_s, out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_grad_s, x_grad, rtol=1e-4, atol=1e-5)
    assert grads_s.keys() == grads.keys()
    for param, grad in grads.items():  # the relative position bias table included
        assert np.abs(grad).sum() > 0, param
        np.testing.assert_allclose(grads_s[param], grad, rtol=1e-4, atol=1e-5, err_msg=param)


@pytest.mark.parametrize("name", ["swin", "pale", "cswin", "swinv2", "axial"])
def test_auto_on_cpu_float32_is_the_math_path_exactly(monkeypatch, name):
    math, auto = _pair(name, "auto")
    calls = []
    monkeypatch.setattr(attention, "fused_attention", lambda *a, **k: calls.append(a))
    x = np.random.default_rng(1).standard_normal((2, 16, 9, 11)).astype("float32")
    out, x_grad, grads = outputs_and_gradients(math, x)
    out_a, x_grad_a, grads_a = outputs_and_gradients(auto, x)
    assert not calls
    np.testing.assert_array_equal(out_a, out)
    np.testing.assert_array_equal(x_grad_a, x_grad)
    for param, grad in grads.items():
        np.testing.assert_array_equal(grads_a[param], grad, err_msg=param)


def test_sdpa_applies_attention_dropout_in_training_only():
    layer = randomize(miziha.SwinT(16, 16, num_heads=2, window_size=4, attention_dropout=0.5,
                                   attention="sdpa"))
    x = paddle.randn([2, 16, 8, 8])
    layer.eval()
    clean = layer(x).numpy()
    np.testing.assert_array_equal(layer(x).numpy(), clean)
    layer.train()
    assert not np.allclose(layer(x).numpy(), clean, atol=1e-3)


def test_paddle_cpu_sdpa_gives_the_additive_mask_a_gradient():
    """Measured fact the SwinT "sdpa" path relies on for its bias table: on CPU, Paddle 3.3's
    sdpa takes its math backend (Paddle ops), so ``attn_mask`` gets its gradient."""
    rng = np.random.default_rng(2)
    q, k, v = (paddle.to_tensor(rng.standard_normal((3, 16, 2, 8)).astype("float32"))
               for _ in range(3))
    mask = paddle.to_tensor(rng.standard_normal((3, 2, 16, 16)).astype("float32"),
                            stop_gradient=False)
    weights = paddle.to_tensor(rng.standard_normal((3, 16, 2, 8)).astype("float32"))
    (F.scaled_dot_product_attention(q, k, v, attn_mask=mask) * weights).sum().backward()
    reference = mask.detach().clone()
    reference.stop_gradient = False
    scores = paddle.matmul(q.transpose([0, 2, 1, 3]), k.transpose([0, 2, 1, 3]),
                           transpose_y=True) * 8 ** -0.5 + reference
    out = paddle.matmul(F.softmax(scores, axis=-1), v.transpose([0, 2, 1, 3]))
    (out.transpose([0, 2, 1, 3]) * weights).sum().backward()
    assert mask.grad is not None and float(mask.grad.abs().sum()) > 0
    np.testing.assert_allclose(mask.grad.numpy(), reference.grad.numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("needs_grad", [True, False])
def test_fused_attention_leaves_flash_out_when_the_mask_needs_a_gradient(monkeypatch,
                                                                         needs_grad):
    """Paddle's flash attention returns no mask gradient, so on a GPU a trainable bias must
    go to the memory-efficient or math backend (checked on CPU by faking the device)."""
    from paddle.nn.attention import SDPBackend
    from paddle.nn.attention.sdpa import _get_enabled_backends
    enabled = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        enabled.append(set(_get_enabled_backends()))
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(attention, "_device", lambda x: "gpu:0")
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    q, k, v = (paddle.randn([2, 2, 8, 16]) for _ in range(3))
    mask = paddle.randn([2, 2, 16, 16])
    mask.stop_gradient = not needs_grad
    fused_attention(q, k, v, mask, 8 ** -0.5)
    if needs_grad:
        assert enabled == [{SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH}]
    else:
        assert enabled == [set(_get_enabled_backends())]  # Paddle's own choice


def test_sdpa_layers_export_with_dynamic_size(tmp_path):
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True,
                                   attention="sdpa"))
    layer.eval()
    path = save_for_inference(layer, tmp_path / "swint_sdpa", 16)
    loaded, predictor = paddle.jit.load(path), Predictor(path)
    for size in [(9, 11), (12, 12)]:
        x = np.random.default_rng(size[1]).standard_normal((2, 16, *size)).astype("float32")
        expected = layer(paddle.to_tensor(x)).numpy()
        np.testing.assert_allclose(loaded(paddle.to_tensor(x)).numpy(), expected, rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(predictor(x), expected, rtol=1e-4, atol=1e-4)


# Half precision.

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_masks_stay_finite_in_half_precision(dtype):
    geometry = window_geometry(9, 11, (4, 4), (2, 2))
    mask = geometry.mask.astype(dtype).astype("float32").numpy()
    assert np.isfinite(mask).all() and mask.min() <= 0.99 * MASK_VALUE
    groups = miziha.layers.groups.token_groups(9, 11, ("interlaced", 4), ("full", 0))
    assert np.isfinite(groups.key_mask.astype(dtype).astype("float32").numpy()).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_swinv2_bias_and_mask_stay_finite_in_half_precision(dtype):
    """Swin V2's additive term: a position bias in (0, 16) plus the mask; its scores are
    cosines times at most 100, so every score stays far inside float16's range."""
    layer = randomize(miziha.SwinV2T(16, 16, num_heads=2, window_size=4))
    geometry = layer.layout(9, 11)[1]  # shifted and padded
    term = attention.with_window_mask(layer.blocks[1].attn.position_bias(geometry), geometry)
    half = term.astype(dtype).astype("float32").numpy()
    assert np.isfinite(half).all() and half.min() <= 0.99 * MASK_VALUE
    assert ((half > -1.0) | (half < 0.99 * MASK_VALUE + 16)).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_softmax_float32_computes_half_scores_in_float32(dtype):
    """Paddle 3.3's CPU wheel has no float16/bfloat16 softmax kernel at all, so this runs
    only because the scores are cast to float32 first."""
    scores = paddle.to_tensor(np.random.default_rng(3).standard_normal((4, 7)) * 5,
                              dtype="float32")
    scores[:, 3] = MASK_VALUE
    half = scores.astype(dtype)
    out = softmax_float32(half)
    assert out.dtype == half.dtype
    expected = F.softmax(half.astype("float32"), axis=-1).numpy()
    np.testing.assert_allclose(out.astype("float32").numpy(), expected, rtol=1e-2, atol=1e-3)
    assert (out.astype("float32").numpy()[:, 3] < 1e-20).all()  # masked: CPU exp(-64) at most


def test_softmax_float32_leaves_float32_to_paddle():
    scores = paddle.randn([3, 5])
    np.testing.assert_array_equal(softmax_float32(scores).numpy(),
                                  F.softmax(scores, axis=-1).numpy())
    copy = scores.clone()
    softmax_float32(copy, in_place=True)  # eager's in-place softmax for the group attention
    np.testing.assert_array_equal(copy.numpy(), F.softmax(scores, axis=-1).numpy())


@pytest.mark.parametrize("name", ["swin", "pale", "cswin", "swinv2", "axial"])
def test_math_path_softmax_goes_through_the_float32_guard(monkeypatch, name):
    seen = []
    real = attention.softmax_float32
    monkeypatch.setattr(attention, "softmax_float32",
                        lambda scores, **kw: seen.append(scores.dtype) or real(scores, **kw))
    layer_class, options = DESIGNS[name]
    layer_class(16, 16, attention="math", **options)(paddle.randn([1, 16, 9, 11]))
    # per block: one call a branch
    assert len(seen) == 2 * (1 if name.startswith("swin") else 2)


def test_autocast_on_cpu_leaves_the_layer_in_float32():
    """Paddle 3.3: ``auto_cast`` only acts on CUDA, XPU and custom places; on a CPU it warns
    and changes nothing, so a bfloat16 run there is the float32 run."""
    layer = randomize(miziha.SwinT(16, 16, num_heads=2, window_size=4))
    x = paddle.randn([2, 16, 9, 11])
    expected = layer(x).numpy()
    for level in ("O1", "O2"):
        with pytest.warns(UserWarning, match="amp_guard can only be enabled on CUDAPlace"):
            with paddle.amp.auto_cast(dtype="bfloat16", level=level):
                out = layer(x)
        assert out.dtype == paddle.float32
        np.testing.assert_array_equal(out.numpy(), expected)


def _relative_error(value, reference):
    return float(np.linalg.norm(value - reference) / max(np.linalg.norm(reference), 1e-12))


@pytest.mark.skipif(not _on_gpu(), reason="Paddle 3.3's CPU wheel: auto_cast is a no-op off "
                    "CUDA/XPU places and there are no bfloat16/float16 matmul, add or softmax "
                    "CPU kernels (tried: NotFound); needs a GPU with bfloat16 (SM >= 8.0)")
@pytest.mark.parametrize("level", ["O1", "O2"])
@pytest.mark.parametrize("name", ["swin", "pale", "cswin", "swinv2", "axial"])
def test_bfloat16_autocast_is_finite_and_close_to_float32(name, level):
    """Forward and backward under bfloat16 autocast on padded, shifted sizes. bfloat16 keeps
    8 significant bits (relative rounding 2^-9, about 0.2%); a block pair chains some 20
    rounded ops, so the outputs and gradients are held to 5% relative (L2) error against
    float32, and every value must be finite."""
    layer_class, options = DESIGNS[name]
    reference = randomize(layer_class(16, 24, downsample=True, **options), std=0.1)
    layer = layer_class(16, 24, downsample=True, **options)
    layer.set_state_dict(reference.state_dict())
    x = np.random.default_rng(4).standard_normal((2, 16, 9, 11)).astype("float32")
    out, x_grad, grads = outputs_and_gradients(reference, x)
    if level == "O2":
        layer = paddle.amp.decorate(models=layer, level="O2", dtype="bfloat16")
    inputs = paddle.to_tensor(x, stop_gradient=False)
    with paddle.amp.auto_cast(dtype="bfloat16", level=level):
        half = layer(inputs)
    ramp = np.linspace(-1, 1, half.size, dtype="float32").reshape(half.shape)
    (half.astype("float32") * paddle.to_tensor(ramp)).sum().backward()
    half_out = half.astype("float32").numpy()
    assert np.isfinite(half_out).all()
    assert _relative_error(half_out, out) < 0.05
    assert _relative_error(inputs.grad.astype("float32").numpy(), x_grad) < 0.05
    for param_name, p in layer.named_parameters():
        grad = p.grad.astype("float32").numpy()
        assert np.isfinite(grad).all(), param_name
        assert _relative_error(grad, grads[param_name]) < 0.05, param_name


@pytest.mark.parametrize("name, options", [
    ("swin_tiny_patch4_window7_224", dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2))),
    ("swinv2_tiny_window8_256", dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2))),
    ("axial_unet", dict(widths=(16, 32))),
    ("cswin_unet", dict(widths=(16, 32)))])
def test_networks_pass_the_option_to_every_mixer(name, options):
    model = miziha.create_model(name, num_classes=2, attention="sdpa", **options)
    modes = {sub.attention for sub in model.sublayers() if hasattr(sub, "attention")}
    assert modes == {"sdpa"}
