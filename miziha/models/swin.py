"""The Swin Transformer V1 networks of the Swin paper (Liu et al., "Swin Transformer:
Hierarchical Vision Transformer using Shifted Windows", ICCV 2021), assembled from ``SwinT``
stages, under the official parameter names.

Registry names (timm's): ``swin_tiny_patch4_window7_224``, ``swin_small_patch4_window7_224``,
``swin_base_patch4_window7_224``, ``swin_base_patch4_window12_384``,
``swin_large_patch4_window7_224``, ``swin_large_patch4_window12_384``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import layer_norm
from ..layers.shapes import spatial_size
from ..paddle_fixes.workarounds import pad_bottom_right
from ..mixers.swin import SwinT
from .common import StagedTransformer
from .registry import register_model

__all__ = ["PatchEmbed", "SwinTransformer", "KEY_MAPS", "swin_tiny_patch4_window7_224",
           "swin_small_patch4_window7_224", "swin_base_patch4_window7_224",
           "swin_base_patch4_window12_384", "swin_large_patch4_window7_224",
           "swin_large_patch4_window12_384"]

#: Source -> ordered (pattern, replacement) pairs for re.sub, applied to each key of a
#: checkpoint from that source to give miziha's (= the official) key
#: (:func:`miziha.weights.load_pretrained`). timm >= 0.9 keeps each stage's patch merging
#: at the start of the next stage (``layers.{i+1}.downsample``) and wraps the classifier
#: (``head.fc``); it stores no ``relative_position_index`` / ``attn_mask``. PaddleClas keeps
#: the official names (Paddle layout); its stage 4 shifts windows where the official code
#: does not, and miziha keeps the official function.
KEY_MAPS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "timm": ((r"^layers\.1\.downsample\.", "layers.0.downsample."),
             (r"^layers\.2\.downsample\.", "layers.1.downsample."),
             (r"^layers\.3\.downsample\.", "layers.2.downsample."),
             (r"^head\.fc\.", "head.")),
    "paddleclas": (),
}


class PatchEmbed(nn.Layer):
    """Patches of stride ``patch_size``, linearly embedded by a convolution, then LayerNorm:
    ``[B, C, H, W] -> [B, ceil(H/p), ceil(W/p), embed_dim]``.

    By default the convolution's kernel is the patch (non-overlapping patches, Swin's);
    a larger ``kernel_size`` with ``padding`` gives an overlapping stem (Pale's 7x7, stride 4,
    padding 3). Sides that are not a multiple of the patch are zero-padded at the
    bottom/right first, as the official Swin detection code does.

    Parameter names: ``proj`` (the convolution), ``norm``.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int = 4,
                 kernel_size: Optional[int] = None, padding: int = 0) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2D(in_channels, embed_dim, kernel_size or patch_size,
                              stride=patch_size, padding=padding)
        self.norm = layer_norm(embed_dim)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        height, width = spatial_size(x, height_axis=2)
        x = pad_bottom_right(x, self.patch_size, height, width, height_axis=2)
        return self.norm(self.proj(x).transpose([0, 2, 3, 1]))


