"""``MIXERS``: every Conv2D-like mixer by name, for ``replace_conv``, the networks and the
benchmarks."""

from __future__ import annotations

from typing import Dict, Tuple, Type

from .asmlp import ASMLPT
from .axial import AxialT
from .cswin import CSWinT
from .cyclemlp import CycleMLPT
from .base import TokenMixer
from .pale import PaleT
from .swin import SwinT
from .swinv2 import SwinV2T

__all__ = ["MIXERS", "STAGE_OPTIONS", "mixer_class", "stage_options"]

#: Name -> layer class; each takes ``(in_channels, out_channels, ...)`` as ``nn.Conv2D``.
MIXERS: Dict[str, Type[TokenMixer]] = {"swin": SwinT, "swinv2": SwinV2T, "pale": PaleT,
                                        "cswin": CSWinT, "axial": AxialT,
                                        "cyclemlp": CycleMLPT, "asmlp": ASMLPT}


#: Options that differ per stage in a design's official four-stage model (stages at strides
#: 4, 8, 16, 32): CSWin-T, -S and -B use stripes of width ``split_size=[1, 2, 7, 7]``
#: (microsoft/CSWin-Transformer ``models/cswin.py``). The other designs keep one size in
#: every stage (Swin's and Swin V2's window 7, Pale's pale size 7, AS-MLP's shift size 5;
#: axial attention has no size).
STAGE_OPTIONS: Dict[str, Tuple[dict, ...]] = {
    "cswin": tuple(dict(split_size=size) for size in (1, 2, 7, 7)),
}


def stage_options(name: str, stage: int) -> dict:
    """The official options of mixer ``name`` in stage ``stage`` (0-3) of a four-stage
    network (:data:`STAGE_OPTIONS`; ``{}`` for a design that keeps one size)."""
    mixer_class(name)  # a clear error for an unknown name
    per_stage = STAGE_OPTIONS.get(name, ())
    if not 0 <= stage < 4:
        raise ValueError(f"stage must be 0..3 (strides 4, 8, 16, 32), got {stage}")
    return dict(per_stage[stage]) if per_stage else {}


def mixer_class(name: str) -> Type[TokenMixer]:
    """The class registered as ``name`` in :data:`MIXERS`."""
    if name not in MIXERS:
        raise ValueError(f"mixer must be one of {sorted(MIXERS)}, got {name!r}")
    return MIXERS[name]
