"""miziha.weights: readers (torch.save zip and legacy layouts, safetensors, .pdparams)
without PyTorch, the refused globals, source detection and key maps (official, timm,
PaddleClas), the window-table resize, the head of other classes, strictness, the command
line.

Test data in tests/data/weights/, each made once (the scripts are not committed):
- ``swin_tiny_official.pth`` / ``_legacy.pth``: ``torch.save({"model": state_dict})`` (zip,
  and ``_use_new_zipfile_serialization=False``) of the official Swin code's
  ``SwinTransformer(img_size=32, num_classes=3, embed_dim=4, depths=[2, 2],
  num_heads=[1, 2], window_size=2)`` (torch 2.13, seed 0; biases, norms and tables
  randomised); ``swin_tiny_official_logits.json``: its eval logits on
  ``default_rng(0).standard_normal((2, 3, 32, 32))``, and PyTorch's bicubic resize of
  ``layers.0.blocks.0``'s table to window 4 as the official ``load_pretrained`` does it.
- ``swin_tiny_timm.safetensors``: the same state dict under timm's names (timm's
  ``checkpoint_filter_fn``: ``layers.N.downsample`` -> ``layers.N+1.downsample``,
  ``head`` -> ``head.fc``, no index/mask buffers), ``safetensors.torch.save_file``.
- ``swin_tiny_paddleclas.pdparams`` and ``_logits.json``: PaddleClas's own
  ``SwinTransformer`` (ppcls legendary_models, same tiny config, Paddle 3.3.1) saved with
  ``paddle.save``, and its eval logits on the same input.
- ``hrnet_w18_paddleclas.json.gz``: PaddleClas's ``HRNet_W18_C(class_num=7)`` state-dict names
  and shapes, and its eval logits on ``default_rng(1).standard_normal((1, 3, 64, 64))``
  with the weights :func:`_seeded` gives each name.
- ``views.pth`` / ``views_legacy.pth``: tensors that are transposed and sliced views,
  float16, bfloat16, int64, a Parameter, a scalar, under ``{"state_dict": ...}``.
- ``forbidden_global.pth``: a pickle calling ``os.system`` (written by hand).
- ``cswin_tiny_official.pth``: ``torch.save({"state_dict": a, "state_dict_ema": b,
  "epoch": 299})`` (the release layout) of two random state dicts of the official CSWin code's
  ``CSWinTransformer(img_size=224, embed_dim=2, depth=[1, 1, 1, 1], split_size=[1, 2, 7, 7],
  num_heads=[2, 2, 2, 2], mlp_ratio=1.0, num_classes=3)``.
- ``cyclemlp_tiny_official.pth``: ``torch.save({"model": ...})`` of the official
  ``CycleNet([1, 1, 1, 1], embed_dims=[4, 4, 8, 8], mlp_ratios=[1, 1, 1, 1],
  transitions=[True] * 4, num_classes=3)``, random weights, its ``offset`` buffers as built.
- ``asmlp_tiny_official.pth``: ``torch.save({"model": ...})`` of the official
  ``AS_MLP(img_size=32, embed_dim=3, depths=[1, 1, 1, 1], shift_size=3, mlp_ratio=1.0,
  num_classes=3)``, random weights.
- ``hrnet_tiny_official.pth.xz``: ``torch.save(state_dict)`` (the release layout) of the
  official ``cls_hrnet.HighResolutionNet`` with STAGE1 one 64-wide Bottleneck, STAGE2..4 one
  module of one BasicBlock a branch at widths 4, 8, 16, 32 and a 3-class classifier, then
  xz-compressed: its fixed 2048-wide head holds 9.7M numbers, so every tensor over 64
  elements repeats one random row of 97 (scaled by its fan-in), the others are random.
- ``cswin_tiny_paddleclas.pdparams`` and ``_logits.json``: PaddleClas's own
  ``CSwinTransformer(image_size=224, embed_dim=2, depths=[1, 1, 1, 1], splits=[1, 2, 7, 7],
  num_heads=[2, 2, 2, 2], mlp_ratio=1.0, class_num=3)`` (``model_zoo/cswin_transformer.py``,
  Paddle 3.3.1) with weights seeded by each name's CRC32, ``paddle.save`` of its state dict,
  and its eval logits on ``default_rng(3).standard_normal((1, 3, 224, 224))``.
"""

import gzip
import json
import lzma
import os
import pickle
import re
import struct
import zipfile
import zlib

import numpy as np
import paddle
import pytest
from safetensors.numpy import save_file

import miziha
from miziha.models.cswin import KEY_MAPS as CSWIN_KEY_MAPS
from miziha.models.hrnet import HRNet, HRNetConfig
from miziha.weights import load_pretrained, read_checkpoint, readers
from miziha.weights.cli import main as cli_main
from miziha.weights.convert import apply_key_map, convert_state

DATA = os.path.join(os.path.dirname(__file__), "data", "weights")
TINY = dict(embed_dim=4, depths=(2, 2), num_heads=(1, 2), window_size=2, num_classes=3)
TINY_OPTIONS = ["--option", "embed_dim=4", "--option", "depths=[2,2]",
                "--option", "num_heads=[1,2]"]


