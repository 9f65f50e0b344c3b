"""SwinV2T and the Swin V2 networks: equivalence with the NumPy float64 reference
(tests/reference_swinv2.py) and with logits of the official PyTorch code, gradients, any
size, the window-8 checkpoint in a window-16 model, official keys and parameter counts,
MACs, the network contract, timm's key map and errors (the contract of every mixer is in
test_mixers.py, the attention paths in test_attention_modes.py).

``tests/data/swinv2_official_tiny.npz`` was made with the official
``models/swin_transformer_v2.py`` (microsoft/Swin-Transformer @f82860b, PyTorch 2 CPU):
one ``SwinTransformerV2(embed_dim=16, depths=[2, 2], num_heads=[2, 4], num_classes=5)``
state with random weights (numpy seed 1: normal(0, 0.1), LayerNorm weights 1 +
normal(0, 0.2), ``logit_scale`` log 10 + normal(0, 1) with its first entry 5.0, above the
clamp; derived buffers dropped), loaded into three official models (``img_size=32,
window_size=4``; ``img_size=64, window_size=16``, whose second stage clips the window to 8;
``img_size=64, window_size=8, pretrained_window_sizes=[4, 4]``), with one random input
each and the eval-mode logits. ``swinv2_tiny_window8_256_official_shapes.json`` is the
official ``swinv2_tiny_patch4_window8_256``'s ``state_dict()`` names and shapes.
"""

import re

import numpy as np
import paddle
import pytest

import miziha
from conftest import outputs_and_gradients, randomize, state_arrays
from miziha.layers.windows import log_spaced_coords
from miziha.mixers.swinv2 import SwinV2T
from miziha.models.swinv2 import KEY_MAPS, SwinTransformerV2
from miziha.weights import official_to_miziha
from network_contract import (DATA, check_classifier, check_export, check_features,
                              check_frozen_stages, check_official_keys, official_shapes,
                              random_official_state, trainable_parameters)
from reference_swinv2 import log_coords, official_index, swinv2_layer

TINY = dict(embed_dim=16, depths=(2, 2), num_heads=(2, 4), num_classes=5)


def _randomize_v2(layer, seed=7):
    """randomize(), with logit scales around log 10 and one above the clamp, so that the
    cosine scores matter and the clamp acts."""
    randomize(layer)
    rng = np.random.default_rng(seed)
    for name, param in layer.named_parameters():
        if name.endswith("logit_scale"):
            value = np.log(10.0) + rng.normal(0.0, 1.0, param.shape)
            value.flat[0] = 5.0
            param.set_value(value.astype("float32"))
    return layer


EQUIVALENCE_CASES = {
    # name: (SwinV2T kwargs, input [H, W])
    "divisible, plain then shifted": (dict(num_heads=2, window_size=4), (8, 8)),
    "padded odd sizes, downsample": (dict(num_heads=2, window_size=4, out_channels=24,
                                          downsample=True), (9, 11)),
    "rectangular window, projection": (dict(num_heads=4, window_size=(3, 5),
                                            out_channels=8), (7, 9)),
    "a side smaller than the window (clipped, no shift)": (dict(num_heads=2, window_size=8),
                                                           (5, 12)),
    "1x1 map": (dict(num_heads=2, window_size=4), (1, 1)),
    "pretrained window 4 in window 8": (dict(num_heads=2, window_size=8,
                                             pretrained_window_size=4), (8, 10)),
    "no q/v bias, depth 4, mlp ratio 2": (dict(num_heads=2, window_size=3, qkv_bias=False,
                                              depth=4, mlp_ratio=2.0), (6, 7)),
}


