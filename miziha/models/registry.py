"""One name -> builder mapping for every network miziha builds, as timm and PaddleClas
users know it: :func:`create_model` and :func:`list_models`."""

from __future__ import annotations

import fnmatch
import inspect
import os
import typing
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import paddle.nn as nn

from ..mixers.registry import mixer_class
from .features import FeatureExtractor, Indices

__all__ = ["register_model", "create_model", "list_models", "model_options", "MODELS", "TASKS",
           "TIMM_ALIASES"]

TASKS = ("classification", "segmentation")
#: timm's option names :func:`create_model` also takes -> miziha's.
TIMM_ALIASES: Mapping[str, str] = MappingProxyType({
    "in_chans": "in_channels", "drop_path_rate": "droppath", "drop_rate": "dropout"})

_BUILDERS: Dict[str, Callable[..., nn.Layer]] = {}
_TASK_OF: Dict[str, str] = {}
_MIXER_OF: Dict[str, str] = {}

#: Read-only view of the registry: name -> builder (``builder(num_classes=..., **kwargs)``).
MODELS: Mapping[str, Callable[..., nn.Layer]] = MappingProxyType(_BUILDERS)


def register_model(task: str = "classification", mixer: Optional[str] = None):
    """Decorator: add the builder under its function name, for ``task`` (one of
    :data:`TASKS`: what its output is, logits ``[B, K]`` or ``[B, K, H, W]``). ``mixer``
    names the :data:`~miziha.MIXERS` entry whose options the network passes on to its
    mixers, so :func:`create_model` accepts those too."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if mixer is not None:
        mixer_class(mixer)

    def add(builder: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
        _BUILDERS[name] = builder
        _TASK_OF[name] = task
        if mixer is not None:
            _MIXER_OF[name] = mixer
        return builder
    return add


def list_models(pattern: str = "*", task: Optional[str] = None) -> List[str]:
    """Registered names matching the shell-style ``pattern`` (and ``task``), sorted."""
    return sorted(name for name in fnmatch.filter(_BUILDERS, pattern)
                  if task is None or _TASK_OF[name] == task)


def _named_parameters(function: Callable) -> Tuple[List[str], bool]:
    """The keyword names ``function`` takes, and whether it also takes ``**kwargs``."""
    names, var_keyword = [], False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL and parameter.name != "self":
            names.append(parameter.name)
    return names, var_keyword


def model_options(name: str) -> List[str]:
    """The options ``create_model(name, ...)`` accepts: the builder's own keywords and, when
    it passes ``**kwargs`` on, those of the class its return annotation names and of the
    mixer it was registered with (except the channels, which the network sets)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    builder = _BUILDERS[name]
    names, var_keyword = _named_parameters(builder)
    if var_keyword:
        built = typing.get_type_hints(builder).get("return")
        if not isinstance(built, type):
            raise TypeError(f"builder {name} passes **kwargs on but its return annotation "
                            f"names no class")
        names += _named_parameters(built.__init__)[0]
        if name in _MIXER_OF:
            names += [n for n in _named_parameters(mixer_class(_MIXER_OF[name]).__init__)[0]
                      if n not in ("in_channels", "out_channels")]
    return sorted(set(names))


def create_model(name: str, pretrained: Optional[Union[str, "os.PathLike[str]"]] = None,
                 features_only: bool = False, out_indices: Indices = None,
                 **kwargs) -> nn.Layer:
    """Build the network registered as ``name`` with ``kwargs`` (``num_classes``, and the
    network's own options; timm's names in :data:`TIMM_ALIASES` stand for miziha's).

    ``pretrained`` (a weights file, any format and source
    :func:`miziha.weights.load_pretrained` reads) is loaded strictly after building: another
    ``num_classes`` leaves the classifier at its initialisation, another window size
    resizes the relative position tables; the :class:`~miziha.weights.LoadReport` is kept
    as ``model.pretrained_report``.

    ``features_only=True`` returns its multi-scale backbone instead
    (:class:`~miziha.models.features.FeatureExtractor`): ``forward(x)`` gives the maps of
    the stages ``out_indices`` (default: all), described by its ``feature_info``.

    Raises:
        ValueError: no network has that name (the message lists them).
        ValueError: a ``pretrained`` file that is no checkpoint or does not fit, or
            ``pretrained=True`` (a path is needed; ``False`` is the same as None).
        FileNotFoundError: no ``pretrained`` file there.
        TypeError: an option the network does not take (the message lists those it takes,
            :func:`model_options`), or ``features_only`` for a network without multi-scale
            features.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if pretrained is True:
        raise ValueError(f"pretrained=True: miziha downloads no weights; give the path of a "
                         f"checkpoint file for {name} (docs/weights.md lists where each "
                         f"family's are published)")
    if pretrained is False:
        pretrained = None
    given = {}  # miziha's name -> the name the caller used
    for alias, own in TIMM_ALIASES.items():
        if alias in kwargs:
            if own in kwargs:
                raise TypeError(f"{name} got both {alias!r} (timm's name) and {own!r}; give "
                                f"one")
            kwargs[own], given[own] = kwargs.pop(alias), alias
    accepted = model_options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        named = [f"{given[k]!r} (timm's name of {k!r})" if k in given else repr(k)
                 for k in unknown]
        raise TypeError(f"{name} got unknown option(s) {', '.join(named)}; it accepts "
                        f"{', '.join(accepted)}")
    model = _BUILDERS[name](**kwargs)
    if pretrained is not None:
        # Imported here: weights/ builds on models/, never the reverse at import time.
        from ..weights.load import load_pretrained
        model.pretrained_report = load_pretrained(model, pretrained)
    if not features_only:
        if out_indices is not None:
            raise ValueError("out_indices goes with features_only=True")
        return model
    return FeatureExtractor(model, out_indices)
