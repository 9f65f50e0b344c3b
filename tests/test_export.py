"""Export with dynamic H and W: paddle.jit.save / jit.load and a paddle.inference predictor."""

import numpy as np
import paddle
import pytest
from paddle.static import InputSpec

import miziha
from miziha.export import Predictor, save_for_inference
from conftest import randomize

# divisible; padded with an odd merge; shifted on one axis only; smaller than the window; 1x1
SIZES = [(12, 12), (11, 6), (3, 10), (3, 3), (1, 1)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(3)
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    layer.eval()
    path = save_for_inference(layer, tmp_path_factory.mktemp("export") / "swint", 16)
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
    predictor = Predictor(path)  # oneDNN on, as by default on CPU
    for size in SIZES:
        x = _inputs(size)
        out = predictor(x)
        expected = layer(paddle.to_tensor(x)).numpy()
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_predictor_without_onednn_matches_dygraph(exported):
    layer, path = exported
    x = _inputs((11, 6))
    np.testing.assert_allclose(Predictor(path, onednn=False)(x),
                               layer(paddle.to_tensor(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_save_for_inference_writes_files_a_predictor_runs(tmp_path):
    layer = randomize(miziha.SwinT(8, 8, num_heads=2, window_size=4, data_format="NHWC"))
    prefix = save_for_inference(layer, tmp_path / "nhwc", in_channels=8, data_format="NHWC")
    assert (tmp_path / "nhwc.json").is_file() and (tmp_path / "nhwc.pdiparams").is_file()
    x = np.random.default_rng(0).standard_normal((3, 9, 5, 8)).astype("float32")
    np.testing.assert_allclose(Predictor(prefix, threads=1)(x),
                               layer(paddle.to_tensor(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_save_for_inference_leaves_each_sublayer_in_its_mode(tmp_path):
    """Saving runs in eval mode, then the layer and each sublayer have their own mode back
    (here a training network with one sublayer held in eval)."""
    layer = paddle.nn.Sequential(paddle.nn.Conv2D(4, 4, 1), paddle.nn.BatchNorm2D(4))
    layer.train()
    layer[1].eval()
    save_for_inference(layer, tmp_path / "modes", in_channels=4)
    assert [sub.training for sub in layer.sublayers(include_self=True)] == [True, True, False]
    layer.eval()
    save_for_inference(layer, tmp_path / "modes", in_channels=4)
    assert not any(sub.training for sub in layer.sublayers(include_self=True))


def test_export_helpers_reject_bad_input(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="missing"):
        Predictor(tmp_path / "nothing")
    with pytest.raises(ValueError, match="data_format"):
        save_for_inference(miziha.SwinT(8, 8, num_heads=2), tmp_path / "x", 8, "CHW")
    with pytest.raises(TypeError, match="paddle.nn.Layer"):
        save_for_inference("model", tmp_path / "x", 8)
    with pytest.raises(ValueError, match="threads"):
        Predictor(exported[1], threads=0)
    with pytest.raises(TypeError, match="numpy array"):
        Predictor(exported[1])(paddle.zeros([1, 16, 4, 4]))


@pytest.mark.parametrize("full_graph", [True, False])  # AST with dynamic shapes; SOT
def test_to_static_with_dynamic_sizes(full_graph):
    layer = miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True)
    layer.eval()
    static = paddle.jit.to_static(layer, input_spec=[InputSpec([None, 16, None, None])],
                                  full_graph=full_graph)
    for size in [(8, 8), (9, 5), (8, 8)]:
        x = paddle.randn([1, 16, *size])
        np.testing.assert_allclose(static(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("full_graph", [True, False])
def test_to_static_with_sub_batches(monkeypatch, full_graph):
    """SOT traces the eager code, sub-batches included; AST graphs run whole batches. Both
    match eager mode at every batch size."""
    monkeypatch.setattr(miziha.paddle_fixes.cpu, "BATCH_CHUNK_BYTES", 2 * 12 * 12 * 64 * 4)
    layer = randomize(miziha.SwinT(16, 24, num_heads=2, window_size=4, downsample=True))
    layer.eval()
    static = paddle.jit.to_static(layer, input_spec=[InputSpec([None, 16, None, None])],
                                  full_graph=full_graph)
    for batch, size in [(5, (11, 9)), (3, (8, 8)), (5, (11, 9))]:
        x = paddle.randn([batch, 16, *size])
        np.testing.assert_allclose(static(x).numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-5)
