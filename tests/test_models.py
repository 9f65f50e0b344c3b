"""The networks and their registry: shapes at 224 and 32, the reference layout, timm's forward
convention, errors."""

import numpy as np
import paddle
import pytest

import miziha
from miziha import SwinT
from miziha.models import SwinResNet, resnet50, swin_resnet50
from miziha.models.common import ConvBN


def test_swin_resnet50_runs_at_224_and_32():
    model = swin_resnet50(num_classes=10)
    for size in (224, 32):
        out = model(paddle.randn([1, 3, size, size]))
        assert out.shape == [1, 10]
    out.sum().backward()
    assert model.stages[3][2].conv2.blocks[1].attn.qkv.weight.grad is not None


def test_layout_follows_resnet50():
    model = SwinResNet(num_classes=10)
    assert [len(stage) for stage in model.stages] == [3, 4, 6, 3]
    swints = [block.conv2 for stage in model.stages for block in stage]
    assert all(isinstance(layer, SwinT) for layer in swints)
    assert [s.num_heads for s in swints[::1]][:4] == [4, 4, 4, 8]
    assert [s.downsample is not None for s in swints] == \
        [False] * 3 + [True] + [False] * 3 + [True] + [False] * 5 + [True] + [False] * 2
    head = [type(l).__name__ for l in model.head]
    assert head == ["Dropout", "Linear", "LayerNorm", "Dropout", "LeakyReLU", "Linear"]
    assert model.head[1].weight.shape == [2048, 256]


def test_droppath_schedule_follows_the_swint_depth():
    model = SwinResNet(num_classes=10, depths=(1, 1), widths=(8, 16), heads=(1, 2),
                       depth=4, droppath=0.7)
    rates = [block.drop_path.p for stage in model.stages for b in stage
             for block in b.conv2.blocks]
    assert len(rates) == 8 and rates[0] == 0.0 and abs(rates[-1] - 0.7) < 1e-6
    assert rates == sorted(rates)


def test_reference_layout_uses_convs_in_the_last_stage():
    model = SwinResNet(num_classes=10, conv_last_stage=True)
    assert all(isinstance(block.conv2, ConvBN) for block in model.stages[3])
    assert all(isinstance(block.conv2, SwinT) for block in model.stages[2])
    model.eval()
    assert model(paddle.randn([2, 3, 224, 224])).shape == [2, 10]


def test_resnet50_has_the_same_head():
    model = resnet50(num_classes=7)
    assert [type(l).__name__ for l in model.fc][-1] == "Linear"
    assert model(paddle.randn([2, 3, 32, 32])).shape == [2, 7]


@pytest.mark.parametrize("factory", [lambda: SwinResNet(num_classes=0),
                                     lambda: resnet50(num_classes=0)])
def test_num_classes_must_be_positive(factory):
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        factory()


def test_wrong_input_channels():
    model = SwinResNet(num_classes=10)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, H, W\], got shape \[1, 1, 32, 32\]"):
        model(paddle.randn([1, 1, 32, 32]))


@pytest.mark.parametrize("size", [(37, 45), (16, 16), (5, 3)])
def test_unet_and_swin_unet_keep_any_size(size):
    from miziha.models import SwinUNet, UNet
    for model in (UNet(3, 4, widths=(8, 16, 32)), SwinUNet(3, 4, widths=(8, 16, 32))):
        out = model(paddle.randn([2, 3, *size]))
        assert out.shape == [2, 4, *size]
    out.mean().backward()


def test_mixer_unet_droppath_rises_over_its_blocks_and_the_conv_unet_has_none():
    from miziha.experiments.compare import takes_droppath
    from miziha.layers import DropPath
    from miziha.models import UNet
    model = miziha.create_model("swin_unet", widths=(16, 32, 64), droppath=0.3)
    rates = [l.p for l in model.sublayers() if isinstance(l, DropPath)]
    # 3 mixer levels (the full-resolution ones are convs) of 2 blocks, one DropPath a block
    assert rates == pytest.approx([0.0, 0.06, 0.12, 0.18, 0.24, 0.3])
    assert takes_droppath("swin_unet") and takes_droppath("cswin_resnet50")
    assert not takes_droppath("unet") and not takes_droppath("hrnet_w18_small_v2_seg")
    assert takes_droppath("swin_hrnet_w18_small_v2_seg")
    with pytest.raises(ValueError, match="block='conv' takes no mixer options or droppath"):
        UNet(widths=(16, 32), droppath=0.1)


