"""The Swin Transformer V2 networks (Liu et al., CVPR 2022), assembled from ``SwinV2T``
stages on Swin V1's skeleton (:class:`~miziha.models.swin.SwinTransformer`: patch
embedding, stages, final norm, head, the timm-style forwards), with the official parameter
names, and the six ImageNet-1K models of the official repository under timm's names."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

from ..mixers.swinv2 import SwinV2T
from .registry import register_model
from .swin import SwinTransformer

__all__ = ["SwinTransformerV2", "KEY_MAPS", "swinv2_tiny_window8_256",
           "swinv2_tiny_window16_256", "swinv2_small_window8_256",
           "swinv2_small_window16_256", "swinv2_base_window8_256", "swinv2_base_window16_256"]

#: Source -> ordered (pattern, replacement) pairs for re.sub, applied to each key of a
#: checkpoint from that source to give miziha's (= the official) key. timm (>= 0.9) puts
#: patch merging at the start of the next stage (its ``layers.{i}.downsample`` is the
#: official ``layers.{i-1}.downsample``; pairs in order 1, 2, 3 so that no key is renamed
#: twice) and the classifier in ``head.fc``.
KEY_MAPS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "timm": ((r"^layers\.1\.downsample\.", "layers.0.downsample."),
             (r"^layers\.2\.downsample\.", "layers.1.downsample."),
             (r"^layers\.3\.downsample\.", "layers.2.downsample."),
             (r"^head\.fc\.", "head.")),
}


class SwinTransformerV2(SwinTransformer):
    """Swin Transformer V2 for image classification, for any input size.

    :class:`~miziha.models.swin.SwinTransformer`'s network (4x4 patch embedding with
    LayerNorm, four stages, final LayerNorm, average pooling, Linear head; its
    ``forward_features``, ``forward_head``, ``forward_intermediates``, ``feature_info``)
    with one :class:`~miziha.SwinV2T` per stage: scaled cosine attention, continuous
    position bias, res-post-norm, V2 patch merging. A stage whose map is no larger than
    the window clips the window to the map and does not shift (the official rule, applied
    per input size here).

    Parameter names are the official ones (``patch_embed.*``,
    ``layers.{i}.blocks.{j}.attn.{logit_scale,q_bias,v_bias,qkv,proj,cpb_mlp.0,cpb_mlp.2}``,
    ``layers.{i}.blocks.{j}.{norm1,norm2,mlp.fc1,mlp.fc2}``,
    ``layers.{i}.downsample.{reduction,norm}``, ``norm``, ``head``):
    :func:`~miziha.weights.official_to_miziha` loads an official checkpoint, the derived
    buffers (``relative_coords_table``, ``relative_position_index``, ``attn_mask``) dropped.

    Args:
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        embed_dim: channels after patch embedding.
        depths: blocks per stage (each even).
        num_heads: attention heads per stage.
        window_size: attention window side.
        patch_size: side of the embedded patches.
        mlp_ratio, qkv_bias, dropout, attention_dropout: as in ``SwinV2T``.
        droppath: the stochastic depth rate of the last block (linear from 0).
        pretrained_window_sizes: per stage (or one int for all), the window the weights
            were trained with, 0 for this one: a window-8 checkpoint runs in a window-16
            model with ``pretrained_window_sizes=8``, nothing resized (the official
            ``PRETRAINED_WINDOW_SIZES``).
        frozen_stages: -1 nothing; 0 the patch embedding; k also the first k stages: they
            get no gradient and stay in eval mode (:class:`~miziha.models.common.FrozenStages`).
        use_recompute: recompute each block's activations in backward (less memory).
        attention: ``"auto"``, ``"math"`` or ``"sdpa"``, as in ``SwinV2T``.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 8, patch_size: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, dropout: float = 0.0, attention_dropout: float = 0.0,
                 droppath: float = 0.1,
                 pretrained_window_sizes: Union[int, Sequence[int]] = 0,
                 frozen_stages: int = -1, use_recompute: bool = False,
                 attention: str = "auto") -> None:
        stages = len(depths)
        if isinstance(pretrained_window_sizes, int):
            pretrained_window_sizes = (pretrained_window_sizes,) * stages
        if len(pretrained_window_sizes) != stages:
            raise ValueError(f"pretrained_window_sizes needs one entry per stage ({stages}), "
                             f"got {pretrained_window_sizes!r}")
        # Read by _make_stage, which SwinTransformer.__init__ calls.
        self.pretrained_window_sizes = tuple(pretrained_window_sizes)
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                         window_size=window_size, patch_size=patch_size, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, qk_scale=None, dropout=dropout,
                         attention_dropout=attention_dropout, droppath=droppath,
                         frozen_stages=frozen_stages, use_recompute=use_recompute,
                         attention=attention)

    def _make_stage(self, index: int, dim: int, out_dim: int, **options) -> SwinV2T:
        del options["qk_scale"]  # cosine attention: no fixed scale
        return SwinV2T(dim, out_dim, pretrained_window_size=self.pretrained_window_sizes[index],
                       **options)


