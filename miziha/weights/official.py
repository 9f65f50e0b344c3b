"""Official PyTorch state dicts (already in memory) into miziha networks that keep the
official names (:class:`~miziha.models.SwinTransformer`, :class:`~miziha.models.HRNet`)."""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import paddle.nn as nn

from .convert import convert_state

__all__ = ["official_to_miziha"]


def official_to_miziha(model: nn.Layer, state: Mapping[str, object]) -> Dict[str, np.ndarray]:
    """Convert an official PyTorch state dict for ``model.set_state_dict``, when ``model``
    has the official parameter names (the ``"official"`` source of
    :func:`~miziha.weights.convert.convert_state`, strict, classifier included).

    Linear weights are transposed (PyTorch stores ``[out, in]``, Paddle ``[in, out]``);
    BatchNorm's ``running_mean`` / ``running_var`` become ``_mean`` / ``_variance``; the
    derived buffers (:data:`~miziha.weights.convert.DERIVED_BUFFERS`) are dropped; relative
    position tables of another window size are resized. Conv weights keep their layout.

    Args:
        model: the miziha model the weights are for (it says which tensors are Linear).
        state: official names -> arrays (``torch_state[k].numpy()``, or anything
            ``np.asarray`` takes).

    Returns: names -> arrays in the model's dtypes, every entry of ``model.state_dict()``
    exactly once.

    Raises:
        ValueError: names missing or unexpected, or a shape that does not fit.
    """
    arrays = {name: np.asarray(value) for name, value in state.items()}
    converted, _ = convert_state(model, arrays, "torch", source="official", strict=True,
                                 skip_head=False)
    return converted
