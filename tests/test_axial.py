"""AxialT: equivalence with the NumPy float64 reference (tests/reference_axial.py), what one
token sees (its row and column, by gradients), gradients against finite differences, any
size, parameter names, MACs and errors (the contract of every mixer is in test_mixers.py,
the attention paths in test_attention_modes.py)."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import outputs_and_gradients, randomize, state_arrays
from miziha.mixers.axial import AxialT
from reference_axial import axial_layer

EQUIVALENCE_CASES = {
    # name: (AxialT kwargs, input [H, W])
    "square": (dict(num_heads=2), (6, 6)),
    "rectangular, 4 heads, downsample": (dict(num_heads=4, out_channels=24, downsample=True),
                                         (5, 9)),
    "1x1 map": (dict(num_heads=2), (1, 1)),
    "one row": (dict(num_heads=2, out_channels=8), (1, 7)),
    "one column, depth 3, qk_scale, no qkv bias": (dict(num_heads=2, depth=3, qk_scale=0.3,
                                                        qkv_bias=False), (7, 1)),
}


@pytest.mark.parametrize("name", list(EQUIVALENCE_CASES))
def test_matches_numpy_reference(name):
    kwargs, size = EQUIVALENCE_CASES[name]
    kwargs = dict(kwargs)
    out_channels = kwargs.pop("out_channels", 16)
    layer = randomize(AxialT(16, out_channels, **kwargs))
    layer.eval()
    x = np.random.default_rng(0).standard_normal((2, 16, *size)).astype("float32")
    out = layer(paddle.to_tensor(x)).numpy()
    ref = axial_layer(x.transpose(0, 2, 3, 1).astype(np.float64), state_arrays(layer),
                      layer.num_heads, layer.depth, layer.downsample_enabled,
                      kwargs.get("qk_scale"))
    np.testing.assert_allclose(out, ref.transpose(0, 3, 1, 2), rtol=1e-5, atol=2e-5)


def _seen(layer, h, w, token=(2, 3)):
    """The inputs the residual branches of block 0 at ``token`` depend on: ``[h, w]``."""
    x = paddle.randn([1, h * w, 8])
    x.stop_gradient = False
    out = layer.blocks[0](x, layer.layout(h, w)[0]) - x
    out.reshape([h, w, 8])[token].sum().backward()
    return np.abs(x.grad.numpy()).sum(-1).reshape(h, w) > 0


@pytest.mark.parametrize("branch", [None, "rows", "columns"])
def test_a_token_sees_its_row_and_its_column(branch):
    """One block: output (2, 3) depends on row 2 and column 3 only; with the other half's
    rows of ``proj`` and the MLP zeroed, the row half sees row 2 alone and the column half
    column 3 alone."""
    layer = randomize(AxialT(8, 8, num_heads=2))
    h, w = 6, 7
    expected = np.zeros((h, w), dtype=bool)
    if branch != "columns":
        expected[2, :] = True
    if branch != "rows":
        expected[:, 3] = True
    if branch is not None:
        block = layer.blocks[0]
        weight = block.proj.weight.numpy()
        weight[slice(4, 8) if branch == "rows" else slice(0, 4)] = 0.0
        block.proj.weight.set_value(weight)
        block.mlp.fc2.weight.set_value(np.zeros(block.mlp.fc2.weight.shape, "float32"))
        block.mlp.fc2.bias.set_value(np.zeros(block.mlp.fc2.bias.shape, "float32"))
    np.testing.assert_array_equal(_seen(layer, h, w), expected)


def test_gradients_match_finite_differences():
    layer = randomize(AxialT(8, 8, num_heads=2, depth=2))
    layer.eval()
    x = np.random.default_rng(2).standard_normal((1, 8, 4, 5)).astype("float32")
    _, x_grad, grads = outputs_and_gradients(layer, x)
    params = state_arrays(layer)
    x64 = x.transpose(0, 2, 3, 1).astype(np.float64)

    def loss(p, inputs=x64):
        out = axial_layer(inputs, p, 2, 2, False).transpose(0, 3, 1, 2)
        return (out * np.linspace(-1, 1, out.size).reshape(out.shape)).sum()

    eps = 1e-5
    for name, index in [("blocks.0.qkv.weight", (1, 2)), ("blocks.0.qkv.weight", (3, 20)),
                        ("blocks.1.qkv.bias", (13,)), ("blocks.1.proj.weight", (5, 6))]:
        plus, minus = dict(params), dict(params)
        plus[name], minus[name] = params[name].copy(), params[name].copy()
        plus[name][index] += eps
        minus[name][index] -= eps
        expected = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(grads[name][index], expected, rtol=1e-3, atol=1e-4,
                                   err_msg=f"{name}{index}")
    shifted = x64.copy()
    shifted[0, 1, 2, 3] += eps
    lowered = x64.copy()
    lowered[0, 1, 2, 3] -= eps
    np.testing.assert_allclose(x_grad[0, 3, 1, 2],
                               (loss(params, shifted) - loss(params, lowered)) / (2 * eps),
                               rtol=1e-3, atol=1e-4)


def test_parameter_names_and_repr():
    layer = AxialT(16, 32, num_heads=4, downsample=True)
    names = set(layer.state_dict())
    assert names == {f"blocks.{i}.{n}" for i in range(2) for n in (
        "norm1.weight", "norm1.bias", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias",
        "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
        "mlp.fc2.bias")} | {"downsample.conv.weight", "downsample.conv.bias",
                            "downsample.norm.weight", "downsample.norm.bias"}
    assert layer.blocks[0].qkv.weight.shape == [16, 48]
    assert "num_heads=4" in layer.extra_repr()


def test_any_size_without_padding():
    layer = randomize(AxialT(16, 16, num_heads=2))
    for size in [(1, 1), (1, 13), (11, 2), (17, 9)]:
        geometry = layer.layout(*size)[0]
        assert geometry.rows.key_mask is None and geometry.cols.key_mask is None
        assert geometry.rows.order == "same" and geometry.cols.order == "transposed"
        out = layer(paddle.randn([1, 16, *size]))
        assert out.shape == [1, 16, *size] and np.isfinite(out.numpy()).all()


def test_mixing_macs():
    layer = AxialT(16, 16, num_heads=2)
    b, h, w, c = 2, 5, 7, 16
    tokens = b * h * w
    attention = 2 * b * h * w * w * c // 2 + 2 * b * w * h * h * c // 2  # rows, columns
    assert layer.mixing_macs(b, h, w) == 2 * (tokens * c * 3 * c + attention)
    (row,) = miziha.flops(paddle.nn.Sequential(layer), [b, c, h, w]).rows
    hooks = 2 * (2 * tokens * c + tokens * c * c + 2 * tokens * c * 4 * c)  # norms, proj, MLP
    assert row.macs == layer.mixing_macs(b, h, w) + hooks


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"num_heads must be even \(a row half and a column "
                                         r"half\), got 3"):
        AxialT(12, 12, num_heads=3)
    with pytest.raises(ValueError, match="in_channels must be even"):
        AxialT(15, 15)
    with pytest.raises(TypeError, match="window_size"):
        AxialT(16, 16, window_size=7)
    assert AxialT(64, 64).num_heads == 2 and AxialT(96, 96).num_heads % 2 == 0
