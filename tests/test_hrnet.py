"""HRNet: official checkpoints load (names and shapes from the official code), shapes of both
configs and heads at any size, the features API, mixer variants, registry names, errors.

``data/hrnet_w18_small_v2_official_shapes.json`` lists the state dict (names and shapes, in
order) of the official ``cls_hrnet.HighResolutionNet`` built with the
``cls_hrnet_w18_small_v2`` experiment config, dumped once with PyTorch; the parameter counts
below come from the same official code."""

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

import miziha
from miziha import CycleMLPT, SwinT
from miziha.models import HRNet
from miziha.weights import official_to_miziha

OFFICIAL_SHAPES = Path(__file__).resolve().parent / "data" / \
    "hrnet_w18_small_v2_official_shapes.json"
#: Trainable parameters of the official models with 1000 classes.
OFFICIAL_PARAMETERS = {"w18_small_v2": 15_597_464, "w18": 21_299_004}


def _official_state(num_classes=1000):
    """A random state dict in the official PyTorch names and layouts (Linear ``[out, in]``,
    BatchNorm ``running_mean``/``running_var``/``num_batches_tracked``)."""
    shapes = json.loads(OFFICIAL_SHAPES.read_text())
    shapes["classifier.weight"], shapes["classifier.bias"] = [num_classes, 2048], [num_classes]
    rng = np.random.default_rng(0)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = np.array(7, dtype=np.int64)
        elif name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 1.5, shape).astype("float32")
        elif name.endswith(".weight") and len(shape) == 1:  # BatchNorm scales: keep it tame
            state[name] = rng.uniform(0.1, 0.4, shape).astype("float32")
        else:
            state[name] = rng.normal(0, 0.1, shape).astype("float32")
    return state


def _trainable(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


@pytest.mark.parametrize("config", ["w18_small_v2", "w18"])
def test_parameter_count_is_the_official_one(config):
    assert _trainable(HRNet(config=config)) == OFFICIAL_PARAMETERS[config]


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


@pytest.mark.parametrize("config, size", [("w18_small_v2", (224, 224)),
                                          ("w18_small_v2", (100, 150)),
                                          ("w18", (64, 64)), ("w18", (37, 45))])
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


def test_mixer_segmentation_network_and_options():
    model = miziha.create_model("swin_hrnet_w18_small_v2_seg", num_classes=3, window_size=4,
                                mlp_ratio=2.0)
    swint = model.stage4[0].branches[3][0].conv1
    assert (swint.window_size, swint.num_heads) == ((4, 4), 4)  # 144 channels: ~32 a head
    assert swint.blocks[0].mlp.fc1.weight.shape == [144, 288]
    out = model(paddle.randn([1, 3, 30, 20]))
    assert out.shape == [1, 3, 30, 20]
    out.mean().backward()


def test_registry_names_and_tasks():
    names = miziha.list_models("*hrnet*")
    bases = ["hrnet_w18_small_v2", "hrnet_w18"]
    expected = {prefix + base + suffix for prefix in ["", *(f"{m}_" for m in miziha.MIXERS)]
                for base in bases for suffix in ("", "_seg")}
    assert set(names) == expected
    assert set(miziha.list_models("*hrnet*", task="segmentation")) == \
        {n for n in expected if n.endswith("_seg")}
    assert miziha.create_model("hrnet_w18_seg").num_classes == 2
    assert miziha.create_model("pale_hrnet_w18_small_v2").mixer == "pale"
    with pytest.raises(TypeError, match="multiple values for keyword argument 'head'"):
        miziha.create_model("hrnet_w18_small_v2", head="segmentation")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(config="w32"), ValueError, r"config must be one of \['w18', 'w18_small_v2'\] or an "
                                     r"HRNetConfig, got 'w32'"),
    (dict(head="detection"), ValueError, r"head must be one of \('classification', "
                                         r"'segmentation'\), got 'detection'"),
    (dict(mixer="transformer"), ValueError, "mixer must be one of .*, got 'transformer'"),
    (dict(window_size=7), ValueError, r"mixer options need a mixer .*\['window_size'\]"),
    (dict(num_classes=0), ValueError, "num_classes must be a positive int, got 0"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        HRNet(**kwargs)


def test_bad_input_and_head_arguments():
    model = HRNet(num_classes=3, config="w18_small_v2")
    with pytest.raises(ValueError, match=r"HRNet expects input \[B, 3, H, W\], got shape "
                                         r"\[1, 1, 32, 32\]"):
        model(paddle.randn([1, 1, 32, 32]))
    with pytest.raises(ValueError, match="output_size goes with the segmentation head"):
        model.forward_head(paddle.randn([1, 2048, 1, 1]), output_size=(32, 32))


def test_segmentation_network_exports_with_dynamic_sizes(tmp_path):
    from miziha.export import save_for_inference
    model = miziha.create_model("hrnet_w18_small_v2_seg", num_classes=3)
    model.eval()
    loaded = paddle.jit.load(save_for_inference(model, tmp_path / "hrnet", 3))
    for size in [(64, 64), (45, 61)]:  # sides rounded up at every stride: crops are dynamic
        x = paddle.randn([1, 3, *size])
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