def _path(name: str) -> str:
    return os.path.join(DATA, name)


def _json(name: str) -> dict:
    with open(_path(name)) as file:
        return json.load(file)


def _tiny_swin(**changes) -> miziha.models.SwinTransformer:
    model = miziha.create_model("swin_tiny_patch4_window7_224", **{**TINY, **changes})
    model.eval()
    return model


def _logits(model: paddle.nn.Layer, seed: int, shape) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def _arrays(model: paddle.nn.Layer) -> dict:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


OFFICIAL = _json("swin_tiny_official_logits.json")


@pytest.mark.parametrize("name, fmt, source", [
    ("swin_tiny_official.pth", "torch-zip", "official"),
    ("swin_tiny_official_legacy.pth", "torch-legacy", "official"),
    ("swin_tiny_timm.safetensors", "safetensors", "timm")])
def test_each_reader_gives_the_official_logits(name, fmt, source):
    model = _tiny_swin()
    report = load_pretrained(model, _path(name))
    assert (report.format, report.source) == (fmt, source)
    assert len(report.loaded) == len(model.state_dict())
    assert not (report.missing or report.unexpected or report.resized or report.filled
                or report.head_skipped)
    np.testing.assert_allclose(_logits(model, 0, (2, 3, 32, 32)), OFFICIAL["logits"],
                               rtol=1e-5, atol=1e-5)


def test_official_file_drops_derived_buffers_and_timm_names_are_renamed():
    official = load_pretrained(_tiny_swin(), _path("swin_tiny_official.pth"))
    # 4 blocks' relative_position_index + the 2 shifted blocks' attn_mask (stage 2 is 4x4 >
    # window 2; stage 1 8x8 too)
    assert sorted(official.dropped) == sorted(
        [f"layers.{i}.blocks.{j}.attn.relative_position_index" for i in (0, 1) for j in (0, 1)]
        + ["layers.0.blocks.1.attn_mask", "layers.1.blocks.1.attn_mask"])
    timm = load_pretrained(_tiny_swin(), _path("swin_tiny_timm.safetensors"))
    assert timm.renamed == {"head.fc.weight": "head.weight", "head.fc.bias": "head.bias",
                            "layers.1.downsample.norm.weight": "layers.0.downsample.norm.weight",
                            "layers.1.downsample.norm.bias": "layers.0.downsample.norm.bias",
                            "layers.1.downsample.reduction.weight":
                                "layers.0.downsample.reduction.weight"}
    text = str(timm)
    assert "timm names" in text and "head.fc.bias -> head.bias" in text and "missing       0" in text


def test_paddleclas_swin_pdparams_gives_paddleclas_logits():
    model = _tiny_swin()
    report = load_pretrained(model, _path("swin_tiny_paddleclas.pdparams"), source="paddleclas")
    assert report.format == "paddle" and not report.missing and not report.unexpected
    reference = _json("swin_tiny_paddleclas_logits.json")
    np.testing.assert_allclose(_logits(model, 0, (2, 3, 32, 32)), reference["logits"],
                               rtol=1e-5, atol=1e-5)
    # Detection reads PaddleClas's Swin (official names, Paddle layout) as miziha's own.
    assert load_pretrained(_tiny_swin(), _path("swin_tiny_paddleclas.pdparams")).source == "miziha"


