"""One name -> builder mapping for every network miziha builds, as timm and PaddleClas
users know it: :func:`create_model` and :func:`list_models`."""

from __future__ import annotations

import fnmatch
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import paddle.nn as nn

__all__ = ["register_model", "create_model", "list_models", "MODELS", "TASKS"]

TASKS = ("classification", "segmentation")
_BUILDERS: Dict[str, Callable[..., nn.Layer]] = {}
_TASK_OF: Dict[str, str] = {}

#: Read-only view of the registry: name -> builder (``builder(num_classes=..., **kwargs)``).
MODELS: Mapping[str, Callable[..., nn.Layer]] = MappingProxyType(_BUILDERS)


def register_model(task: str = "classification"):
    """Decorator: add the builder under its function name, for ``task`` (one of
    :data:`TASKS`: what its output is, logits ``[B, K]`` or ``[B, K, H, W]``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def add(builder: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
        _BUILDERS[name] = builder
        _TASK_OF[name] = task
        return builder
    return add


def list_models(pattern: str = "*", task: Optional[str] = None) -> List[str]:
    """Registered names matching the shell-style ``pattern`` (and ``task``), sorted."""
    return sorted(name for name in fnmatch.filter(_BUILDERS, pattern)
                  if task is None or _TASK_OF[name] == task)


def create_model(name: str, features_only: bool = False,
                 out_indices: Optional[Sequence[int]] = None, **kwargs) -> nn.Layer:
    """Build the network registered as ``name`` with ``kwargs`` (``num_classes``, and the
    network's own options).

    ``features_only=True`` returns its multi-scale backbone instead
    (:class:`~miziha.models.features.FeatureExtractor`): ``forward(x)`` gives the maps of
    the stages ``out_indices`` (default: all), described by its ``feature_info``.

    Raises:
        ValueError: no network has that name (the message lists them).
        TypeError: ``features_only`` for a network without multi-scale features.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    model = _BUILDERS[name](**kwargs)
    if not features_only:
        if out_indices is not None:
            raise ValueError("out_indices goes with features_only=True")
        return model
    from .features import FeatureExtractor
    return FeatureExtractor(model, out_indices)
