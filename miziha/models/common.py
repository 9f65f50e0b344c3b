"""Pieces shared by miziha's example networks."""

from __future__ import annotations

from typing import List, Sequence

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import layer_norm
from ..paddle_fixes.workarounds import LeakyReLU

__all__ = ["ConvBN", "classification_head", "check_image", "FrozenStages",
           "frozen_stage_count"]


class ConvBN(nn.Sequential):
    """``Conv2D`` (no bias) -> ``BatchNorm2D`` -> optional ReLU; 'same' padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 relu: bool = True) -> None:
        layers = [nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                            padding=kernel_size // 2, bias_attr=False),
                  nn.BatchNorm2D(out_channels)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


def classification_head(in_features: int, num_classes: int) -> nn.Sequential:
    """The reference experiment's head on pooled features ``[B, in_features]``:
    Dropout(0.2), Linear(in, 256), LayerNorm, Dropout(0.2), LeakyReLU, Linear(256, classes)."""
    num_classes = checks.positive_int("num_classes", num_classes)
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(in_features, 256), layer_norm(256),
                         nn.Dropout(0.2), LeakyReLU(), nn.Linear(256, num_classes))


def check_image(x: paddle.Tensor, channels: int, model: str) -> None:
    """A clear error for input that is not ``[B, channels, H, W]``."""
    checks.tensor(model, x)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{model} expects input [B, {channels}, H, W], got shape "
                         f"{list(x.shape)}")


class FrozenStages:
    """Mixin for a network with ``frozen_stages=k``: the stem and the first ``k`` stages get
    no gradient (``stop_gradient`` on their parameters) and keep their BatchNorm statistics
    fixed, as detection and segmentation backbones do when fine-tuning.

    BatchNorms of frozen layers normalise with their running statistics in every mode
    (``use_global_stats``), so the freeze holds however a parent switches modes; the frozen
    layers also stay in eval mode (no dropout, no stochastic depth) when this network's
    :meth:`train` is called. The network owns the list; call :meth:`freeze` once at the end
    of ``__init__``.
    """

    def freeze(self, layers: Sequence[nn.Layer]) -> None:
        """Freeze ``layers`` (the stem, then the first ``k`` stages)."""
        self._frozen: List[nn.Layer] = list(layers)
        for layer in self._frozen:
            for param in layer.parameters():
                param.stop_gradient = True
            for sub in [layer] + layer.sublayers():
                if isinstance(sub, nn.layer.norm._BatchNormBase):
                    sub._use_global_stats = True
            layer.eval()

    def train(self):
        """Training mode, with the frozen layers left in eval mode."""
        super().train()
        for layer in getattr(self, "_frozen", ()):
            layer.eval()
        return self


def frozen_stage_count(frozen_stages: int, num_stages: int) -> int:
    """``frozen_stages`` checked: -1 or 0 (nothing frozen) up to ``num_stages``; -1 -> 0."""
    if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int):
        raise TypeError(f"frozen_stages must be an int, got {frozen_stages!r}")
    if not -1 <= frozen_stages <= num_stages:
        raise ValueError(f"frozen_stages must be -1 (none) .. {num_stages} (stem and all "
                         f"stages), got {frozen_stages}")
    return max(frozen_stages, 0)
