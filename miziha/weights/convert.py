"""A checkpoint's arrays into a miziha network's state dict, in steps: the source's key map
(:data:`KEY_MAPS` beside each family), the PyTorch layout into Paddle's, relative position
tables resized to the model's window, the classifier left out when its classes differ,
zeros where the source lacks a tensor the family's map fills, then the check against the
model. :func:`convert_state` runs them and says what each did (:class:`LoadReport`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import paddle.nn as nn

from .official import DERIVED_BUFFERS, RENAMED_BUFFERS
from .resize import resize_relative_position_table

__all__ = ["DERIVED_BUFFERS", "RENAMED_BUFFERS", "SOURCES", "LoadReport", "family_maps",
           "apply_key_map", "to_paddle_layout", "linear_weight_names", "head_prefix",
           "head_names", "detect_source", "convert_state"]

#: Where weights come from -> the array layout of their files: ``official`` (the design's
#: own PyTorch code, the names miziha keeps), ``timm`` (timm >= 0.9 names), ``paddleclas``
#: (PaddleClas's names), ``miziha`` (miziha's own ``.pdparams``).
SOURCES: Dict[str, str] = {"official": "torch", "timm": "torch", "paddleclas": "paddle",
                           "miziha": "paddle"}

#: A resized tensor's name suffix (the only tensors whose size follows a hyperparameter
#: that may change between pre-training and fine-tuning).
_RESIZABLE = "relative_position_bias_table"


@dataclass
class LoadReport:
    """What loading a checkpoint did; ``print(report)`` lists it.

    Attributes:
        path: the file (empty for an in-memory state dict).
        source: the source its names were read as (:data:`SOURCES`).
        format: the file format (``torch-zip``, ``torch-legacy``, ``safetensors``,
            ``paddle``, ``dict``).
        model: the model's class name.
        unwrapped: what was taken out of the file's wrapping (the wrapper key, such as
            ``state_dict_ema`` or ``model``, and a ``module.`` prefix), in order.
        passed_over: the file's other wrapper keys holding weights (``state_dict`` when
            CSWin's ``state_dict_ema`` was taken).
        loaded: model keys given a value from the checkpoint.
        renamed: checkpoint key -> model key, where they differ.
        resized: model key -> (checkpoint shape, model shape) of resized tables.
        filled: model keys the source lacks, set to zeros (the family's map says so).
        head_skipped: checkpoint classifier keys not loaded: of other classes (the model's
            classifier stays at its initialisation), or for a model without one
            (``num_classes=0``).
        dropped: checkpoint keys of derived buffers (:data:`DERIVED_BUFFERS`).
        missing: model keys the checkpoint did not give (a strict load refuses them).
        unexpected: checkpoint keys the model has no place for (likewise).
    """

    path: str = ""
    source: str = ""
    format: str = ""
    model: str = ""
    unwrapped: List[str] = field(default_factory=list)
    passed_over: List[str] = field(default_factory=list)
    loaded: List[str] = field(default_factory=list)
    renamed: Dict[str, str] = field(default_factory=dict)
    resized: Dict[str, Tuple[List[int], List[int]]] = field(default_factory=dict)
    filled: List[str] = field(default_factory=list)
    head_skipped: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        def some(names: Sequence[str], limit: int = 4) -> str:
            shown = ", ".join(names[:limit])
            return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
        lines = [f"{self.path or 'state dict'} ({self.format}, {self.source} names) -> "
                 f"{self.model}"]
        if self.unwrapped:
            lines.append(f"  unwrapped     {', '.join(self.unwrapped)}" +
                         (f" (passed over: {', '.join(self.passed_over)})"
                          if self.passed_over else ""))
        lines.append(f"  loaded        {len(self.loaded)} tensors")
        if self.renamed:
            pairs = [f"{a} -> {b}" for a, b in self.renamed.items()]
            lines.append(f"  renamed       {len(pairs)}: {some(pairs, 3)}")
        if self.resized:
            sizes = [f"{k} {a} -> {b}" for k, (a, b) in self.resized.items()]
            lines.append(f"  resized       {len(sizes)}: {some(sizes, 2)}")
        if self.filled:
            lines.append(f"  filled zeros  {len(self.filled)}: {some(self.filled)}")
        if self.head_skipped:
            lines.append(f"  head skipped  {some(self.head_skipped)} (another classifier "
                         f"or none: the model's is not loaded)")
        if self.dropped:
            lines.append(f"  dropped       {len(self.dropped)} derived buffers: "
                         f"{some(self.dropped, 2)}")
        lines.append(f"  missing       {len(self.missing)}" +
                     (f": {some(self.missing)}" if self.missing else ""))
        lines.append(f"  unexpected    {len(self.unexpected)}" +
                     (f": {some(self.unexpected)}" if self.unexpected else ""))
        return "\n".join(lines)


def family_maps(model: nn.Layer) -> Tuple[Mapping[str, Tuple[Tuple[str, str], ...]],
                                          Mapping[str, Tuple[str, ...]]]:
    """The ``KEY_MAPS`` and ``ZERO_FILLS`` constants of the module that defines the
    model's class (empty where it has none)."""
    module = sys.modules.get(type(model).__module__)
    return getattr(module, "KEY_MAPS", {}), getattr(module, "ZERO_FILLS", {})


def apply_key_map(key: str, pairs: Sequence[Tuple[str, str]]) -> str:
    """``key`` through every ``(pattern, replacement)`` of ``pairs`` in order (``re.sub``,
    each on the result of the one before)."""
    for pattern, replacement in pairs:
        key = re.sub(pattern, replacement, key)
    return key


def linear_weight_names(model: nn.Layer) -> Set[str]:
    """State-dict names of the model's ``nn.Linear`` weights (the tensors whose layout
    differs between PyTorch ``[out, in]`` and Paddle ``[in, out]``)."""
    return {f"{name}.weight" for name, layer in model.named_sublayers()
            if isinstance(layer, nn.Linear)}


def head_prefix(model: nn.Layer) -> Optional[str]:
    """The classifier's sublayer name: the layer ``model.get_classifier()`` gives (timm's
    API, which the official networks have), else the last Linear or Conv2D whose output
    width is ``model.num_classes``; None when there is neither."""
    if hasattr(model, "get_classifier"):
        layer = model.get_classifier()
        names = [name for name, sublayer in model.named_sublayers()
                 if sublayer is layer]
        if not names:
            raise ValueError(f"{type(model).__name__}.get_classifier() gives a "
                             f"{type(layer).__name__} that is not one of its sublayers")
        return names[0]
    classes, prefix = getattr(model, "num_classes", None), None
    for name, layer in model.named_sublayers():
        if isinstance(layer, nn.Linear) and layer.weight.shape[-1] == classes or \
                isinstance(layer, nn.Conv2D) and layer.weight.shape[0] == classes:
            prefix = name
    return prefix


def head_names(model: nn.Layer) -> List[str]:
    """The classifier's state-dict names (none for a model without one, or whose
    classifier is an identity: ``num_classes=0``)."""
    prefix = head_prefix(model)
    return [] if prefix is None else [name for name in model.state_dict()
                                      if name.startswith(prefix + ".")]


def to_paddle_layout(state: Mapping[str, np.ndarray], linear_weights: Set[str],
                     renamed: Dict[str, str]) -> Dict[str, np.ndarray]:
    """PyTorch layout -> Paddle's: BatchNorm running statistics renamed
    (:data:`RENAMED_BUFFERS`, recorded in ``renamed`` by their original key) and Linear
    weights (names in ``linear_weights``) transposed; other tensors keep their layout."""
    converted, original = {}, {new: old for old, new in renamed.items()}
    for name, value in state.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf in RENAMED_BUFFERS:
            old = original.get(name, name)
            name = f"{prefix}.{RENAMED_BUFFERS[leaf]}" if prefix else RENAMED_BUFFERS[leaf]
            renamed[old] = name
        converted[name] = value.T if name in linear_weights else value
    return converted


def _rename(state: Mapping[str, np.ndarray], pairs: Sequence[Tuple[str, str]],
            renamed: Dict[str, str], dropped: List[str]) -> Dict[str, np.ndarray]:
    """Derived buffers dropped, then every key through the key map."""
    out = {}
    for key, value in state.items():
        if key.rpartition(".")[2] in DERIVED_BUFFERS:
            dropped.append(key)
            continue
        new = apply_key_map(key, pairs)
        if new in out:
            raise ValueError(f"the key map gives two tensors the name {new!r} ({key!r} and "
                             f"another): not a checkpoint of this source")
        if new != key:
            renamed[key] = new
        out[new] = value
    return out


def detect_source(model: nn.Layer, state: Mapping[str, np.ndarray], layout: str) -> str:
    """The source whose names fit ``model`` best among those of the file's ``layout``
    (``"torch"``: official or timm; ``"paddle"``: miziha or paddleclas), counting the keys
    that land on a model key after the source's map (a map that merges two of the file's
    keys rules its source out), then (on a tie) the model keys the source's ``ZERO_FILLS``
    fill (timm's ``hrnet_w*_ssld`` files, which
    lack HRNet's head conv biases, read as ``timm``); a tie after both goes to the
    official names (``official`` / ``miziha``: PaddleClas's Swin files, which keep them,
    read as ``miziha``)."""
    if layout not in SOURCES.values():
        raise ValueError(f"layout must be 'torch' or 'paddle', got {layout!r}")
    key_maps, zero_fills = family_maps(model)
    expected = set(model.state_dict())
    best, best_score = None, (-1, -1)
    plain = [s for s in SOURCES if s in ("official", "miziha")]
    for source in plain + [s for s in SOURCES if s not in plain]:
        if SOURCES[source] != layout or (source not in plain and source not in key_maps):
            continue
        try:
            names = _rename(state, key_maps.get(source, ()), {}, [])
        except ValueError:  # the map merges two of the file's keys: not this source's file
            continue
        if layout == "torch":
            names = to_paddle_layout({k: np.empty(0) for k in names}, set(), {})
        fillable = [name for name in expected - set(names)
                    if any(re.search(p, name) for p in zero_fills.get(source, ()))]
        score = (len(expected & set(names)), len(fillable))
        if score > best_score:
            best, best_score = source, score
    return best


def convert_state(model: nn.Layer, state: Mapping[str, np.ndarray], layout: str,
                  source: Optional[str] = None, strict: bool = True, skip_head: bool = True,
                  report: Optional[LoadReport] = None) -> Tuple[Dict[str, np.ndarray],
                                                                LoadReport]:
    """A checkpoint's ``state`` (names -> arrays, in ``layout`` ``"torch"`` or
    ``"paddle"``) as arrays for ``model.set_state_dict``, in the dtypes of the model.

    Args:
        model: the network the weights are for (it says which tensors are Linear, which is
            the classifier, and its family's key maps).
        state: the checkpoint's arrays.
        layout: the array layout of the file.
        source: a key of :data:`SOURCES`, or None to detect it (:func:`detect_source`).
        strict: refuse missing or unexpected keys.
        skip_head: leave the classifier out when its class count differs, or when the model
            has none (``num_classes=0``; else: an error).
        report: a report to fill (path and format already set), else a new one.

    Returns: the arrays, and the :class:`LoadReport`.

    Raises:
        ValueError: an unknown source or one of another layout, a shape that does not fit
            (named), or (strict) missing or unexpected keys.
    """
    report = report or LoadReport(format="dict")
    report.model = type(model).__name__
    if source is None:
        source = detect_source(model, state, layout)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, got {source!r}")
    if SOURCES[source] != layout:
        raise ValueError(f"{source!r} weights have the {SOURCES[source]} layout, this file "
                         f"the {layout} layout (sources of {layout} files: "
                         f"{sorted(s for s, l in SOURCES.items() if l == layout)})")
    key_maps, zero_fills = family_maps(model)
    if source not in ("official", "miziha") and source not in key_maps:
        raise ValueError(f"{report.model} has no key map for {source!r} weights (it has: "
                         f"{sorted(key_maps) or 'none'})")
    report.source = source
    arrays = _rename(state, key_maps.get(source, ()), report.renamed, report.dropped)
    if SOURCES[source] == "torch":
        arrays = to_paddle_layout(arrays, linear_weight_names(model), report.renamed)
    expected = model.state_dict()
    prefix, names = head_prefix(model), head_names(model)
    head = set(names) if skip_head else set()
    headless = skip_head and prefix is not None and not names  # num_classes=0
    converted, wrong = {}, []
    for name, value in arrays.items():
        if name not in expected:
            if headless and name.startswith(prefix + "."):
                report.head_skipped.append(name)
            else:
                report.unexpected.append(name)
            continue
        value, want = np.asarray(value), list(expected[name].shape)
        if list(value.shape) != want:
            if name.endswith(_RESIZABLE) and value.ndim == 2 and value.shape[1] == want[1]:
                report.resized[name] = (list(value.shape), want)
                value = resize_relative_position_table(value, want[0])
            elif name in head:
                report.head_skipped.append(name)
                continue
            else:
                wrong.append(f"{name}: the model has shape {want}, the state dict "
                             f"{list(value.shape)}")
                continue
        converted[name] = value
    if wrong:
        raise ValueError(f"{len(wrong)} tensor(s) of the checkpoint do not fit {report.model}"
                         f" ({source} names" + (", Linear weights transposed" if
                                                SOURCES[source] == "torch" else "") +
                         "): " + "; ".join(wrong[:6]) + (" ..." if len(wrong) > 6 else ""))
    if report.head_skipped:  # a classifier of other classes goes as a whole
        for name in head & set(converted):
            del converted[name]
            report.head_skipped.append(name)
        report.head_skipped.sort()
    fills = [name for name in expected if name not in converted and
             any(re.search(p, name) for p in zero_fills.get(source, ()))]
    for name in fills:
        converted[name] = np.zeros(expected[name].shape, dtype=np.float32)
    report.filled = fills
    report.missing = [n for n in expected if n not in converted and n not in report.head_skipped]
    report.loaded = [n for n in converted if n not in fills]
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"the checkpoint ({source} names) does not fit {report.model}: "
                         f"missing {report.missing[:5]}"
                         f"{'...' if len(report.missing) > 5 else ''} "
                         f"({len(report.missing)}), unexpected {report.unexpected[:5]}"
                         f"{'...' if len(report.unexpected) > 5 else ''} "
                         f"({len(report.unexpected)})")
    dtypes = {name: str(tensor.dtype).replace("paddle.", "") for name, tensor in expected.items()}
    return {name: value.astype(dtypes[name], copy=False) if dtypes[name] != "bfloat16"
            else value for name, value in converted.items()}, report
