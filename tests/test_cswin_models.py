"""CSWin Transformer networks: official keys, parameter counts and logits; the PaddleClas key
map; the network contract (features, export, frozen stages); any input size; MACs.

Data made once with the official code (microsoft/CSWin-Transformer ``models/cswin.py``,
PyTorch), none of which is imported here:

* ``data/cswin_tiny_224_official_shapes.json``: ``CSWin_64_12211_tiny_224().state_dict()``
  names and shapes, in order.
* ``data/cswin_micro_official_logits.json``: the eval logits of the official
  ``CSWinTransformer(img_size=224, embed_dim=16, depth=[1, 1, 2, 1], split_size=[1, 2, 7, 7],
  num_heads=[2, 2, 4, 4], num_classes=10)`` whose tensors are :func:`_seeded_weights` (in the
  official names and layouts) on the input :func:`_input`.
* ``data/cswin_tiny_224_paddleclas_shapes.json``: ``CSWinTransformer_tiny_224().state_dict()``
  of PaddleClas (``ppcls/arch/backbone/model_zoo/cswin_transformer.py``, Paddle layouts).

The official parameter counts below come from the same official code.
"""

import json
import re
import zlib
from pathlib import Path

import numpy as np
import paddle
import pytest

import miziha
from miziha import CSWinT
from miziha.models.cswin import KEY_MAPS, CSWinStage, CSWinTransformer
from miziha.weights import official_to_miziha
from network_contract import (check_classifier, check_export, check_features, check_frozen_stages,
                              check_official_keys, official_shapes, trainable_parameters)

DATA = Path(__file__).resolve().parent / "data"

#: Trainable parameters of the official models (1000 classes).
OFFICIAL_PARAMETERS = {"cswin_tiny_224": 22_320_552, "cswin_small_224": 34_643_304,
                       "cswin_base_224": 77_382_184, "cswin_base_384": 77_382_184,
                       "cswin_large_224": 173_262_664, "cswin_large_384": 173_262_664}
#: Published GFLOPs (README, multiply-accumulates) and the resolution of each network.
PUBLISHED_GMACS = {"cswin_tiny_224": (4.3, 224), "cswin_small_224": (6.9, 224),
                   "cswin_base_224": (15.0, 224), "cswin_base_384": (47.0, 384)}
#: A small configuration for the contract: every stage kind (1- and 2-wide stripes, 7-wide
#: stripes, a full-attention last stage).
TINY = dict(num_classes=10, embed_dim=16, depths=(1, 1, 2, 1), num_heads=(2, 2, 4, 4),
            split_sizes=(1, 2, 7, 7))


def _full_size(name):
    return pytest.param(name, marks=() if name == "cswin_tiny_224" else pytest.mark.slow)


def _seeded_weights(shapes):
    """Each official tensor drawn from a generator seeded by its name's CRC-32: LayerNorm
    scales ``1 + 0.1 N``, everything else ``0.05 N``."""
    state = {}
    for name, shape in shapes.items():
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        scale = len(shape) == 1 and name.endswith("weight")
        state[name] = (1 + 0.1 * rng.standard_normal(shape) if scale
                       else 0.05 * rng.standard_normal(shape)).astype("float32")
    return state


