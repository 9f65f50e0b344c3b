"""CSWinT: equivalence with the NumPy float64 reference of the official CSWin block and
Merge_Block, official parameter names, gradients, the fast paths of 1-wide stripes against
the general path, argument errors, last-stage export and MAC counting (the contract tests of
every mixer are in test_mixers.py)."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import outputs_and_gradients, randomize, state_arrays
from miziha.paddle_fixes import workarounds
from miziha.mixers.cswin import CSWinT, LePEAttention
from miziha.layers.size_cache import clear_cache
from miziha.export import Predictor, save_for_inference
from reference import linear as reference_linear
from reference_cswin import cswin_block, cswin_macs, cswin_merge


def reference_cswint(x, params, num_heads, split_size, last_stage, depth, downsample,
                     qk_scale=None):
    """The layer from the reference: ``depth`` official blocks, then Merge_Block or the
    Linear projection. x [B, H, W, C] float64; params: the layer's state dict as arrays."""
    for i in range(depth):
        prefix = f"blocks.{i}."
        block = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        block.setdefault("qkv.bias", np.zeros(3 * x.shape[-1]))  # qkv_bias=False
        x = cswin_block(x, block, num_heads, split_size, last_stage, qk_scale)
    if downsample:
        return cswin_merge(x, {k[len("downsample."):]: v for k, v in params.items()
                               if k.startswith("downsample.")})
    if "proj.weight" in params:
        return reference_linear(x, params["proj.weight"], params["proj.bias"])
    return x


EQUIVALENCE_CASES = {
    # name: (CSWinT kwargs, input [H, W])
    "divisible": (dict(in_channels=16, out_channels=16, num_heads=2, split_size=4), (8, 12)),
    "padded odd sizes, 4 heads": (dict(in_channels=16, out_channels=24, num_heads=4,
                                       split_size=3), (7, 5)),
    "1x1 map": (dict(in_channels=8, out_channels=8, num_heads=2, split_size=7), (1, 1)),
    "a side smaller than split_size": (dict(in_channels=16, out_channels=16, num_heads=2,
                                            split_size=7), (5, 12)),
    "last_stage": (dict(in_channels=16, out_channels=16, num_heads=4, split_size=7,
                        last_stage=True), (5, 6)),
    "last_stage from input_resolution, 3 heads": (dict(in_channels=12, out_channels=12,
                                                       num_heads=3, split_size=7,
                                                       input_resolution=7), (7, 7)),
    "depth 2 with downsample": (dict(in_channels=16, out_channels=32, num_heads=2,
                                     split_size=4, downsample=True), (9, 11)),
    "depth 3, qk_scale, no qkv bias, mlp ratio 2": (dict(
        in_channels=16, out_channels=16, num_heads=2, split_size=2, depth=3, qk_scale=0.3,
        qkv_bias=False, mlp_ratio=2.0), (5, 4)),
    "split_size 1 (lines), odd sizes": (dict(in_channels=16, out_channels=16, num_heads=2,
                                             split_size=1), (13, 9)),
}


@pytest.mark.parametrize("name", list(EQUIVALENCE_CASES))
def test_matches_numpy_reference(name):
    kwargs, size = EQUIVALENCE_CASES[name]
    layer = randomize(CSWinT(**kwargs))
    layer.eval()
    x = np.random.randn(2, kwargs["in_channels"], *size).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = reference_cswint(x.transpose(0, 2, 3, 1).astype(np.float64), state_arrays(layer),
                           kwargs["num_heads"], kwargs["split_size"], layer.last_stage,
                           kwargs.get("depth", 2), kwargs.get("downsample", False),
                           kwargs.get("qk_scale")).transpose(0, 3, 1, 2)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)


