"""Pieces shared by miziha's example networks."""

from __future__ import annotations

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import layer_norm

__all__ = ["ConvBN", "classification_head", "check_image"]


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
                         nn.Dropout(0.2), nn.LeakyReLU(), nn.Linear(256, num_classes))


def check_image(x: paddle.Tensor, channels: int, model: str) -> None:
    """A clear error for input that is not ``[B, channels, H, W]``."""
    checks.tensor(model, x)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{model} expects input [B, {channels}, H, W], got shape "
                         f"{list(x.shape)}")
