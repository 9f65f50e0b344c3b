"""Argument checks that raise where a bad value enters, naming what was expected."""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import paddle

__all__ = ["ATTENTION_MODES", "dtype_name", "heads", "branch_heads", "attention_mode",
           "attention_options", "flag", "mlp_width", "positive_int", "int_pair", "rate",
           "rates", "positive_float", "default_num_heads", "tensor"]

#: Values of the ``attention`` argument of the attention mixers (see
#: :func:`miziha.layers.attention.attention_backend`).
ATTENTION_MODES = ("auto", "math", "sdpa")


def is_int(value) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def flag(name: str, value) -> bool:
    """``value`` as a bool (Python or NumPy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def mlp_width(channels: int, mlp_ratio) -> int:
    """The MLP hidden width ``int(channels * mlp_ratio)``, at least 1."""
    width = int(channels * positive_float("mlp_ratio", mlp_ratio))
    if width < 1:
        raise ValueError(f"mlp_ratio * in_channels must be at least 1 (the MLP width), got "
                         f"{mlp_ratio} * {channels}")
    return width


def positive_int(name: str, value) -> int:
    """``value`` as an int >= 1."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def class_count(value) -> int:
    """``num_classes`` as an int >= 0 (0: no classifier, as timm)."""
    if not is_int(value):
        raise TypeError(f"num_classes must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"num_classes must be 0 (no classifier) or more, got {value}")
    return int(value)


def int_pair(name: str, value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``value`` (an int, or a pair of ints) as a pair of positive ints."""
    if is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return positive_int(f"{name}[0]", value[0]), positive_int(f"{name}[1]", value[1])


def rate(name: str, value) -> float:
    """``value`` as a probability in [0, 1)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def rates(name: str, value, count: int) -> Tuple[float, ...]:
    """A float (the same rate ``count`` times) or exactly ``count`` rates."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (rate(name, value),) * count
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a float or a list of {count} floats, got {value!r}")
    if len(value) != count:
        raise ValueError(f"{name} must give one rate per block: expected {count} values, "
                         f"got {len(value)}")
    return tuple(rate(f"{name}[{i}]", v) for i, v in enumerate(value))


def positive_float(name: str, value, allow_none: bool = False) -> Optional[float]:
    """``value`` as a float > 0 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def default_num_heads(channels: int, head_dim: int = 32) -> int:
    """Heads of about ``head_dim`` channels each: the largest divisor of ``channels`` not
    above ``channels // head_dim`` (at least 1)."""
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


def two_branch_heads(channels: int, head_dim: int = 32) -> int:
    """Default heads of a layer that splits channels and heads into two halves: about
    ``head_dim`` channels a head, the same (whole) number in each half."""
    return 2 * default_num_heads(max(channels // 2, 1), head_dim)


def branch_heads(channels: int, num_heads: Optional[int], halves: str) -> int:
    """Heads of a layer that gives half the channels and heads to each of two branches
    (``halves`` says which, for the message): ``num_heads`` checked to be even and to divide
    ``channels``; None: :func:`two_branch_heads`."""
    if channels % 2:
        raise ValueError(f"in_channels must be even ({halves}), got {channels}")
    if num_heads is None:
        return two_branch_heads(channels)
    num_heads = heads(channels, num_heads)
    if num_heads % 2:
        raise ValueError(f"num_heads must be even ({halves}), got {num_heads}")
    return num_heads


def attention_mode(value) -> str:
    """``value`` checked to be one of :data:`ATTENTION_MODES`."""
    if not isinstance(value, str) or value not in ATTENTION_MODES:
        allowed = ", ".join(repr(mode) for mode in ATTENTION_MODES)
        raise ValueError(f"attention must be one of {allowed}, got {value!r}")
    return value


def attention_options(qkv_bias, qk_scale, dropout, attention_dropout,
                      attention="auto") -> dict:
    """The checked options every attention block takes: ``qkv_bias`` (bool), ``qk_scale``
    (> 0 or None), ``dropout`` and ``attention_dropout`` (rates), ``attention`` (one of
    :data:`ATTENTION_MODES`)."""
    return dict(qkv_bias=flag("qkv_bias", qkv_bias),
                qk_scale=positive_float("qk_scale", qk_scale, allow_none=True),
                dropout=rate("dropout", dropout),
                attention_dropout=rate("attention_dropout", attention_dropout),
                attention=attention_mode(attention))


def heads(channels: int, num_heads: Optional[int], head_dim: int = 32) -> int:
    """``num_heads`` checked to divide ``channels``; None: :func:`default_num_heads`."""
    if num_heads is None:
        return default_num_heads(channels, head_dim)
    num_heads = positive_int("num_heads", num_heads)
    if channels % num_heads:
        raise ValueError(f"in_channels must be divisible by num_heads: got in_channels="
                         f"{channels}, num_heads={num_heads}")
    return num_heads


def dtype_name(dtype) -> str:
    """``paddle.float32`` / ``"float32"`` -> ``"float32"``."""
    return str(dtype).replace("paddle.", "")


def tensor(owner: str, x) -> None:
    """``x`` must be a Paddle tensor (an eager Tensor, or a Value while building a graph)."""
    if not isinstance(x, (paddle.Tensor, paddle.pir.Value)):
        raise TypeError(f"{owner} expects a paddle.Tensor, got {type(x).__name__}")
