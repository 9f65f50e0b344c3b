"""``MIXERS``: every Conv2D-like mixer by name, for ``replace_conv``, the networks and the
benchmarks."""

from __future__ import annotations

from typing import Dict, Type

from .asmlp import ASMLPT
from .cswin import CSWinT
from .cyclemlp import CycleMLPT
from .mixer import TokenMixer
from .pale import PaleT
from .swint import SwinT

__all__ = ["MIXERS", "mixer_class"]

#: Name -> layer class; each takes ``(in_channels, out_channels, ...)`` as ``nn.Conv2D``.
MIXERS: Dict[str, Type[TokenMixer]] = {"swin": SwinT, "pale": PaleT, "cswin": CSWinT,
                                        "cyclemlp": CycleMLPT, "asmlp": ASMLPT}


def mixer_class(name: str) -> Type[TokenMixer]:
    """The class registered as ``name`` in :data:`MIXERS`."""
    if name not in MIXERS:
        raise ValueError(f"mixer must be one of {sorted(MIXERS)}, got {name!r}")
    return MIXERS[name]