@pytest.mark.parametrize("name", list(EQUIVALENCE_CASES))
def test_matches_numpy_reference(name):
    kwargs, size = EQUIVALENCE_CASES[name]
    kwargs = dict(kwargs)
    out_channels = kwargs.pop("out_channels", 16)
    layer = _randomize_v2(SwinV2T(16, out_channels, **kwargs))
    layer.eval()
    x = np.random.default_rng(0).standard_normal((2, 16, *size)).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = swinv2_layer(x.transpose(0, 2, 3, 1).astype(np.float64), state_arrays(layer),
                       layer.num_heads, layer.window_size, layer.depth,
                       layer.downsample_enabled, layer.pretrained_window_size)
    # Scores are cosines times up to 100 (the clamped head): float32's rounding of a cosine
    # (~1e-7) is ~1e-5 in a score, and four blocks chain it.
    np.testing.assert_allclose(out, ref.transpose(0, 3, 1, 2), rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize("case, options", [
    ("w4", dict(window_size=4)),
    ("w16_clipped", dict(window_size=16)),
    ("w8_pretrained4", dict(window_size=8, pretrained_window_sizes=(4, 4))),
])
@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_matches_the_official_code(case, options, attention):
    """Logits of tiny official models (module docstring) within 1e-5 of their largest."""
    data = np.load(DATA / "swinv2_official_tiny.npz")
    state = {k[len("state/"):]: data[k] for k in data.files if k.startswith("state/")}
    model = SwinTransformerV2(**TINY, **options, attention=attention)
    model.set_state_dict(official_to_miziha(model, state))
    model.eval()
    logits = model(paddle.to_tensor(data[f"{case}/input"])).numpy()
    expected = data[f"{case}/logits"]
    assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("window, pretrained", [((8, 8), (0, 0)), ((5, 3), (0, 0)),
                                                ((1, 4), (0, 0)), ((8, 8), (4, 6))])
def test_log_spaced_coords_are_the_official_table_of_the_effective_window(window, pretrained):
    """The rows the bias index picks are the official table of the effective window."""
    configured = (8, 8)
    coords = log_spaced_coords(window[0], window[1], configured, pretrained).numpy()
    n = window[0] * window[1]
    # Offsets of the effective window, as rows of the configured table.
    d = official_index(window)
    rows = (d // (2 * window[1] - 1) - (window[0] - 1) + configured[0] - 1) \
        * (2 * configured[1] - 1) + d % (2 * window[1] - 1) - (window[1] - 1) \
        + configured[1] - 1
    np.testing.assert_allclose(coords[rows.ravel()], log_coords(window, pretrained)[
        d.ravel()], rtol=1e-6, atol=1e-6)
    assert rows.shape == (n, n)


def _finite_difference(layer, x, param_name, entries, eps=1e-4):
    """Central differences of ``sum(out * ramp)`` of the float64 reference."""
    params = state_arrays(layer)
    x64 = x.transpose(0, 2, 3, 1).astype(np.float64)

    def loss(p):
        out = swinv2_layer(x64, p, layer.num_heads, layer.window_size, layer.depth,
                           layer.downsample_enabled).transpose(0, 3, 1, 2)
        return (out * np.linspace(-1, 1, out.size).reshape(out.shape)).sum()

    grads = []
    for index in entries:
        plus, minus = dict(params), dict(params)
        plus[param_name] = params[param_name].copy()
        minus[param_name] = params[param_name].copy()
        plus[param_name][index] += eps
        minus[param_name][index] -= eps
        grads.append((loss(plus) - loss(minus)) / (2 * eps))
    return np.array(grads)


@pytest.mark.parametrize("param_name, entries", [
    ("blocks.1.attn.logit_scale", [(0, 0, 0), (1, 0, 0)]),  # head 0 is clamped: no gradient
    ("blocks.1.attn.cpb_mlp.0.weight", [(0, 3), (1, 7)]),
    ("blocks.0.attn.q_bias", [(2,), (5,)]),
    ("blocks.0.attn.v_bias", [(1,)]),
])
def test_gradients_match_finite_differences_of_the_reference(param_name, entries):
    layer = _randomize_v2(SwinV2T(8, 8, num_heads=2, window_size=4))
    layer.eval()
    x = np.random.default_rng(2).standard_normal((1, 8, 6, 5)).astype("float32")
    _, _, grads = outputs_and_gradients(layer, x)
    expected = _finite_difference(layer, x, param_name, entries)
    got = np.array([grads[param_name][index] for index in entries])
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-4)
    if param_name.endswith("logit_scale"):
        assert got[0] == 0.0 and abs(got[1]) > 1e-4


def test_official_init_and_names():
    layer = SwinV2T(16, 32, num_heads=2, window_size=4, downsample=True)
    block = layer.blocks[0]
    for norm in (block.norm1, block.norm2):  # res-post-norm starts at zero: an identity block
        assert not norm.weight.numpy().any() and not norm.bias.numpy().any()
    np.testing.assert_allclose(block.attn.logit_scale.numpy(), np.full((2, 1, 1), np.log(10)),
                               rtol=1e-6)
    assert block.attn.qkv.bias is None and block.attn.cpb_mlp[2].bias is None
    names = set(layer.state_dict())
    assert {"blocks.0.attn.logit_scale", "blocks.0.attn.q_bias", "blocks.0.attn.v_bias",
            "blocks.0.attn.cpb_mlp.0.weight", "blocks.0.attn.cpb_mlp.0.bias",
            "blocks.0.attn.cpb_mlp.2.weight", "blocks.1.norm1.weight",
            "downsample.reduction.weight", "downsample.norm.weight"} <= names
    assert layer.downsample.norm.weight.shape == [32]  # LayerNorm after the reduction
    x = paddle.randn([2, 16, 5, 7])
    layer.downsample = None
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_any_size():
    layer = _randomize_v2(SwinV2T(16, 16, num_heads=2, window_size=7))
    for size in [(1, 1), (2, 30), (15, 4)]:
        out = layer(paddle.randn([1, 16, *size]))
        assert out.shape == [1, 16, *size] and np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("value", [1, -1, (8, 1), "8", 2.0, (4, 4, 4)])
def test_bad_pretrained_window_size(value):
    with pytest.raises(ValueError, match="pretrained_window_size must be 0 .* got"):
        SwinV2T(16, 16, pretrained_window_size=value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be even"):
        SwinV2T(16, 16, depth=3)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        SwinV2T(16, 16, num_heads=3)
    with pytest.raises(TypeError, match="qk_scale"):
        SwinV2T(16, 16, qk_scale=0.1)  # cosine attention learns its scale
    with pytest.raises(ValueError, match="pretrained_window_sizes needs one entry per stage"):
        SwinTransformerV2(**TINY, pretrained_window_sizes=(8, 8, 8))
    with pytest.raises(TypeError, match="unknown option"):
        miziha.create_model("swinv2_tiny_window8_256", qk_scale=0.1)


def test_mixing_macs_count_attention_and_qkv():
    """QK^T, AV and qkv over padded windows; the cpb MLP and the rest by the layer hooks."""
    layer = SwinV2T(16, 16, num_heads=2, window_size=4)
    batch, h, w = 2, 9, 11  # padded to 12 x 12: 9 windows of 16 tokens
    tokens = batch * 144
    assert layer.mixing_macs(batch, h, w) == 2 * (2 * tokens * 16 * 16 + tokens * 3 * 16 ** 2)
    (row,) = miziha.flops(paddle.nn.Sequential(layer), [batch, 16, h, w]).rows
    cpb = 2 * (49 * (2 * 512 + 512 * 2))  # a (2*4-1)^2 table per block
    mlp = 2 * batch * h * w * 2 * 16 * 64
    norms = 2 * 2 * batch * h * w * 16
    proj = 2 * tokens * 16 * 16
    assert row.macs == layer.mixing_macs(batch, h, w) + cpb + mlp + norms + proj


# The networks.

@pytest.mark.parametrize("name, expected", [
    ("swinv2_tiny_window8_256", 28_347_154), ("swinv2_tiny_window16_256", 28_347_154),
    ("swinv2_small_window8_256", 49_728_418), ("swinv2_small_window16_256", 49_728_418),
    ("swinv2_base_window8_256", 87_918_816), ("swinv2_base_window16_256", 87_918_816)])
def test_official_parameter_counts(name, expected):
    with paddle.LazyGuard():  # shapes only: no weights are drawn
        model = miziha.create_model(name)
    assert trainable_parameters(model) == expected


def test_official_keys():
    model = miziha.create_model("swinv2_tiny_window8_256")
    check_official_keys(model, official_shapes("swinv2_tiny_window8_256"))


@pytest.mark.parametrize("name, rate", [("swinv2_tiny_window16_256", 0.2),
                                        ("swinv2_small_window8_256", 0.3),
                                        ("swinv2_base_window16_256", 0.5)])
def test_drop_path_defaults(name, rate):
    with paddle.LazyGuard():
        model = miziha.create_model(name)
    assert model.layers[-1].blocks[-1].drop_path.p == pytest.approx(rate)
    assert model.layers[0].blocks[0].drop_path.p == 0.0


def test_macs_within_two_percent_of_published():
    """Published 5.9 G (swinv2_tiny_window8_256). The count includes the position bias MLP,
    which the official flops() leaves out."""
    macs = miziha.flops(miziha.create_model("swinv2_tiny_window8_256"), [3, 256, 256]).total_macs
    assert abs(macs / 5.9e9 - 1) < 0.02


def test_window8_checkpoint_runs_in_a_window16_model():
    shapes = official_shapes("swinv2_tiny_window8_256")
    model = miziha.create_model("swinv2_tiny_window16_256", pretrained_window_sizes=8)
    assert model.layers[0].pretrained_window_size == (8, 8)
    converted = official_to_miziha(model, random_official_state(shapes))
    expected = model.state_dict()
    assert all(list(value.shape) == list(expected[k].shape) for k, value in converted.items())
    model.set_state_dict(converted)
    model.eval()
    assert np.isfinite(model(paddle.randn([1, 3, 64, 64])).numpy()).all()


def test_pretrained_window_equal_to_the_window_changes_nothing_on_large_maps():
    plain = _randomize_v2(SwinTransformerV2(**TINY, window_size=4))
    same = SwinTransformerV2(**TINY, window_size=4, pretrained_window_sizes=4)
    same.set_state_dict(plain.state_dict())
    other = SwinTransformerV2(**TINY, window_size=4, pretrained_window_sizes=8)
    other.set_state_dict(plain.state_dict())
    x = paddle.randn([1, 3, 32, 32])  # stages 8x8, 4x4: never clipped
    for model in (plain, same, other):
        model.eval()
    np.testing.assert_array_equal(same(x).numpy(), plain(x).numpy())
    assert not np.allclose(other(x).numpy(), plain(x).numpy())


def test_network_contract(tmp_path):
    model = _randomize_v2(SwinTransformerV2(**TINY, window_size=4))
    check_features(model, paddle.randn([2, 3, 37, 29]))
    assert [info["reduction"] for info in model.feature_info] == [4, 8]
    check_export(model, tmp_path / "swinv2", [(1, 32, 32), (2, 45, 27)])
    check_classifier(lambda **kw: SwinTransformerV2(**{**TINY, **kw}, window_size=4),
                     paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: SwinTransformerV2(**TINY, window_size=4, frozen_stages=1),
                        ["patch_embed.", "layers.0."], ["layers.1.", "norm.", "head."],
                        paddle.randn([2, 3, 32, 32]))


def test_use_recompute_gives_the_same_gradients():
    plain = _randomize_v2(SwinTransformerV2(**TINY, window_size=4, droppath=0.0))
    recomputed = SwinTransformerV2(**TINY, window_size=4, droppath=0.0, use_recompute=True)
    recomputed.set_state_dict(plain.state_dict())
    assert all(layer.use_recompute for layer in recomputed.layers)
    x = np.random.default_rng(4).standard_normal((2, 3, 24, 20)).astype("float32")
    (out, x_grad, grads), (out_r, x_grad_r, grads_r) = (
        outputs_and_gradients(m, x) for m in (plain, recomputed))
    np.testing.assert_allclose(out_r, out, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        np.testing.assert_allclose(grads_r[name], grad, rtol=1e-4, atol=1e-5, err_msg=name)


def test_timm_key_map_gives_the_official_names():
    """timm names (>= 0.9): merging at the start of the next stage, head.fc."""
    official = list(official_shapes("swinv2_tiny_window8_256"))

    def timm_name(key):
        match = re.match(r"layers\.(\d)\.downsample\.(.*)", key)
        if match:
            return f"layers.{int(match.group(1)) + 1}.downsample.{match.group(2)}"
        return "head.fc." + key[len("head."):] if key.startswith("head.") else key

    for key in official:
        renamed = timm_name(key)
        for pattern, replacement in KEY_MAPS["timm"]:
            renamed = re.sub(pattern, replacement, renamed)
        assert renamed == key
