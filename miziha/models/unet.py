"""UNet whose levels are either 3x3 Conv2D+BN+ReLU pairs or a mixer's blocks (SwinUNet: SwinT)."""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..layers.basic import droppath_schedule, layer_norm
from ..mixers.registry import MIXERS
from .common import ConvBN, check_image
from .registry import register_model

__all__ = ["UNet", "SwinUNet", "MIXER_UNETS", "unet", "swin_unet"]


#: Below this many input channels (the image) a level starts with a ConvBN+ReLU, as
#: ``miziha.replace_conv`` leaves stem convs.
MIN_MIXER_CHANNELS = 16


class _Level(nn.Sequential):
    """One UNet level, ``[B, in, H, W] -> [B, out, H, W]``.

    ``"conv"``: two 3x3 ConvBN+ReLU. A mixer: as a Swin-Unet stage, the mixer's blocks
    (``depth`` of them, 2 by default: W-MSA then SW-MSA for Swin) at the level's width, after
    a 1x1 conv to that width where the input differs (Swin-Unet's ``concat_back_dim``
    linear on the decoder's concatenation with the skip), or after a 3x3 ConvBN+ReLU on
    the image's few channels (a stem).
    """

    def __init__(self, in_channels: int, out_channels: int, kind: str, mixer_options: dict):
        if kind == "conv":
            super().__init__(ConvBN(in_channels, out_channels, 3),
                             ConvBN(out_channels, out_channels, 3))
            return
        mixer = MIXERS[kind](out_channels, out_channels, **mixer_options)
        if in_channels < MIN_MIXER_CHANNELS:
            super().__init__(ConvBN(in_channels, out_channels, 3), mixer)
        elif in_channels != out_channels:
            super().__init__(nn.Conv2D(in_channels, out_channels, 1), mixer)
        else:
            super().__init__(mixer)


class _ChannelNorm(nn.Layer):
    """LayerNorm over the channels of ``[B, C, H, W]`` (Swin-Unet's ``norm`` / ``norm_up``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = layer_norm(channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


class UNet(nn.Layer):
    """UNet for segmentation, ``[B, C, H, W]`` -> logits ``[B, num_classes, H, W]``, any H, W.

    Encoder: a level per width, 2x2 max pooling (ceil mode) between them. Decoder:
    bilinear upsampling to the skip's size, concatenation with the skip, a level. Head: 1x1
    conv. A level is two 3x3 ConvBN+ReLU, or a mixer's blocks at the level's width (see
    :class:`_Level`): one block per 3x3 conv with the default ``depth=2``, as Swin-Unet's
    two blocks a stage.

    Args:
        in_channels: image channels.
        num_classes: classes per pixel (>= 1).
        widths: channels per level, top to bottom.
        block: ``"conv"`` (Conv2D+BN+ReLU) or a key of :data:`miziha.MIXERS` (default
            heads); the first level starts with a ConvBN+ReLU on the image's channels.
        droppath: stochastic depth of the mixer blocks, rising linearly from 0 over the
            encoder's and then the decoder's blocks to this rate (mixers only).
        conv_full_resolution: with a mixer, keep the full-resolution levels (the first of
            the encoder and the last of the decoder) ConvBN pairs, as Swin-Unet embeds 4x4
            patches and expands them back with no attention at full resolution; False puts
            the mixer in every level (after a ConvBN on the image).
        **mixer_options: further mixer arguments (``window_size``...).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2,
                 widths: Sequence[int] = (32, 64, 128, 256), block: str = "conv",
                 droppath: float = 0.0, conv_full_resolution: bool = True,
                 **mixer_options) -> None:
        super().__init__()
        kinds = ("conv", *MIXERS)
        if block not in kinds:
            raise ValueError(f"block must be one of {kinds}, got {block!r}")
        if block == "conv" and (mixer_options or droppath):
            raise ValueError(f"block='conv' takes no mixer options or droppath, got "
                             f"{sorted(mixer_options)}, droppath={droppath}")
        self.in_channels = checks.positive_int("in_channels", in_channels)
        num_classes = checks.positive_int("num_classes", num_classes)
        widths = [checks.positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 levels, got {widths}")
        self.block = block
        levels = [(c_in, c_out) for c_in, c_out in zip([in_channels] + widths[:-1], widths)]
        levels += [(deep + skip, skip) for deep, skip in zip(widths[:0:-1], widths[-2::-1])]
        kinds = [block] * len(levels)
        if checks.flag("conv_full_resolution", conv_full_resolution):
            kinds[0] = kinds[-1] = "conv"
        mixer_levels = [i for i, kind in enumerate(kinds) if kind != "conv"]
        per_level = mixer_options.get("depth", 2)
        rates = droppath_schedule(droppath, per_level * len(mixer_levels))
        options = {i: dict(mixer_options, droppath=rates[per_level * k: per_level * (k + 1)])
                   for k, i in enumerate(mixer_levels)}
        built = [_Level(c_in, c_out, kind, options.get(i, {}))
                 for i, ((c_in, c_out), kind) in enumerate(zip(levels, kinds))]
        self.encoder = nn.LayerList(built[:len(widths)])
        self.decoder = nn.LayerList(built[len(widths):])
        # Mixer blocks end on the residual stream: as Swin-Unet, normalise it after the
        # encoder (``norm``) and before the head (``norm_up``) where mixers end there.
        self.encoder_norm = nn.Identity() if kinds[len(widths) - 1] == "conv" \
            else _ChannelNorm(widths[-1])
        self.decoder_norm = nn.Identity() if kinds[-1] == "conv" else _ChannelNorm(widths[0])
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
        x = self.encoder_norm(x)
        for level, skip in zip(self.decoder, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = level(paddle.concat([x, skip], axis=1))
        return self.decoder_norm(x)

    def forward_head(self, x: paddle.Tensor) -> paddle.Tensor:
        """Decoder map ``[B, widths[0], H, W]`` -> logits ``[B, num_classes, H, W]``."""
        return self.head(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes, H, W]``."""
        return self.forward_head(self.forward_features(x))


class SwinUNet(UNet):
    """:class:`UNet` with SwinT levels below full resolution: a Swin block (W-MSA, then
    SW-MSA) for each 3x3 conv, at the same widths."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2,
                 widths: Sequence[int] = (32, 64, 128, 256), window_size: int = 7,
                 conv_full_resolution: bool = True) -> None:
        super().__init__(in_channels, num_classes, widths, "swin",
                         conv_full_resolution=conv_full_resolution, window_size=window_size)


@register_model("segmentation")
def unet(num_classes: int = 2, **kwargs) -> UNet:
    """:class:`UNet` with ConvBN+ReLU blocks."""
    return UNet(num_classes=num_classes, **kwargs)


def _mixer_unet(mixer: str):
    def builder(num_classes: int = 2, droppath: float = 0.0, **kwargs) -> UNet:
        return UNet(num_classes=num_classes, block=mixer, droppath=droppath, **kwargs)
    builder.__name__ = f"{mixer}_unet"
    builder.__doc__ = (f"The UNet with {mixer!r} mixer levels below full resolution, one "
                       f"mixer block for each 3x3 conv (:class:`UNet`).")
    return register_model("segmentation", mixer)(builder)


#: ``<mixer>_unet`` for every mixer; ``swin_unet`` is the SwinUNet.
MIXER_UNETS = {mixer: _mixer_unet(mixer) for mixer in MIXERS}
swin_unet = MIXER_UNETS["swin"]
