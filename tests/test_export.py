"""Export with dynamic H and W: paddle.jit.save / jit.load and a paddle.inference predictor."""

import numpy as np
import paddle
import paddle.inference as paddle_infer
import pytest
from paddle.static import InputSpec

import miziha
from conftest import randomize

# divisible; padded with an odd merge; shifted on one axis only; smaller than the window; 1x1
SIZES = [(12, 12), (11, 6), (3, 10), (3, 3), (1, 1)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(3)
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    layer.eval()
    path = str(tmp_path_factory.mktemp("export") / "swint")
    paddle.jit.save(layer, path, input_spec=[InputSpec([None, 16, None, None], "float32")])
    return layer, path


def _inputs(size):
    return np.random.default_rng(sum(size)).standard_normal((2, 16, *size)).astype("float32")


@pytest.mark.parametrize("size", SIZES)
def test_jit_load_matches_dygraph(exported, size):
    layer, path = exported
    loaded = paddle.jit.load(path)
    x = paddle.to_tensor(_inputs(size))
    np.testing.assert_allclose(loaded(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)


def test_inference_predictor_matches_dygraph(exported):
    layer, path = exported
    config = paddle_infer.Config(path + ".json", path + ".pdiparams")
    config.disable_gpu()
    config.disable_glog_info()
    predictor = paddle_infer.create_predictor(config)  # oneDNN on, as by default on CPU
    for size in SIZES:
        x = _inputs(size)
        feed = predictor.get_input_handle(predictor.get_input_names()[0])
        feed.reshape(x.shape)
        feed.copy_from_cpu(x)
        predictor.run()
        out = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        expected = layer(paddle.to_tensor(x)).numpy()
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("full_graph", [True, False])  # AST with dynamic shapes; SOT
def test_to_static_with_dynamic_sizes(full_graph):
    layer = miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True)
    layer.eval()
    static = paddle.jit.to_static(layer, input_spec=[InputSpec([None, 16, None, None])],
                                  full_graph=full_graph)
    for size in [(8, 8), (9, 5), (8, 8)]:
        x = paddle.randn([1, 16, *size])
        np.testing.assert_allclose(static(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)
