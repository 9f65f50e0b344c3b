"""ASMLPT: equivalence with the NumPy reference of the official AS-MLP blocks and patch
merging, official names, MACs, argument errors, and the shift helper (the contract tests
of every mixer are in test_mixers.py)."""

import numpy as np
import paddle
import pytest

from conftest import randomize, state_arrays
from miziha.mixers.asmlp import ASMLPT
from miziha.flops import flops
from miziha.layers.shifts import chunk_offsets, shift_channels
from reference import linear
from reference_asmlp import (as_block, as_macs, as_patch_merging, axial_shift_groups,
                             torch_chunk_sizes)


def reference(x, params, shift_size, depth, downsample, out_channels, data_format="NCHW"):
    """The whole layer from the reference blocks; x float64."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    if data_format == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    for i in range(depth):
        x = as_block(x, sub(f"blocks.{i}."), shift_size)
    if downsample:
        x = as_patch_merging(x, sub("downsample."))
    elif out_channels != x.shape[-1]:
        x = linear(x, params["proj.weight"], params["proj.bias"])  # miziha's projection
    return x.transpose(0, 3, 1, 2) if data_format == "NCHW" else x


CASES = {
    # name: (ASMLPT kwargs, input [H, W])
    "divisible, chunks 6x5": (dict(in_channels=30, out_channels=30), (8, 8)),
    "odd, chunks 7,7,7,7,4, projection": (dict(in_channels=32, out_channels=24), (7, 5)),
    "1x1": (dict(in_channels=16, out_channels=16), (1, 1)),
    "1xN, fewer chunks than shift_size": (dict(in_channels=16, out_channels=16), (1, 6)),
    "Nx1, shift 3": (dict(in_channels=12, out_channels=12, shift_size=3), (5, 1)),
    "merging odd": (dict(in_channels=16, out_channels=32, downsample=True), (9, 7)),
    "merging 1x1": (dict(in_channels=16, out_channels=32, downsample=True), (1, 1)),
    "no as_bias, shift 7, depth 3": (dict(in_channels=20, out_channels=20, as_bias=False,
                                          shift_size=7, depth=3, mlp_ratio=2.0), (9, 10)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name):
    kwargs, size = CASES[name]
    layer = randomize(ASMLPT(**kwargs))
    layer.eval()
    x = np.random.randn(2, kwargs["in_channels"], *size).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = reference(x.astype(np.float64), state_arrays(layer), kwargs.get("shift_size", 5),
                    kwargs.get("depth", 2), kwargs.get("downsample", False),
                    kwargs["out_channels"])
    if not kwargs.get("as_bias", True):
        assert "blocks.0.axial_shift.conv1.bias" not in layer.state_dict()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_nhwc_matches_reference():
    layer = randomize(ASMLPT(16, 32, downsample=True, data_format="NHWC"))
    layer.eval()
    x = np.random.randn(2, 9, 10, 16).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    assert out.shape == (2, 5, 5, 32)
    ref = reference(x.astype(np.float64), state_arrays(layer), 5, 2, True, 32, "NHWC")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_state_dict_holds_official_names_and_shapes():
    c, hidden = 16, 64
    block = {"norm1.weight": [c], "norm1.bias": [c], "norm2.weight": [c], "norm2.bias": [c],
             "axial_shift.norm1.weight": [c], "axial_shift.norm1.bias": [c],
             "axial_shift.norm2.weight": [c], "axial_shift.norm2.bias": [c],
             "mlp.fc1.weight": [hidden, c, 1, 1], "mlp.fc1.bias": [hidden],
             "mlp.fc2.weight": [c, hidden, 1, 1], "mlp.fc2.bias": [c]}
    for conv in ("conv1", "conv2_1", "conv2_2", "conv3"):
        block[f"axial_shift.{conv}.weight"] = [c, c, 1, 1]
        block[f"axial_shift.{conv}.bias"] = [c]
    layer = ASMLPT(c, c, depth=3)
    layer(paddle.randn([1, c, 5, 5]))  # builds and caches the tables
    shapes = {k: list(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {f"blocks.{i}.{k}": v for i in range(3) for k, v in block.items()}
    merged = {k: list(v.shape) for k, v in ASMLPT(c, 2 * c, downsample=True).state_dict().items()
              if k.startswith("downsample.")}
    assert merged == {"downsample.norm.weight": [4 * c], "downsample.norm.bias": [4 * c],
                      "downsample.reduction.weight": [2 * c, 4 * c, 1, 1]}


@pytest.mark.parametrize("size", [(14, 14), (9, 11)])
def test_flops_of_blocks_match_the_official_count(size):
    layer = ASMLPT(30, 30, depth=2)
    report = flops(layer, [2, 30, *size])
    assert report.total_macs == 2 * as_macs(2, *size, 30)


@pytest.mark.parametrize("channels, shift_size", [(30, 5), (32, 5), (16, 5), (6, 5), (10, 3),
                                                  (9, 7), (8, 1)])
def test_shift_helper_matches_the_official_shift(channels, shift_size):
    offsets = chunk_offsets(channels, shift_size)
    sizes = torch_chunk_sizes(channels, shift_size)
    starts = np.cumsum([0] + sizes[:-1])
    assert [offsets[s] for s in starts] == [shift_size // 2 - g for g in range(len(sizes))]
    x = np.random.randn(2, 5, 7, channels).astype("float32")
    for axis in (1, 2):
        out = shift_channels(paddle.to_tensor(x), offsets, axis).numpy()
        np.testing.assert_array_equal(out, axial_shift_groups(x, shift_size, axis))


def test_extra_repr():
    layer = ASMLPT(16, 32, (56, 56), shift_size=3, downsample=True)
    assert layer.extra_repr() == ("16, 32, shift_size=3, mlp_ratio=4, depth=2, "
                                  "downsample=True, input_resolution=(56, 56)")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(in_channels=0, out_channels=8), ValueError, "in_channels must be a positive int"),
    (dict(in_channels=8, out_channels=8, shift_size=0), ValueError,
     "shift_size must be a positive int, got 0"),
    (dict(in_channels=8, out_channels=8, shift_size=2.5), TypeError, "shift_size must be an int"),
    (dict(in_channels=8, out_channels=8, mlp_ratio=-1), ValueError, "mlp_ratio must be > 0"),
    (dict(in_channels=8, out_channels=8, dropout=1.0), ValueError, r"dropout must be in"),
    (dict(in_channels=8, out_channels=8, droppath=[0.1]), ValueError, "expected 2 values"),
    (dict(in_channels=8, out_channels=8, data_format="CHW"), ValueError, "'NCHW' or 'NHWC'"),
    (dict(in_channels=8, out_channels=8, as_bias="yes"), TypeError, "as_bias must be a bool"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ASMLPT(**kwargs)


def test_bad_inputs():
    layer = ASMLPT(8, 8)
    with pytest.raises(ValueError, match="expects 8 input channels.*got 4"):
        layer(paddle.randn([1, 4, 5, 5]))
    with pytest.raises(ValueError, match="axis must be 1 \\(H\\), 2 \\(W\\) or None"):
        shift_channels(paddle.randn([1, 3, 3, 8]), chunk_offsets(8, 5), 3)
