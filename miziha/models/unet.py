"""UNet whose 3x3 convolutions are either Conv2D+BN+ReLU or a mixer (SwinUNet: SwinT)."""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..mixers import MIXERS
from .common import ConvBN, check_image
from .registry import register_model

__all__ = ["UNet", "SwinUNet", "MIXER_UNETS", "unet", "swin_unet"]


#: Below this many input channels (the image) a unit stays a ConvBN+ReLU, as
#: ``miziha.replace_conv`` leaves stem convs.
MIN_MIXER_CHANNELS = 16


def _unit(in_channels: int, out_channels: int, kind: str, mixer_options: dict) -> nn.Layer:
    """One "3x3 conv" of the UNet: ConvBN+ReLU, or a mixer with the same channels."""
    if kind == "conv" or in_channels < MIN_MIXER_CHANNELS:
        return ConvBN(in_channels, out_channels, 3)
    return MIXERS[kind](in_channels, out_channels, **mixer_options)


class _DoubleBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kind: str, mixer_options: dict):
        super().__init__(_unit(in_channels, out_channels, kind, mixer_options),
                         _unit(out_channels, out_channels, kind, mixer_options))


class UNet(nn.Layer):
    """UNet for segmentation, ``[B, C, H, W]`` -> logits ``[B, num_classes, H, W]``, any H, W.

    Encoder: a double block per width, 2x2 max pooling (ceil mode) between them. Decoder:
    bilinear upsampling to the skip's size, concatenation with the skip, a double block.
    Head: 1x1 conv.

    Args:
        in_channels: image channels.
        num_classes: classes per pixel (>= 1).
        widths: channels per level, top to bottom.
        block: ``"conv"`` (Conv2D+BN+ReLU) or a key of :data:`miziha.MIXERS` (default
            heads); the first unit, on the image's channels, is always a ConvBN+ReLU.
        **mixer_options: further mixer arguments (``window_size``...).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2,
                 widths: Sequence[int] = (32, 64, 128, 256), block: str = "conv",
                 **mixer_options) -> None:
        super().__init__()
        kinds = ("conv", *MIXERS)
        if block not in kinds:
            raise ValueError(f"block must be one of {kinds}, got {block!r}")
        if block == "conv" and mixer_options:
            raise ValueError(f"block='conv' takes no mixer options, got {sorted(mixer_options)}")
        self.in_channels = checks.positive_int("in_channels", in_channels)
        num_classes = checks.positive_int("num_classes", num_classes)
        widths = [checks.positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 levels, got {widths}")
        self.block = block
        self.encoder = nn.LayerList(
            [_DoubleBlock(c_in, c_out, block, mixer_options)
             for c_in, c_out in zip([in_channels] + widths[:-1], widths)])
        self.decoder = nn.LayerList(
            [_DoubleBlock(deep + skip, skip, block, mixer_options)
             for deep, skip in zip(widths[:0:-1], widths[-2::-1])])
        self.head = nn.Conv2D(widths[0], num_classes, 1)

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> the last decoder map ``[B, widths[0], H, W]``."""
        check_image(x, self.in_channels, type(self).__name__)
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = level(x)
            skips.append(x)
        for level, skip in zip(self.decoder, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = level(paddle.concat([x, skip], axis=1))
        return x

    def forward_head(self, x: paddle.Tensor) -> paddle.Tensor:
        """Decoder map ``[B, widths[0], H, W]`` -> logits ``[B, num_classes, H, W]``."""
        return self.head(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes, H, W]``."""
        return self.forward_head(self.forward_features(x))


class SwinUNet(UNet):
    """:class:`UNet` with every 3x3 conv a SwinT (same widths and depth)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2,
                 widths: Sequence[int] = (32, 64, 128, 256), window_size: int = 7) -> None:
        super().__init__(in_channels, num_classes, widths, "swin", window_size=window_size)


@register_model("segmentation")
def unet(num_classes: int = 2, **kwargs) -> UNet:
    """:class:`UNet` with ConvBN+ReLU blocks."""
    return UNet(num_classes=num_classes, **kwargs)


def _mixer_unet(mixer: str):
    def builder(num_classes: int = 2, **kwargs) -> UNet:
        return UNet(num_classes=num_classes, block=mixer, **kwargs)
    builder.__name__ = f"{mixer}_unet"
    builder.__doc__ = f"The UNet with every 3x3 conv the {mixer!r} mixer."
    return register_model("segmentation")(builder)


#: ``<mixer>_unet`` for every mixer; ``swin_unet`` is the SwinUNet.
MIXER_UNETS = {mixer: _mixer_unet(mixer) for mixer in MIXERS}
swin_unet = MIXER_UNETS["swin"]
