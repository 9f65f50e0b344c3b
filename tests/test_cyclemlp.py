"""CycleMLPT: equivalence with the NumPy reference of the official CycleMLP blocks, official
names, MACs and argument errors (the contract tests of every mixer are in test_mixers.py)."""

import numpy as np
import paddle
import pytest

from conftest import outputs_and_gradients, randomize, state_arrays
from miziha.mixers import cyclemlp
from miziha.mixers.cyclemlp import CycleMLPT, mixes_per_image
from miziha.flops import flops
from miziha.layers.size_cache import clear_cache
from miziha.layers.shifts import cycle_offsets, shift_channels
from reference import linear
from reference_cyclemlp import (cycle_block, cycle_downsample, cycle_macs, cycle_offsets as
                                reference_offsets, shift_channels as reference_shift)


def reference(x, params, depth, downsample, out_channels, data_format="NCHW"):
    """The whole layer from the reference blocks; x float64."""
    if data_format == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    for i in range(depth):
        prefix = f"blocks.{i}."
        x = cycle_block(x, {k[len(prefix):]: v for k, v in params.items()
                            if k.startswith(prefix)})
    if downsample:  # official Downsample.proj is our downsample.conv
        x = cycle_downsample(x, {"proj.weight": params["downsample.conv.weight"],
                                 "proj.bias": params["downsample.conv.bias"]})
    elif out_channels != x.shape[-1]:
        x = linear(x, params["proj.weight"], params["proj.bias"])
    return x.transpose(0, 3, 1, 2) if data_format == "NCHW" else x


