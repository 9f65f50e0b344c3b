import numpy as np
import paddle
import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests (full-size networks); run with --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(2024)
    np.random.seed(2024)


def randomize(layer: paddle.nn.Layer, std: float = 0.3) -> paddle.nn.Layer:
    """Give every parameter a random value large enough that bias, mask and norm affine
    terms all change the output (the default init leaves attention nearly uniform)."""
    rng = np.random.default_rng(7)
    for param in layer.parameters():
        param.set_value(rng.normal(0.0, std, param.shape).astype("float32"))
    return layer


def state_arrays(layer: paddle.nn.Layer) -> dict:
    return {k: v.numpy().astype(np.float64) for k, v in layer.state_dict().items()}


def outputs_and_gradients(layer: paddle.nn.Layer, x: np.ndarray, seed: int = 11):
    """Output, input gradient and every parameter's gradient of ``sum(out * ramp)``, with
    Paddle seeded so that stochastic depth draws the same."""
    paddle.seed(seed)
    inputs = paddle.to_tensor(x, stop_gradient=False)
    out = layer(inputs)
    ramp = np.linspace(-1, 1, out.size, dtype="float32").reshape(out.shape)
    (out * paddle.to_tensor(ramp)).sum().backward()
    grads = {name: p.grad.numpy() for name, p in layer.named_parameters()}
    layer.clear_gradients()
    return out.numpy(), inputs.grad.numpy(), grads


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