def _seeded(name: str, shape) -> np.ndarray:
    """The weights the HRNet data was made with: seeded by the name's CRC32."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name.endswith("_variance"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if len(shape) == 1:
        base = 1.0 if name.endswith(".weight") and "fc" not in name else 0.0
        return (base + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def test_paddleclas_hrnet_maps_onto_hrnet_w18_with_filled_biases(tmp_path):
    with gzip.open(_path("hrnet_w18_paddleclas.json.gz"), "rt") as file:
        data = json.load(file)
    path = str(tmp_path / "HRNet_W18_C.pdparams")
    paddle.save({name: _seeded(name, shape) for name, shape in data["shapes"].items()}, path)
    model = miziha.create_model("hrnet_w18", num_classes=7)
    model.eval()
    report = load_pretrained(model, path)
    assert report.source == "paddleclas" and not report.missing and not report.unexpected
    assert report.filled == ["downsamp_modules.0.0.bias", "downsamp_modules.1.0.bias",
                             "downsamp_modules.2.0.bias", "final_layer.0.bias"]
    # the biases PaddleClas lacks: 21,299,004 - 21,295,164 parameters
    assert sum(int(np.prod(model.state_dict()[k].shape)) for k in report.filled) == 3840
    assert all(not model.state_dict()[k].numpy().any() for k in report.filled)
    logits, reference = _logits(model, 1, (1, 3, 64, 64)), np.array(data["logits"])
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("name", ["views.pth", "views_legacy.pth"])
def test_torch_reader_views_dtypes_and_wrappers(name):
    checkpoint = read_checkpoint(_path(name))
    state = checkpoint.state
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(state["transposed"], base.T)
    np.testing.assert_array_equal(state["sliced"], base[1:3, 2:5])
    assert state["half"].dtype == np.float16 and state["half"].tolist() == [1.5, -2.0]
    assert state["bf16"].dtype == np.float32 and state["bf16"].tolist() == [1.5, -2.0, 3.0]
    assert state["long"].dtype == np.int64 and state["long"].tolist() == [7, -8]
    np.testing.assert_array_equal(state["param"], np.ones((2, 3), np.float32))
    assert state["scalar"].shape == () and float(state["scalar"]) == 3.0


def test_wrappers_prefer_ema_and_strip_module_prefix(tmp_path):
    path = str(tmp_path / "wrapped.pdparams")
    plain, ema = np.zeros(2, np.float32), np.ones(2, np.float32)
    paddle.save({"state_dict": {"module.w": plain}, "state_dict_ema": {"module.w": ema},
                 "epoch": 3}, path)
    np.testing.assert_array_equal(read_checkpoint(path).state["w"], ema)
    np.testing.assert_array_equal(read_checkpoint(path, ema=False).state["w"], plain)


def _forbidden_zip(tmp_path) -> str:
    with open(_path("forbidden_global.pth"), "rb") as file:
        payload = file.read()
    path = str(tmp_path / "forbidden_zip.pth")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    return path


def test_forbidden_global_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    mark = tmp_path / "ran"
    monkeypatch.setenv("MIZIHA_FORBIDDEN_MARK", str(mark))
    for path in (_path("forbidden_global.pth"), _forbidden_zip(tmp_path)):
        with pytest.raises(ValueError, match=r"refused global os\.system"):
            read_checkpoint(path)
        with pytest.raises(ValueError, match=r"refused global os\.system"):
            load_pretrained(_tiny_swin(), path)
    assert not mark.exists()
    # The fixture is live: Python's own pickle runs it.
    with open(_path("forbidden_global.pth"), "rb") as file:
        pickle.load(file)
    assert mark.exists()


def test_bad_files_give_clear_errors_and_leave_the_model(tmp_path):
    model = _tiny_swin()
    before = _arrays(model)
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_pretrained(model, str(text))
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_pretrained(model, str(tmp_path / "absent.pth"))
    for name in ("swin_tiny_official.pth", "swin_tiny_official_legacy.pth",
                 "swin_tiny_timm.safetensors"):
        with open(_path(name), "rb") as file:
            data = file.read()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[:len(data) // 2])
        with pytest.raises(ValueError, match="truncated|corrupt|not a readable"):
            load_pretrained(model, str(cut))
    for name, value in _arrays(model).items():
        np.testing.assert_array_equal(value, before[name])


def test_shape_that_does_not_fit_is_named_and_nothing_is_loaded():
    model = _tiny_swin(num_heads=(4, 4))
    before = _arrays(model)
    with pytest.raises(ValueError, match=r"layers\.0\.blocks\.0\.attn\.relative_position_bias"
                                         r"_table: the model has shape \[9, 4\], the state "
                                         r"dict \[9, 1\]"):
        load_pretrained(model, _path("swin_tiny_official.pth"))
    with pytest.raises(ValueError, match=r"patch_embed\.proj\.weight: the model has shape "
                                         r"\[16, 3, 4, 4\]"):
        load_pretrained(_tiny_swin(embed_dim=16), _path("swin_tiny_official.pth"))
    for name, value in _arrays(model).items():
        np.testing.assert_array_equal(value, before[name])


def test_strict_refuses_missing_keys_and_non_strict_reports_them():
    model = _tiny_swin(depths=(2, 4))
    before = _arrays(model)
    with pytest.raises(ValueError, match=r"missing \['layers\.1\.blocks\.2\."):
        load_pretrained(model, _path("swin_tiny_official.pth"))
    for name, value in _arrays(model).items():
        np.testing.assert_array_equal(value, before[name])
    report = load_pretrained(model, _path("swin_tiny_official.pth"), strict=False)
    assert report.missing and not report.unexpected
    assert all(k.startswith(("layers.1.blocks.2.", "layers.1.blocks.3.")) for k in report.missing)
    for name in report.missing:
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), before[name])
    np.testing.assert_array_equal(model.state_dict()["patch_embed.proj.weight"].numpy(),
                                  read_checkpoint(_path("swin_tiny_official.pth"))
                                  .state["patch_embed.proj.weight"])


def test_wrong_source_and_unknown_source():
    with pytest.raises(ValueError, match=r"missing \[.*head\.weight"):
        load_pretrained(_tiny_swin(), _path("swin_tiny_timm.safetensors"), source="official")
    with pytest.raises(ValueError, match="'paddleclas' weights have the paddle layout, this "
                                         "file the torch layout"):
        load_pretrained(_tiny_swin(), _path("swin_tiny_official.pth"), source="paddleclas")
    with pytest.raises(ValueError, match="source must be one of"):
        load_pretrained(_tiny_swin(), _path("swin_tiny_timm.safetensors"), source="hub")
    unet = miziha.create_model("unet", num_classes=3)  # a family without KEY_MAPS
    with pytest.raises(ValueError, match="UNet has no key map for 'timm' weights"):
        load_pretrained(unet, _path("swin_tiny_timm.safetensors"), source="timm")


def _bicubic_reference(grid: np.ndarray, size: int) -> np.ndarray:
    """PyTorch's bicubic (A = -0.75, align_corners=False, border clamp), one output pixel
    at a time in float64: ``[S, S] -> [size, size]``."""
    def kernel(x):
        x, a = abs(x), -0.75
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0
    side, scale = grid.shape[0], grid.shape[0] / size
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y, x = (i + 0.5) * scale - 0.5, (j + 0.5) * scale - 0.5
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for m in range(y0 - 1, y0 + 3):
                for n in range(x0 - 1, x0 + 3):
                    out[i, j] += kernel(y - m) * kernel(x - n) * \
                        grid[min(max(m, 0), side - 1), min(max(n, 0), side - 1)]
    return out


def test_window_change_resizes_tables_as_the_official_code():
    model = _tiny_swin(window_size=4)
    report = load_pretrained(model, _path("swin_tiny_official.pth"))
    tables = [f"layers.{i}.blocks.{j}.attn.relative_position_bias_table"
              for i in (0, 1) for j in (0, 1)]
    assert sorted(report.resized) == tables and not report.missing and not report.head_skipped
    assert report.resized[tables[0]] == ([9, 1], [49, 1])
    state = read_checkpoint(_path("swin_tiny_official.pth")).state
    for name in tables:
        table = state[name].astype(np.float64)
        expected = np.stack([_bicubic_reference(table[:, h].reshape(3, 3), 7).reshape(-1)
                             for h in range(table.shape[1])], axis=1)
        np.testing.assert_allclose(model.state_dict()[name].numpy(), expected, atol=1e-6)
    torch_resized = np.array(OFFICIAL["table_layers.0.blocks.0_window4_official_resize"])
    np.testing.assert_allclose(model.state_dict()[tables[0]].numpy(), torch_resized, atol=1e-6)


def test_other_classes_leave_the_head_at_its_initialisation():
    paddle.seed(5)
    model = _tiny_swin(num_classes=4)
    head = _arrays(model)
    report = load_pretrained(model, _path("swin_tiny_official.pth"))
    assert report.head_skipped == ["head.bias", "head.weight"]
    assert not report.missing and not report.unexpected
    for name in report.head_skipped:
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), head[name])
    assert "head skipped" in str(report)


@pytest.mark.parametrize("name", ["swin_tiny_official.pth", "swin_tiny_timm.safetensors"])
def test_a_model_without_classifier_loads_the_rest_and_reports_the_head(name):
    """num_classes=0 (timm's backbone): the file's classifier (timm's ``head.fc`` after its
    rename) is reported as skipped, everything else loads strictly, and the output is the
    pooled features of the model with the classifier."""
    model = miziha.create_model("swin_tiny_patch4_window7_224", **{**TINY, "num_classes": 0},
                                pretrained=_path(name))
    report = model.pretrained_report
    assert report.head_skipped == ["head.bias", "head.weight"]
    assert not report.missing and not report.unexpected
    classed = _tiny_swin()
    load_pretrained(classed, _path(name))
    model.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_allclose(
        model(x).numpy(),
        classed.forward_head(classed.forward_features(x), pre_logits=True).numpy(),
        rtol=1e-5, atol=1e-6)


def test_create_model_swin_tiny_window12_from_a_window7_file(tmp_path):
    path = str(tmp_path / "swin_tiny_w7.pdparams")
    paddle.save(miziha.create_model("swin_tiny_patch4_window7_224").state_dict(), path)
    model = miziha.create_model("swin_tiny_patch4_window7_224", window_size=12, pretrained=path)
    report = model.pretrained_report
    assert len(report.resized) == 12
    assert {tuple(a) + tuple(b) for a, b in report.resized.values()} == {
        (169, h, 529, h) for h in (3, 6, 12, 24)}
    assert not (report.missing or report.unexpected or report.filled or report.head_skipped)
    assert len(report.loaded) == len(model.state_dict())


def test_create_model_pretrained_errors():
    with pytest.raises(ValueError, match="unknown model"):
        miziha.create_model("swin_nonexistent", pretrained=_path("swin_tiny_official.pth"))
    with pytest.raises(ValueError, match="does not fit|do not fit"):
        miziha.create_model("swin_tiny_patch4_window7_224", pretrained=_path("swin_tiny_official.pth"))


def test_command_line_converts_and_the_file_loads_strictly(tmp_path, capsys):
    out = str(tmp_path / "converted.pdparams")
    status = cli_main(["convert", _path("swin_tiny_official.pth"), "--model", "swin_tiny_patch4_window7_224",
                       "-o", out, "--window-size", "2", "--num-classes", "3", *TINY_OPTIONS])
    printed = capsys.readouterr().out
    assert status == 0 and "official names" in printed and "missing       0" in printed
    model = _tiny_swin()
    report = load_pretrained(model, out, strict=True)
    assert report.source == "miziha" and not report.renamed
    np.testing.assert_allclose(_logits(model, 0, (2, 3, 32, 32)), OFFICIAL["logits"],
                               rtol=1e-5, atol=1e-5)
    resized = str(tmp_path / "w4.pdparams")
    assert cli_main(["convert", _path("swin_tiny_timm.safetensors"), "--model", "swin_tiny_patch4_window7_224",
                     "-o", resized, "--window-size", "4", "--num-classes", "3",
                     *TINY_OPTIONS]) == 0
    assert "resized       4" in capsys.readouterr().out
    load_pretrained(_tiny_swin(window_size=4), resized, strict=True)


def test_command_line_errors(tmp_path, capsys):
    out = str(tmp_path / "x.pdparams")
    assert cli_main(["convert", _path("swin_tiny_official.pth"), "--model", "nonexistent",
                     "-o", out]) == 2
    assert "unknown model 'nonexistent'" in capsys.readouterr().err
    assert cli_main(["convert", _path("forbidden_global.pth"), "--model", "swin_tiny_patch4_window7_224",
                     "-o", out, *TINY_OPTIONS]) == 2
    assert "refused global os.system" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_official_to_miziha_is_the_official_source_of_convert_state():
    state = read_checkpoint(_path("swin_tiny_official.pth")).state
    model = _tiny_swin()
    converted = miziha.weights.official_to_miziha(model, state)
    arrays, report = convert_state(model, state, "torch", source="official")
    assert converted.keys() == arrays.keys() == model.state_dict().keys()
    assert report.source == "official"


# ---------------------------------------------------------------------------------------
# Every family's official file (see the module docstring for how each was made).

CSWIN_TINY = dict(num_classes=3, embed_dim=2, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
                  split_sizes=(1, 2, 7, 7), mlp_ratio=1.0)
HRNET_TINY = HRNetConfig(1, (1, 1, 1), (1, 1, 1), (4, 8, 16, 32))


def _hrnet_tiny() -> HRNet:
    return HRNet(3, HRNET_TINY)


FAMILIES = {
    "swin": (_tiny_swin, "swin_tiny_official.pth"),
    "cswin": (lambda: miziha.create_model("cswin_tiny_224", **CSWIN_TINY),
              "cswin_tiny_official.pth"),
    "cyclemlp": (lambda: miziha.create_model("cyclemlp_b1", num_classes=3, layers=(1, 1, 1, 1),
                                             embed_dims=(4, 4, 8, 8), mlp_ratios=(1, 1, 1, 1)),
                 "cyclemlp_tiny_official.pth"),
    "asmlp": (lambda: miziha.create_model("asmlp_tiny", num_classes=3, embed_dim=3,
                                          depths=(1, 1, 1, 1), shift_size=3, mlp_ratio=1.0),
              "asmlp_tiny_official.pth"),
    "hrnet": (_hrnet_tiny, "hrnet_tiny_official.pth.xz"),
}


def _family_file(family: str, tmp_path) -> str:
    """The family's fixture; HRNet's (9.7M parameters, a 2048-wide head whatever the
    branches' widths) is committed xz-compressed and unpacked here."""
    name = FAMILIES[family][1]
    if not name.endswith(".xz"):
        return _path(name)
    path = tmp_path / name[:-len(".xz")]
    with lzma.open(_path(name)) as packed:
        path.write_bytes(packed.read())
    return str(path)


def _built(family: str) -> paddle.nn.Layer:
    model = FAMILIES[family][0]()
    model.eval()
    return model


def _expected_report(family: str, state: dict) -> dict:
    """What the report of each family's official file lists, from the official code's
    layout: the wrapper its releases use, the derived buffers, BatchNorm renames."""
    bn = {k: k.replace("running_mean", "_mean").replace("running_var", "_variance")
          for k in state if k.endswith(("running_mean", "running_var"))}
    return {
        "swin": dict(unwrapped=["model"], passed_over=[], renamed=bn, dropped=sorted(
            [f"layers.{i}.blocks.{j}.attn.relative_position_index" for i in (0, 1)
             for j in (0, 1)] + ["layers.0.blocks.1.attn_mask", "layers.1.blocks.1.attn_mask"])),
        "cswin": dict(unwrapped=["state_dict_ema"], passed_over=["state_dict"], renamed={},
                      dropped=[]),
        "cyclemlp": dict(unwrapped=["model"], passed_over=[], renamed={}, dropped=sorted(
            f"network.{2 * i}.0.attn.sfc_{axis}.offset" for i in range(4) for axis in "hw")),
        "asmlp": dict(unwrapped=["model"], passed_over=[], renamed={}, dropped=[]),
        "hrnet": dict(unwrapped=[], passed_over=[], renamed=bn, dropped=sorted(
            k for k in state if k.endswith("num_batches_tracked"))),
    }[family]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_loads_its_official_file_strictly_as_official_to_miziha(family, tmp_path):
    path = _family_file(family, tmp_path)
    model = _built(family)
    report = load_pretrained(model, path, strict=True)
    state = read_checkpoint(path).state
    expected = _expected_report(family, state)
    assert (report.format, report.source) == ("torch-zip", "official")
    assert report.unwrapped == expected["unwrapped"]
    assert report.passed_over == expected["passed_over"]
    assert sorted(report.dropped) == expected["dropped"]
    assert report.renamed == expected["renamed"]
    assert sorted(report.loaded) == sorted(model.state_dict())
    assert not (report.missing or report.unexpected or report.resized or report.filled
                or report.head_skipped)
    direct = _built(family)
    converted = miziha.weights.official_to_miziha(direct, state)
    direct.set_state_dict(converted)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), converted[name], err_msg=name)
    logits = _logits(model, 0, (2, 3, 32, 32))
    assert np.isfinite(logits).all() and np.abs(logits).max() > 0
    np.testing.assert_array_equal(logits, _logits(direct, 0, (2, 3, 32, 32)))


