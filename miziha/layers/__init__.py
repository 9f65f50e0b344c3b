"""What several mixers share: attention cores (:mod:`.attention`), window, group and shift
geometry (:mod:`.windows`, :mod:`.groups`, :mod:`.shifts`), the size cache
(:mod:`.size_cache`), sizes in eager and static mode (:mod:`.shapes`) and the small layers
(:mod:`.basic`: Linear / LayerNorm builders, Mlp, DropPath, stochastic depth). Nothing here
imports a design."""

from .basic import (TRUNC_NORMAL, ConvMerge, DropPath, Mlp, ScaleSamples, droppath_schedule,
                    layer_norm, linear)

__all__ = ["TRUNC_NORMAL", "linear", "layer_norm", "Mlp", "DropPath", "ScaleSamples",
           "droppath_schedule", "ConvMerge"]
