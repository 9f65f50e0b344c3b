"""Multi-scale features, as timm users know them: ``feature_info`` on a network, its
``forward_intermediates(x, indices)``, and :class:`FeatureExtractor`, the backbone that
``create_model(name, features_only=True, out_indices=...)`` returns."""

from __future__ import annotations

from collections.abc import Sequence as SequenceType
from typing import List, Sequence, Union

import paddle
import paddle.nn as nn

from .. import checks

__all__ = ["feature_entry", "stage_indices", "FeatureExtractor"]


def feature_entry(num_chs: int, reduction: int, module: str) -> dict:
    """One ``feature_info`` entry: channels, stride from the input, and the module whose
    output it is."""
    return {"num_chs": num_chs, "reduction": reduction, "module": module}


#: Stages to return: None (all), an int ``n`` (the last ``n``) or a sequence of stage numbers.
Indices = Union[None, int, Sequence[int]]


def stage_indices(indices: Indices, count: int) -> List[int]:
    """``indices`` (None: all; an int ``n``: the last ``n``, as timm; a sequence: those
    stages, negative ones counting from the end) as sorted, distinct, non-negative stage
    numbers below ``count``."""
    if indices is None:
        return list(range(count))
    if checks.is_int(indices):
        if not 1 <= indices <= count:
            raise ValueError(f"an int of indices is the last n stages, n in 1..{count}, got "
                             f"{indices}")
        return list(range(count - int(indices), count))
    if isinstance(indices, str) or not isinstance(indices, SequenceType) or not all(
            checks.is_int(i) for i in indices):
        raise TypeError(f"indices must be an int or a sequence of ints, got {indices!r}")
    if not indices:
        raise ValueError("indices must name at least one stage")
    resolved = []
    for i in indices:
        if not -count <= i < count:
            raise ValueError(f"stage index {i} out of range for {count} stages")
        resolved.append(int(i) % count)
    return sorted(set(resolved))


class FeatureExtractor(nn.Layer):
    """A network's multi-scale backbone: ``forward(x)`` gives the maps of ``out_indices``
    (NCHW, shallow to deep), ``feature_info`` describes them.

    Args:
        model: a network with ``feature_info`` and ``forward_intermediates``.
        out_indices: stages to return (None: all; an int n: the last n).
    """

    def __init__(self, model: nn.Layer, out_indices: Indices = None) -> None:
        super().__init__()
        if not hasattr(model, "forward_intermediates"):
            raise TypeError(f"{type(model).__name__} has no multi-scale features "
                            f"(forward_intermediates)")
        self.model = model
        self.out_indices = stage_indices(out_indices, len(model.feature_info))
        self.feature_info = [model.feature_info[i] for i in self.out_indices]

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        """``[B, C, H, W]`` -> one ``[B, num_chs, ceil(H/reduction), ...]`` map per index."""
        return self.model.forward_intermediates(x, self.out_indices)
