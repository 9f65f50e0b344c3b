"""replace_conv / swinify on real paddle.vision networks: what they replace, what they leave,
and that the result still runs and trains."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import miziha
from miziha import SwinT, swinify


def _convs(model, kernel):
    return [n for n, l in model.named_sublayers()
            if isinstance(l, nn.Conv2D) and list(l._kernel_size) == [kernel, kernel]]


def test_resnet50_all_16_bottleneck_convs_and_nothing_else():
    model = paddle.vision.models.resnet50(num_classes=10)
    before_3x3, before_1x1 = _convs(model, 3), _convs(model, 1)
    model, report = swinify(model)
    assert len(report.replaced) == 16 and report.replaced == before_3x3
    assert all(name.endswith(".conv2") for name in report.replaced)
    assert report.skipped == {} and report.untouched == 37
    assert _convs(model, 3) == [] and _convs(model, 1) == before_1x1
    swints = {n: l for n, l in model.named_sublayers() if isinstance(l, SwinT)}
    assert sorted(swints) == sorted(report.replaced)
    assert swints["layer2.0.conv2"].downsample is not None  # the stride-2 conv
    assert swints["layer2.1.conv2"].downsample is None
    assert swints["layer1.0.conv2"].num_heads == 2  # 64 channels, 32 a head
    for size in (224, 32):
        x = paddle.randn([1, 3, size, size])
        out = model(x)
        assert out.shape == [1, 10]
        out.sum().backward()
        assert swints["layer1.0.conv2"].blocks[0].attn.qkv.weight.grad is not None
        model.clear_gradients()


def test_vgg_runs_after_swinify():
    vgg, report = swinify(paddle.vision.models.vgg11(num_classes=10), window_size=4)
    assert len(report.replaced) == 7  # the stem conv on 3 image channels is skipped
    assert "min_in_channels" in report.skipped["features.0"]
    vgg.eval()
    assert vgg(paddle.randn([1, 3, 32, 32])).shape == [1, 10]


def test_swinified_resnet18_trains():
    model, report = swinify(paddle.vision.models.resnet18(num_classes=4), window_size=4)
    assert len(report.replaced) == 16
    x, y = paddle.randn([8, 3, 32, 32]), paddle.to_tensor(np.arange(8) % 4).reshape([8, 1])
    opt = paddle.optimizer.Adam(1e-3, parameters=model.parameters())
    losses = []
    for _ in range(6):
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_unsuitable_convs_are_reported_not_broken():
    model = nn.Sequential(
        nn.Conv2D(3, 32, 3, padding=1),                 # 3 channels, 4 heads requested
        nn.Conv2D(32, 32, 3, padding=1, groups=32),     # depthwise
        nn.Conv2D(32, 32, 3, padding=2, dilation=2),    # dilated
        nn.Conv2D(32, 32, 3, padding=0),                # shrinks the map
        nn.Conv2D(32, 30, 3, padding=1),                # replaced (32 channels, 4 heads)
        nn.Conv2D(30, 30, 3, padding=1),                # 30 channels, 4 heads requested
        nn.Conv2D(30, 30, 1))                           # 1x1: left alone
    model, report = swinify(model, num_heads=4, min_in_channels=1)
    assert report.replaced == ["4"]
    assert set(report.skipped) == {"0", "1", "2", "3", "5"}
    assert "in_channels=3 is not divisible by num_heads=4" in report.skipped["0"]
    assert "groups=32" in report.skipped["1"]
    assert "dilation" in report.skipped["2"]
    assert "padding" in report.skipped["3"]
    assert "not divisible by num_heads=4" in report.skipped["5"]
    assert report.untouched == 1
    assert "replaced 1 conv(s)" in str(report)
    assert isinstance(model[4], SwinT) and isinstance(model[5], nn.Conv2D)
    assert model(paddle.randn([1, 3, 12, 12])).shape == [1, 30, 10, 10]  # padding=0 shrinks


def test_filter_chooses_convs_and_options_reach_swint():
    model = paddle.vision.models.resnet18(num_classes=10)
    model, report = swinify(model, filter=lambda name, conv: name.startswith("layer4"),
                            window_size=5, depth=4, mlp_ratio=2.0)
    assert len(report.replaced) == 4 and all(n.startswith("layer4") for n in report.replaced)
    assert all(why == "excluded by filter" for why in report.skipped.values())
    layer = model.layer4[0].conv1
    assert isinstance(layer, SwinT) and layer.depth == 4 and layer.window_size == (5, 5)


def test_nhwc_convs_keep_their_data_format():
    model = nn.Sequential(nn.Conv2D(16, 24, 3, padding=1, stride=2, data_format="NHWC"))
    model, _ = swinify(model)
    assert model[0].data_format == "NHWC"
    assert model(paddle.randn([1, 9, 9, 16])).shape == [1, 5, 5, 24]


def test_bad_arguments():
    with pytest.raises(TypeError, match="paddle.nn.Layer"):
        swinify("resnet")
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        swinify(nn.Sequential(), num_heads=0)
    with pytest.raises(ValueError, match="replace_conv sets downsample"):
        swinify(nn.Sequential(), downsample=True)
    with pytest.raises(TypeError, match="filter must be a callable"):
        swinify(nn.Sequential(), filter="layer4")
    with pytest.raises(ValueError, match=r"mixer must be one of \['asmlp', .*got 'conv'"):
        miziha.replace_conv(nn.Sequential(), mixer="conv")


def test_stem_convs_are_skipped_unless_asked():
    model = nn.Sequential(nn.Conv2D(3, 16, 3, padding=1), nn.Conv2D(16, 16, 3, padding=1))
    _, report = miziha.replace_conv(nn.Sequential(*model.children()), "swin", window_size=4)
    assert report.replaced == ["1"] and "in_channels=3 < min_in_channels=16" in report.skipped["0"]
    _, report = miziha.replace_conv(model, "swin", min_in_channels=3, window_size=4)
    assert report.replaced == ["0", "1"] and report.mixer == "swin"