def _build(num_classes: int, droppath: float, embed_dim: int, depths: Sequence[int],
           num_heads: Sequence[int], window_size: int, kwargs: dict) -> SwinTransformerV2:
    options = dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                   window_size=window_size, droppath=droppath)
    options.update(kwargs)
    return SwinTransformerV2(num_classes=num_classes, **options)


_TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
_SMALL = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
_BASE = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))


@register_model()
def swinv2_tiny_window8_256(num_classes: int = 1000, droppath: float = 0.2,
                            **kwargs) -> SwinTransformerV2:
    """SwinV2-T, window 8, 256 (official swinv2_tiny_patch4_window8_256: 28,347,154
    parameters, stochastic depth 0.2)."""
    return _build(num_classes, droppath, window_size=8, kwargs=kwargs, **_TINY)


@register_model()
def swinv2_tiny_window16_256(num_classes: int = 1000, droppath: float = 0.2,
                             **kwargs) -> SwinTransformerV2:
    """SwinV2-T, window 16, 256 (official swinv2_tiny_patch4_window16_256)."""
    return _build(num_classes, droppath, window_size=16, kwargs=kwargs, **_TINY)


@register_model()
def swinv2_small_window8_256(num_classes: int = 1000, droppath: float = 0.3,
                             **kwargs) -> SwinTransformerV2:
    """SwinV2-S, window 8, 256 (official swinv2_small_patch4_window8_256: 49,728,418
    parameters, stochastic depth 0.3)."""
    return _build(num_classes, droppath, window_size=8, kwargs=kwargs, **_SMALL)


@register_model()
def swinv2_small_window16_256(num_classes: int = 1000, droppath: float = 0.3,
                              **kwargs) -> SwinTransformerV2:
    """SwinV2-S, window 16, 256 (official swinv2_small_patch4_window16_256)."""
    return _build(num_classes, droppath, window_size=16, kwargs=kwargs, **_SMALL)


@register_model()
def swinv2_base_window8_256(num_classes: int = 1000, droppath: float = 0.5,
                            **kwargs) -> SwinTransformerV2:
    """SwinV2-B, window 8, 256 (official swinv2_base_patch4_window8_256: 87,918,816
    parameters, stochastic depth 0.5)."""
    return _build(num_classes, droppath, window_size=8, kwargs=kwargs, **_BASE)


@register_model()
def swinv2_base_window16_256(num_classes: int = 1000, droppath: float = 0.5,
                             **kwargs) -> SwinTransformerV2:
    """SwinV2-B, window 16, 256 (official swinv2_base_patch4_window16_256)."""
    return _build(num_classes, droppath, window_size=16, kwargs=kwargs, **_BASE)
