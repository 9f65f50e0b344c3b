"""miziha: token mixers (Swin window attention and the designs around it) that replace
``nn.Conv2D`` in any PaddlePaddle network."""

from . import models
from .convert import ReplaceReport, replace_conv, swinify
from .asmlp import ASMLPT
from .cswin import CSWinT
from .cyclemlp import CycleMLPT
from .flops import FlopsReport, flops
from .mixer import TokenMixer
from .mixers import MIXERS
from .models import create_model, list_models
from .pale import PaleT
from .swint import SwinT

__all__ = ["SwinT", "PaleT", "CSWinT", "CycleMLPT", "ASMLPT", "TokenMixer", "MIXERS", "replace_conv", "swinify", "ReplaceReport",
           "flops", "FlopsReport", "models", "create_model", "list_models"]
__version__ = "0.2.0"
