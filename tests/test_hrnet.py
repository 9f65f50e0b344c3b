"""HRNet: every official config (names, parameter counts, MACs), outputs equal to the official
classification and segmentation code, the network contract (official keys, features, export,
frozen stages), shapes at any size, mixer variants, registry names and options, errors.

Data made once with the official PyTorch code (HRNet/HRNet-Image-Classification
``lib/models/cls_hrnet.py`` with ``experiments/*.yaml``; HRNet/HRNet-Semantic-Segmentation
``lib/models/seg_hrnet.py``, ``ALIGN_CORNERS: False``, ``FINAL_CONV_KERNEL: 1``):

- ``data/hrnet_w18_small_official_shapes.json`` and ``..._w18_small_v2_...``: the
  ``state_dict()`` names and shapes, in order, of ``cls_hrnet.HighResolutionNet`` built with
  the ``cls_hrnet_w18_small_v1`` and ``_w18_small_v2`` configs (the other widths share
  w18_small_v2's structure: W18 and up differ in counts and widths only);
- ``data/hrnet_tiny_official_outputs.json``: the official outputs of a tiny config
  (:data:`TINY`: stage1 2 Bottlenecks of width 8, branches 4/8/16/32, 1/2/1 modules of
  1/2/1 blocks): ``cls_hrnet`` logits for ``default_rng(1).standard_normal([2, 3, 64, 96])``
  and ``seg_hrnet`` logits (3 classes, at stride 4) for ``default_rng(2).standard_normal([1,
  3, 36, 52])``, every weight drawn as :func:`_seeded_official_state` draws it;
- :data:`OFFICIAL_PARAMETERS`: trainable parameters of ``cls_hrnet`` (1000 classes) and
  ``seg_hrnet`` (2 classes, the registry's default) for every config.
"""

import json
import zlib

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import miziha
from miziha import CycleMLPT, SwinT
from miziha.models import HRNet, HRNetConfig
from miziha.models.hrnet import HRNET_CONFIGS, MIXER_CONFIGS
from miziha.models.registry import model_options
from miziha.weights import official_to_miziha
from network_contract import (DATA, check_classifier, check_export, check_features,
                              check_frozen_stages, check_official_keys, official_shapes,
                              random_official_state, trainable_parameters)

#: Trainable parameters of the official classification (1000 classes) and segmentation
#: (2 classes) networks.
OFFICIAL_PARAMETERS = {
    "w18_small": (13_187_464, 1_536_722), "w18_small_v2": (15_597_464, 3_934_972),
    "w18": (21_299_004, 9_636_512), "w30": (37_712_220, 26_017_028),
    "w32": (41_232_680, 29_538_338), "w40": (57_557_160, 45_884_218),
    "w44": (67_064_984, 55_413_542), "w48": (77_469_864, 65_847_122),
    "w64": (128_059_944, 116_624_002)}
#: The README's GFLOPs at 224 x 224: conv + linear MACs / 1024**3 (its ``get_model_summary``).
README_GFLOPS = {"w18_small": 1.49, "w18_small_v2": 2.42, "w18": 3.99, "w30": 7.55,
                 "w32": 8.31, "w40": 11.8, "w44": 13.9, "w48": 16.1, "w64": 26.9}
#: Configs quick enough to build and count in every run; the others are marked slow.
FAST = ("w18_small", "w18_small_v2")
TINY = HRNetConfig(2, (1, 2, 1), (1, 2, 1), (4, 8, 16, 32), layer1_width=8)


def _by_speed(configs):
    return [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in configs]


def _official_state(num_classes=1000):
    """Random w18_small_v2 weights in the official PyTorch names and layouts."""
    shapes = official_shapes("hrnet_w18_small_v2")
    shapes["classifier.weight"], shapes["classifier.bias"] = [num_classes, 2048], [num_classes]
    return random_official_state(shapes)


