"""Official PyTorch checkpoints into miziha networks that keep the official names
(:class:`~miziha.models.SwinTransformer`, :class:`~miziha.models.SwinTransformerV2`,
:class:`~miziha.models.HRNet`)."""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import paddle.nn as nn

__all__ = ["official_to_miziha", "DERIVED_BUFFERS", "RENAMED_BUFFERS"]

#: Buffers of the official checkpoints that miziha derives from the input size
#: (Swin's ``relative_position_index``, ``attn_mask``, Swin V2's ``relative_coords_table``)
#: or does not keep (BatchNorm's ``num_batches_tracked``): dropped.
DERIVED_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask",
                   "num_batches_tracked")

#: PyTorch BatchNorm running statistics -> Paddle's names for them.
RENAMED_BUFFERS = {"running_mean": "_mean", "running_var": "_variance"}


def official_to_miziha(model: nn.Layer, state: Mapping[str, object]) -> Dict[str, np.ndarray]:
    """Convert an official PyTorch state dict for ``model.set_state_dict``, when ``model``
    has the official parameter names.

    Linear weights are transposed (PyTorch stores ``[out, in]``, Paddle ``[in, out]``);
    BatchNorm's ``running_mean`` / ``running_var`` become ``_mean`` / ``_variance``; the
    buffers of :data:`DERIVED_BUFFERS` are dropped. Conv weights keep their layout.

    Args:
        model: the miziha model the weights are for (it says which tensors are Linear).
        state: official names -> arrays (``torch_state[k].numpy()``, or anything
            ``np.asarray`` takes).

    Returns: names -> float32 arrays, every entry of ``model.state_dict()`` exactly once.

    Raises:
        ValueError: names missing or unexpected, or a shape that does not fit.
    """
    linear_weights = {f"{name}.weight" for name, layer in model.named_sublayers()
                      if isinstance(layer, nn.Linear)}
    expected = model.state_dict()
    converted = {}
    for name, value in state.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf in DERIVED_BUFFERS:
            continue
        if leaf in RENAMED_BUFFERS:
            name = f"{prefix}.{RENAMED_BUFFERS[leaf]}" if prefix else RENAMED_BUFFERS[leaf]
        array = np.asarray(value, dtype=np.float32)
        converted[name] = array.T if name in linear_weights else array
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise ValueError(f"state dict does not fit the model: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''} ({len(missing)}), unexpected "
                         f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''} "
                         f"({len(unexpected)})")
    for name, array in converted.items():
        if list(array.shape) != list(expected[name].shape):
            raise ValueError(f"{name}: the model has shape {list(expected[name].shape)}, the "
                             f"state dict {list(array.shape)} (after transposing Linear "
                             f"weights)")
    return converted