def test_family_counts_of_the_official_files():
    """The fixtures hold what the official code's state dicts hold: CSWin both weights,
    CycleMLP two offsets a block, HRNet a num_batches_tracked per BatchNorm."""
    cswin = read_checkpoint(_path("cswin_tiny_official.pth"))
    assert len(cswin.state) == len(_built("cswin").state_dict()) == 82
    cycle = read_checkpoint(_path("cyclemlp_tiny_official.pth")).state
    assert sum(k.endswith(".offset") for k in cycle) == 8
    with lzma.open(_path("hrnet_tiny_official.pth.xz")) as packed:
        assert packed.read(2) == b"PK"


def test_cswin_ema_or_plain_weights(tmp_path):
    path = _path("cswin_tiny_official.pth")
    plain = _built("cswin")
    report = load_pretrained(plain, path, ema=False)
    assert report.unwrapped == ["state_dict"] and report.passed_over == ["state_dict_ema"]
    direct = _built("cswin")
    direct.set_state_dict(miziha.weights.official_to_miziha(
        direct, read_checkpoint(path, ema=False).state))
    np.testing.assert_array_equal(_logits(plain, 0, (1, 3, 32, 32)),
                                  _logits(direct, 0, (1, 3, 32, 32)))
    ema = _built("cswin")
    text = str(load_pretrained(ema, path))
    assert "unwrapped     state_dict_ema (passed over: state_dict)" in text
    assert np.abs(_logits(ema, 0, (1, 3, 32, 32)) - _logits(plain, 0, (1, 3, 32, 32))).max() > 1e-3