class SwinTransformer(StagedTransformer):
    """Swin Transformer V1 for image classification, for any input size.

    Patch embedding (4x4 patches -> ``embed_dim``), then one :class:`~miziha.SwinT` per
    stage in NHWC (stage ``i`` has ``depths[i]`` blocks at ``embed_dim * 2**i`` channels and,
    except the last, ends with patch merging), a final LayerNorm, global average pooling and
    a linear head. Stochastic depth rises linearly from 0 to ``droppath`` over all blocks.
    No absolute position embedding (the official default, ``ape=False``). Where a stage's
    map is no larger than the window (the last stage at 224 with window 7, or at 384 with
    window 12), its windows cover the map and are not shifted, as in the official code.

    Parameter names follow the official checkpoints (``patch_embed.proj``,
    ``layers.{i}.blocks.{j}.attn.qkv``, ``layers.{i}.downsample.reduction``, ``norm``,
    ``head``); see :func:`~miziha.weights.official.official_to_miziha` to load one.

    Args:
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        embed_dim: channels after patch embedding.
        depths: blocks per stage (each even: W-MSA / SW-MSA pairs).
        num_heads: attention heads per stage.
        window_size: attention window side.
        patch_size: side of the embedded patches.
        mlp_ratio, qkv_bias, qk_scale, dropout, attention_dropout: as in ``SwinT``.
        droppath: the stochastic depth rate of the last block.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in ``SwinT``.
        frozen_stages: -1 trains everything; 0 freezes the patch embedding; ``k >= 1`` also
            the first ``k`` stages (no gradients, eval mode), as detection backbones do.
        use_recompute: recompute each block's activations in backward (see ``SwinT``).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, patch_size: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale=None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.1,
                 attention: str = "auto", frozen_stages: int = -1,
                 use_recompute: bool = False) -> None:
        super().__init__(num_classes, in_channels)
        embed_dim = checks.positive_int("embed_dim", embed_dim)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths and num_heads need one entry per stage, got {len(depths)} "
                             f"and {len(num_heads)}")
        self.patch_embed = PatchEmbed(in_channels, embed_dim,
                                      checks.positive_int("patch_size", patch_size))
        self.pos_drop = nn.Dropout(checks.rate("dropout", dropout))
        self.build_stages(
            embed_dim, depths, droppath, self.patch_embed.patch_size,
            lambda i, dim, out_dim, **stage: self._make_stage(
                i, dim, out_dim, num_heads=num_heads[i], window_size=window_size,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, dropout=dropout,
                attention_dropout=attention_dropout, attention=attention,
                use_recompute=use_recompute, **stage))
        self.norm = layer_norm(self.num_features)
        self.reset_classifier(self.num_classes)
        self.freeze_stages(frozen_stages)

    def _make_stage(self, index: int, dim: int, out_dim: int, **options) -> SwinT:
        """Stage ``index``: the mixer at ``dim`` channels ending at ``out_dim``, with the
        options the constructor gives every stage (Swin V2 builds its own mixer here)."""
        return SwinT(dim, out_dim, **options)


#: The official configurations (configs/swin/*.yaml): channels, depths, heads per size.
_SIZES = {"tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
          "small": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
          "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
          "large": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))}


def _swin(size: str, window_size: int, num_classes: int, droppath: float,
          kwargs: dict) -> SwinTransformer:
    options = dict(_SIZES[size], window_size=window_size, droppath=droppath)
    options.update(kwargs)
    return SwinTransformer(num_classes=num_classes, **options)


@register_model()
def swin_tiny_patch4_window7_224(num_classes: int = 1000, droppath: float = 0.2,
                                 **kwargs) -> SwinTransformer:
    """Swin-T at 224: embed 96, depths [2, 2, 6, 2], heads [3, 6, 12, 24], window 7;
    stochastic depth 0.2 (the official config). 28,288,354 parameters."""
    return _swin("tiny", 7, num_classes, droppath, kwargs)


@register_model()
def swin_small_patch4_window7_224(num_classes: int = 1000, droppath: float = 0.3,
                                  **kwargs) -> SwinTransformer:
    """Swin-S at 224: embed 96, depths [2, 2, 18, 2], heads [3, 6, 12, 24], window 7;
    stochastic depth 0.3 (the official config). 49,606,258 parameters."""
    return _swin("small", 7, num_classes, droppath, kwargs)


@register_model()
def swin_base_patch4_window7_224(num_classes: int = 1000, droppath: float = 0.5,
                                 **kwargs) -> SwinTransformer:
    """Swin-B at 224: embed 128, depths [2, 2, 18, 2], heads [4, 8, 16, 32], window 7;
    stochastic depth 0.5 (the official config). 87,768,224 parameters."""
    return _swin("base", 7, num_classes, droppath, kwargs)


@register_model()
def swin_base_patch4_window12_384(num_classes: int = 1000, droppath: float = 0.5,
                                  **kwargs) -> SwinTransformer:
    """Swin-B at 384: as Swin-B with window 12 (23x23 bias tables); stochastic depth 0.5
    (the official 384 fine-tuning config). 87,903,584 parameters."""
    return _swin("base", 12, num_classes, droppath, kwargs)


@register_model()
def swin_large_patch4_window7_224(num_classes: int = 1000, droppath: float = 0.2,
                                  **kwargs) -> SwinTransformer:
    """Swin-L at 224: embed 192, depths [2, 2, 18, 2], heads [6, 12, 24, 48], window 7;
    stochastic depth 0.2 (the official ImageNet-22K and 22K->1K configs).
    196,532,476 parameters."""
    return _swin("large", 7, num_classes, droppath, kwargs)


@register_model()
def swin_large_patch4_window12_384(num_classes: int = 1000, droppath: float = 0.2,
                                   **kwargs) -> SwinTransformer:
    """Swin-L at 384: as Swin-L with window 12; stochastic depth 0.2 (the official 22K->1K
    config). 196,735,516 parameters."""
    return _swin("large", 12, num_classes, droppath, kwargs)