def _seeded_official_state(model):
    """Official names -> arrays for ``model``: each tensor drawn from
    ``default_rng(crc32(official name))`` (conv/linear ``N(0, 2 / fan_in)``, BN scale
    ``U(0.5, 1)``, biases and means ``N(0, 0.1)``, variances ``U(0.5, 1.5)``), as the
    fixture's official weights were."""
    linear = {f"{n}.weight" for n, layer in model.named_sublayers()
              if isinstance(layer, nn.Linear)}
    renamed = {"_mean": "running_mean", "_variance": "running_var"}
    state = {}
    for name, tensor in model.state_dict().items():
        prefix, _, leaf = name.rpartition(".")
        leaf = renamed.get(leaf, leaf)
        shape = tuple(tensor.shape[::-1] if name in linear else tensor.shape)
        rng = np.random.default_rng(zlib.crc32(f"{prefix}.{leaf}".encode()))
        if leaf == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("running_mean", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:
            value = rng.uniform(0.5, 1.0, shape)
        else:
            value = rng.normal(0.0, (2.0 / np.prod(shape[1:])) ** 0.5, shape)
        state[f"{prefix}.{leaf}"] = value.astype("float32")
    return state


@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_outputs_equal_the_official_code(head):
    """Classification fuses by nearest upsampling (cls_hrnet.py), segmentation by bilinear
    resizing (seg_hrnet.py), at a size that is not a multiple of 32 there."""
    data = json.loads((DATA / "hrnet_tiny_official_outputs.json").read_text())
    key, seed, classes = ("cls", 1, 1000) if head == "classification" else \
        ("seg", 2, data["seg_classes"])
    model = HRNet(num_classes=classes, config=TINY, head=head)
    model.set_state_dict(official_to_miziha(model, _seeded_official_state(model)))
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(seed).standard_normal(data[f"{key}_input"])
                         .astype("float32"))
    out = model.forward_head(model.forward_features(x)).numpy()
    expected = np.asarray(data[f"{key}_logits"], dtype="float32")
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_network_contract_keys_and_features():
    check_official_keys(HRNet(config="w18_small"), official_shapes("hrnet_w18_small"))
    check_official_keys(HRNet(config="w18_small_v2"), official_shapes("hrnet_w18_small_v2"))
    # The segmentation head's forward is forward_head(forward_features(x), output_size=(H,
    # W)): test_segmentation_features_are_the_branches_and_the_head_upsamples.
    check_features(HRNet(num_classes=3, config=TINY), paddle.randn([2, 3, 45, 61]))
    check_classifier(lambda **kw: HRNet(config=TINY, **kw), paddle.randn([2, 3, 32, 32]))


def test_segmentation_reset_classifier_replaces_the_last_conv():
    model = HRNet(num_classes=3, config=TINY, head="segmentation")
    model.eval()
    x = paddle.randn([1, 3, 32, 48])
    maps = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(5)
    conv = model.get_classifier()
    assert conv is model.last_layer[3] and conv.weight.shape == [5, model.num_features, 1, 1]
    assert not conv.training and model.num_classes == 5
    np.testing.assert_allclose(model(x).numpy(), F.interpolate(
        conv(maps), size=[32, 48], mode="bilinear", align_corners=False).numpy(),
        rtol=1e-5, atol=1e-5)
    assert sorted(n for n in model.state_dict() if n.startswith("last_layer.3.")) == [
        "last_layer.3.bias", "last_layer.3.weight"]
    with pytest.raises(ValueError, match="the segmentation head needs num_classes >= 1, got 0"):
        model.reset_classifier(0)
    assert model.num_classes == 5


@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_export_with_dynamic_sizes(head, tmp_path):
    """64 x 96: a multiple of 32, as the official code needs; 45 x 61: any other size (sides
    rounded up at every stride, crops and resizes follow the input)."""
    check_export(HRNet(num_classes=3, config=TINY, head=head), tmp_path / head,
                 [(1, 64, 96), (2, 45, 61)])


def _stage_prefixes(frozen_stages):
    """(frozen, trained) parameter prefixes of ``frozen_stages``: stage 0 is the stem, 1
    ``layer1``, 2..4 ``transition{k-1}`` + ``stage{k}``."""
    stages = [("conv1", "bn1", "conv2", "bn2"), ("layer1",)] + \
        [(f"transition{k - 1}", f"stage{k}") for k in (2, 3, 4)]
    frozen = [p for stage in stages[:frozen_stages + 1] for p in stage]
    trained = [p for stage in stages[frozen_stages + 1:] for p in stage]
    return frozen, trained


@pytest.mark.parametrize("frozen_stages, head, mixer", [
    (0, "classification", None), (2, "segmentation", None), (4, "classification", None),
    (3, "classification", "swin")])
def test_frozen_stages_stop_gradients_and_keep_batchnorm_statistics(frozen_stages, head, mixer):
    frozen, trained = _stage_prefixes(frozen_stages)
    head_prefixes = ("incre_modules", "downsamp_modules", "final_layer", "classifier") \
        if head == "classification" else ("last_layer",)
    options = dict(mixer=mixer, window_size=2) if mixer else {}
    check_frozen_stages(lambda: HRNet(num_classes=3, config=TINY, head=head,
                                      frozen_stages=frozen_stages, **options),
                        frozen, trained + list(head_prefixes), paddle.randn([2, 3, 32, 48]))


