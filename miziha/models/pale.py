"""The Pale Transformer networks of Wu, Wu, Tan, Guo, "Pale Transformer: A General Vision
Transformer Backbone with Pale-Shaped Attention" (AAAI 2022, arXiv 2112.14000), assembled
from ``PaleT`` stages.

Registry names: ``pale_tiny``, ``pale_small``, ``pale_base`` (the paper's Pale-T/S/B: 22M,
48M and 85M parameters, 83.4, 84.3 and 84.9% ImageNet-1K top-1 at 224, published).

No official code or checkpoint exists, so parameter names are miziha's (Swin's layout:
``patch_embed``, ``layers.{i}``, ``norm``, ``head``). What the paper does not fix and
miziha chose: see :class:`PaleTransformer` and ``docs/models.md``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import paddle.nn as nn

from .. import checks
from ..layers.basic import layer_norm
from ..mixers.pale import PaleT
from .common import StagedTransformer
from .registry import register_model
from .swin import PatchEmbed

__all__ = ["PaleTransformer", "pale_tiny", "pale_small", "pale_base"]


class PaleTransformer(StagedTransformer):
    """Pale Transformer for image classification, for any input size.

    A convolutional stem (7x7, stride 4, padding 3, then LayerNorm) to ``embed_dim``, then
    one :class:`~miziha.PaleT` per stage in NHWC (stage ``i`` has ``depths[i]`` blocks at
    ``embed_dim * 2**i`` channels and, except the last, ends with the 3x3 stride-2 conv +
    LayerNorm merging), a final LayerNorm, global average pooling and a linear head. Each
    block adds a conditional position encoding (depthwise 3x3 conv) and attends within pales
    of ``pale_size`` interlaced rows and columns. Stochastic depth rises linearly from 0 to
    ``droppath`` over all blocks.

    Choices where the paper is silent or unclear (no official code): q, k, v from one Linear
    (the paper uses separable convolutions, see :class:`~miziha.PaleT`); stem padding 3 (so
    maps are ``ceil(H/4)``); the final LayerNorm; the stochastic depth defaults of the
    builders.

    Parameter names: ``patch_embed.{proj, norm}``, ``layers.{i}.blocks.{j}.{cpe, norm1,
    attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``layers.{i}.downsample.{conv, norm}``,
    ``norm``, ``head``.

    Args:
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        embed_dim: channels after the stem.
        depths: blocks per stage.
        num_heads: attention heads per stage (even: half on rows, half on columns).
        pale_size: interlaced rows (and columns) per pale, in every stage.
        mlp_ratio, qkv_bias, qk_scale, dropout, attention_dropout, attention: as in ``PaleT``.
        droppath: the stochastic depth rate of the last block.
        frozen_stages: -1 trains everything; 0 freezes the stem; ``k >= 1`` also the first
            ``k`` stages (no gradients, eval mode).
        use_recompute: recompute each block's activations in backward (see ``PaleT``).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 64,
                 depths: Sequence[int] = (2, 2, 16, 2), num_heads: Sequence[int] = (2, 4, 8, 16),
                 pale_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.1,
                 attention: str = "auto", frozen_stages: int = -1,
                 use_recompute: bool = False) -> None:
        super().__init__(num_classes, in_channels)
        embed_dim = checks.positive_int("embed_dim", embed_dim)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths and num_heads need one entry per stage, got {len(depths)} "
                             f"and {len(num_heads)}")
        self.patch_embed = PatchEmbed(in_channels, embed_dim, 4, kernel_size=7, padding=3)
        self.pos_drop = nn.Dropout(checks.rate("dropout", dropout))
        self.build_stages(
            embed_dim, depths, droppath, 4,
            lambda i, dim, out_dim, **stage: PaleT(
                dim, out_dim, num_heads=num_heads[i], pale_size=pale_size, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, qk_scale=qk_scale, dropout=dropout,
                attention_dropout=attention_dropout, attention=attention,
                use_recompute=use_recompute, **stage))
        self.norm = layer_norm(self.num_features)
        self.reset_classifier(self.num_classes)
        self.freeze_stages(frozen_stages)


def _pale(embed_dim: int, num_heads: Sequence[int], num_classes: int, droppath: float,
          kwargs: dict) -> PaleTransformer:
    options = dict(embed_dim=embed_dim, depths=(2, 2, 16, 2), num_heads=tuple(num_heads),
                   pale_size=7, droppath=droppath)
    options.update(kwargs)
    return PaleTransformer(num_classes=num_classes, **options)


@register_model()
def pale_tiny(num_classes: int = 1000, droppath: float = 0.2, **kwargs) -> PaleTransformer:
    """Pale-T: embed 64, depths [2, 2, 16, 2], heads [2, 4, 8, 16], pale 7 (22M in the
    paper); stochastic depth 0.2 (miziha's choice)."""
    return _pale(64, (2, 4, 8, 16), num_classes, droppath, kwargs)


@register_model()
def pale_small(num_classes: int = 1000, droppath: float = 0.3, **kwargs) -> PaleTransformer:
    """Pale-S: embed 96, depths [2, 2, 16, 2], heads [4, 8, 16, 32], pale 7 (48M in the
    paper); stochastic depth 0.3 (miziha's choice)."""
    return _pale(96, (4, 8, 16, 32), num_classes, droppath, kwargs)


@register_model()
def pale_base(num_classes: int = 1000, droppath: float = 0.5, **kwargs) -> PaleTransformer:
    """Pale-B: embed 128, depths [2, 2, 16, 2], heads [4, 8, 16, 32], pale 7 (85M in the
    paper); stochastic depth 0.5 (miziha's choice)."""
    return _pale(128, (4, 8, 16, 32), num_classes, droppath, kwargs)
