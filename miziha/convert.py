"""``replace_conv``: replace the 3x3 convolutions of any Paddle network with a mixer
(``swinify``: with ``SwinT``)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import paddle.nn as nn

from . import checks
from .mixers.registry import mixer_class

__all__ = ["replace_conv", "swinify", "ReplaceReport", "replacement_problem"]

ConvFilter = Callable[[str, nn.Conv2D], bool]

#: Arguments :func:`replace_conv` sets from each conv.
_FROM_CONV = ("in_channels", "out_channels", "downsample", "data_format")


@dataclass
class ReplaceReport:
    """What :func:`replace_conv` did.

    Attributes:
        mixer: the mixer's name (a key of :data:`miziha.MIXERS`).
        replaced: dotted names of the convs now replaced, in model order.
        skipped: 3x3 convs left in place, with the reason.
        untouched: number of other ``Conv2D`` layers (1x1, 7x7, ...), left alone by design.
    """

    mixer: str
    replaced: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    untouched: int = 0

    def __str__(self) -> str:
        lines = [f"replace_conv: replaced {len(self.replaced)} conv(s) by {self.mixer}, "
                 f"skipped {len(self.skipped)} 3x3 conv(s), left {self.untouched} other "
                 f"conv(s) alone"]
        lines += [f"  replaced {name}" for name in self.replaced]
        lines += [f"  skipped  {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def _all_equal(values, expected: int) -> bool:
    return all(int(v) == expected for v in values)


def replacement_problem(conv: nn.Conv2D, num_heads: Optional[int] = None,
                        min_in_channels: int = 16) -> Optional[str]:
    """Why ``conv`` (a 3x3 ``Conv2D``) cannot become a mixer, or None if it can."""
    if conv._groups != 1:
        return f"groups={conv._groups} (grouped or depthwise; a mixer mixes all channels)"
    if not _all_equal(conv._dilation, 1):
        return f"dilation={list(conv._dilation)}"
    if conv._padding_algorithm != "EXPLICIT" or not _all_equal(conv._updated_padding, 1):
        return f"padding={conv._padding!r} (a mixer keeps the size like padding=1)"
    if conv._padding_mode != "zeros":
        return f"padding_mode={conv._padding_mode!r}"
    stride = list(conv._stride)
    if stride not in ([1, 1], [2, 2]):
        return f"stride={stride} (a mixer does stride 1 or 2)"
    if conv._in_channels < min_in_channels:
        return (f"in_channels={conv._in_channels} < min_in_channels={min_in_channels} "
                f"(a stem conv on image channels; lower min_in_channels to replace it)")
    if num_heads is not None and conv._in_channels % num_heads:
        return f"in_channels={conv._in_channels} is not divisible by num_heads={num_heads}"
    return None


def replace_conv(model: nn.Layer, mixer: str = "swin", *, min_in_channels: int = 16,
                 head_dim: int = 32, filter: Optional[ConvFilter] = None,
                 **mixer_options) -> Tuple[nn.Layer, ReplaceReport]:
    """Replace, in place, each 3x3 ``nn.Conv2D`` (padding 1, dilation 1, groups 1, stride 1
    or 2, at least ``min_in_channels`` input channels) of ``model`` by the mixer ``mixer``
    with the same in/out channels and data format; stride 2 becomes ``downsample=True``.
    Every other layer is left alone.

    Args:
        model: any ``paddle.nn.Layer``.
        mixer: a key of :data:`miziha.MIXERS` (``"swin"``, ...).
        min_in_channels: convs with fewer input channels (stems on RGB images) are skipped.
        head_dim: for attention mixers without ``num_heads``: about this many channels a
            head, chosen per conv.
        filter: ``(name, conv) -> bool``; only convs it accepts are replaced.
        **mixer_options: further arguments of the mixer (``window_size``, ``num_heads``,
            ``depth``, ``mlp_ratio``...).

    Returns:
        ``(model, report)``; the report lists what was replaced and which 3x3 convs were not,
        and why.
    """
    if not isinstance(model, nn.Layer):
        raise TypeError(f"replace_conv expects a paddle.nn.Layer, got {type(model).__name__}")
    layer_class = mixer_class(mixer)
    min_in_channels = checks.positive_int("min_in_channels", min_in_channels)
    head_dim = checks.positive_int("head_dim", head_dim)
    num_heads = mixer_options.get("num_heads")
    if num_heads is not None:
        checks.positive_int("num_heads", num_heads)
    if filter is not None and not callable(filter):
        raise TypeError(f"filter must be a callable (name, layer) -> bool, got {filter!r}")
    for reserved in _FROM_CONV:
        if reserved in mixer_options:
            raise ValueError(f"replace_conv sets {reserved} from each conv; do not pass it")
    takes_heads = "num_heads" in inspect.signature(layer_class).parameters
    report = ReplaceReport(mixer)
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
            problem = replacement_problem(child, num_heads, min_in_channels)
            if problem is None and filter is not None and not filter(name, child):
                problem = "excluded by filter"
            if problem is None:
                targets.append((parent, child_name, name, child))
            else:
                report.skipped[name] = problem
    for parent, child_name, name, conv in targets:
        options = dict(mixer_options)
        if takes_heads and num_heads is None:
            options["num_heads"] = layer_class.default_heads(conv._in_channels, head_dim)
        layer = layer_class(conv._in_channels, conv._out_channels,
                            downsample=list(conv._stride) == [2, 2],
                            data_format=conv._data_format, **options)
        layer.train() if conv.training else layer.eval()
        parent._sub_layers[child_name] = layer
        report.replaced.append(name)
    return model, report


def swinify(model: nn.Layer, *, window_size=7, **options) -> Tuple[nn.Layer, ReplaceReport]:
    """:func:`replace_conv` with ``SwinT`` (``mixer="swin"``) and its ``window_size``."""
    return replace_conv(model, "swin", window_size=window_size, **options)