def test_swin_unet_is_the_unet_with_swint():
    from miziha.models import SwinUNet, UNet
    conv, swin = UNet(widths=(16, 32)), SwinUNet(widths=(16, 32))
    # The full-resolution levels stay ConvBN pairs (Swin-Unet attends only on patches); below
    # them one SwinT (two blocks) a level, at the level's width, after a 1x1 conv.
    assert [type(l).__name__ for level in (*swin.encoder, *swin.decoder) for l in level] == \
        ["ConvBN", "ConvBN", "Conv2D", "SwinT", "ConvBN", "ConvBN"]
    everywhere = SwinUNet(widths=(16, 32, 64), conv_full_resolution=False)
    # Every level a SwinT: after the stem ConvBN, after 1x1 convs that widen and that narrow
    # the decoder's concatenation with the skip.
    assert [type(l).__name__ for level in (*everywhere.encoder, *everywhere.decoder)
            for l in level] == ["ConvBN", "SwinT", "Conv2D", "SwinT", "Conv2D", "SwinT",
                                "Conv2D", "SwinT", "Conv2D", "SwinT"]
    assert [l.in_channels for l in everywhere.sublayers() if isinstance(l, SwinT)] == \
        [16, 32, 64, 32, 16]
    assert sum(isinstance(l, SwinT) for l in conv.sublayers()) == 0
    assert sum(isinstance(l, ConvBN) for l in conv.sublayers()) == 6
    with pytest.raises(ValueError, match="block must be one of"):
        UNet(block="transformer")
    with pytest.raises(ValueError, match=r"expects input \[B, 3, H, W\]"):
        swin(paddle.randn([1, 1, 8, 8]))


def test_registry_builds_every_name_and_lists_by_task():
    names = miziha.list_models()
    assert {"resnet50", "swin_resnet50", "swin_resnet50_reference",
            "swin_tiny_patch4_window7_224", "unet", "swin_unet"} <= set(names)
    assert miziha.list_models("swin_*unet", task="segmentation") == ["swin_unet"]
    assert set(miziha.models.MODELS) == set(names)
    model = miziha.create_model("swin_resnet50_reference", num_classes=3)
    assert not isinstance(model.stages[3][0].conv2, SwinT)
    with pytest.raises(ValueError, match="unknown model 'resnet51'; registered models: "):
        miziha.create_model("resnet51")


@pytest.mark.parametrize("name, channels, reduction", [
    ("resnet50", 2048, 32), ("swin_resnet50", 2048, 32),
    ("swin_tiny_patch4_window7_224", 768, 32)])
