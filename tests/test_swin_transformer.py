"""SwinTransformer and the official Swin V1 networks: any input size, equivalence with the
reference, official sizes (parameters, MACs, stochastic depth, unshifted last stage), official
checkpoint names, the network contract (features, export, frozen stages), errors.

``tests/data/swin_tiny_patch4_window7_224_official_shapes.json`` was dumped once from the
official code (microsoft/Swin-Transformer, models/swin_transformer.py, Swin-T config:
``{name: list(t.shape) for name, t in model.state_dict().items()}``); the parameter counts
and MACs below are the official ones (``sum(p.numel())`` and the paper's FLOPs).
"""

import inspect
import re

import numpy as np
import paddle
import pytest

import miziha
from miziha.models import SwinTransformer, swin_tiny_patch4_window7_224 as swin_tiny
from miziha.models.swin import KEY_MAPS
from miziha.mixers.swin import SwinT
from miziha.weights import official_to_miziha
from conftest import randomize, state_arrays
from network_contract import (DATA, check_classifier, check_export, check_features,
                              check_frozen_stages, check_official_keys, official_shapes,
                              trainable_parameters)
from reference import swin_transformer as reference_swin_transformer

TINY = dict(embed_dim=8, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=3, patch_size=2)


def test_swin_tiny_at_224_and_non_square_sizes():
    model = swin_tiny(num_classes=7)
    model.eval()
    assert model(paddle.randn([1, 3, 224, 224])).shape == [1, 7]
    assert model(paddle.randn([1, 3, 150, 97])).shape == [1, 7]  # not multiples of 4 or 32
    assert [layer.downsample is not None for layer in model.layers] == [True] * 3 + [False]
    assert [layer.num_heads for layer in model.layers] == [3, 6, 12, 24]
    assert [layer.depth for layer in model.layers] == [2, 2, 6, 2]


#: name -> (input side, official trainable parameters, paper GMACs, official drop_path).
OFFICIAL = {
    "swin_tiny_patch4_window7_224": (224, 28_288_354, 4.5, 0.2),
    "swin_small_patch4_window7_224": (224, 49_606_258, 8.7, 0.3),
    "swin_base_patch4_window7_224": (224, 87_768_224, 15.4, 0.5),
    "swin_base_patch4_window12_384": (384, 87_903_584, 47.1, 0.5),
    "swin_large_patch4_window7_224": (224, 196_532_476, 34.5, 0.2),
    "swin_large_patch4_window12_384": (384, 196_735_516, 103.9, 0.2),
}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name.startswith("swin_tiny") else pytest.mark.slow)
    for name in OFFICIAL])
def test_official_networks_have_the_official_size_and_macs(name):
    side, params, gmacs, _ = OFFICIAL[name]
    model = miziha.create_model(name)
    assert trainable_parameters(model) == params
    report = miziha.flops(model, [3, side, side])
    assert report.total_params == params
    assert abs(report.total_macs / (gmacs * 1e9) - 1) < 0.02


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_stochastic_depth_is_the_default(name):
    assert name in miziha.list_models()
    default = inspect.signature(miziha.models.MODELS[name]).parameters["droppath"].default
    assert default == OFFICIAL[name][3]


