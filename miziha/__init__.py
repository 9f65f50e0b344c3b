"""miziha: token mixers (Swin window attention and the designs around it) that replace
``nn.Conv2D`` in any PaddlePaddle network, and the official networks built from them.

Layout: :mod:`miziha.layers` (what designs share) <- :mod:`miziha.mixers` (one module per
design) <- :mod:`miziha.models` (one module per network family) <- :mod:`miziha.weights`
(checkpoints); :mod:`miziha.paddle_fixes` holds every Paddle workaround and the CPU policy.
"""

from . import models
from .convert import ReplaceReport, replace_conv, swinify
from .flops import FlopsReport, flops
from .mixers import (MIXERS, ASMLPT, AxialT, CSWinT, CycleMLPT, PaleT, SwinT, SwinV2T,
                     TokenMixer)
from .models import create_model, list_models
from .weights import LoadReport, load_pretrained

__all__ = ["SwinT", "SwinV2T", "PaleT", "CSWinT", "AxialT", "CycleMLPT", "ASMLPT",
           "TokenMixer", "MIXERS",
           "replace_conv", "swinify", "ReplaceReport", "flops", "FlopsReport", "models",
           "create_model", "list_models", "load_pretrained", "LoadReport"]
__version__ = "0.2.0"
