"""The CycleMLP networks of the CycleMLP paper (Chen et al., ICLR 2022), B1 to B5, assembled
from :class:`~miziha.CycleMLPT` stages (ShoufaChen/CycleMLP ``cycle_mlp.py``)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn

from ..layers.basic import droppath_schedule, layer_norm
from ..mixers.cyclemlp import CycleMLPT
from ..paddle_fixes.workarounds import conv_channels_last
from .common import StagedTransformer, index_blocks
from .features import feature_entry
from .registry import register_model

__all__ = ["CycleNet", "PatchEmbedOverlapping", "Downsample", "cyclemlp_b1", "cyclemlp_b2",
           "cyclemlp_b3", "cyclemlp_b4", "cyclemlp_b5"]


class PatchEmbedOverlapping(nn.Layer):
    """CycleMLP's stem: a 7x7 stride-4 convolution (padding 2), no norm:
    ``[B, C, H, W] -> [B, (H+1)//4, (W+1)//4, embed_dim]`` (channels last; ``ceil(H/4)``
    when ``H % 4`` is 0 or 3)."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(in_channels, embed_dim, 7, stride=4, padding=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x).transpose([0, 2, 3, 1])


class Downsample(nn.Layer):
    """CycleMLP's transition between stages: a 3x3 stride-2 convolution (padding 1),
    ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_dim]``; parameters ``proj.weight``
    ``[out_dim, C, 3, 3]``, ``proj.bias``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2D(dim, out_dim, 3, stride=2, padding=1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return conv_channels_last(self.proj, x)


class CycleNet(StagedTransformer):
    """CycleMLP for image classification, for any input size.

    Stem (7x7 stride-4 convolution), then ``network``: one :class:`~miziha.CycleMLPT` per
    stage in NHWC (``layers[i]`` CycleMLP blocks at ``embed_dims[i]`` channels), with a
    :class:`Downsample` between stages, a final LayerNorm, the mean over tokens and a
    linear head. Stochastic depth rises linearly from 0 to ``droppath`` over all blocks.

    Parameter names follow the official checkpoints (``patch_embed.proj``,
    ``network.{2i}.{j}.attn.sfc_h``, ``network.{2i+1}.proj``, ``norm``, ``head``); the
    official fixed ``offset`` buffers are derived, not kept. See
    :func:`~miziha.weights.official.official_to_miziha` to load one.

    Args:
        layers: blocks per stage.
        embed_dims: channels per stage (each at least 4).
        mlp_ratios: MLP hidden width over the channels, per stage.
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        qkv_bias: bias of the channel FC ``mlp_c`` (none in the official models).
        droppath: the stochastic depth rate of the last block (official constructor
            default 0).
        frozen_stages: -1 nothing frozen; ``k >= 0``: the stem and the first ``k`` stages,
            each with the :class:`Downsample` after it, get no gradient
            (:class:`~miziha.models.common.FrozenStages`).
        use_recompute: recompute each block's activations in backward (see
            :class:`~miziha.mixers.base.TokenMixer`).
    """

    def __init__(self, layers: Sequence[int], embed_dims: Sequence[int],
                 mlp_ratios: Sequence[float], num_classes: int = 1000, in_channels: int = 3,
                 qkv_bias: bool = False, droppath: float = 0.0, frozen_stages: int = -1,
                 use_recompute: bool = False) -> None:
        super().__init__(num_classes, in_channels)
        if not layers or not len(layers) == len(embed_dims) == len(mlp_ratios):
            raise ValueError(f"layers, embed_dims and mlp_ratios need one entry per stage, got "
                             f"{len(layers)}, {len(embed_dims)} and {len(mlp_ratios)}")
        self.patch_embed = PatchEmbedOverlapping(in_channels, embed_dims[0])
        rates = droppath_schedule(droppath, sum(layers))
        network, start = [], 0
        for i, (depth, dim, ratio) in enumerate(zip(layers, embed_dims, mlp_ratios)):
            network.append(index_blocks(CycleMLPT(
                dim, dim, mlp_ratio=ratio, qkv_bias=qkv_bias,
                droppath=rates[start:start + depth], depth=depth, data_format="NHWC",
                use_recompute=use_recompute)))
            if i < len(layers) - 1:
                network.append(Downsample(dim, embed_dims[i + 1]))
            start += depth
        self.network = nn.LayerList(network)
        self.num_features = embed_dims[-1]
        self.norm = layer_norm(self.num_features)
        self.reset_classifier(self.num_classes)
        self.feature_info = [feature_entry(dim, 4 * 2 ** i, f"network.{2 * i}")
                             for i, dim in enumerate(embed_dims)]
        self.freeze_stages(frozen_stages)

    def stages(self) -> List[Tuple[CycleMLPT, Optional[Downsample]]]:
        """``network.{2i}`` and the :class:`Downsample` after it (``network.{2i+1}``)."""
        mixers, downsamples = self.network[0::2], self.network[1::2]
        return [(mixer, downsamples[i] if i < len(downsamples) else None)
                for i, mixer in enumerate(mixers)]


#: The official configurations: blocks, channels and MLP ratios per stage.
CYCLEMLP_CONFIGS = {
    "b1": dict(layers=(2, 2, 4, 2), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4)),
    "b2": dict(layers=(2, 3, 10, 3), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4)),
    "b3": dict(layers=(3, 4, 18, 3), embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4)),
    "b4": dict(layers=(3, 8, 27, 3), embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4)),
    "b5": dict(layers=(3, 4, 24, 3), embed_dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4)),
}

#: Stochastic depth of the official training (``main.py --drop-path`` default, which the
#: README's training command keeps; the repository gives no per-variant value).
OFFICIAL_DROPPATH = 0.1


def _cyclemlp(variant: str, num_classes: int, droppath: float, kwargs: dict) -> CycleNet:
    options = dict(CYCLEMLP_CONFIGS[variant], droppath=droppath)
    options.update(kwargs)
    return CycleNet(num_classes=num_classes, **options)


@register_model()
def cyclemlp_b1(num_classes: int = 1000, droppath: float = OFFICIAL_DROPPATH,
                **kwargs) -> CycleNet:
    """CycleMLP-B1: blocks [2, 2, 4, 2], channels [64, 128, 320, 512], MLP ratio 4."""
    return _cyclemlp("b1", num_classes, droppath, kwargs)


@register_model()
def cyclemlp_b2(num_classes: int = 1000, droppath: float = OFFICIAL_DROPPATH,
                **kwargs) -> CycleNet:
    """CycleMLP-B2: blocks [2, 3, 10, 3], channels [64, 128, 320, 512], MLP ratio 4."""
    return _cyclemlp("b2", num_classes, droppath, kwargs)


@register_model()
def cyclemlp_b3(num_classes: int = 1000, droppath: float = OFFICIAL_DROPPATH,
                **kwargs) -> CycleNet:
    """CycleMLP-B3: blocks [3, 4, 18, 3], channels [64, 128, 320, 512], MLP ratios
    [8, 8, 4, 4]."""
    return _cyclemlp("b3", num_classes, droppath, kwargs)


@register_model()
def cyclemlp_b4(num_classes: int = 1000, droppath: float = OFFICIAL_DROPPATH,
                **kwargs) -> CycleNet:
    """CycleMLP-B4: blocks [3, 8, 27, 3], channels [64, 128, 320, 512], MLP ratios
    [8, 8, 4, 4]."""
    return _cyclemlp("b4", num_classes, droppath, kwargs)


@register_model()
def cyclemlp_b5(num_classes: int = 1000, droppath: float = OFFICIAL_DROPPATH,
                **kwargs) -> CycleNet:
    """CycleMLP-B5: blocks [3, 4, 24, 3], channels [96, 192, 384, 768], MLP ratio 4."""
    return _cyclemlp("b5", num_classes, droppath, kwargs)
