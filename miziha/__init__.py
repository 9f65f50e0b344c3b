"""miziha: Swin Transformer window attention as a drop-in ``nn.Conv2D`` replacement."""

from . import models
from .convert import SwinifyReport, swinify
from .flops import FlopsReport, flops
from .swint import SwinT

__all__ = ["SwinT", "swinify", "SwinifyReport", "flops", "FlopsReport", "models"]
__version__ = "0.1.0"
