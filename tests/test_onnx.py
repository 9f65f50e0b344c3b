"""ONNX export (``miziha.export.to_onnx``, paddle2onnx in a child process) against eager
Paddle in onnxruntime, at sizes the export never saw (dynamic batch, height and width).

Each model is exported once (module-scoped fixtures) and checked at an odd size with batch 1
and at an even one with batch 2. Outputs agree within 1e-4 of the output's scale
(``max(1, max |eager|)``). Networks are listed as ``(registered name, tiny options)`` in
:data:`NETWORKS`: one entry per network family.
"""

import importlib.util

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import miziha
from miziha.export import to_onnx
from miziha.mixers.asmlp import GroupNorm1
from conftest import randomize

ort = pytest.importorskip("onnxruntime")

#: (name in miziha.create_model, options for a tiny configuration), one per family.
NETWORKS = [
    ("swin_tiny_patch4_window7_224", dict(embed_dim=8, depths=(2, 2, 2), num_heads=(1, 2, 4),
                                          window_size=3, patch_size=2)),
    ("swinv2_tiny_window8_256", dict(embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                                     window_size=4)),
    ("cswin_tiny_224", dict(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
                            split_sizes=(1, 2, 2, 2))),
    ("pale_tiny", dict(embed_dim=8, depths=(1, 1, 2), num_heads=(2, 2, 4), pale_size=2)),
    ("cyclemlp_b1", dict(layers=(1, 1, 1, 1), embed_dims=(8, 12, 16, 20),
                         mlp_ratios=(2, 2, 1, 1))),
    ("asmlp_tiny", dict(embed_dim=8, depths=(1, 1, 2, 1), mlp_ratio=2.0)),
    ("hrnet_w18_small_v2", dict()),
    ("swin_resnet50", dict(depths=(1, 1, 1, 1), widths=(8, 16, 16, 32), heads=(1, 2, 2, 4),
                           window_size=3)),
]
MIXER_SIZES = [(1, 13, 9), (2, 12, 16)]  # [B, H, W]: odd with batch 1; batch 2
NETWORK_SIZES = [(1, 37, 45), (2, 64, 64)]


def _run(path, x):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _assert_parity(path, model, x):
    got = _run(path, x)
    expected = model(paddle.to_tensor(x)).numpy()
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(got - expected).max()) <= 1e-4 * scale