def test_no_frozen_stages_by_default_and_bad_values():
    for frozen_stages in (-1, None):
        options = {} if frozen_stages is None else dict(frozen_stages=frozen_stages)
        model = miziha.create_model("hrnet_w18_small", **options)
        assert trainable_parameters(model) == OFFICIAL_PARAMETERS["w18_small"][0]
    with pytest.raises(ValueError, match=r"frozen_stages must be -1 \(none\) .. 4 .*got 5"):
        HRNet(config=TINY, frozen_stages=5)
    with pytest.raises(TypeError, match="frozen_stages must be an int, got '1'"):
        HRNet(config=TINY, frozen_stages="1")


@pytest.mark.parametrize("config", _by_speed(OFFICIAL_PARAMETERS))
def test_every_registered_width_builds_with_the_official_parameter_count(config):
    for suffix, count in zip(("", "_seg"), OFFICIAL_PARAMETERS[config]):
        assert trainable_parameters(miziha.create_model(f"hrnet_{config}{suffix}")) == count


@pytest.mark.parametrize("config", ["w18_small"] + [
    pytest.param(c, marks=pytest.mark.slow) for c in README_GFLOPS if c != "w18_small"])
def test_macs_match_the_readme_within_two_percent(config):
    gmacs = miziha.flops(HRNet(config=config), [3, 224, 224]).total_macs / 1024 ** 3
    assert abs(gmacs / README_GFLOPS[config] - 1) < 0.02, gmacs


def test_configs_are_the_official_experiments():
    assert set(HRNET_CONFIGS) == set(OFFICIAL_PARAMETERS)
    assert HRNET_CONFIGS["w18_small"] == HRNetConfig(1, (1, 1, 1), (2, 2, 2),
                                                     (16, 32, 64, 128), 32)
    assert HRNET_CONFIGS["w48"] == HRNetConfig(4, (1, 4, 3), (4, 4, 4), (48, 96, 192, 384), 64)


def test_official_checkpoint_loads_and_gives_the_same_outputs_as_direct_loading():
    official = _official_state(num_classes=10)
    model = HRNet(num_classes=10)
    model.set_state_dict(official_to_miziha(model, official))
    model.eval()
    # The same weights set by hand, name by name: Paddle's BatchNorm statistics are
    # _mean/_variance, its Linear weights [in, out].
    direct = HRNet(num_classes=10)
    renamed = {"_mean": "running_mean", "_variance": "running_var"}
    for name, tensor in direct.state_dict().items():
        prefix, _, leaf = name.rpartition(".")
        value = official[f"{prefix}.{renamed.get(leaf, leaf)}"]
        tensor.set_value(value.T if name == "classifier.weight" else value)
    direct.eval()
    np.testing.assert_array_equal(model.classifier.weight.numpy(),
                                  official["classifier.weight"].T)
    np.testing.assert_array_equal(model.stage4[1].fuse_layers[3][0][2][1]._variance.numpy(),
                                  official["stage4.1.fuse_layers.3.0.2.1.running_var"])
    x = paddle.randn([2, 3, 64, 64])
    np.testing.assert_array_equal(model(x).numpy(), direct(x).numpy())


def test_converter_names_what_does_not_fit():
    model = HRNet(num_classes=10)
    official = _official_state(num_classes=10)
    del official["layer1.0.bn2.running_mean"]
    official["head.weight"] = np.zeros([3], "float32")
    with pytest.raises(ValueError, match=r"missing \['layer1.0.bn2._mean'\] \(1\), "
                                         r"unexpected \['head.weight'\] \(1\)"):
        official_to_miziha(model, official)
    with pytest.raises(ValueError, match=r"classifier.weight: the model has shape "
                                         r"\[2048, 10\], the state dict \[2048, 1000\]"):
        official_to_miziha(model, _official_state(num_classes=1000))


@pytest.mark.parametrize("config, size", [("w18_small", (224, 224)),
                                          ("w18_small_v2", (100, 150)),
                                          ("w18", (64, 64)), (TINY, (37, 45))])
