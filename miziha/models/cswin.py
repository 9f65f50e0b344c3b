"""The CSWin Transformer networks of the CSWin paper (Dong et al., CVPR 2022), assembled from
``CSWinT`` stages, with the official (microsoft/CSWin-Transformer) parameter names."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import ConvMerge, droppath_schedule, layer_norm
from ..layers.shapes import spatial_size
from ..mixers.cswin import CSWinT
from ..paddle_fixes.workarounds import pad_bottom_right
from .common import StagedTransformer, index_blocks
from .features import feature_entry
from .registry import register_model

__all__ = ["ConvEmbed", "CSWinStage", "CSWinTransformer", "KEY_MAPS", "cswin_tiny_224",
           "cswin_small_224", "cswin_base_224", "cswin_base_384", "cswin_large_224",
           "cswin_large_384"]

#: Source -> ordered (pattern, replacement) pairs for re.sub, applied to each key of a
#: checkpoint from that source to give miziha's (= the official) key. PaddleClas
#: (``ppcls/arch/backbone/model_zoo/cswin_transformer.py``) keeps the stem in
#: ``patch_embedding`` and stage ``i`` (from 0) with the merge after it in ``stages.{i}``.
KEY_MAPS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "paddleclas": (
        (r"^patch_embedding\.patch_embed\.", "stage1_conv_embed.0."),
        (r"^patch_embedding\.norm\.", "stage1_conv_embed.2."),
        *((rf"^stages\.{i}\.blocks\.", f"stage{i + 1}.") for i in range(4)),
        *((rf"^stages\.{i}\.merge\.", f"merge{i + 1}.") for i in range(3)),
    ),
}


class ConvEmbed(nn.Layer):
    """The stem: 7x7 stride-4 conv (padding 2), then LayerNorm:
    ``[B, C, H, W] -> [B, ceil(H/4), ceil(W/4), embed_dim]``.

    Sublayers ``0`` (conv) and ``2`` (norm), as the official ``stage1_conv_embed``
    Sequential, whose ``1`` is a parameter-free Rearrange. Sides that are not a multiple of 4
    are zero-padded at the bottom/right first (the official code takes multiples of 4 only;
    where its conv alone gives ``ceil(H/4)`` rows, the result is the same).
    """

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.add_sublayer("0", nn.Conv2D(in_channels, embed_dim, 7, stride=4, padding=2))
        self.add_sublayer("2", layer_norm(embed_dim))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        height, width = spatial_size(x, height_axis=2)
        x = pad_bottom_right(x, 4, height, width, height_axis=2)
        conv, norm = self._sub_layers["0"], self._sub_layers["2"]
        return norm(conv(x).transpose([0, 2, 3, 1]))


class CSWinStage(CSWinT):
    """A ``CSWinT`` (NHWC, no downsampling) whose blocks are its own children ``0`` ..
    ``depth - 1``, as the official ``stage{i}`` ModuleList: ``stage{i}.{j}.qkv`` rather than
    ``stage{i}.blocks.{j}.qkv``. Same blocks, geometry and computation as ``CSWinT``.

    Args: as :class:`~miziha.CSWinT` (``downsample`` and ``data_format`` fixed).
    """

    def __init__(self, channels: int, **options) -> None:
        super().__init__(channels, channels, downsample=False, data_format="NHWC", **options)
        index_blocks(self)


class CSWinTransformer(StagedTransformer):
    """CSWin Transformer for image classification, for any input size.

    Stem (:class:`ConvEmbed`, stride 4 -> ``embed_dim``), then per stage ``i`` a
    :class:`CSWinStage` of ``depths[i]`` CSWin blocks at ``embed_dim * 2**i`` channels with
    stripes of width ``split_sizes[i]`` (the last stage: one branch of full attention), and
    between stages the official ``Merge_Block`` (3x3 stride-2 conv + LayerNorm), a final
    LayerNorm, global average pooling and a linear head. Stochastic depth rises linearly from
    0 to ``droppath`` over all blocks.

    Any input size: the stem pads to a multiple of 4, and the stripes of each stage are
    padded at the bottom/right to a multiple of their width, the padded tokens being masked
    keys and zero values for LePE (as ``CSWinT`` does). The official classification code
    takes only its ``img_size``; on that size (and any whose maps divide by the stripe
    widths) this is exactly the official network.

    Parameter names are the official ones (``stage1_conv_embed.{0,2}``,
    ``stage{i}.{j}.{qkv,norm1,attns.{0,1}.get_v,proj,norm2,mlp.fc1,mlp.fc2}``,
    ``merge{i}.{conv,norm}``, ``norm``, ``head``); load an official checkpoint with
    :func:`~miziha.weights.official_to_miziha`, a PaddleClas one with :data:`KEY_MAPS`.

    Args:
        num_classes: classes of the head (0: no head, the output is the pooled features).
        in_channels: image channels.
        embed_dim: channels after the stem.
        depths: blocks per stage.
        num_heads: attention heads per stage (even, except the last stage's).
        split_sizes: stripe width per stage (the last stage attends over the whole map).
        mlp_ratio, qkv_bias, qk_scale, dropout, attention_dropout, attention: as in
            :class:`~miziha.CSWinT`.
        droppath: the stochastic depth rate of the last block.
        frozen_stages: -1 trains everything; 0 freezes the stem; ``k`` the stem and the
            first ``k`` stages with the merge after each.
        use_recompute: recompute each block's activations in backward (less memory).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, embed_dim: int = 64,
                 depths: Sequence[int] = (1, 2, 21, 1), num_heads: Sequence[int] = (2, 4, 8, 16),
                 split_sizes: Sequence[int] = (1, 2, 7, 7), mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0, droppath: float = 0.0,
                 frozen_stages: int = -1, use_recompute: bool = False,
                 attention: str = "auto") -> None:
        super().__init__(num_classes, in_channels)
        embed_dim = checks.positive_int("embed_dim", embed_dim)
        if not depths or not len(depths) == len(num_heads) == len(split_sizes):
            raise ValueError(f"depths, num_heads and split_sizes need one entry per stage, got "
                             f"{len(depths)}, {len(num_heads)} and {len(split_sizes)}")
        num_stages = len(depths)
        self.stage1_conv_embed = ConvEmbed(in_channels, embed_dim)
        rates = droppath_schedule(droppath, sum(depths))
        self._stages: List[Tuple[CSWinStage, Optional[ConvMerge]]] = []
        start = 0
        for i, (depth, heads, split) in enumerate(zip(depths, num_heads, split_sizes)):
            dim, last = embed_dim * 2 ** i, i == num_stages - 1
            stage = CSWinStage(dim, num_heads=heads, split_size=split, mlp_ratio=mlp_ratio,
                               qkv_bias=qkv_bias, qk_scale=qk_scale, dropout=dropout,
                               attention_dropout=attention_dropout,
                               droppath=rates[start:start + depth], last_stage=last,
                               depth=depth, use_recompute=use_recompute, attention=attention)
            self.add_sublayer(f"stage{i + 1}", stage)
            merge = None if last else self.add_sublayer(f"merge{i + 1}", ConvMerge(dim, 2 * dim))
            self._stages.append((stage, merge))
            start += depth
        self.num_features = embed_dim * 2 ** (num_stages - 1)
        self.norm = layer_norm(self.num_features)
        self.reset_classifier(self.num_classes)
        self.feature_info = [feature_entry(embed_dim * 2 ** i, 4 * 2 ** i, f"stage{i + 1}")
                             for i in range(num_stages)]
        self.freeze_stages(frozen_stages)

    def stem(self) -> ConvEmbed:
        """``stage1_conv_embed``."""
        return self.stage1_conv_embed

    def stages(self) -> List[Tuple[CSWinStage, Optional[ConvMerge]]]:
        """``stage{i}`` and ``merge{i}`` after it."""
        return list(self._stages)


