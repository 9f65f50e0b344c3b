"""``swinify``: replace the 3x3 convolutions of any Paddle network with ``SwinT`` layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import paddle.nn as nn

from . import checks
from .swint import SwinT

__all__ = ["swinify", "SwinifyReport", "replacement_problem"]

ConvFilter = Callable[[str, nn.Conv2D], bool]


@dataclass
class SwinifyReport:
    """What :func:`swinify` did.

    Attributes:
        replaced: dotted names of the convs now replaced by ``SwinT``, in model order.
        skipped: 3x3 convs left in place, with the reason.
        untouched: number of other ``Conv2D`` layers (1x1, 7x7, ...), left alone by design.
    """

    replaced: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    untouched: int = 0

    def __str__(self) -> str:
        lines = [f"swinify: replaced {len(self.replaced)} conv(s) by SwinT, skipped "
                 f"{len(self.skipped)} 3x3 conv(s), left {self.untouched} other conv(s) alone"]
        lines += [f"  replaced {name}" for name in self.replaced]
        lines += [f"  skipped  {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def _all_equal(values, expected: int) -> bool:
    return all(int(v) == expected for v in values)


def replacement_problem(conv: nn.Conv2D, num_heads: Optional[int]) -> Optional[str]:
    """Why ``conv`` (a 3x3 ``Conv2D``) cannot become a ``SwinT``, or None if it can."""
    if conv._groups != 1:
        return f"groups={conv._groups} (SwinT mixes all channels)"
    if not _all_equal(conv._dilation, 1):
        return f"dilation={list(conv._dilation)}"
    if conv._padding_algorithm != "EXPLICIT" or not _all_equal(conv._updated_padding, 1):
        return f"padding={conv._padding!r} (SwinT keeps the size like padding=1)"
    if conv._padding_mode != "zeros":
        return f"padding_mode={conv._padding_mode!r}"
    stride = list(conv._stride)
    if stride not in ([1, 1], [2, 2]):
        return f"stride={stride} (SwinT does stride 1 or 2)"
    if num_heads is not None and conv._in_channels % num_heads:
        return f"in_channels={conv._in_channels} is not divisible by num_heads={num_heads}"
    return None


def swinify(model: nn.Layer, *, window_size=7, num_heads: Optional[int] = None,
            head_dim: int = 32, filter: Optional[ConvFilter] = None,
            **swint_options) -> Tuple[nn.Layer, SwinifyReport]:
    """Replace, in place, each 3x3 ``nn.Conv2D`` (padding 1, dilation 1, groups 1, stride 1
    or 2) of ``model`` by a ``SwinT`` with the same in/out channels and data format; stride 2
    becomes ``downsample=True``. Every other layer is left alone.

    Args:
        model: any ``paddle.nn.Layer``.
        window_size: SwinT window.
        num_heads: heads for every SwinT; default: ``head_dim`` channels a head (at least one,
            dividing the channels).
        head_dim: target channels a head when ``num_heads`` is None.
        filter: ``(name, conv) -> bool``; only convs it accepts are replaced.
        **swint_options: further ``SwinT`` arguments (``mlp_ratio``, ``droppath``, ``depth``...).

    Returns:
        ``(model, report)``; the report lists what was replaced and which 3x3 convs were not,
        and why.
    """
    if not isinstance(model, nn.Layer):
        raise TypeError(f"swinify expects a paddle.nn.Layer, got {type(model).__name__}")
    if num_heads is not None:
        checks.positive_int("num_heads", num_heads)
    head_dim = checks.positive_int("head_dim", head_dim)
    if filter is not None and not callable(filter):
        raise TypeError(f"filter must be a callable (name, layer) -> bool, got {filter!r}")
    for reserved in ("in_channels", "out_channels", "downsample", "data_format"):
        if reserved in swint_options:
            raise ValueError(f"swinify sets {reserved} from each conv; do not pass it")
    report = SwinifyReport()
    # Collect first, then swap, so the walk never sees a half-converted tree.
    targets = []
    for prefix, parent in model.named_sublayers(include_self=True):
        for child_name, child in parent._sub_layers.items():
            if not isinstance(child, nn.Conv2D):
                continue
            name = f"{prefix}.{child_name}" if prefix else child_name
            if list(child._kernel_size) != [3, 3]:
                report.untouched += 1
                continue
            problem = replacement_problem(child, num_heads)
            if problem is None and filter is not None and not filter(name, child):
                problem = "excluded by filter"
            if problem is None:
                targets.append((parent, child_name, name, child))
            else:
                report.skipped[name] = problem
    for parent, child_name, name, conv in targets:
        heads = num_heads or checks.default_num_heads(conv._in_channels, head_dim)
        layer = SwinT(conv._in_channels, conv._out_channels, num_heads=heads,
                      window_size=window_size, downsample=list(conv._stride) == [2, 2],
                      data_format=conv._data_format, **swint_options)
        layer.train() if conv.training else layer.eval()
        parent._sub_layers[child_name] = layer
        report.replaced.append(name)
    return model, report