def test_forward_features_is_the_unpooled_map_and_forward_head_pools(name, channels,
                                                                     reduction):
    model = miziha.create_model(name, num_classes=4)
    model.eval()
    x = paddle.randn([2, 3, 64, 96])
    features = model.forward_features(x)
    assert features.shape == [2, channels, 64 // reduction, 96 // reduction]
    pooled = model.forward_head(features, pre_logits=True)
    np.testing.assert_allclose(pooled.numpy(), features.mean(axis=[2, 3]).numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.forward_head(features).numpy(), model(x).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_unet_features_are_the_decoder_map():
    model = miziha.create_model("unet", num_classes=3, widths=(8, 16))
    model.eval()
    x = paddle.randn([1, 3, 20, 28])
    features = model.forward_features(x)
    assert features.shape == [1, 8, 20, 28]
    np.testing.assert_allclose(model.forward_head(features).numpy(), model(x).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_version_is_written_once():
    import re
    from pathlib import Path
    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    assert not re.search(r"version\s*=\s*['\"]\d", setup)  # read from miziha/__init__.py
    assert re.fullmatch(r"\d+\.\d+\.\d+", miziha.__version__)


@pytest.mark.parametrize("name", ["resnet50", "swin_resnet50", "cyclemlp_resnet50",
                                  "swin_tiny_patch4_window7_224"])
def test_features_are_the_classifiers_intermediate_maps(name):
    """create_model(features_only=True) gives per-stage NCHW maps at strides 4-32 that equal
    the outputs of the modules feature_info names, in the classifier with the same weights."""
    paddle.seed(1)
    classifier = miziha.create_model(name, num_classes=5)
    classifier.eval()
    backbone = miziha.create_model(name, num_classes=5, features_only=True)
    backbone.model.set_state_dict(classifier.state_dict())
    backbone.eval()
    info = classifier.feature_info
    assert [e["reduction"] for e in info] == [4, 8, 16, 32]
    for size in [(224, 224), (100, 150)]:
        x = paddle.randn([1, 3, *size])
        maps = backbone(x)
        assert [list(m.shape) for m in maps] == [
            [1, e["num_chs"], -(-size[0] // e["reduction"]), -(-size[1] // e["reduction"])]
            for e in info]
    seen = {}
    modules = dict(classifier.named_sublayers())
    handles = [modules[e["module"]].register_forward_post_hook(
        lambda layer, inputs, out, key=e["module"]: seen.setdefault(key, out))
        for e in info]
    x = paddle.randn([2, 3, 64, 64])
    features = classifier.forward_features(x)
    for handle in handles:
        handle.remove()
    maps = backbone(x)
    for entry, feature in zip(info[:-1], maps[:-1]):
        expected = seen[entry["module"]]
        # A Swin stage's map is its blocks' output, before merging.
        if name == "swin_tiny_patch4_window7_224":
            expected = classifier.layers[int(entry["module"][-1])].forward_blocks(
                classifier.pos_drop(classifier.patch_embed(x)) if entry["module"] == "layers.0"
                else seen[f"layers.{int(entry['module'][-1]) - 1}"])[0].transpose([0, 3, 1, 2])
        np.testing.assert_allclose(feature.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(maps[-1].numpy(), features.numpy(), rtol=1e-4, atol=1e-4)


def test_out_indices_choose_stages_and_bad_ones_are_clear():
    backbone = miziha.create_model("resnet50", features_only=True, out_indices=(1, -1))
    assert [e["reduction"] for e in backbone.feature_info] == [8, 32]
    assert [m.shape[1] for m in backbone(paddle.randn([1, 3, 64, 64]))] == [512, 2048]
    with pytest.raises(ValueError, match="stage index 4 out of range for 4 stages"):
        miziha.create_model("resnet50", features_only=True, out_indices=(4,))
    with pytest.raises(ValueError, match="out_indices goes with features_only=True"):
        miziha.create_model("resnet50", out_indices=(1,))
    with pytest.raises(TypeError, match="UNet has no multi-scale features"):
        miziha.create_model("unet", features_only=True)


def test_an_int_of_indices_is_the_last_stages_as_in_timm():
    backbone = miziha.create_model("resnet50", features_only=True, out_indices=2)
    assert backbone.out_indices == [2, 3]
    assert [e["reduction"] for e in backbone.feature_info] == [16, 32]
    model = miziha.create_model("swin_tiny_patch4_window7_224", embed_dim=8,
                                num_heads=(1, 1, 1, 1), num_classes=3)
    model.eval()
    x = paddle.randn([1, 3, 32, 32])
    last = model.forward_intermediates(x, indices=1)
    assert len(last) == 1
    np.testing.assert_allclose(last[0].numpy(), model.forward_intermediates(x, [3])[0].numpy(),
                               rtol=1e-6, atol=1e-6)
    assert miziha.create_model("resnet50", features_only=True,
                               out_indices=np.int64(1)).out_indices == [3]
    for bad, error, message in [(0, ValueError, r"the last n stages, n in 1..4, got 0"),
                                (5, ValueError, r"the last n stages, n in 1..4, got 5"),
                                (True, TypeError, "an int or a sequence of ints, got True"),
                                ("12", TypeError, "an int or a sequence of ints, got '12'"),
                                (1.0, TypeError, "an int or a sequence of ints, got 1.0")]:
        with pytest.raises(error, match=message):
            miziha.create_model("resnet50", features_only=True, out_indices=bad)


def test_timm_option_names_stand_for_mizihas():
    model = miziha.create_model("swin_tiny_patch4_window7_224", in_chans=1, drop_path_rate=0.3,
                                drop_rate=0.1, embed_dim=8, num_heads=(1, 1, 1, 1),
                                num_classes=0)
    assert model.in_channels == 1 and model.pos_drop.p == 0.1
    rates = [block.drop_path.p for layer in model.layers for block in layer.blocks]
    assert abs(rates[-1] - 0.3) < 1e-6
    assert model(paddle.randn([2, 1, 32, 32])).shape == [2, 64]
    with pytest.raises(TypeError, match="got both 'in_chans' \\(timm's name\\) and "
                                        "'in_channels'; give one"):
        miziha.create_model("resnet50", in_chans=1, in_channels=3)
    with pytest.raises(TypeError, match="hrnet_w18 got unknown option\\(s\\) 'drop_rate' "
                                        "\\(timm's name of 'dropout'\\)"):
        miziha.create_model("hrnet_w18", drop_rate=0.1)