def _cswin(num_classes: int, droppath: float, embed_dim: int, depths: Sequence[int],
           num_heads: Sequence[int], split_sizes: Sequence[int], kwargs) -> CSWinTransformer:
    """A configuration whose architecture options ``kwargs`` may override."""
    options = dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                   split_sizes=split_sizes)
    options.update(kwargs)
    return CSWinTransformer(num_classes=num_classes, droppath=droppath, **options)


@register_model()
def cswin_tiny_224(num_classes: int = 1000, droppath: float = 0.2,
                   **kwargs) -> CSWinTransformer:
    """CSWin-T (official ``CSWin_64_12211_tiny_224``): 64 channels, depths [1, 2, 21, 1],
    heads [2, 4, 8, 16], stripes [1, 2, 7, 7]; stochastic depth 0.2 (the README's training
    command)."""
    return _cswin(num_classes, droppath, 64, (1, 2, 21, 1), (2, 4, 8, 16), (1, 2, 7, 7), kwargs)


@register_model()
def cswin_small_224(num_classes: int = 1000, droppath: float = 0.4,
                    **kwargs) -> CSWinTransformer:
    """CSWin-S (``CSWin_64_24322_small_224``): 64 channels, depths [2, 4, 32, 2], heads
    [2, 4, 8, 16], stripes [1, 2, 7, 7]; stochastic depth 0.4 (README)."""
    return _cswin(num_classes, droppath, 64, (2, 4, 32, 2), (2, 4, 8, 16), (1, 2, 7, 7), kwargs)


