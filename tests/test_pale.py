"""PaleT: equivalence with the NumPy Pale reference, the pale-shaped dependency pattern,
parameter names, argument errors and MAC counts (the contract tests of every mixer are in
test_mixers.py)."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import randomize, state_arrays
from miziha.mixers.pale import PaleAttention, PaleT
from reference import linear as reference_linear
from reference_pale import dependency_mask, pale_block, pale_macs, pale_merge


def reference_palet(x, params, num_heads, pale_size, depth, downsample, qk_scale=None):
    """The NumPy reference of a whole PaleT on x [B, C, H, W] (float64)."""
    x = x.transpose(0, 2, 3, 1)
    for i in range(depth):
        prefix = f"blocks.{i}."
        block = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        x = pale_block(x, block, num_heads, pale_size, qk_scale)
    if downsample:
        x = pale_merge(x, {k[len("downsample."):]: v for k, v in params.items()
                           if k.startswith("downsample.")})
    elif "proj.weight" in params:
        x = reference_linear(x, params["proj.weight"], params["proj.bias"])
    return x.transpose(0, 3, 1, 2)


EQUIVALENCE_CASES = {
    # name: (PaleT kwargs, input [H, W])
    "divisible": (dict(in_channels=16, out_channels=16, num_heads=2, pale_size=7), (14, 14)),
    "padded odd sizes, 4 heads": (dict(in_channels=16, out_channels=24, num_heads=4,
                                       pale_size=4), (9, 11)),
    "1x1 map, downsample": (dict(in_channels=8, out_channels=16, num_heads=2, pale_size=7,
                                 downsample=True), (1, 1)),
    "a side smaller than pale_size": (dict(in_channels=8, out_channels=8, num_heads=2,
                                           pale_size=7), (3, 10)),
    "depth 2, downsample, odd": (dict(in_channels=16, out_channels=32, num_heads=2,
                                      pale_size=3, downsample=True), (10, 13)),
    "depth 3, qk_scale, no qkv bias, mlp 2": (dict(in_channels=8, out_channels=8,
                                                   num_heads=2, pale_size=2, depth=3,
                                                   qk_scale=0.3, qkv_bias=False,
                                                   mlp_ratio=2.0), (5, 6)),
}


@pytest.mark.parametrize("name", list(EQUIVALENCE_CASES))
def test_matches_numpy_reference(name):
    kwargs, size = EQUIVALENCE_CASES[name]
    layer = randomize(PaleT(**kwargs))
    layer.eval()
    x = np.random.randn(2, kwargs["in_channels"], *size).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = reference_palet(x.astype(np.float64), state_arrays(layer), kwargs["num_heads"],
                          kwargs["pale_size"], kwargs.get("depth", 2),
                          kwargs.get("downsample", False), kwargs.get("qk_scale"))
    if not kwargs.get("qkv_bias", True):
        assert "blocks.0.attn.qkv.bias" not in layer.state_dict()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)


def test_nhwc_matches_nchw():
    nchw = randomize(PaleT(16, 24, num_heads=2, pale_size=4, downsample=True))
    nhwc = PaleT(16, 24, num_heads=2, pale_size=4, downsample=True, data_format="NHWC")
    nhwc.set_state_dict(nchw.state_dict())
    x = paddle.randn([2, 16, 9, 10])
    out = nhwc(x.transpose([0, 2, 3, 1]))
    assert out.shape == [2, 5, 5, 24]
    np.testing.assert_allclose(out.transpose([0, 3, 1, 2]).numpy(), nchw(x).numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, pale_size, tokens", [
    ((14, 14), 7, [(0, 0), (5, 9), (13, 13)]),   # divisible: G = 2 on both axes
    ((9, 11), 4, [(0, 0), (4, 7), (8, 10)]),     # padded to 12 x 12: G = 3, uneven groups
    ((3, 10), 7, [(1, 2), (2, 9)]),              # rows: one group of 3; columns: padded 14
])
@pytest.mark.parametrize("projection", ["identity", "random"])
def test_ps_attention_sees_exactly_its_pale(size, pale_size, tokens, projection):
    """The issue's dependency test, on PaleAttention alone (no CPE, no MLP).

    With the output projection set to the identity, output channels [0, C/2) are the row
    branch and [C/2, C) the column branch: the gradient of one token's row-branch channels
    w.r.t. the input is non-zero exactly on the interlaced rows of its group, and its
    column-branch channels exactly on the interlaced columns of its group. With a random
    projection every output channel mixes both: their union."""
    h, w = size
    dim = 8
    attn = randomize(PaleAttention(dim, num_heads=2))
    if projection == "identity":
        attn.proj.weight.set_value(np.eye(dim, dtype="float32"))
        attn.proj.bias.set_value(np.zeros(dim, dtype="float32"))
    geometry = PaleT(dim, dim, num_heads=2, pale_size=pale_size).layout(h, w)[0]
    x = paddle.to_tensor(np.random.randn(1, h * w, dim).astype("float32"),
                         stop_gradient=False)
    out = attn(x, geometry)  # [1, H*W, C]
    for row, col in tokens:
        expect_rows, expect_cols = dependency_mask(h, w, pale_size, row, col)
        if projection == "random":
            expect_rows = expect_cols = expect_rows | expect_cols
        token = out[0, row * w + col]
        for channels, expected in ((slice(0, dim // 2), expect_rows),
                                   (slice(dim // 2, dim), expect_cols)):
            (grad,) = paddle.grad(token[channels].sum(), x, retain_graph=True)
            size = np.abs(grad.numpy()[0]).sum(-1).reshape(h, w)
            # Paddle's CPU softmax clips logits at 64 below the maximum, so a masked padded
            # key keeps weight e^-64 ~ 1.6e-28 and the token padded slots gather (token 0)
            # gets a gradient of that order: "non-zero" is "above 1e-20 of the largest".
            depends = size > 1e-20 * size.max()
            np.testing.assert_array_equal(depends, expected,
                                          err_msg=f"token {(row, col)}, channels {channels}")


def test_state_dict_holds_the_block_names():
    layer = PaleT(16, 24, num_heads=2, pale_size=7, downsample=True)
    layer(paddle.randn([1, 16, 9, 9]))  # builds and caches the index tables
    state = layer.state_dict()
    per_block = {"cpe.weight", "cpe.bias", "norm1.weight", "norm1.bias", "attn.qkv.weight",
                 "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight",
                 "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                 "mlp.fc2.bias"}
    expected = {f"blocks.{i}.{n}" for i in range(2) for n in per_block}
    expected |= {"downsample.conv.weight", "downsample.conv.bias", "downsample.norm.weight",
                 "downsample.norm.bias"}
    assert set(state) == expected
    assert state["blocks.0.cpe.weight"].shape == [16, 1, 3, 3]
    assert state["blocks.0.attn.qkv.weight"].shape == [16, 48]
    assert state["blocks.1.mlp.fc1.weight"].shape == [16, 64]
    assert state["downsample.conv.weight"].shape == [24, 16, 3, 3]
    projected = PaleT(16, 24, num_heads=2)
    assert {k for k in projected.state_dict() if not k.startswith("blocks.")} == \
        {"proj.weight", "proj.bias"}
    assert not any(k.startswith(("proj", "downsample")) for k in PaleT(16, 16).state_dict())


def _run_and_grads(layer, x):
    x = paddle.to_tensor(x, stop_gradient=False)
    paddle.seed(11)  # the same dropout and droppath draws in both layers
    out = layer(x)
    weights = paddle.to_tensor(
        np.random.default_rng(5).standard_normal(out.shape).astype("float32"))
    (out * weights).sum().backward()
    return out.numpy(), {n: p.grad.numpy() for n, p in layer.named_parameters()}, \
        x.grad.numpy()


def test_default_heads_and_repr():
    assert PaleT(64, 64).num_heads == 2  # Pale-T stage 1
    assert PaleT(96, 96).num_heads == 2
    assert PaleT(128, 128).num_heads == 4
    assert PaleT(16, 16).num_heads == 2
    layer = PaleT(32, 64, (56, 56), 4, 7, downsample=True)
    assert layer.extra_repr() == ("32, 64, num_heads=4, pale_size=7, depth=2, "
                                  "downsample=True, input_resolution=(56, 56)")


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=16, out_channels=16, num_heads=1), "num_heads must be even.*got 1"),
    (dict(in_channels=24, out_channels=24, num_heads=3), "num_heads must be even.*got 3"),
    (dict(in_channels=20, out_channels=20, num_heads=8), "divisible by num_heads.*20.*8"),
    (dict(in_channels=15, out_channels=16), "in_channels must be even.*got 15"),
    (dict(in_channels=16, out_channels=16, num_heads=0), "num_heads must be a positive int"),
    (dict(in_channels=16, out_channels=16, pale_size=0), "pale_size must be a positive int"),
    (dict(in_channels=16, out_channels=16, pale_size=-3), "pale_size.*got -3"),
    (dict(in_channels=16, out_channels=16, depth=0), "depth must be a positive int"),
    (dict(in_channels=16, out_channels=16, droppath=[0.1]), "expected 2 values, got 1"),
    (dict(in_channels=16, out_channels=16, attention_dropout=1.0),
     r"attention_dropout must be in \[0, 1\)"),
    (dict(in_channels=16, out_channels=16, qk_scale=0.0), "qk_scale must be > 0"),
    (dict(in_channels=16, out_channels=16, mlp_ratio=-1.0), "mlp_ratio must be > 0"),
    (dict(in_channels=16, out_channels=0), "out_channels must be a positive int, got 0"),
    (dict(in_channels=16, out_channels=16, data_format="CHW"), "'NCHW' or 'NHWC'.*CHW"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PaleT(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(in_channels=16, out_channels=16, pale_size=7.0),
                                    dict(in_channels=16, out_channels=16, pale_size=(7, 7)),
                                    dict(in_channels=16, out_channels=16, num_heads=2.0),
                                    dict(in_channels=16, out_channels=16, qkv_bias=1),
                                    dict(in_channels=16, out_channels=16, downsample="yes")])
def test_wrong_argument_types_raise_type_error(kwargs):
    with pytest.raises(TypeError, match="must be"):
        PaleT(**kwargs)


def test_bad_inputs_raise_value_error():
    layer = PaleT(16, 16, num_heads=2)
    with pytest.raises(ValueError, match="expects 16 input channels.*got 8"):
        layer(paddle.randn([1, 8, 8, 8]))
    with pytest.raises(ValueError, match="4-D NCHW input, got 3-D"):
        layer(paddle.randn([16, 8, 8]))


@pytest.mark.parametrize("size, pale_size", [((14, 14), 7), ((28, 21), 7), ((9, 11), 4)])
def test_flops_match_reference_count(size, pale_size):
    channels, heads = 32, 2
    layer = PaleT(channels, channels, num_heads=heads, pale_size=pale_size, depth=2)
    (row,) = miziha.flops(paddle.nn.Sequential(layer), [2, channels, *size]).rows
    assert row.kind == "PaleT"
    assert row.macs == 2 * pale_macs(2, *size, channels, heads, pale_size)