@pytest.fixture(scope="module", params=[(name, fmt) for name in miziha.MIXERS
                                        for fmt in ("NCHW", "NHWC")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def exported_mixer(request, tmp_path_factory):
    name, data_format = request.param
    paddle.seed(1)
    layer = randomize(miziha.MIXERS[name](8, 16, downsample=True, data_format=data_format),
                      std=0.2)
    layer.eval()
    path = to_onnx(layer, tmp_path_factory.mktemp("onnx") / f"{name}.onnx", in_channels=8,
                   data_format=data_format)
    return layer, path, data_format


@pytest.mark.parametrize("size", MIXER_SIZES, ids=str)
def test_mixer_matches_eager_in_onnxruntime(exported_mixer, size):
    layer, path, data_format = exported_mixer
    batch, height, width = size
    shape = (batch, 8, height, width) if data_format == "NCHW" else (batch, height, width, 8)
    _assert_parity(path, layer, np.random.default_rng(sum(size)).standard_normal(shape)
                   .astype("float32"))


@pytest.fixture(scope="module", params=NETWORKS, ids=lambda p: p[0])
def exported_network(request, tmp_path_factory):
    name, options = request.param
    paddle.seed(2)
    model = miziha.create_model(name, num_classes=10, **options)
    model.eval()
    return model, to_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx")


@pytest.mark.parametrize("size", NETWORK_SIZES, ids=str)
def test_network_matches_eager_in_onnxruntime(exported_network, size):
    model, path = exported_network
    batch, height, width = size
    _assert_parity(path, model, np.random.default_rng(sum(size))
                   .standard_normal((batch, 3, height, width)).astype("float32"))


class _GroupNorm3D(nn.Layer):
    """A 3-D ``group_norm``: paddle2onnx 2.1 aborts its process on it."""

    def forward(self, x):
        return F.group_norm(x.reshape([0, 1, -1]), 1, data_format="NCL")


def test_failed_conversion_raises_naming_the_model(tmp_path):
    with pytest.raises(RuntimeError, match=r"_GroupNorm3D.*4D-Tensor"):
        to_onnx(_GroupNorm3D(), tmp_path / "bad.onnx", in_channels=4)
    assert not (tmp_path / "bad.onnx").exists()


def test_failed_or_timed_out_conversion_leaves_an_existing_file(tmp_path):
    previous = tmp_path / "model.onnx"
    previous.write_bytes(b"an earlier export")
    with pytest.raises(RuntimeError, match=r"_GroupNorm3D.*4D-Tensor"):
        to_onnx(_GroupNorm3D(), previous, in_channels=4)
    with pytest.raises(RuntimeError, match=r"did not convert _GroupNorm3D to ONNX within "
                                           r"0\.01 seconds"):
        to_onnx(_GroupNorm3D(), previous, in_channels=4, timeout=0.01)
    assert previous.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_conversion_ignores_the_working_directory_needs_no_onnxruntime_and_keeps_the_mode(
        tmp_path, monkeypatch):
    """A ``paddle2onnx.py`` in the working directory is not what the child imports; a
    missing onnxruntime does not stop the conversion; the model stays in training mode; a
    successful export replaces an earlier file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paddle2onnx.py").write_text("raise ImportError('the local paddle2onnx.py')\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    (tmp_path / "linear.onnx").write_bytes(b"an earlier export")
    paddle.seed(0)
    model = nn.Sequential(nn.Conv2D(3, 4, 1), nn.Dropout(0.5))
    model.train()
    path = to_onnx(model, "linear.onnx")
    assert path == "linear.onnx" and model.training and model[1].training
    monkeypatch.undo()
    model.eval()
    _assert_parity(str(tmp_path / path), model,
                   np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype("float32"))


def test_missing_extra_names_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "paddle2onnx" else real(name, *a))
    with pytest.raises(ImportError, match=r"paddle2onnx: pip install miziha\[onnx\]"):
        to_onnx(nn.Linear(2, 2), tmp_path / "x.onnx")


def test_to_onnx_rejects_bad_arguments(tmp_path):
    layer = miziha.SwinT(8, 8, num_heads=2)
    with pytest.raises(ValueError, match="opset"):
        to_onnx(layer, tmp_path / "x.onnx", 8, opset="17")
    with pytest.raises(ValueError, match="timeout"):
        to_onnx(layer, tmp_path / "x.onnx", 8, timeout=0)
    with pytest.raises(FileNotFoundError, match="no folder"):
        to_onnx(layer, tmp_path / "missing" / "x.onnx", 8)
    with pytest.raises(TypeError, match="paddle.nn.Layer"):
        to_onnx("model", tmp_path / "x.onnx", 8)


def test_groupnorm1_input_gradient_matches_the_composed_norm():
    """Workaround 7's form (``instance_norm`` on ``[B, 1, N*C, 1]``) gives GroupNorm(1, C)'s
    input gradient, also without affine terms, where Paddle 3.3's ``group_norm`` without
    weight does not."""
    paddle.seed(4)
    norm = GroupNorm1(6)
    x = paddle.randn([3, 5, 7, 6]) * 2 + 1
    x.stop_gradient = False
    ramp = paddle.randn([3, 5, 7, 6])
    (grad,) = paddle.grad((norm(x, affine=False) * ramp).sum(), [x])
    xd, rd = x.numpy().astype(np.float64), ramp.numpy().astype(np.float64)
    mean = xd.mean(axis=(1, 2, 3), keepdims=True)
    std = np.sqrt(((xd - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True) + 1e-5)
    y = (xd - mean) / std
    expected = (rd - rd.mean(axis=(1, 2, 3), keepdims=True)
                - y * (rd * y).mean(axis=(1, 2, 3), keepdims=True)) / std
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-5)