def _input(shape=(1, 3, 224, 224), seed=1):
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def _official_keys_of(model):
    """The model's state dict in official names and PyTorch layouts (Linear ``[out, in]``)."""
    linear = {f"{n}.weight" for n, layer in model.named_sublayers()
              if isinstance(layer, paddle.nn.Linear)}
    return {k: list(v.shape)[::-1] if k in linear else list(v.shape)
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", [_full_size(n) for n in OFFICIAL_PARAMETERS])
def test_every_network_builds_with_the_official_parameter_count(name):
    model = miziha.create_model(name)
    assert trainable_parameters(model) == OFFICIAL_PARAMETERS[name]
    if name == "cswin_tiny_224":
        check_official_keys(model, official_shapes(name))


@pytest.mark.parametrize("name", ["cswin_small_224", "cswin_base_384", "cswin_large_224"])
@pytest.mark.slow
def test_every_stage_layout_is_the_official_one(name):
    """The other configurations follow the official builder's key pattern: stage 4 has one
    ``attns.0.get_v`` on all channels, stages 1-3 two on half."""
    shapes = _official_keys_of(miziha.create_model(name))
    last = max(int(k.split(".")[1]) for k in shapes if k.startswith("stage4."))
    assert f"stage4.{last}.attns.1.get_v.weight" not in shapes
    channels = shapes["norm.weight"][0]
    assert shapes[f"stage4.{last}.attns.0.get_v.weight"] == [channels, 1, 3, 3]
    assert shapes["stage3.0.attns.1.get_v.weight"] == [channels // 4, 1, 3, 3]


def test_logits_equal_the_official_code():
    data = json.loads((DATA / "cswin_micro_official_logits.json").read_text())
    model = CSWinTransformer(**data["config"])
    model.set_state_dict(official_to_miziha(model, _seeded_weights(_official_keys_of(model))))
    model.eval()
    logits = model(_input()).numpy()[0]
    expected = np.array(data["logits"])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_paddleclas_keys_map_one_to_one_onto_the_network():
    paddleclas = json.loads((DATA / "cswin_tiny_224_paddleclas_shapes.json").read_text())
    ours = {k: list(v.shape) for k, v in miziha.create_model("cswin_tiny_224").state_dict().items()}
    mapped = {}
    for key, shape in paddleclas.items():
        for pattern, replacement in KEY_MAPS["paddleclas"]:
            key = re.sub(pattern, replacement, key)
        assert key in ours, key
        assert ours[key] == shape, key
        mapped[key] = shape
    assert mapped.keys() == ours.keys()


def test_network_contract_on_a_small_configuration(tmp_path):
    model = CSWinTransformer(**TINY)
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 64, 128]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    check_features(model, _input((2, 3, 70, 90)))
    check_export(model, tmp_path / "cswin", [(1, 64, 64), (2, 97, 75)])
    check_classifier(lambda **kw: CSWinTransformer(**{**TINY, **kw}), _input((2, 3, 64, 64)))
    for frozen, trained in ((0, ["stage1."]),
                            (2, ["stage3.", "merge3.", "stage4.", "norm.", "head."])):
        stages = [f"stage{i}." for i in range(1, frozen + 1)]
        merges = [f"merge{i}." for i in range(1, frozen + 1)]
        check_frozen_stages(lambda: CSWinTransformer(frozen_stages=frozen, **TINY),
                            ["stage1_conv_embed."] + stages + merges, trained,
                            _input((1, 3, 64, 64)))


def test_features_only_gives_the_chosen_stages():
    backbone = miziha.create_model("cswin_tiny_224", features_only=True, out_indices=(1, 3),
                                   embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
                                   num_classes=10)
    maps = backbone(_input((1, 3, 64, 96)))
    assert [m.shape for m in maps] == [[1, 32, 8, 12], [1, 128, 2, 3]]
    assert [f["module"] for f in backbone.feature_info] == ["stage2", "stage4"]


@pytest.mark.parametrize("size", [(224, 224), (97, 75)])
def test_forward_and_backward_at_any_size(size):
    model = CSWinTransformer(droppath=0.1, **TINY)
    model.train()
    x = paddle.to_tensor(_input((2, 3) + size).numpy(), stop_gradient=False)
    logits = model(x)
    assert logits.shape == [2, 10]
    logits.sum().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None and np.isfinite(param.grad.numpy()).all(), name


def test_a_stage_is_the_mixer_a_user_drops_into_a_resnet():
    """At an odd size (padded stripes), a network stage equals ``CSWinT`` with its weights."""
    stage = CSWinStage(16, num_heads=4, split_size=3, depth=2)
    mixer = CSWinT(16, 16, num_heads=4, split_size=3, depth=2, data_format="NHWC")
    mixer.set_state_dict({f"blocks.{k}": v for k, v in stage.state_dict().items()})
    assert {k.split(".")[0] for k in stage.state_dict()} == {"0", "1"}
    x = _input((2, 11, 9, 16))
    np.testing.assert_array_equal(stage(x).numpy(), mixer(x).numpy())


def test_recompute_gives_the_same_gradients():
    grads = []
    for use_recompute in (False, True):
        paddle.seed(3)
        model = CSWinTransformer(use_recompute=use_recompute, **TINY)
        model.train()
        model(_input((1, 3, 64, 64))).sum().backward()
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grads[1][name], grad, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("name", [_full_size(n) for n in PUBLISHED_GMACS])
def test_macs_are_within_two_percent_of_the_published_flops(name):
    published, size = PUBLISHED_GMACS[name]
    macs = miziha.flops(miziha.create_model(name), [3, size, size]).total_macs / 1e9
    assert abs(macs - published) <= 0.02 * published, macs


def test_bad_configurations_and_inputs_are_named():
    with pytest.raises(ValueError, match="one entry per stage"):
        CSWinTransformer(depths=(1, 1), num_heads=(2, 2, 2), split_sizes=(1, 2))
    with pytest.raises(ValueError, match="frozen_stages"):
        CSWinTransformer(frozen_stages=5, **TINY)
    with pytest.raises(TypeError, match="unknown option"):
        miziha.create_model("cswin_tiny_224", img_size=224)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        CSWinTransformer(**TINY)(_input((1, 1, 64, 64)))
