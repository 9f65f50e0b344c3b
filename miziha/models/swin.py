"""The Swin Transformer of the Swin paper (Liu et al., 2021), assembled from ``SwinT`` stages."""

from __future__ import annotations

from typing import List, Optional, Sequence

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import droppath_schedule
from ..layers.basic import layer_norm, linear
from ..layers.shapes import spatial_size
from ..paddle_fixes.workarounds import pad_bottom_right
from ..mixers.swin import SwinT
from .common import check_image
from .features import feature_entry, stage_indices
from .registry import register_model

__all__ = ["PatchEmbed", "SwinTransformer", "swin_tiny"]


class PatchEmbed(nn.Layer):
    """Non-overlapping ``patch_size`` x ``patch_size`` patches, linearly embedded, then
    LayerNorm: ``[B, C, H, W] -> [B, ceil(H/p), ceil(W/p), embed_dim]``.

    Sides that are not a multiple of the patch are zero-padded at the bottom/right, as the
    official detection code does.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2D(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = layer_norm(embed_dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        height, width = spatial_size(x, height_axis=2)
        x = pad_bottom_right(x, self.patch_size, height, width, height_axis=2)
        return self.norm(self.proj(x).transpose([0, 2, 3, 1]))


class SwinTransformer(nn.Layer):
    """Swin Transformer V1 for image classification, for any input size.

    Patch embedding (4x4 patches -> ``embed_dim``), then one :class:`~miziha.SwinT` per
    stage in NHWC (stage ``i`` has ``depths[i]`` blocks at ``embed_dim * 2**i`` channels and,
    except the last, ends with patch merging), a final LayerNorm, global average pooling and
    a linear head. Stochastic depth rises linearly from 0 to ``droppath`` over all blocks.
    No absolute position embedding (the official default, ``ape=False``).

    Parameter names follow the official checkpoints (``patch_embed.proj``,
    ``layers.{i}.blocks.{j}.attn.qkv``, ``layers.{i}.downsample.reduction``, ``norm``,
    ``head``); see :func:`~miziha.weights.official.official_to_miziha` to load one.

    Args:
        num_classes: classes of the head (>= 1).
        in_channels: image channels.
        embed_dim: channels after patch embedding.
        depths: blocks per stage (each even: W-MSA / SW-MSA pairs).
        num_heads: attention heads per stage.
        window_size: attention window side.
        patch_size: side of the embedded patches.
        mlp_ratio, qkv_bias, qk_scale, dropout, attention_dropout: as in ``SwinT``.
        droppath: the stochastic depth rate of the last block.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in ``SwinT``.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, patch_size: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale=None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.1,
                 attention: str = "auto") -> None:
        super().__init__()
        self.num_classes = checks.positive_int("num_classes", num_classes)
        self.in_channels = checks.positive_int("in_channels", in_channels)
        embed_dim = checks.positive_int("embed_dim", embed_dim)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths and num_heads need one entry per stage, got {len(depths)} "
                             f"and {len(num_heads)}")
        self.patch_embed = PatchEmbed(in_channels, embed_dim,
                                      checks.positive_int("patch_size", patch_size))
        self.pos_drop = nn.Dropout(checks.rate("dropout", dropout))
        rates = droppath_schedule(droppath, sum(depths))
        layers, start = [], 0
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim, last = embed_dim * 2 ** i, i == len(depths) - 1
            layers.append(self._make_stage(
                i, dim, dim if last else 2 * dim, num_heads=heads, window_size=window_size,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, dropout=dropout,
                attention_dropout=attention_dropout, droppath=rates[start:start + depth],
                downsample=not last, depth=depth, data_format="NHWC", attention=attention))
            start += depth
        self.layers = nn.LayerList(layers)
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = layer_norm(self.num_features)
        self.head = linear(self.num_features, self.num_classes)
        patch = self.patch_embed.patch_size
        self.feature_info = [feature_entry(embed_dim * 2 ** i, patch * 2 ** i, f"layers.{i}")
                             for i in range(len(depths))]

    def _make_stage(self, index: int, dim: int, out_dim: int, **options) -> SwinT:
        """Stage ``index``: the mixer at ``dim`` channels ending at ``out_dim``, with the
        options the constructor gives every stage (Swin V2 builds its own mixer here)."""
        return SwinT(dim, out_dim, **options)

    def forward_intermediates(self, x: paddle.Tensor,
                              indices: Optional[Sequence[int]] = None) -> List[paddle.Tensor]:
        """Per stage ``indices`` (default: all), its blocks' output before patch merging,
        NCHW, at strides 4, 8, 16, 32 (``embed_dim * 2**i`` channels); the last stage's is
        normalised, as in :meth:`forward_features`."""
        wanted = stage_indices(indices, len(self.layers))
        check_image(x, self.in_channels, type(self).__name__)
        x = self.pos_drop(self.patch_embed(x))
        maps, last = [], len(self.layers) - 1
        for i, layer in enumerate(self.layers[:wanted[-1] + 1]):
            stage, x = layer.forward_blocks(x)
            if i == last:
                stage = self.norm(stage)
            if i in wanted:
                maps.append(stage.transpose([0, 3, 1, 2]))
        return maps

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> the normalised last map ``[B, num_features, H/32, W/32]``
        (``H/4`` for one stage)."""
        check_image(x, self.in_channels, type(self).__name__)
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).transpose([0, 3, 1, 2])

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Features ``[B, C, h, w]`` -> logits (``pre_logits``: pooled ``[B, C]``)."""
        x = x.mean(axis=[2, 3])
        return x if pre_logits else self.head(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


@register_model()
def swin_tiny(num_classes: int = 1000, droppath: float = 0.2, **kwargs) -> SwinTransformer:
    """Swin-T: embed 96, depths [2, 2, 6, 2], heads [3, 6, 12, 24], window 7, and the
    stochastic depth of the official Swin-T config (0.2) unless ``droppath`` is given."""
    options = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                   window_size=7, droppath=droppath)
    options.update(kwargs)
    return SwinTransformer(num_classes=num_classes, **options)