def test_nhwc_matches_nchw():
    kwargs = dict(num_heads=2, split_size=3, downsample=True)
    nchw = randomize(CSWinT(16, 24, **kwargs))
    nhwc = CSWinT(16, 24, data_format="NHWC", **kwargs)
    nhwc.set_state_dict(nchw.state_dict())
    x = paddle.randn([2, 16, 7, 10])
    out = nhwc(x.transpose([0, 2, 3, 1]))
    assert out.shape == [2, 4, 5, 24]
    np.testing.assert_allclose(out.transpose([0, 3, 1, 2]).numpy(), nchw(x).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_state_dict_holds_official_names():
    per_block = {"norm1.weight", "norm1.bias", "qkv.weight", "qkv.bias", "proj.weight",
                 "proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                 "mlp.fc2.weight", "mlp.fc2.bias"}
    attns = {f"attns.{i}.get_v.{p}" for i in range(2) for p in ("weight", "bias")}
    layer = CSWinT(64, 64, depth=2)
    layer(paddle.randn([1, 64, 9, 9]))  # builds and caches the tables: no buffers appear
    state = layer.state_dict()
    assert set(state) == {f"blocks.{i}.{n}" for i in range(2) for n in per_block | attns}
    shapes = {"qkv.weight": [64, 192], "attns.0.get_v.weight": [32, 1, 3, 3],
              "attns.1.get_v.bias": [32], "mlp.fc1.weight": [64, 256]}
    for name, shape in shapes.items():
        assert state[f"blocks.1.{name}"].shape == shape, name

    last = CSWinT(64, 64, depth=2, input_resolution=7).state_dict()
    assert set(last) == {f"blocks.{i}.{n}" for i in range(2)
                         for n in per_block | {"attns.0.get_v.weight", "attns.0.get_v.bias"}}
    assert last["blocks.0.attns.0.get_v.weight"].shape == [64, 1, 3, 3]

    merged = CSWinT(64, 128, downsample=True).state_dict()
    assert {k for k in merged if k.startswith("downsample.")} == {
        "downsample.conv.weight", "downsample.conv.bias", "downsample.norm.weight",
        "downsample.norm.bias"}


@pytest.mark.parametrize("resolution, split_size, expected", [
    (None, 7, False), ((7, 7), 7, True), ((4, 7), 7, True), ((14, 14), 7, False),
    ((7, 8), 7, False), ((12, 12), 12, True)])
def test_last_stage_default_follows_input_resolution(resolution, split_size, expected):
    layer = CSWinT(32, 32, resolution, split_size=split_size)
    assert layer.last_stage is expected
    assert len(layer.blocks[0].attns) == (1 if expected else 2)


def test_default_heads():
    assert CSWinT(64, 64).num_heads == 2  # CSWin-T stage 1..3 widths: 32 channels a head
    assert CSWinT(256, 256).num_heads == 8
    assert CSWinT(96, 96).num_heads == 2  # even for two branches
    assert CSWinT(96, 96, last_stage=True).num_heads == 3
    assert CSWinT(512, 512, input_resolution=7).num_heads == 16


@pytest.mark.parametrize("kwargs", [dict(in_channels=16, out_channels=16, split_size=3),
                                    dict(in_channels=16, out_channels=24, split_size=3,
                                         downsample=True),
                                    dict(in_channels=16, out_channels=16, last_stage=True)])
def test_gradients_reach_every_parameter(kwargs):
    layer = randomize(CSWinT(num_heads=2, **kwargs))
    x = paddle.randn([2, 16, 7, 8])
    x.stop_gradient = False
    (layer(x) ** 2).mean().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).sum() > 0
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        grad = param.grad.numpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, name


def _run_and_grads(layer, x):
    x = paddle.to_tensor(x, stop_gradient=False)
    paddle.seed(11)  # the same dropout and droppath draws in both layers
    out = layer(x)
    weights = paddle.to_tensor(
        np.random.default_rng(5).standard_normal(out.shape).astype("float32"))
    (out * weights).sum().backward()
    return out.numpy(), {n: p.grad.numpy() for n, p in layer.named_parameters()}, \
        x.grad.numpy()


def test_eval_ignores_dropout_and_droppath():
    kwargs = dict(num_heads=2, split_size=3)
    noisy = randomize(CSWinT(16, 16, dropout=0.3, attention_dropout=0.3, droppath=0.2,
                             **kwargs))
    clean = CSWinT(16, 16, **kwargs)
    clean.set_state_dict(noisy.state_dict())
    noisy.eval()
    clean.eval()
    x = paddle.randn([2, 16, 6, 7])
    np.testing.assert_array_equal(noisy(x).numpy(), clean(x).numpy())


@pytest.fixture
def general_path(monkeypatch):
    """Calling it makes CSWinT take its general path: index tables for every grouping (no
    ``order``) and ``get_v`` on every group's image (no
    :func:`~miziha.paddle_fixes.workarounds.line_conv`)."""
    def enable():
        monkeypatch.setattr(miziha.layers.groups, "group_order", lambda *args: None)
        monkeypatch.setattr(LePEAttention, "lepe", lambda self, v, extent: self.get_v(
            v.reshape([-1, self.dim, *extent])).reshape(v.shape))
        clear_cache()
    yield enable
    clear_cache()  # drop the tables built without their order


@pytest.mark.parametrize("kwargs, size", [
    (dict(split_size=1), (13, 9)), (dict(split_size=1), (8, 8)),
    (dict(split_size=1), (1, 7)), (dict(split_size=1), (6, 1)),
    (dict(split_size=2), (8, 6)), (dict(last_stage=True), (5, 6))])
def test_fast_paths_match_the_general_path(general_path, kwargs, size):
    """Line LePE, the map's order (no gather) and its columns (a transpose) against the
    tables and the conv: outputs and every gradient."""
    layer = randomize(CSWinT(16, 24, num_heads=2, **kwargs))
    x = np.random.default_rng(1).standard_normal((2, 16, *size)).astype("float32")
    out, x_grad, grads = outputs_and_gradients(layer, x)
    orders = [g.order for g in layer.layout(*size)[0]]
    assert orders == {1: ["transposed", "same"], 2: [None, "same"]}.get(
        kwargs.get("split_size"), ["same"])
    general_path()
    assert [g.order for g in layer.layout(*size)[0]] == [None] * len(orders)
    out_general, x_grad_general, grads_general = outputs_and_gradients(layer, x)
    _assert_close(out, out_general, "out")
    _assert_close(x_grad, x_grad_general, "x")
    for name, grad in grads_general.items():
        _assert_close(grads[name], grad, name)


def _assert_close(got, expected, name):
    """Equal within 1e-5 of the array's scale: gradients here reach about 100, where float32
    sums in another order differ by a few 1e-6."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=name)


def _lepe_and_grads(attn, v, extent, line):
    v = paddle.to_tensor(v, stop_gradient=False)
    out = attn.lepe(v, extent) if line else attn.get_v(
        v.reshape([-1, attn.dim, *extent])).reshape(v.shape)
    ramp = paddle.linspace(-1.0, 1.0, out.size).reshape(out.shape)
    (out * ramp).sum().backward()
    grads = [v.grad.numpy()] + [p.grad.numpy() for p in (attn.get_v.weight, attn.get_v.bias)]
    attn.clear_gradients()
    return [out.numpy()] + grads


@pytest.mark.parametrize("own_backward", [True, False])
@pytest.mark.parametrize("extent", [(1, 7), (7, 1), (1, 1)])
def test_line_lepe_matches_get_v(monkeypatch, extent, own_backward):
    """The middle row (or column) of the 3x3 kernel along a line equals the conv on the
    line's image; the other kernel rows get zero gradients."""
    monkeypatch.setattr(workarounds, "OWN_BACKWARD", own_backward)
    attn = randomize(LePEAttention(8, 2, 0.5))
    v = np.random.default_rng(2).standard_normal((6, 8, extent[0] * extent[1]))
    line = _lepe_and_grads(attn, v.astype("float32"), extent, True)
    conv = _lepe_and_grads(attn, v.astype("float32"), extent, False)
    for name, got, expected in zip(["out", "v", "weight", "bias"], line, conv):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
    unused = np.ones((3, 3), bool)
    unused[1, :] = unused[1, :] & (extent[0] != 1)
    unused[:, 1] = unused[:, 1] & (extent[1] != 1)
    assert not line[2][:, :, unused].any()


def test_line_lepe_input_gradient_alone_frozen_kernel_and_no_grad():
    attn = randomize(LePEAttention(8, 2, 0.5))
    v = paddle.randn([6, 8, 7])
    v.stop_gradient = False
    conv = attn.get_v(v.reshape([-1, 8, 1, 7])).reshape(v.shape)
    (expected,) = paddle.grad((conv ** 2).sum(), v)
    (grad,) = paddle.grad((attn.lepe(v, (1, 7)) ** 2).sum(), v)
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    for param in attn.get_v.parameters():
        param.stop_gradient = True
    (attn.lepe(v, (1, 7)) ** 2).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    with paddle.no_grad():
        np.testing.assert_allclose(attn.lepe(v, (1, 7)).numpy(), conv.numpy(), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=30, out_channels=30, num_heads=4), "divisible by num_heads.*30.*4"),
    (dict(in_channels=24, out_channels=24, num_heads=3), "num_heads must be even.*got 3"),
    (dict(in_channels=15, out_channels=15, num_heads=3), "in_channels must be even.*got 15"),
    (dict(in_channels=16, out_channels=16, split_size=0), "split_size must be a positive int"),
    (dict(in_channels=16, out_channels=16, num_heads=0), "num_heads must be a positive int"),
    (dict(in_channels=16, out_channels=16, qk_scale=-1.0), "qk_scale must be > 0"),
    (dict(in_channels=16, out_channels=16, mlp_ratio=0), "mlp_ratio must be > 0"),
    (dict(in_channels=16, out_channels=16, attention_dropout=1.0),
     r"attention_dropout must be in \[0, 1\)"),
    (dict(in_channels=16, out_channels=16, droppath=[0.1]), "expected 2 values, got 1"),
    (dict(in_channels=16, out_channels=16, depth=0), "depth must be a positive int"),
    (dict(in_channels=16, out_channels=16, input_resolution=(7, 0)), r"input_resolution\[1\]"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSWinT(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(split_size=2.5), "split_size must be an int"),
    (dict(last_stage="yes"), "last_stage must be a bool"),
    (dict(qkv_bias=1), "qkv_bias must be a bool"),
    (dict(num_heads=2.0), "num_heads must be an int"),
])
def test_wrong_argument_types_raise_type_error(kwargs, message):
    with pytest.raises(TypeError, match=message):
        CSWinT(16, 16, **kwargs)


