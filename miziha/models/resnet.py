"""ResNet50 with its 3x3 convolutions replaced by a mixer (SwinResNet; ``SwinT`` by default,
any of :data:`miziha.MIXERS`), and the plain ResNet50 baseline with the same head, as in the
reference CIFAR-10 experiment. The registry names them ``<mixer>_resnet50`` and
``resnet50``."""

from __future__ import annotations

import inspect
from typing import List, Optional, Sequence

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import droppath_schedule
from ..mixers.registry import MIXERS, mixer_class, stage_options
from .common import ConvBN, check_image, classification_head
from .features import Indices, feature_entry, stage_indices
from .registry import register_model

__all__ = ["SwinBottleneck", "SwinResNet", "ResNet50", "MIXER_RESNETS", "swin_resnet50",
           "swin_resnet50_reference", "resnet50"]


class SwinBottleneck(nn.Layer):
    """1x1 ConvBN+ReLU -> a mixer (or 3x3 ConvBN+ReLU when ``mixer`` is None) -> 1x1 ConvBN
    to 4x width, plus the shortcut (a 1x1 ConvBN where the shape changes), then ReLU.

    Maps ``[B, in_channels, H, W]`` to ``[B, 4*width, H', W']``, ``H' = ceil(H / stride)``.
    ``num_heads`` reaches attention mixers only.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, num_heads: int,
                 mixer: Optional[str] = "swin", **mixer_options) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = ConvBN(in_channels, width, 1)
        if mixer is None:
            self.conv2 = ConvBN(width, width, 3, stride)
        else:
            layer_class = mixer_class(mixer)
            if "num_heads" in inspect.signature(layer_class).parameters:
                mixer_options = dict(mixer_options, num_heads=num_heads)
            self.conv2 = layer_class(width, width, downsample=stride == 2, **mixer_options)
        self.conv3 = ConvBN(width, out_channels, 1, relu=False)
        self.shortcut = ConvBN(in_channels, out_channels, 1, stride, relu=False) \
            if stride != 1 or in_channels != out_channels else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class SwinResNet(nn.Layer):
    """ResNet50 layout with a mixer in every bottleneck, for any input size.

    Stem (7x7 stride-2 ConvBN+ReLU, 3x3 stride-2 max pool), four stages of
    :class:`SwinBottleneck` (``depths`` blocks, ``widths`` channels, ``heads`` SwinT heads,
    patch merging in the first block of stages 2-4), global average pooling and the reference
    experiment's head (see :func:`classification_head`).

    Args:
        num_classes: classes of the head (>= 1).
        in_channels: image channels.
        depths, widths: per stage.
        heads: attention heads per stage (for attention mixers).
        mixer: a key of :data:`miziha.MIXERS`.
        conv_last_stage: reproduce the reference experiment exactly: stage 4 (the 7x7 maps at
            224) uses 3x3 ConvBN+ReLU bottlenecks instead of the mixer.
        droppath: stochastic depth, rising linearly from 0 to this over all mixer blocks.
        official_stages: give each stage the options the design's official four-stage model
            uses there (:data:`miziha.mixers.STAGE_OPTIONS`: CSWin's ``split_size`` 1, 2, 7,
            7); ``mixer_options`` given explicitly win.
        **mixer_options: further mixer arguments (``window_size``, ``mlp_ratio``, ``depth``...).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 depths: Sequence[int] = (3, 4, 6, 3), widths: Sequence[int] = (64, 128, 256, 512),
                 heads: Sequence[int] = (4, 8, 16, 32), mixer: str = "swin",
                 conv_last_stage: bool = False, droppath: float = 0.0,
                 official_stages: bool = True, **mixer_options) -> None:
        super().__init__()
        self.in_channels = checks.positive_int("in_channels", in_channels)
        if not len(depths) == len(widths) == len(heads):
            raise ValueError(f"depths, widths and heads need one entry per stage, got "
                             f"{len(depths)}, {len(widths)} and {len(heads)}")
        mixer_class(mixer)  # a clear error for an unknown name, before building anything
        per_mixer = mixer_options.get("depth", 2)  # blocks in each mixer
        rates = droppath_schedule(droppath, per_mixer * sum(depths))
        self.stem = nn.Sequential(ConvBN(in_channels, 64, 7, 2), nn.MaxPool2D(3, 2, padding=1))
        stages, channels, block = [], 64, 0
        for stage, (depth, width, head) in enumerate(zip(depths, widths, heads)):
            stage_mixer = None if conv_last_stage and stage == len(depths) - 1 else mixer
            official = stage_options(mixer, stage) \
                if checks.flag("official_stages", official_stages) and stage < 4 else {}
            blocks = []
            for i in range(depth):
                stride = 2 if i == 0 and stage > 0 else 1
                options = dict(official, **mixer_options,
                               droppath=rates[per_mixer * block: per_mixer * (block + 1)]) \
                    if stage_mixer else {}
                blocks.append(SwinBottleneck(channels, width, stride, head, stage_mixer,
                                             **options))
                channels, block = width * SwinBottleneck.expansion, block + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.LayerList(stages)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.head = classification_head(channels, num_classes)
        #: Per stage: channels, stride and module (timm's ``feature_info``).
        self.feature_info = [feature_entry(width * SwinBottleneck.expansion, 4 * 2 ** i,
                                           f"stages.{i}") for i, width in enumerate(widths)]

    def forward_intermediates(self, x: paddle.Tensor,
                              indices: Indices = None) -> List[paddle.Tensor]:
        """The output maps of the stages ``indices`` (default: all), NCHW, at strides
        4, 8, 16, 32 for the ResNet50 layout."""
        wanted = stage_indices(indices, len(self.stages))
        check_image(x, self.in_channels, "SwinResNet")
        x = self.stem(x)
        maps = []
        for i, stage in enumerate(self.stages[:wanted[-1] + 1]):
            x = stage(x)
            if i in wanted:
                maps.append(x)
        return maps

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> the last stage's map ``[B, 4 * widths[-1], H/32, W/32]``."""
        check_image(x, self.in_channels, "SwinResNet")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Features ``[B, C, h, w]`` -> logits ``[B, num_classes]`` (``pre_logits``: the pooled
        ``[B, C]``)."""
        x = paddle.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.head(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


class ResNet50(paddle.vision.models.ResNet):
    """Paddle's ``resnet50`` (same layers and parameter names) with the reference
    experiment's head, and timm's ``forward_features`` / ``forward_head``: the experiment's
    baseline."""

    def __init__(self, num_classes: int = 1000) -> None:
        num_classes = checks.positive_int("num_classes", num_classes)
        super().__init__(paddle.vision.models.resnet.BottleneckBlock, 50,
                         num_classes=num_classes)
        self.fc = classification_head(2048, num_classes)
        self.feature_info = [feature_entry(256 * 2 ** i, 4 * 2 ** i, f"layer{i + 1}")
                             for i in range(4)]

    def forward_intermediates(self, x: paddle.Tensor,
                              indices: Indices = None) -> List[paddle.Tensor]:
        """The outputs of ``layer1``..``layer4`` at ``indices`` (default: all), NCHW."""
        wanted = stage_indices(indices, 4)
        check_image(x, 3, "ResNet50")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3,
                                   self.layer4)[:wanted[-1] + 1]):
            x = layer(x)
            if i in wanted:
                maps.append(x)
        return maps

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 2048, H/32, W/32]``."""
        check_image(x, 3, "ResNet50")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Features ``[B, 2048, h, w]`` -> logits (``pre_logits``: pooled ``[B, 2048]``)."""
        x = paddle.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.forward_head(self.forward_features(x))


def _mixer_resnet50(mixer: str):
    def builder(num_classes: int = 1000, droppath: float = 0.0, **kwargs) -> SwinResNet:
        return SwinResNet(num_classes=num_classes, mixer=mixer, droppath=droppath, **kwargs)
    builder.__name__ = f"{mixer}_resnet50"
    builder.__doc__ = (f"ResNet50 layout (stages [3, 4, 6, 3]) with the {mixer!r} mixer in "
                       f"every bottleneck (:class:`SwinResNet`).")
    return register_model(mixer=mixer)(builder)


#: ``<mixer>_resnet50`` for every mixer; ``swin_resnet50`` is SwinResNet50.
MIXER_RESNETS = {mixer: _mixer_resnet50(mixer) for mixer in MIXERS}
swin_resnet50 = MIXER_RESNETS["swin"]


@register_model(mixer="swin")
def swin_resnet50_reference(num_classes: int = 1000, droppath: float = 0.0,
                            **kwargs) -> SwinResNet:
    """SwinResNet50 as in the reference experiment: stage 4 keeps 3x3 ConvBN bottlenecks."""
    return SwinResNet(num_classes=num_classes, conv_last_stage=True, droppath=droppath,
                      **kwargs)


@register_model()
def resnet50(num_classes: int = 1000) -> ResNet50:
    """The baseline: Paddle's ResNet50 with the reference experiment's head."""
    return ResNet50(num_classes)

