import numpy as np
import paddle
import pytest

from miziha.init import Linear


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