@register_model()
def cswin_base_224(num_classes: int = 1000, droppath: float = 0.5,
                   **kwargs) -> CSWinTransformer:
    """CSWin-B (``CSWin_96_24322_base_224``): 96 channels, depths [2, 4, 32, 2], heads
    [4, 8, 16, 32], stripes [1, 2, 7, 7]; stochastic depth 0.5 (README)."""
    return _cswin(num_classes, droppath, 96, (2, 4, 32, 2), (4, 8, 16, 32), (1, 2, 7, 7),
                  kwargs)


@register_model()
def cswin_base_384(num_classes: int = 1000, droppath: float = 0.7,
                   **kwargs) -> CSWinTransformer:
    """CSWin-B at 384 (``CSWin_96_24322_base_384``): CSWin-B with stripes [1, 2, 12, 12];
    stochastic depth 0.7 (the README's fine-tuning command)."""
    return _cswin(num_classes, droppath, 96, (2, 4, 32, 2), (4, 8, 16, 32), (1, 2, 12, 12),
                  kwargs)


@register_model()
def cswin_large_224(num_classes: int = 1000, droppath: float = 0.2,
                    **kwargs) -> CSWinTransformer:
    """CSWin-L (``CSWin_144_24322_large_224``, ImageNet-22k pre-trained): 144 channels,
    depths [2, 4, 32, 2], heads [6, 12, 24, 24], stripes [1, 2, 7, 7]; stochastic depth 0.2
    (the README's ImageNet-1k fine-tuning command)."""
    return _cswin(num_classes, droppath, 144, (2, 4, 32, 2), (6, 12, 24, 24), (1, 2, 7, 7),
                  kwargs)


@register_model()
def cswin_large_384(num_classes: int = 1000, droppath: float = 0.2,
                    **kwargs) -> CSWinTransformer:
    """CSWin-L at 384 (``CSWin_144_24322_large_384``): CSWin-L with stripes [1, 2, 12, 12];
    stochastic depth 0.2, as CSWin-L's fine-tuning (the README gives no command for it)."""
    return _cswin(num_classes, droppath, 144, (2, 4, 32, 2), (6, 12, 24, 24), (1, 2, 12, 12),
                  kwargs)