@pytest.mark.parametrize("window, last_stage", [(7, 7), (12, 12)])  # 224 / w7, 384 / w12
def test_a_stage_no_larger_than_its_window_is_not_shifted(window, last_stage):
    stage = SwinT(32, 32, num_heads=1, window_size=window, depth=2)

    def shifts(side):
        return [tuple(int(s) for s in g.shift) for g in stage.layout(side, side)]

    assert shifts(last_stage) == [(0, 0), (0, 0)]
    assert [int(g.num_windows) for g in stage.layout(last_stage, last_stage)] == [1, 1]
    assert shifts(2 * last_stage) == [(0, 0), (window // 2, window // 2)]


def test_swin_tiny_has_the_official_state_dict():
    check_official_keys(swin_tiny(), official_shapes("swin_tiny_patch4_window7_224"))


def test_droppath_rises_linearly_to_the_official_swin_t_rate():
    rates = [block.drop_path.p for layer in swin_tiny().layers for block in layer.blocks]
    assert len(rates) == 12 and rates[0] == 0.0 and abs(rates[-1] - 0.2) < 1e-6
    assert np.allclose(np.diff(rates), 0.2 / 11, atol=1e-6)


@pytest.mark.parametrize("size", [(12, 12), (13, 9)])
def test_matches_the_numpy_reference(size):
    model = randomize(SwinTransformer(num_classes=5, **TINY), std=0.2)
    model.eval()
    x = np.random.randn(2, 3, *size).astype("float32")
    out = model(paddle.to_tensor(x)).numpy()
    ref = reference_swin_transformer(x.astype(np.float64), state_arrays(model), TINY["depths"],
                                     TINY["num_heads"], (3, 3), TINY["patch_size"])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_tiny_configuration_keeps_the_network_contract(tmp_path):
    """Features, forward_features/forward_head, export at two sizes, frozen stages, recompute."""
    model = randomize(SwinTransformer(num_classes=3, **TINY), std=0.1)
    out = model(paddle.randn([2, 3, 11, 14]))
    out.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    check_features(model, paddle.randn([2, 3, 13, 22]))
    assert [e["reduction"] for e in model.feature_info] == [2, 4, 8]
    check_export(model, tmp_path / "swin", [(1, 16, 16), (2, 13, 22)])
    x = paddle.randn([2, 3, 12, 12])
    check_classifier(lambda **kw: SwinTransformer(**TINY, **kw), x)
    check_frozen_stages(lambda: SwinTransformer(num_classes=3, frozen_stages=0, **TINY),
                        ["patch_embed"], ["layers.0", "layers.2", "norm", "head"], x)
    check_frozen_stages(lambda: SwinTransformer(num_classes=3, frozen_stages=2, **TINY),
                        ["patch_embed", "layers.0", "layers.1"], ["layers.2", "norm", "head"],
                        x)
    plain = SwinTransformer(num_classes=3, droppath=0.0, **TINY)
    recomputed = SwinTransformer(num_classes=3, droppath=0.0, use_recompute=True, **TINY)
    recomputed.set_state_dict(plain.state_dict())
    assert all(layer.use_recompute for layer in recomputed.layers)
    for model in (plain, recomputed):
        model(x).sum().backward()
    np.testing.assert_allclose(recomputed.layers[0].blocks[0].attn.qkv.weight.grad.numpy(),
                               plain.layers[0].blocks[0].attn.qkv.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_timm_key_map_gives_the_official_names():
    """timm moves each patch merging to the start of the next stage and the head into
    ``head.fc``; KEY_MAPS["timm"] moves them back."""
    official = list(official_shapes("swin_tiny_patch4_window7_224"))
    timm = [re.sub(r"^layers\.(\d)\.downsample", lambda m: f"layers.{int(m[1]) + 1}.downsample",
                   re.sub(r"^head\.", "head.fc.", name)) for name in official]
    assert timm != official
    mapped = []
    for name in timm:
        for pattern, replacement in KEY_MAPS["timm"]:
            name = re.sub(pattern, replacement, name)
        mapped.append(name)
    assert mapped == official


def _official_state(depths, embed_dim, heads, window, patch, num_classes, channels=3):
    """Names and PyTorch layouts of an official Swin V1 classification checkpoint."""
    rng = np.random.default_rng(0)
    shapes = {"patch_embed.proj.weight": (embed_dim, channels, patch, patch),
              "patch_embed.proj.bias": (embed_dim,),
              "patch_embed.norm.weight": (embed_dim,), "patch_embed.norm.bias": (embed_dim,)}
    n = window * window
    for i, depth in enumerate(depths):
        dim = embed_dim * 2 ** i
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}."
            shapes.update({
                b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                b + "attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads[i]),
                b + "attn.relative_position_index": (n, n),
                b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
                b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
                b + "mlp.fc1.weight": (4 * dim, dim), b + "mlp.fc1.bias": (4 * dim,),
                b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
            if j % 2:
                shapes[b + "attn_mask"] = (4, n, n)
        if i < len(depths) - 1:
            shapes.update({f"layers.{i}.downsample.norm.weight": (4 * dim,),
                           f"layers.{i}.downsample.norm.bias": (4 * dim,),
                           f"layers.{i}.downsample.reduction.weight": (2 * dim, 4 * dim)})
    features = embed_dim * 2 ** (len(depths) - 1)
    shapes.update({"norm.weight": (features,), "norm.bias": (features,),
                   "head.weight": (num_classes, features), "head.bias": (num_classes,)})
    return {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}


def test_official_checkpoint_names_load():
    model = SwinTransformer(num_classes=5, **TINY)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 5)
    model.set_state_dict(official_to_miziha(model, official))
    np.testing.assert_array_equal(model.head.weight.numpy(), official["head.weight"].T)
    np.testing.assert_array_equal(model.layers[1].blocks[1].attn.qkv.weight.numpy(),
                                  official["layers.1.blocks.1.attn.qkv.weight"].T)
    np.testing.assert_array_equal(model.layers[0].downsample.reduction.weight.numpy(),
                                  official["layers.0.downsample.reduction.weight"].T)
    np.testing.assert_array_equal(model.patch_embed.proj.weight.numpy(),
                                  official["patch_embed.proj.weight"])


def test_official_checkpoint_that_does_not_fit():
    model = SwinTransformer(num_classes=5, **TINY)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 5)
    del official["norm.bias"]
    with pytest.raises(ValueError, match=r"missing \['norm.bias'\]"):
        official_to_miziha(model, official)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 10)
    with pytest.raises(ValueError, match="head.weight: the model has shape"):
        official_to_miziha(model, official)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=-1), "num_classes"),
    (dict(depths=(2, 2), num_heads=(1,)), "one entry per stage"),
    (dict(depths=(2, 3), num_heads=(1, 2)), "depth must be even"),
    (dict(embed_dim=8, num_heads=(3, 6)), "divisible by num_heads"),
    (dict(droppath=1.5), "droppath"),
    (dict(frozen_stages=3), "frozen_stages must be -1"),
])
def test_bad_arguments(kwargs, message):
    options = dict(TINY, depths=(2, 2), num_heads=(1, 2))
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SwinTransformer(**options)


def test_wrong_input_channels():
    model = SwinTransformer(num_classes=2, **TINY)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, H, W\]"):
        model(paddle.randn([1, 1, 16, 16]))


def test_matches_the_official_code_on_a_tiny_configuration():
    """``tests/data/swin_v1_official_tiny_logits.npz``: the official SwinTransformer
    (microsoft/Swin-Transformer models/swin_transformer.py; img_size 24, patch 2, embed 8,
    depths [2, 2], heads [1, 2], window 3, 5 classes), its random weights (``s/<official
    name>``, PyTorch layouts, derived buffers left out), two inputs ``x`` and its eval-mode
    logits ``y``, saved once with PyTorch."""
    data = np.load(DATA / "swin_v1_official_tiny_logits.npz")
    model = SwinTransformer(num_classes=5, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                            window_size=3, patch_size=2)
    state = {name[2:]: data[name] for name in data.files if name.startswith("s/")}
    model.set_state_dict(official_to_miziha(model, state))
    model.eval()
    out = model(paddle.to_tensor(data["x"])).numpy()
    np.testing.assert_allclose(out, data["y"], rtol=1e-5, atol=1e-5)