def test_shapes_of_both_heads_at_any_size(config, size):
    x = paddle.randn([1, 3, *size])
    for head, expected in [("classification", [1, 7]), ("segmentation", [1, 7, *size])]:
        model = HRNet(num_classes=7, config=config, head=head)
        model.eval()
        assert model(x).shape == expected
        assert [list(m.shape[2:]) for m in model.forward_branches(x)] == \
            [[-(-size[0] // 2 ** i), -(-size[1] // 2 ** i)] for i in (2, 3, 4, 5)]


def test_classification_features_are_the_incre_modules_outputs():
    paddle.seed(1)
    classifier = miziha.create_model("hrnet_w18_small_v2", num_classes=5)
    classifier.eval()
    info = classifier.feature_info
    assert [(e["num_chs"], e["reduction"], e["module"]) for e in info] == [
        (128, 4, "incre_modules.0"), (256, 8, "incre_modules.1"),
        (512, 16, "incre_modules.2"), (1024, 32, "incre_modules.3")]
    backbone = miziha.create_model("hrnet_w18_small_v2", num_classes=5, features_only=True,
                                   out_indices=(0, 2, -1))
    backbone.model.set_state_dict(classifier.state_dict())
    backbone.eval()
    seen = {}
    modules = dict(classifier.named_sublayers())
    handles = [modules[name].register_forward_post_hook(
        lambda layer, inputs, out, key=name: seen.setdefault(key, out))
        for name in [e["module"] for e in info] + ["final_layer"]]
    x = paddle.randn([1, 3, 100, 150])
    features = classifier.forward_features(x)
    for handle in handles:
        handle.remove()
    maps = backbone(x)
    assert [list(m.shape) for m in maps] == [[1, 128, 25, 38], [1, 512, 7, 10], [1, 1024, 4, 5]]
    for i, feature in zip((0, 2, 3), maps):
        np.testing.assert_allclose(feature.numpy(), seen[f"incre_modules.{i}"].numpy(),
                                   rtol=1e-5, atol=1e-5)
    assert features.shape == [1, 2048, 4, 5]
    np.testing.assert_array_equal(features.numpy(), seen["final_layer"].numpy())
    np.testing.assert_allclose(classifier.forward_head(features, pre_logits=True).numpy(),
                               features.mean(axis=[2, 3]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier.forward_head(features).numpy(),
                               classifier(x).numpy(), rtol=1e-5, atol=1e-6)


def test_segmentation_features_are_the_branches_and_the_head_upsamples():
    model = miziha.create_model("hrnet_w18_small_v2_seg", num_classes=3)
    model.eval()
    assert [(e["num_chs"], e["reduction"], e["module"]) for e in model.feature_info] == [
        (18, 4, "stage4"), (36, 8, "stage4"), (72, 16, "stage4"), (144, 32, "stage4")]
    seen = []
    handle = model.stage4.register_forward_post_hook(lambda layer, inputs, out: seen.append(out))
    x = paddle.randn([1, 3, 45, 61])
    maps = model.forward_intermediates(x)
    handle.remove()
    assert [list(m.shape) for m in maps] == [[1, 18, 12, 16], [1, 36, 6, 8], [1, 72, 3, 4],
                                             [1, 144, 2, 2]]
    for feature, branch in zip(maps, seen[0]):
        np.testing.assert_array_equal(feature.numpy(), branch.numpy())
    features = model.forward_features(x)
    assert features.shape == [1, 270, 12, 16]
    np.testing.assert_array_equal(features[:, :18].numpy(), maps[0].numpy())
    assert model.forward_head(features).shape == [1, 3, 12, 16]
    assert model.forward_head(features, pre_logits=True).shape == [1, 270, 12, 16]
    np.testing.assert_allclose(model.forward_head(features, output_size=(45, 61)).numpy(),
                               model(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mixer, layer_class", [("swin", SwinT), ("cyclemlp", CycleMLPT)])
def test_a_mixer_replaces_exactly_the_branch_convs(mixer, layer_class):
    plain = HRNet(num_classes=4)
    model = miziha.create_model(f"{mixer}_hrnet_w18_small_v2", num_classes=4)
    mixers = {n: l for n, l in model.named_sublayers() if isinstance(l, layer_class)}
    branch_convs = [n for n in dict(plain.named_sublayers())
                    if ".branches." in n and n.endswith((".conv1", ".conv2"))]
    assert sorted(mixers) == sorted(branch_convs) and len(mixers) == 2 * (4 + 18 + 16)
    # Everything else keeps the official names and shapes.
    other = {k: v.shape for k, v in plain.state_dict().items() if ".branches." not in k}
    assert {k: v.shape for k, v in model.state_dict().items() if ".branches." not in k} == other
    assert not [k for k in model.state_dict() if ".branches." in k and ".bn" in k]
    out = model(paddle.randn([2, 3, 32, 48]))
    assert out.shape == [2, 4]
    out.mean().backward()
    assert model.stage4[1].branches[3][1].conv2.blocks[0].norm1.weight.grad is not None


def _parse(name):
    """``<mixer>_hrnet_<config>[_seg]`` -> (mixer, config, head)."""
    mixer, _, rest = name.partition("_hrnet_")
    if rest.endswith("_seg"):
        return mixer, rest[:-len("_seg")], "segmentation"
    return mixer, rest, "classification"


@pytest.mark.parametrize("name", [
    n if _parse(n)[1] == "w18_small" else pytest.param(n, marks=pytest.mark.slow)
    for n in miziha.list_models("*_hrnet_*")])
def test_every_mixer_variant_builds_around_the_official_layers(name):
    mixer, config, head = _parse(name)
    model = miziha.create_model(name)
    plain = HRNet(num_classes=model.num_classes, config=config, head=head)
    assert (model.mixer, model.head_type, model.config) == (mixer, head, plain.config)
    other = {k: v.shape for k, v in plain.state_dict().items() if ".branches." not in k}
    assert {k: v.shape for k, v in model.state_dict().items() if ".branches." not in k} == other
    assert isinstance(model.stage4[0].branches[3][0].conv1, miziha.MIXERS[mixer])


def test_mixer_segmentation_network_and_options():
    model = miziha.create_model("swin_hrnet_w18_small_v2_seg", num_classes=3, window_size=4,
                                mlp_ratio=2.0, use_recompute=True)
    swint = model.stage4[0].branches[3][0].conv1
    assert (swint.window_size, swint.num_heads, swint.use_recompute) == ((4, 4), 4, True)
    assert swint.blocks[0].mlp.fc1.weight.shape == [144, 288]
    model.train()
    out = model(paddle.randn([1, 3, 30, 20]))
    assert out.shape == [1, 3, 30, 20]
    out.mean().backward()
    assert swint.blocks[0].mlp.fc1.weight.grad is not None


def test_registry_names_options_and_tasks():
    names = miziha.list_models("*hrnet*")
    plain = {f"hrnet_{config}{suffix}" for config in OFFICIAL_PARAMETERS
             for suffix in ("", "_seg")}
    mixed = {f"{m}_hrnet_{config}{suffix}" for m in miziha.MIXERS for config in MIXER_CONFIGS
             for suffix in ("", "_seg")}
    assert MIXER_CONFIGS == ("w18_small", "w18_small_v2", "w18")
    assert set(names) == plain | mixed
    assert set(miziha.list_models("*hrnet*", task="segmentation")) == \
        {n for n in names if n.endswith("_seg")}
    assert miziha.create_model("hrnet_w18_seg").num_classes == 2
    assert miziha.create_model("pale_hrnet_w18_small_v2").mixer == "pale"
    assert model_options("hrnet_w18") == ["frozen_stages", "in_channels", "num_classes"]
    assert {"droppath", "window_size", "use_recompute", "frozen_stages"} <= \
        set(model_options("swin_hrnet_w18"))
    for option in ("head", "use_recompute", "droppath"):
        with pytest.raises(TypeError, match=f"hrnet_w18 got unknown option\\(s\\) '{option}'; "
                                            f"it accepts frozen_stages, in_channels, "
                                            f"num_classes"):
            miziha.create_model("hrnet_w18", **{option: True})


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(config="w31"), ValueError, r"config must be one of \['w18', 'w18_small', "
                                     r"'w18_small_v2', 'w30', .*'w64'\] or an HRNetConfig, "
                                     r"got 'w31'"),
    (dict(head="detection"), ValueError, r"head must be one of \('classification', "
                                         r"'segmentation'\), got 'detection'"),
    (dict(mixer="transformer"), ValueError, "mixer must be one of .*, got 'transformer'"),
    (dict(window_size=7), ValueError, r"mixer options need a mixer .*\['window_size'\]"),
    (dict(num_classes=-2), ValueError, r"num_classes must be 0 \(no classifier\) or more, got -2"),
    (dict(num_classes=0, head="segmentation"), ValueError,
     "the segmentation head needs num_classes >= 1, got 0"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        HRNet(**kwargs)


def test_bad_input_and_head_arguments():
    model = HRNet(num_classes=3, config=TINY)
    with pytest.raises(ValueError, match=r"HRNet expects input \[B, 3, H, W\], got shape "
                                         r"\[1, 1, 32, 32\]"):
        model(paddle.randn([1, 1, 32, 32]))
    with pytest.raises(ValueError, match="output_size goes with the segmentation head"):
        model.forward_head(paddle.randn([1, 2048, 1, 1]), output_size=(32, 32))
