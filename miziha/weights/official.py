"""Official PyTorch checkpoints into miziha networks that keep the official names
(:class:`~miziha.models.SwinTransformer`, :class:`~miziha.models.SwinTransformerV2`,
:class:`~miziha.models.HRNet`, :class:`~miziha.models.CycleNet`, :class:`~miziha.models.ASMLP`)."""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import paddle.nn as nn

__all__ = ["official_to_miziha", "DERIVED_BUFFERS", "RENAMED_BUFFERS"]

#: Buffers of the official checkpoints that miziha derives from the input size
#: (Swin's ``relative_position_index``, ``attn_mask``, Swin V2's ``relative_coords_table``;
#: PaddleClas's cached ``relative_position_bias``) or from the channels (CycleMLP's fixed
#: Cycle FC ``offset``), or does not keep (BatchNorm's ``num_batches_tracked``): dropped.
DERIVED_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask",
                   "relative_position_bias", "offset", "num_batches_tracked")

#: PyTorch BatchNorm running statistics -> Paddle's names for them.
RENAMED_BUFFERS = {"running_mean": "_mean", "running_var": "_variance"}


def official_to_miziha(model: nn.Layer, state: Mapping[str, object]) -> Dict[str, np.ndarray]:
    """Convert an official PyTorch state dict for ``model.set_state_dict``, when ``model``
    has the official parameter names (the ``"official"`` source of
    :func:`~miziha.weights.convert.convert_state`, strict, classifier included).

    Linear weights are transposed (PyTorch stores ``[out, in]``, Paddle ``[in, out]``);
    BatchNorm's ``running_mean`` / ``running_var`` become ``_mean`` / ``_variance``; the
    buffers of :data:`DERIVED_BUFFERS` are dropped; relative position tables of another
    window size are resized. Conv weights keep their layout.

    Args:
        model: the miziha model the weights are for (it says which tensors are Linear).
        state: official names -> arrays (``torch_state[k].numpy()``, or anything
            ``np.asarray`` takes).

    Returns: names -> arrays in the model's dtypes, every entry of ``model.state_dict()``
    exactly once.

    Raises:
        ValueError: names missing or unexpected, or a shape that does not fit.
    """
    from .convert import convert_state  # convert builds on the constants above
    arrays = {name: np.asarray(value) for name, value in state.items()}
    converted, _ = convert_state(model, arrays, "torch", source="official", strict=True,
                                 skip_head=False)
    return converted
