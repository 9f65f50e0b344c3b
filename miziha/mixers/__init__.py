"""The token mixers: one module per design, each holding its Conv2D-like layer and that
design's own blocks, behind one contract (:class:`~miziha.mixers.base.TokenMixer`);
:data:`MIXERS` names them."""

from .asmlp import ASMLPT
from .axial import AxialT
from .base import TokenMixer
from .cswin import CSWinT
from .cyclemlp import CycleMLPT
from .pale import PaleT
from .registry import MIXERS, STAGE_OPTIONS, mixer_class, stage_options
from .swin import SwinT
from .swinv2 import SwinV2T

__all__ = ["TokenMixer", "MIXERS", "STAGE_OPTIONS", "mixer_class", "stage_options",
           "SwinT", "SwinV2T", "PaleT", "CSWinT", "AxialT", "CycleMLPT", "ASMLPT"]