def test_odd_heads_are_fine_for_last_stage():
    layer = CSWinT(24, 24, num_heads=3, last_stage=True)
    assert layer(paddle.randn([1, 24, 3, 5])).shape == [1, 24, 3, 5]


@pytest.mark.parametrize("size", [(8, 12), (7, 5)])
def test_flops_match_reference_macs(size):
    """Hooks (Linear, LayerNorm, LePE conv, merge) plus mixing_macs (QK^T, AV) = the
    reference count of the official block (plus Merge_Block's conv and norm)."""
    batch, channels, out_channels, split = 2, 16, 32, 4
    layer = CSWinT(channels, out_channels, num_heads=4, split_size=split, downsample=True)
    row = miziha.flops(layer, [batch, channels, *size]).rows[0]
    h, w = size
    ho, wo = (h + 1) // 2, (w + 1) // 2
    merge = batch * ho * wo * out_channels * (channels * 9 + 1)
    assert row.macs == 2 * cswin_macs(batch, h, w, channels, 4, split, False) + merge
    last = CSWinT(channels, channels, num_heads=4, last_stage=True)
    assert miziha.flops(last, [batch, channels, *size]).rows[0].macs == \
        2 * cswin_macs(batch, h, w, channels, 4, split, True)


def test_last_stage_exports_with_dynamic_sizes(tmp_path):
    layer = randomize(CSWinT(16, 16, num_heads=2, last_stage=True))
    layer.eval()
    predictor = Predictor(save_for_inference(layer, tmp_path / "cswin", 16))
    for size in [(14, 14), (9, 11)]:
        x = np.random.default_rng(sum(size)).standard_normal((2, 16, *size)).astype("float32")
        expected = layer(paddle.to_tensor(x)).numpy()
        out = predictor(x)
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_extra_repr():
    assert CSWinT(32, 64, (56, 56), 2, 7, downsample=True).extra_repr() == (
        "32, 64, num_heads=2, split_size=7, depth=2, downsample=True, "
        "input_resolution=(56, 56)")
    assert "last_stage=True" in CSWinT(32, 32, (7, 7)).extra_repr()


def test_last_stage_recompute_gives_the_same_gradients():
    """The last stage's ``proj`` takes the attention output as a transposed view; recompute
    must still give its weight the right gradient (workarounds entry 13)."""
    plain = randomize(CSWinT(32, 32, num_heads=4, last_stage=True, depth=1))
    recomputed = CSWinT(32, 32, num_heads=4, last_stage=True, depth=1, use_recompute=True)
    recomputed.set_state_dict(plain.state_dict())
    x = np.random.default_rng(3).standard_normal((2, 32, 4, 5)).astype("float32")
    (out, dx, grads), (out_r, dx_r, grads_r) = (
        outputs_and_gradients(layer, x) for layer in (plain, recomputed))
    np.testing.assert_array_equal(out_r, out)
    np.testing.assert_allclose(dx_r, dx, rtol=1e-5, atol=1e-6)
    for name, grad in grads.items():
        np.testing.assert_allclose(grads_r[name], grad, rtol=1e-5, atol=1e-5, err_msg=name)