def test_timm_hrnet_ssld_file_without_head_biases_reads_as_timm_with_them_filled(tmp_path):
    """timm's ``hrnet_w18_ssld`` / ``hrnet_w48_ssld`` (``head_conv_bias=False``) lack the
    head conv biases; detection picks ``timm`` (whose map fills them) over ``official``."""
    state = read_checkpoint(_family_file("hrnet", tmp_path)).state
    biases = ["downsamp_modules.0.0.bias", "downsamp_modules.1.0.bias",
              "downsamp_modules.2.0.bias", "final_layer.0.bias"]
    path = str(tmp_path / "hrnet_ssld.safetensors")
    save_file({k: v for k, v in state.items() if k not in biases}, path)
    model = _built("hrnet")
    report = load_pretrained(model, path)
    assert (report.source, report.filled) == ("timm", biases)
    assert not report.missing and not report.unexpected
    direct = _built("hrnet")
    direct.set_state_dict(miziha.weights.official_to_miziha(
        direct, {k: np.zeros_like(v) if k in biases else v for k, v in state.items()}))
    np.testing.assert_array_equal(_logits(model, 0, (1, 3, 32, 32)),
                                  _logits(direct, 0, (1, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"missing \['downsamp_modules\.0\.0\.bias"):
        load_pretrained(_built("hrnet"), path, source="official")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_failed_strict_load_leaves_every_tensor(family, tmp_path):
    """Another family's file (missing and unexpected keys) and a file whose every tensor
    fits but the stem's (the first checked): every tensor of the model is as before."""
    model = _built(family)
    before = _arrays(model)
    other = "asmlp" if family != "asmlp" else "cyclemlp"
    with pytest.raises(ValueError, match="does not fit|do not fit"):
        load_pretrained(model, _family_file(other, tmp_path))
    state = model.state_dict()
    arrays = {k: v.numpy() for k, v in state.items()}
    first = list(arrays)[0]
    arrays[first] = np.zeros([d + 1 for d in arrays[first].shape], arrays[first].dtype)
    path = str(tmp_path / "last_wrong.pdparams")
    paddle.save(arrays, path)
    with pytest.raises(ValueError, match=re.escape(f"{first}: the model has shape")):
        load_pretrained(model, path)
    for name, value in _arrays(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_truncated_pdparams_and_wrapper_without_tensors(tmp_path):
    model = _built("cswin")
    before = _arrays(model)
    with open(_path("cswin_tiny_paddleclas.pdparams"), "rb") as file:
        data = file.read()
    cut = tmp_path / "cut.pdparams"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated|not a Paddle checkpoint"):
        load_pretrained(model, str(cut))
    empty = str(tmp_path / "empty.pdparams")
    paddle.save({"epoch": 3}, empty)
    with pytest.raises(ValueError, match="no tensors in the checkpoint"):
        load_pretrained(model, empty)
    for name, value in _arrays(model).items():
        np.testing.assert_array_equal(value, before[name])


# ---------------------------------------------------------------------------------------
# CSWin from PaddleClas.

def test_paddleclas_cswin_is_detected_and_gives_paddleclas_logits():
    path = _path("cswin_tiny_paddleclas.pdparams")
    model = _built("cswin")
    report = load_pretrained(model, path)
    assert (report.format, report.source) == ("paddle", "paddleclas")
    assert not (report.missing or report.unexpected or report.dropped or report.filled)
    # every key but the final norm and head is renamed
    assert len(report.renamed) == len(model.state_dict()) - 4
    assert report.renamed["stages.2.blocks.0.attns.1.get_v.weight"] == \
        "stage3.0.attns.1.get_v.weight"
    assert report.renamed["stages.1.merge.conv.weight"] == "merge2.conv.weight"
    reference = _json("cswin_tiny_paddleclas_logits.json")
    logits = _logits(model, 3, (1, 3, 224, 224))
    np.testing.assert_allclose(logits, reference["logits"], rtol=1e-5, atol=1e-5)
    # The direct load: the file's arrays under the mapped names, no layout change.
    direct = _built("cswin")
    direct.set_state_dict({apply_key_map(k, CSWIN_KEY_MAPS["paddleclas"]): v
                           for k, v in read_checkpoint(path).state.items()})
    np.testing.assert_array_equal(logits, _logits(direct, 3, (1, 3, 224, 224)))


def test_cswin_detection_cannot_confuse_paddleclas_with_miziha(tmp_path):
    """A Paddle file is ``miziha`` or ``paddleclas``: PaddleClas's CSWin names fit only
    through its map (4 keys, norm and head, fit unmapped); miziha's own names pass the
    PaddleClas map unchanged (its patterns are anchored at PaddleClas's prefixes), so they
    tie and read as ``miziha``. A PyTorch file is never ``paddleclas``."""
    source = _built("cswin")
    load_pretrained(source, _path("cswin_tiny_paddleclas.pdparams"))
    own = str(tmp_path / "own.pdparams")
    paddle.save(source.state_dict(), own)
    state = read_checkpoint(own).state
    assert all(apply_key_map(k, CSWIN_KEY_MAPS["paddleclas"]) == k for k in state)
    model = _built("cswin")
    assert load_pretrained(model, own).source == "miziha"
    np.testing.assert_array_equal(_logits(model, 0, (1, 3, 32, 32)),
                                  _logits(source, 0, (1, 3, 32, 32)))
    with pytest.raises(ValueError, match=r"missing \['stage1_conv_embed"):
        load_pretrained(_built("cswin"), _path("cswin_tiny_paddleclas.pdparams"),
                        source="miziha")
    with pytest.raises(ValueError, match="this file the torch layout"):
        load_pretrained(_built("cswin"), _path("cswin_tiny_official.pth"), source="paddleclas")
    with pytest.raises(ValueError, match="do not fit|does not fit"):
        load_pretrained(_tiny_swin(), _path("cswin_tiny_paddleclas.pdparams"))


@pytest.mark.parametrize("family, source", [
    ("cswin", "timm"), ("cyclemlp", "timm"), ("cyclemlp", "paddleclas"), ("asmlp", "timm"),
    ("asmlp", "paddleclas")])
def test_sources_without_a_map_are_named(family, source, tmp_path):
    """timm has none of CSWin, CycleMLP, AS-MLP, Pale; PaddleClas none of CycleMLP, AS-MLP,
    Pale (PaddleClas's CSWin and both sources' Swin and HRNet have maps)."""
    path = _path("cswin_tiny_paddleclas.pdparams" if source == "paddleclas"
                 else "swin_tiny_timm.safetensors")
    model = _built(family)
    with pytest.raises(ValueError, match=f"has no key map for '{source}' weights"):
        load_pretrained(model, path, source=source)
    pale = miziha.create_model("pale_tiny", num_classes=3, embed_dim=8, depths=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=f"PaleTransformer has no key map for '{source}'"):
        load_pretrained(pale, path, source=source)


def test_pretrained_false_builds_fresh_and_true_asks_for_a_path():
    assert not hasattr(miziha.create_model("resnet50", pretrained=False), "pretrained_report")
    with pytest.raises(ValueError, match="pretrained=True: miziha downloads no weights"):
        miziha.create_model("resnet50", pretrained=True)


# ---------------------------------------------------------------------------------------
# Hostile files: written by hand (pickle opcodes), none may expand, run, or hang.

def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _ints(values) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def _tensor_pickle(key: str, numel: int, offset: int, size, stride) -> bytes:
    """A protocol-2 pickle of ``{"w": tensor}`` as ``torch.save`` writes it: a
    ``_rebuild_tensor_v2`` of a FloatStorage ``key`` of ``numel`` elements."""
    storage = (b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text(key) + _text("cpu")
               + b"J" + struct.pack("<i", numel) + b"tQ")
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"J" + struct.pack("<i", offset)
              + _ints(size) + _ints(stride) + b"\x89ccollections\nOrderedDict\n)RtR")
    return b"\x80\x02}" + _text("w") + tensor + b"s."


def _torch_zip(path, pickled: bytes, storages=None,
               compression: int = zipfile.ZIP_STORED) -> str:
    """A ``torch.save`` zip layout holding ``pickled`` and float32 ``storages`` (stored with
    ``compression``)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, values in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", np.asarray(values, "<f4").tobytes(),
                             compress_type=compression)
    return str(path)


def test_crafted_tensor_reads_as_torch_saves_it(tmp_path):
    """The hand-written tensor record reads: a transposed view of a 2x3 storage."""
    path = _torch_zip(tmp_path / "t.pth", _tensor_pickle("0", 6, 0, (3, 2), (1, 3)),
                      {"0": np.arange(6)})
    np.testing.assert_array_equal(read_checkpoint(path).state["w"],
                                  np.arange(6, dtype=np.float32).reshape(2, 3).T)


@pytest.mark.parametrize("numel,offset,size,stride,message", [
    (1, 0, (4000, 4000), (0, 0), r"tensor w of size \[4000, 4000\].*overlap"),
    (4, 0, (2, 2), (1, 1), r"tensor w .*overlap"),
    (16, 0, (4, 3), (3, 2), r"tensor w .*overlap"),
    (6, 1, (2, 3), (3, 1), r"tensor w of size \[2, 3\] at offset 1 needs 7 elements"),
    (6, 0, (2, 3), (-3, 1), r"corrupt tensor record w"),
])
def test_strides_that_overlap_or_leave_the_storage_are_refused(tmp_path, numel, offset, size,
                                                              stride, message):
    path = _torch_zip(tmp_path / "bad.pth", _tensor_pickle("0", numel, offset, size, stride),
                      {"0": np.zeros(numel)})
    with pytest.raises(ValueError, match=message):
        read_checkpoint(path)


def test_compressed_records_are_refused(tmp_path):
    """torch.save stores records uncompressed; a deflated one could be a zip bomb (this one
    is 64 MB of zeros in a few kB)."""
    path = _torch_zip(tmp_path / "bomb.pth", _tensor_pickle("0", 4000 * 4000, 0, (4000, 4000),
                                                            (4000, 1)),
                      {"0": np.zeros(4000 * 4000)}, compression=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 100_000
    with pytest.raises(ValueError, match=r"record archive/data/0 is compressed"):
        read_checkpoint(path)


def test_deeply_shared_containers_stay_shared(tmp_path):
    """``L = [L, L]`` nested 40 deep is a 300-byte pickle of 2**40 paths: read as the 40
    shared lists it holds (without memoising it never finishes)."""
    nested: list = []
    for _ in range(40):
        nested = [nested, nested]
    path = _torch_zip(tmp_path / "shared.pth", pickle.dumps({"model": nested}, protocol=2))
    assert os.path.getsize(path) < 1000
    read = readers.read_torch(path)["model"]
    for _ in range(40):
        assert read[0] is read[1]
        read = read[0]
    assert read == []


def test_too_deep_nesting_and_memory_errors_are_value_errors(tmp_path, monkeypatch):
    depth = 100_000  # lists nested 100000 deep: EMPTY_LIST opcodes, then APPENDs
    deep = _torch_zip(tmp_path / "deep.pth", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    with pytest.raises(ValueError, match="is not a checkpoint miziha can read: nested too "
                                         "deeply"):
        read_checkpoint(deep)
    path = _torch_zip(tmp_path / "t.pth", _tensor_pickle("0", 6, 0, (2, 3), (3, 1)),
                      {"0": np.zeros(6)})

    def no_memory(*args):
        raise MemoryError()
    monkeypatch.setattr(readers, "_bytes_to_array", no_memory)
    with pytest.raises(ValueError, match="is not a checkpoint miziha can read: too large"):
        read_checkpoint(path)


def test_legacy_storage_longer_than_the_file_is_refused(tmp_path):
    """A legacy file whose first storage claims 2**60 bytes is refused before any read."""
    with open(_path("views_legacy.pth"), "rb") as file:
        data = file.read()
    with open(_path("views_legacy.pth"), "rb") as file:
        for _ in range(5):  # magic number, protocol, system info, object, storage keys
            readers._unpickle(file, lambda pid: readers._Storage())
        first = file.tell()  # the first storage's element count
    huge = data[:first] + (2 ** 60).to_bytes(8, "little") + data[first + 8:]
    path = tmp_path / "huge.pth"
    path.write_bytes(huge)
    with pytest.raises(ValueError, match="more than the rest of the file"):
        read_checkpoint(str(path))


def test_non_numeric_arrays_are_refused_naming_the_key(tmp_path):
    path = str(tmp_path / "objects.pdparams")
    with open(path, "wb") as file:
        pickle.dump({"w": np.zeros(2, np.float32), "names": np.array(["a", None], object)},
                    file, protocol=4)
    with pytest.raises(ValueError, match=r"names: a weights file holds bool, integer or "
                                         r"float arrays, this one has dtype object"):
        read_checkpoint(path)
