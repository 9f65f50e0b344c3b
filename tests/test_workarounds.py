import numpy as np
import paddle
import pytest

from miziha.workarounds import LayerNorm, Linear


def _pair(in_features=16, out_features=256):
    """A miziha Linear and a plain nn.Linear holding the same parameters."""
    ours, plain = Linear(in_features, out_features), paddle.nn.Linear(in_features, out_features)
    rng = np.random.default_rng(1)
    for a, b in zip(ours.parameters(), plain.parameters()):
        value = rng.standard_normal(a.shape).astype("float32")
        a.set_value(value)
        b.set_value(value)
    return ours, plain


def _grads(layer, x, upstream):
    x = paddle.to_tensor(x, stop_gradient=False)
    out = layer(x)
    (out * paddle.to_tensor(upstream)).sum().backward()
    return out.numpy(), x.grad, {n: p.grad for n, p in layer.named_parameters()}


@pytest.mark.parametrize("frozen", [(), ("weight",), ("bias",), ("weight", "bias")])
def test_linear_matches_nn_linear_outputs_and_gradients(frozen):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 16)).astype("float32")  # [..., in] with two leading axes
    upstream = rng.standard_normal((3, 5, 256)).astype("float32")
    results = []
    for layer in _pair():
        for name in frozen:
            getattr(layer, name).stop_gradient = True
        results.append(_grads(layer, x, upstream))
    (out, x_grad, grads), (ref_out, ref_x_grad, ref_grads) = results
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_grad.numpy(), ref_x_grad.numpy(), rtol=1e-5, atol=1e-5)
    for name, ref in ref_grads.items():
        if name in frozen:
            assert grads[name] is None
        else:
            np.testing.assert_allclose(grads[name].numpy(), ref.numpy(), rtol=1e-4, atol=1e-4,
                                       err_msg=name)


def test_linear_input_without_gradient_still_trains_the_parameters():
    ours, plain = _pair()
    x = paddle.randn([7, 16])
    for layer in (ours, plain):
        (layer(x) ** 2).sum().backward()
    assert x.grad is None
    for ours_param, plain_param in zip(ours.parameters(), plain.parameters()):
        np.testing.assert_allclose(ours_param.grad.numpy(), plain_param.grad.numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_linear_gradients_for_some_tensors_only():
    """paddle.grad over a subset (saliency maps, gradient penalties) prunes the others."""
    ours, plain = _pair()
    x = paddle.randn([6, 16])
    x.stop_gradient = False
    for wanted in ("x", "weight", "bias"):
        grads = []
        for layer in (ours, plain):
            target = x if wanted == "x" else getattr(layer, wanted)
            out = layer(x)
            (grad,) = paddle.grad((out ** 2).sum(), target, create_graph=wanted == "x")
            grads.append(grad.numpy())
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4, err_msg=wanted)


def test_linear_without_gradients_matches_nn_linear():
    ours, plain = _pair()
    x = paddle.randn([2, 3, 16])
    with paddle.no_grad():
        np.testing.assert_allclose(ours(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)


def _layer_norm_input_grad(x, weight, upstream, eps=1e-5):
    """NumPy: d/dx of sum(upstream * LayerNorm(x)) over the last axis."""
    mean = x.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = upstream * weight
    return rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))


@pytest.mark.parametrize("how", ["backward", "frozen weight", "paddle.grad for x only"])
def test_layer_norm_input_gradient_keeps_the_weight(how):
    """Paddle 3.3's CPU kernel drops the weight from dx when the weight gets no gradient."""
    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((2, 5, 16))
    upstream = rng.standard_normal((2, 5, 16))
    norm = LayerNorm(16, epsilon=1e-5)
    norm.weight.set_value(rng.standard_normal(16).astype("float32"))
    norm.bias.set_value(rng.standard_normal(16).astype("float32"))
    norm.weight.stop_gradient = how == "frozen weight"
    x = paddle.to_tensor(x_np.astype("float32"), stop_gradient=False)
    loss = (norm(x) * paddle.to_tensor(upstream.astype("float32"))).sum()
    if how == "paddle.grad for x only":
        (grad,) = paddle.grad(loss, x)
    else:
        loss.backward()
        grad = x.grad
    expected = _layer_norm_input_grad(x_np, norm.weight.numpy().astype(np.float64), upstream)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(3, 4), (1, 2)])  # folded into W; applied to x (few tokens)
def test_layer_norm_folded_into_linear_is_the_same_maths(leading, bias):
    rng = np.random.default_rng(6)
    norm, reference_norm = LayerNorm(16), LayerNorm(16)
    norm.weight.set_value(rng.standard_normal(16).astype("float32"))
    norm.bias.set_value(rng.standard_normal(16).astype("float32"))
    reference_norm.set_state_dict(norm.state_dict())
    ours = Linear(16, 8, bias_attr=None if bias else False)
    plain = paddle.nn.Linear(16, 8, bias_attr=None if bias else False)
    for a, b in zip(ours.parameters(), plain.parameters()):
        value = rng.standard_normal(a.shape).astype("float32")
        a.set_value(value)
        b.set_value(value)
    x_np = rng.standard_normal((*leading, 16)).astype("float32")
    x, x_ref = (paddle.to_tensor(x_np, stop_gradient=False) for _ in range(2))
    folded = ours(norm(x, affine=False), norm.affine_terms)
    expected = plain(reference_norm(x_ref))
    np.testing.assert_allclose(folded.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    with paddle.no_grad():
        np.testing.assert_allclose(ours(norm(x, affine=False), norm.affine_terms).numpy(),
                                   expected.numpy(), rtol=1e-4, atol=1e-4)
    (folded ** 2).sum().backward()
    (expected ** 2).sum().backward()
    pairs = [(x, x_ref), (norm.weight, reference_norm.weight), (norm.bias, reference_norm.bias)]
    pairs += list(zip(ours.parameters(), plain.parameters()))
    for a, b in pairs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-3,
                                   err_msg=a.name)


def test_layer_norm_over_several_axes_matches_nn_layer_norm():
    norm, plain = LayerNorm([4, 8]), paddle.nn.LayerNorm([4, 8])
    rng = np.random.default_rng(8)
    for a, b in zip(norm.parameters(), plain.parameters()):
        value = rng.standard_normal(a.shape).astype("float32")
        a.set_value(value)
        b.set_value(value)
    x = paddle.randn([3, 4, 8])
    np.testing.assert_allclose(norm(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