CASES = {
    # name: (CycleMLPT kwargs, input [H, W])
    "divisible": (dict(in_channels=16, out_channels=16), (8, 8)),
    "odd, projection": (dict(in_channels=16, out_channels=24), (7, 5)),
    "1x1": (dict(in_channels=12, out_channels=12), (1, 1)),
    "1xN": (dict(in_channels=12, out_channels=12), (1, 6)),
    "Nx1": (dict(in_channels=12, out_channels=12), (5, 1)),
    "downsample odd": (dict(in_channels=16, out_channels=32, downsample=True), (9, 7)),
    "downsample 1x1": (dict(in_channels=16, out_channels=32, downsample=True), (1, 1)),
    "mlp_c bias, depth 3, C not divisible by 3": (
        dict(in_channels=20, out_channels=20, qkv_bias=True, depth=3, mlp_ratio=2.0), (6, 4)),
    "mlp_c bias, map smaller than C (branch outputs)": (
        dict(in_channels=20, out_channels=20, qkv_bias=True), (3, 4)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name):
    kwargs, size = CASES[name]
    layer = randomize(CycleMLPT(**kwargs))
    layer.eval()
    x = np.random.randn(2, kwargs["in_channels"], *size).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = reference(x.astype(np.float64), state_arrays(layer), kwargs.get("depth", 2),
                    kwargs.get("downsample", False), kwargs["out_channels"])
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("size", [(1, 1), (3, 4), (6, 5)])
def test_both_ways_of_mixing_the_branches_agree(monkeypatch, size, qkv_bias):
    """Per-image matrices (maps of more than C tokens) and branch outputs (smaller maps)
    give the same outputs and gradients whichever the map size."""
    assert mixes_per_image(6, 5, 16) and not mixes_per_image(3, 4, 16)
    assert not mixes_per_image(paddle.to_tensor(6), 5, 16)  # a size known at run time
    layer = randomize(CycleMLPT(16, 16, qkv_bias=qkv_bias, droppath=0.2))
    x = np.random.randn(3, 16, *size).astype("float32")
    results = []
    for forced in (True, False):
        clear_cache()
        monkeypatch.setattr(cyclemlp, "mixes_per_image", lambda h, w, c, forced=forced: forced)
        results.append(outputs_and_gradients(layer, x))
    clear_cache()
    (out_a, dx_a, grads_a), (out_b, dx_b, grads_b) = results
    np.testing.assert_allclose(out_a, out_b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx_a, dx_b, rtol=1e-4, atol=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_nhwc_matches_reference():
    layer = randomize(CycleMLPT(16, 24, downsample=True, data_format="NHWC"))
    layer.eval()
    x = np.random.randn(2, 9, 10, 16).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    assert out.shape == (2, 5, 5, 24)
    ref = reference(x.astype(np.float64), state_arrays(layer), 2, True, 24, "NHWC")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_state_dict_holds_official_names_and_shapes():
    c, hidden = 16, 64
    block = {"norm1.weight": [c], "norm1.bias": [c], "attn.mlp_c.weight": [c, c],
             "attn.sfc_h.weight": [c, c, 1, 1], "attn.sfc_h.bias": [c],
             "attn.sfc_w.weight": [c, c, 1, 1], "attn.sfc_w.bias": [c],
             "attn.reweight.fc1.weight": [c, c // 4], "attn.reweight.fc1.bias": [c // 4],
             "attn.reweight.fc2.weight": [c // 4, 3 * c], "attn.reweight.fc2.bias": [3 * c],
             "attn.proj.weight": [c, c], "attn.proj.bias": [c],
             "norm2.weight": [c], "norm2.bias": [c], "mlp.fc1.weight": [c, hidden],
             "mlp.fc1.bias": [hidden], "mlp.fc2.weight": [hidden, c], "mlp.fc2.bias": [c]}
    layer = CycleMLPT(c, c, depth=3)
    layer(paddle.randn([1, c, 5, 5]))  # builds and caches the tables
    shapes = {k: list(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {f"blocks.{i}.{k}": v for i in range(3) for k, v in block.items()}
    merged = CycleMLPT(c, 32, downsample=True).state_dict()
    assert list(merged["downsample.conv.weight"].shape) == [32, c, 3, 3]
    assert "downsample.conv.bias" in merged and "downsample.norm.weight" not in merged


@pytest.mark.parametrize("size", [(14, 14), (9, 11)])
def test_flops_of_blocks_match_the_official_count(size):
    layer = CycleMLPT(32, 32, depth=2)
    report = flops(layer, [2, 32, *size])
    assert report.total_macs == 2 * cycle_macs(2, *size, 32)
    assert report.rows[0].conv_macs == 2 * 32 * 32 * 9 * size[0] * size[1]


def test_shift_helper_matches_the_reference_shift():
    x = np.random.randn(2, 5, 7, 10).astype("float32")
    offsets = cycle_offsets(10)
    dy, dx = reference_offsets(10, (3, 1))
    assert list(offsets) == list(dy) and not dx.any()
    assert cycle_offsets(7) == (0, 1, -1, 0, 1, -1, 0)
    zero = np.zeros(10, dtype=np.int64)
    for axis, (ry, rx) in [(1, (dy, zero)), (2, (zero, dy))]:
        out = shift_channels(paddle.to_tensor(x), offsets, axis).numpy()
        np.testing.assert_array_equal(out, reference_shift(x, ry, rx))
    one = shift_channels(paddle.to_tensor(x[:, :1, :1]), offsets, 2).numpy()
    np.testing.assert_array_equal(one, np.where(np.array(offsets) == 0, x[:, :1, :1], 0))


def test_extra_repr():
    layer = CycleMLPT(16, 32, (56, 56), mlp_ratio=2, downsample=True)
    assert layer.extra_repr() == ("16, 32, mlp_ratio=2, depth=2, downsample=True, "
                                  "input_resolution=(56, 56)")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(in_channels=0, out_channels=8), ValueError, "in_channels must be a positive int"),
    (dict(in_channels=3, out_channels=8), ValueError, "at least 4.*got 3"),
    (dict(in_channels=8, out_channels=8, mlp_ratio=0), ValueError, "mlp_ratio must be > 0"),
    (dict(in_channels=8, out_channels=8, dropout=1.0), ValueError, r"dropout must be in"),
    (dict(in_channels=8, out_channels=8, droppath=[0.1]), ValueError, "expected 2 values"),
    (dict(in_channels=8, out_channels=8, data_format="CHW"), ValueError, "'NCHW' or 'NHWC'"),
    (dict(in_channels=8, out_channels=8, qkv_bias=1), TypeError, "qkv_bias must be a bool"),
    (dict(in_channels=8, out_channels=8, depth=2.0), TypeError, "depth must be an int"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        CycleMLPT(**kwargs)


def test_bad_inputs():
    layer = CycleMLPT(8, 8)
    with pytest.raises(ValueError, match="expects 8 input channels.*got 4"):
        layer(paddle.randn([1, 4, 5, 5]))
    with pytest.raises(ValueError, match="shift_channels needs one offset per channel"):
        shift_channels(paddle.randn([1, 3, 3, 4]), cycle_offsets(5), 1)
