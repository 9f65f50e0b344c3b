"""SwinT: the documented API, equivalence with the NumPy reference, training behaviour,
state_dict round trips and argument errors."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import randomize, state_arrays
from reference import swint as reference_swint


def test_snippet_shapes():
    x = paddle.ones([2, 96, 224, 224])
    s1 = miziha.SwinT(in_channels=96, out_channels=256, input_resolution=(224, 224),
                      num_heads=8, window_size=7, downsample=False)
    s2 = miziha.SwinT(in_channels=96, out_channels=256, input_resolution=(224, 224),
                      num_heads=8, window_size=7, downsample=True)
    assert s1(x).shape == [2, 256, 224, 224]
    assert s2(x).shape == [2, 256, 112, 112]
    s3 = miziha.SwinT(32, 64, (256, 256), 2, 8, downsample=True)
    assert (s3.num_heads, s3.window_size, s3.input_resolution) == (2, (8, 8), (256, 256))
    assert s3(paddle.ones([1, 32, 16, 16])).shape == [1, 64, 8, 8]


@pytest.mark.parametrize("size, downsample, expected", [
    ((7, 7), False, (7, 7)), ((1, 1), False, (1, 1)), ((1, 1), True, (1, 1)),
    ((15, 9), True, (8, 5)), ((5, 20), True, (3, 10)), ((224, 224), True, (112, 112))])
def test_any_input_size(size, downsample, expected):
    layer = miziha.SwinT(16, 24, (56, 56), num_heads=2, window_size=7, downsample=downsample)
    assert layer(paddle.randn([1, 16, *size])).shape == [1, 24, *expected]


EQUIVALENCE_CASES = {
    # name: (SwinT kwargs, input [H, W])
    "divisible, projection": (dict(in_channels=16, out_channels=24, num_heads=2,
                                   window_size=4), (8, 8)),
    "divisible, merging": (dict(in_channels=16, out_channels=32, num_heads=4, window_size=4,
                                downsample=True), (8, 12)),
    "padded, merging odd": (dict(in_channels=16, out_channels=24, num_heads=2, window_size=4,
                                 downsample=True), (10, 13)),
    "padded window 7": (dict(in_channels=8, out_channels=8, num_heads=2, window_size=7),
                        (10, 16)),
    "smaller than window": (dict(in_channels=16, out_channels=16, num_heads=2,
                                 window_size=7), (3, 5)),
    "shrinks on one side": (dict(in_channels=16, out_channels=16, num_heads=2,
                                 window_size=7), (5, 12)),
    "1x1 map": (dict(in_channels=16, out_channels=32, num_heads=2, window_size=7,
                     downsample=True), (1, 1)),
    "rectangular window, depth 4": (dict(in_channels=16, out_channels=16, num_heads=2,
                                         window_size=(3, 5), depth=4, qk_scale=0.3), (9, 11)),
    "no qkv bias, mlp ratio 2": (dict(in_channels=16, out_channels=8, num_heads=4,
                                      window_size=4, qkv_bias=False, mlp_ratio=2.0), (6, 9)),
}


@pytest.mark.parametrize("name", list(EQUIVALENCE_CASES))
def test_matches_numpy_reference(name):
    kwargs, size = EQUIVALENCE_CASES[name]
    layer = randomize(miziha.SwinT(**kwargs))
    layer.eval()
    x = np.random.randn(2, kwargs["in_channels"], *size).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    window = kwargs["window_size"]
    ref = reference_swint(x.astype(np.float64), state_arrays(layer), kwargs["num_heads"],
                          window if isinstance(window, tuple) else (window, window),
                          kwargs.get("depth", 2), kwargs.get("downsample", False),
                          kwargs["out_channels"], scale=kwargs.get("qk_scale"))
    if not kwargs.get("qkv_bias", True):
        assert "blocks.0.attn.qkv.bias" not in layer.state_dict()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_nhwc_matches_nchw():
    nchw = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    nhwc = miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True,
                        data_format="NHWC")
    nhwc.set_state_dict(nchw.state_dict())
    x = paddle.randn([2, 16, 9, 10])
    out = nhwc(x.transpose([0, 2, 3, 1]))
    assert out.shape == [2, 5, 5, 24]
    np.testing.assert_allclose(out.transpose([0, 3, 1, 2]).numpy(), nchw(x).numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("downsample, out_channels", [(False, 16), (False, 24), (True, 24)])
def test_gradients_reach_every_parameter(downsample, out_channels):
    layer = randomize(miziha.SwinT(16, out_channels, num_heads=2, window_size=4,
                                   downsample=downsample))
    x = paddle.randn([2, 16, 10, 9])
    x.stop_gradient = False
    (layer(x) ** 2).mean().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).sum() > 0
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        grad = param.grad.numpy()
        assert np.isfinite(grad).all(), name
        assert np.abs(grad).sum() > 0, name


def test_eval_is_deterministic_and_ignores_dropout():
    kwargs = dict(num_heads=2, window_size=4, downsample=True)
    noisy = randomize(miziha.SwinT(16, 24, dropout=0.3, attention_dropout=0.3,
                                   droppath=[0.2, 0.4], **kwargs))
    clean = miziha.SwinT(16, 24, **kwargs)
    clean.set_state_dict(noisy.state_dict())
    noisy.eval()
    clean.eval()
    x = paddle.randn([2, 16, 8, 8])
    first = noisy(x).numpy()
    np.testing.assert_array_equal(first, noisy(x).numpy())
    np.testing.assert_array_equal(first, clean(x).numpy())


def test_training_with_dropout_and_droppath():
    layer = miziha.SwinT(16, 16, num_heads=2, window_size=4, dropout=0.1,
                         attention_dropout=0.1, droppath=0.2)
    layer.train()
    x = paddle.randn([4, 16, 8, 8])
    assert not np.array_equal(layer(x).numpy(), layer(x).numpy())
    target = paddle.randn([4, 16, 8, 8])
    opt = paddle.optimizer.AdamW(learning_rate=1e-3, parameters=layer.parameters())
    losses = []
    for _ in range(15):
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_droppath_drops_whole_samples():
    drop = miziha.layers.DropPath(0.5)
    drop.train()
    out = drop(paddle.ones([64, 10, 3])).numpy()
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()
    assert 0 < (per_sample[:, 0] == 0).sum() < 64


def test_droppath_gradient_is_the_kept_samples_scale():
    drop = miziha.layers.DropPath(0.5)
    drop.train()
    x = paddle.randn([32, 5, 3])
    x.stop_gradient = False
    out = drop(x)
    upstream = paddle.randn(out.shape)
    (out * upstream).sum().backward()
    scale = (out.numpy() / x.numpy())[:, :1, :1]  # 0 or 2 per sample
    np.testing.assert_allclose(x.grad.numpy(), upstream.numpy() * scale, rtol=1e-6)


def test_state_dict_round_trip(tmp_path):
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    layer.eval()
    x = paddle.randn([2, 16, 9, 9])
    expected = layer(x).numpy()
    paddle.save(layer.state_dict(), str(tmp_path / "swint.pdparams"))
    fresh = miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True)
    fresh.set_state_dict(paddle.load(str(tmp_path / "swint.pdparams")))
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).numpy(), expected)


def test_state_dict_holds_official_names_and_no_derived_tables():
    layer = miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True)
    layer(paddle.randn([1, 16, 9, 9]))  # builds and caches the index tables
    names = set(layer.state_dict())
    per_block = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                 "attn.proj.weight", "attn.proj.bias", "attn.relative_position_bias_table",
                 "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                 "mlp.fc2.weight", "mlp.fc2.bias"}
    expected = {f"blocks.{i}.{n}" for i in range(2) for n in per_block}
    expected |= {"downsample.norm.weight", "downsample.norm.bias", "downsample.reduction.weight"}
    assert names == expected
    assert layer.state_dict()["blocks.0.attn.relative_position_bias_table"].shape == [49, 2]


def test_parameter_init_follows_official_scheme():
    layer = miziha.SwinT(64, 64, num_heads=2, window_size=7)
    qkv = layer.blocks[0].attn.qkv
    # official trunc_normal_(std=.02) cuts at +-2 absolute: in effect a plain normal
    assert abs(float(qkv.weight.std()) - 0.02) < 0.001
    assert float(qkv.bias.abs().max()) == 0.0
    assert float(layer.blocks[0].norm1.weight.min()) == 1.0


def test_extra_repr_reads_like_the_constructor():
    layer = miziha.SwinT(32, 64, (56, 56), 2, 7, downsample=True)
    assert layer.extra_repr() == ("32, 64, num_heads=2, window_size=(7, 7), depth=2, "
                                  "downsample=True, input_resolution=(56, 56)")
    assert layer.shifts == ((0, 0), (3, 3))


def test_default_heads_are_about_32_channels():
    assert miziha.SwinT(96, 96).num_heads == 3
    assert miziha.SwinT(16, 16).num_heads == 1
    assert miziha.SwinT(80, 80).num_heads == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=30, out_channels=30, num_heads=4), "divisible by num_heads.*30.*4"),
    (dict(in_channels=0, out_channels=8), "in_channels must be a positive int, got 0"),
    (dict(in_channels=8, out_channels=-1), "out_channels must be a positive int, got -1"),
    (dict(in_channels=8, out_channels=8, window_size=0), r"window_size\[0\].*got 0"),
    (dict(in_channels=8, out_channels=8, window_size=(7, -2)), r"window_size\[1\].*got -2"),
    (dict(in_channels=8, out_channels=8, depth=3), "depth must be even.*got 3"),
    (dict(in_channels=8, out_channels=8, droppath=[0.1, 0.2, 0.3]),
     "expected 2 values, got 3"),
    (dict(in_channels=8, out_channels=8, droppath=1.5), r"droppath must be in \[0, 1\)"),
    (dict(in_channels=8, out_channels=8, dropout=-0.1), r"dropout must be in \[0, 1\)"),
    (dict(in_channels=8, out_channels=8, data_format="NCWH"), "'NCHW' or 'NHWC'.*NCWH"),
    (dict(in_channels=8, out_channels=8, num_heads=0), "num_heads must be a positive int"),
    (dict(in_channels=8, out_channels=8, mlp_ratio=0), "mlp_ratio must be > 0"),
    (dict(in_channels=8, out_channels=8, mlp_ratio=0.1), "MLP width"),
    (dict(in_channels=8, out_channels=8, input_resolution=(0, 4)), r"input_resolution\[0\]"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        miziha.SwinT(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(in_channels=8.0, out_channels=8),
                                    dict(in_channels=8, out_channels=8, window_size="7"),
                                    dict(in_channels=True, out_channels=8),
                                    dict(in_channels=8, out_channels=8, use_recompute=1)])
def test_wrong_argument_types_raise_type_error(kwargs):
    with pytest.raises(TypeError, match="must be"):
        miziha.SwinT(**kwargs)


def test_bad_inputs_raise_value_error():
    layer = miziha.SwinT(16, 16, num_heads=2)
    with pytest.raises(ValueError, match="4-D NCHW input, got 3-D"):
        layer(paddle.randn([16, 8, 8]))
    with pytest.raises(ValueError, match="expects 16 input channels.*got 8"):
        layer(paddle.randn([1, 8, 8, 8]))
    nhwc = miziha.SwinT(16, 16, num_heads=2, data_format="NHWC")
    with pytest.raises(ValueError, match=r"expects 16 input channels \(NHWC\), got 8"):
        nhwc(paddle.randn([1, 16, 8, 8]))
    with pytest.raises(TypeError, match="paddle.Tensor, got ndarray"):
        layer(np.zeros([1, 16, 8, 8], dtype="float32"))


def _run_and_grads(layer, x, input_needs_grad):
    x = paddle.to_tensor(x, stop_gradient=not input_needs_grad)
    paddle.seed(11)  # the same dropout and droppath draws in both layers
    out = layer(x)
    weights = paddle.to_tensor(np.random.default_rng(5).standard_normal(out.shape).astype("float32"))
    (out * weights).sum().backward()
    grads = {name: p.grad.numpy() for name, p in layer.named_parameters()}
    return out.numpy(), grads, None if x.grad is None else x.grad.numpy()


@pytest.mark.parametrize("input_needs_grad", [True, False])
def test_use_recompute_gives_the_same_outputs_and_gradients(input_needs_grad):
    options = dict(num_heads=2, window_size=4, downsample=True, droppath=0.3, dropout=0.1,
                   attention_dropout=0.1)
    plain = randomize(miziha.SwinT(16, 24, **options))
    recomputed = miziha.SwinT(16, 24, use_recompute=True, **options)
    recomputed.set_state_dict(plain.state_dict())
    x = np.random.default_rng(2).standard_normal((2, 16, 11, 9)).astype("float32")
    out, grads, x_grad = _run_and_grads(plain, x, input_needs_grad)
    out_rc, grads_rc, x_grad_rc = _run_and_grads(recomputed, x, input_needs_grad)
    np.testing.assert_allclose(out_rc, out, rtol=1e-5, atol=1e-5)
    assert grads_rc.keys() == grads.keys() and len(grads) == len(plain.parameters())
    for name, grad in grads.items():  # the reentrant recompute would leave these empty
        np.testing.assert_allclose(grads_rc[name], grad, rtol=1e-4, atol=1e-5, err_msg=name)
    if input_needs_grad:
        np.testing.assert_allclose(x_grad_rc, x_grad, rtol=1e-4, atol=1e-5)
    assert "use_recompute=True" in repr(recomputed)


def test_use_recompute_is_skipped_without_gradients():
    layer = randomize(miziha.SwinT(8, 8, num_heads=2, window_size=4, use_recompute=True))
    x = paddle.randn([1, 8, 6, 6])
    with paddle.no_grad():
        out = layer(x)
    layer.use_recompute = False
    with paddle.no_grad():
        np.testing.assert_array_equal(layer(x).numpy(), out.numpy())


@pytest.mark.parametrize("use_recompute", [False, True])
def test_sub_batches_give_the_same_outputs_and_gradients(monkeypatch, use_recompute):
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True,
                                   use_recompute=use_recompute))
    x = np.random.default_rng(3).standard_normal((5, 16, 11, 9)).astype("float32")
    out, grads, x_grad = _run_and_grads(layer, x, True)
    layer.clear_gradients()

    # 11x9 pads to 12x12 tokens; the widest temporary is the MLP's 64 channels, float32.
    sample_bytes = 12 * 12 * 64 * 4
    monkeypatch.setattr(miziha.paddle_fixes.cpu, "BATCH_CHUNK_BYTES", 2 * sample_bytes)
    batches = []
    layer.blocks[0].register_forward_pre_hook(lambda _, inputs: batches.append(
        inputs[0].shape[0]))
    out_sub, grads_sub, x_grad_sub = _run_and_grads(layer, x, True)
    assert batches[:3] == [2, 2, 1]  # recompute runs the blocks again in backward
    np.testing.assert_allclose(out_sub, out, rtol=1e-6, atol=1e-6)
    for name, grad in grads.items():
        np.testing.assert_allclose(grads_sub[name], grad, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(x_grad_sub, x_grad, rtol=1e-5, atol=1e-6)


def test_input_gradient_alone():
    """paddle.grad for the input only (saliency maps, gradient penalties)."""
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    x = paddle.randn([2, 16, 11, 9])
    x.stop_gradient = False
    (grad,) = paddle.grad((layer(x) ** 2).sum(), x)
    (layer(x) ** 2).sum().backward()
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-5)
