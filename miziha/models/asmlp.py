"""The AS-MLP networks of the AS-MLP paper (Lian et al., ICLR 2022), tiny, small and base,
assembled from :class:`~miziha.ASMLPT` stages (svip-lab/AS-MLP ``models/as_mlp.py`` with the
``configs/as_*_patch4_shift5_224.yaml`` configurations)."""

from __future__ import annotations

from typing import Sequence

import paddle.nn as nn

from .. import checks
from ..mixers.asmlp import ASMLPT, GroupNorm1
from .common import StagedTransformer
from .registry import register_model
from .swin import PatchEmbed as SwinPatchEmbed

__all__ = ["ASMLP", "PatchEmbed", "asmlp_tiny", "asmlp_small", "asmlp_base"]


class PatchEmbed(SwinPatchEmbed):
    """AS-MLP's stem: non-overlapping ``patch_size`` patches linearly embedded, then
    ``GroupNorm(1, C)`` over the whole map: ``[B, C, H, W] -> [B, ceil(H/p), ceil(W/p),
    embed_dim]``. Sides that are not a multiple of the patch are zero-padded at the
    bottom/right (the official code accepts only its configured size)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int = 4) -> None:
        super().__init__(in_channels, embed_dim, patch_size)
        self.norm = GroupNorm1(embed_dim)


class ASMLP(StagedTransformer):
    """AS-MLP for image classification, for any input size.

    Patch embedding (``patch_size`` patches -> ``embed_dim``, GroupNorm), then one
    :class:`~miziha.ASMLPT` per stage in NHWC (stage ``i`` has ``depths[i]`` blocks at
    ``embed_dim * 2**i`` channels and, except the last, ends with AS-MLP's patch merging), a
    final ``GroupNorm(1, C)``, global average pooling and a linear head. Stochastic depth
    rises linearly from 0 to ``droppath`` over all blocks.

    Parameter names follow the official checkpoints (``patch_embed.proj``,
    ``patch_embed.norm``, ``layers.{i}.blocks.{j}.axial_shift.conv1``,
    ``layers.{i}.downsample.reduction``, ``norm``, ``head``); see
    :func:`~miziha.weights.official.official_to_miziha` to load one.

    Args:
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        embed_dim: channels after patch embedding.
        depths: blocks per stage.
        shift_size: channel groups of the axial shifts (official 5).
        mlp_ratio: MLP hidden width over the channels.
        as_bias: biases of the axial-shift convolutions.
        patch_size: side of the embedded patches.
        dropout: dropout after the patch embedding and in the MLPs.
        droppath: the stochastic depth rate of the last block (official constructor
            default 0.1; the configurations use 0.2, 0.3, 0.5).
        frozen_stages: -1 nothing frozen; ``k >= 0``: the stem and the first ``k`` stages,
            each with its patch merging, get no gradient
            (:class:`~miziha.models.common.FrozenStages`).
        use_recompute: recompute each block's activations in backward (see
            :class:`~miziha.mixers.base.TokenMixer`).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), shift_size: int = 5,
                 mlp_ratio: float = 4.0, as_bias: bool = True, patch_size: int = 4,
                 dropout: float = 0.0, droppath: float = 0.1, frozen_stages: int = -1,
                 use_recompute: bool = False) -> None:
        super().__init__(num_classes, in_channels)
        embed_dim = checks.positive_int("embed_dim", embed_dim)
        if not depths:
            raise ValueError("depths needs one entry per stage, got none")
        self.patch_embed = PatchEmbed(in_channels, embed_dim,
                                      checks.positive_int("patch_size", patch_size))
        self.pos_drop = nn.Dropout(checks.rate("dropout", dropout))
        self.build_stages(
            embed_dim, depths, droppath, self.patch_embed.patch_size,
            lambda i, dim, out_dim, **stage: ASMLPT(
                dim, out_dim, shift_size=shift_size, mlp_ratio=mlp_ratio, as_bias=as_bias,
                dropout=dropout, use_recompute=use_recompute, **stage))
        self.norm = GroupNorm1(self.num_features)
        self.reset_classifier(self.num_classes)
        self.freeze_stages(frozen_stages)


def _asmlp(embed_dim: int, depths: Sequence[int], num_classes: int, droppath: float,
           kwargs: dict) -> ASMLP:
    options = dict(embed_dim=embed_dim, depths=depths, shift_size=5, droppath=droppath)
    options.update(kwargs)
    return ASMLP(num_classes=num_classes, **options)


@register_model()
def asmlp_tiny(num_classes: int = 1000, droppath: float = 0.2, **kwargs) -> ASMLP:
    """AS-MLP-T (``as_tiny_patch4_shift5_224``): embed 96, depths [2, 2, 6, 2], shift 5,
    stochastic depth 0.2 unless ``droppath`` is given."""
    return _asmlp(96, (2, 2, 6, 2), num_classes, droppath, kwargs)


@register_model()
def asmlp_small(num_classes: int = 1000, droppath: float = 0.3, **kwargs) -> ASMLP:
    """AS-MLP-S (``as_small_patch4_shift5_224``): embed 96, depths [2, 2, 18, 2], shift 5,
    stochastic depth 0.3 unless ``droppath`` is given."""
    return _asmlp(96, (2, 2, 18, 2), num_classes, droppath, kwargs)


@register_model()
def asmlp_base(num_classes: int = 1000, droppath: float = 0.5, **kwargs) -> ASMLP:
    """AS-MLP-B (``as_base_patch4_shift5_224``): embed 128, depths [2, 2, 18, 2], shift 5,
    stochastic depth 0.5 unless ``droppath`` is given."""
    return _asmlp(128, (2, 2, 18, 2), num_classes, droppath, kwargs)
