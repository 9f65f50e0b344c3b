"""Multiply-accumulate (MAC) and parameter counts that see the attention inside the mixers.

``paddle.flops`` counts leaf layers only, counts matmuls, softmax and LayerNorm as zero, and
fails with numpy 2.4, so miziha counts its own with forward hooks:

* ``Conv2D``: ``B * C_out * H_out * W_out * C_in / groups * kh * kw``;
* ``Linear``: tokens * in * out (for SwinT's layers, tokens include window padding);
* ``LayerNorm`` / ``BatchNorm*`` / ``GroupNorm``: one MAC per output element (as the official
  Swin ``flops()``);
* inside a mixer (:class:`~miziha.mixers.base.TokenMixer`): what its :meth:`mixing_macs` reports,
  e.g. for ``SwinT`` ``QK^T`` and ``AV`` per window, ``2 * B * nW * N^2 * C`` a block,
  padded windows included.

Activations, pooling, softmax and additions are not counted (they are not MACs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from .mixers.base import TokenMixer

__all__ = ["LayerCost", "FlopsReport", "flops", "conv3x3_macs"]

_COUNTED = (nn.Conv2D, nn.Linear, nn.LayerNorm, nn.BatchNorm1D, nn.BatchNorm2D,
            nn.BatchNorm3D, nn.BatchNorm, nn.GroupNorm)


@dataclass
class LayerCost:
    """One row of a :class:`FlopsReport`.

    ``conv_macs`` is, for a mixer, the MACs of the 3x3 ``Conv2D`` it stands for (same
    channels, stride 2 when it downsamples) on the same input; None for other layers.
    """

    name: str
    kind: str
    output_shape: List[int]
    macs: int
    params: int
    conv_macs: Optional[int] = None

    @property
    def ratio_to_conv(self) -> Optional[float]:
        return None if not self.conv_macs else self.macs / self.conv_macs


@dataclass
class FlopsReport:
    """MACs and parameters per counted layer (each mixer as one row)."""

    input_shape: List[int]
    rows: List[LayerCost] = field(default_factory=list)
    total_params: int = 0

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def table(self, mixers_only: bool = False) -> str:
        """Text table: name, kind, output shape, params, MMACs, ratio to the replaced conv."""
        rows = [r for r in self.rows if r.conv_macs] if mixers_only else self.rows
        lines = [f"{'layer':40} {'kind':12} {'output':20} {'params':>11} {'MMACs':>10} "
                 f"{'x conv':>7}"]
        for r in rows:
            ratio = f"{r.ratio_to_conv:.2f}" if r.ratio_to_conv else ""
            lines.append(f"{r.name[:40]:40} {r.kind:12} {str(r.output_shape):20} "
                         f"{r.params:>11,} {r.macs / 1e6:>10.2f} {ratio:>7}")
        lines.append(f"total: {self.total_macs / 1e9:.3f} GMACs, "
                     f"{self.total_params / 1e6:.2f} M parameters, input {self.input_shape}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _numel(shape: Sequence[int]) -> int:
    return int(np.prod([int(s) for s in shape]))


def _params(layer: nn.Layer) -> int:
    """Learned parameters; BatchNorm running statistics (Paddle keeps them as parameters)
    are state, not parameters, as in the usual ResNet50 figure of 25.6 M."""
    stats = {id(t) for sub in layer.sublayers(include_self=True)
             if isinstance(sub, nn.layer.norm._BatchNormBase) for t in (sub._mean, sub._variance)}
    return sum(_numel(p.shape) for p in layer.parameters() if id(p) not in stats)


def conv3x3_macs(in_channels: int, out_channels: int, batch: int, height: int, width: int,
                 stride: int) -> int:
    """MACs of ``Conv2D(in, out, 3, stride, padding=1)`` on ``[batch, in, height, width]``."""
    h_out, w_out = -(-height // stride), -(-width // stride)
    return batch * out_channels * h_out * w_out * in_channels * 9


def _leaf_macs(layer: nn.Layer, inputs, output) -> int:
    x = inputs[0]
    if isinstance(layer, nn.Conv2D):
        k = _numel(layer._kernel_size)
        return _numel(output.shape) * (layer._in_channels // layer._groups) * k
    if isinstance(layer, nn.Linear):
        in_features, out_features = layer.weight.shape
        return _numel(x.shape) // in_features * in_features * out_features
    return _numel(output.shape)  # a norm


def flops(model: nn.Layer, input_size: Sequence[int]) -> FlopsReport:
    """Count MACs and parameters of ``model`` on one input of ``input_size``.

    Args:
        model: any ``paddle.nn.Layer`` taking one image tensor.
        input_size: ``[C, H, W]`` (batch 1) or ``[B, C, H, W]``.

    Returns:
        A :class:`FlopsReport`; ``print(report)`` shows the per-layer table.
    """
    if not isinstance(model, nn.Layer):
        raise TypeError(f"flops expects a paddle.nn.Layer, got {type(model).__name__}")
    size = list(input_size)
    if len(size) == 3:
        size = [1] + size
    if len(size) != 4 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in size):
        raise ValueError(f"input_size must be [C, H, W] or [B, C, H, W] of positive ints, "
                         f"got {list(input_size)}")
    report = FlopsReport(input_shape=size, total_params=_params(model))
    mixers = [layer for layer in model.sublayers(include_self=True)
              if isinstance(layer, TokenMixer)]
    owner_of = {id(sub): id(mixer) for mixer in mixers for sub in mixer.sublayers()}
    pending = {}  # id(mixer) -> its row while its forward runs

    def count_leaf(name):
        def hook(layer, inputs, output):
            macs = _leaf_macs(layer, inputs, output)
            if id(layer) in owner_of:
                pending[owner_of[id(layer)]].macs += macs
            else:
                report.rows.append(LayerCost(name, type(layer).__name__,
                                             list(output.shape), macs, _params(layer)))
        return hook

    def open_mixer(name):
        def hook(layer, inputs):
            pending[id(layer)] = LayerCost(name, type(layer).__name__, [], 0, _params(layer))
        return hook

    def close_mixer(layer, inputs, output):
        row, x = pending.pop(id(layer)), inputs[0]
        nchw = layer.data_format == "NCHW"
        height, width = x.shape[2 if nchw else 1], x.shape[3 if nchw else 2]
        row.macs += layer.mixing_macs(x.shape[0], height, width)
        row.output_shape = list(output.shape)
        row.conv_macs = conv3x3_macs(layer.in_channels, layer.out_channels, x.shape[0],
                                     height, width, 2 if layer.downsample_enabled else 1)
        report.rows.append(row)

    handles = []
    for name, layer in model.named_sublayers(include_self=True):
        name = name or type(model).__name__
        if isinstance(layer, TokenMixer):
            handles.append(layer.register_forward_pre_hook(open_mixer(name)))
            handles.append(layer.register_forward_post_hook(close_mixer))
        elif isinstance(layer, _COUNTED):
            handles.append(layer.register_forward_post_hook(count_leaf(name)))
    training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(size))
    finally:
        for handle in handles:
            handle.remove()
        if training:
            model.train()
    return report
