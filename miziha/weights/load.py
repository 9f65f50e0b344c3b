"""Pretrained weights from a file into a network: :func:`load_pretrained` (any file
:func:`~miziha.weights.readers.read_checkpoint` reads, any source of
:data:`~miziha.weights.convert.SOURCES`) and :func:`convert_file` (the command line's
conversion to a Paddle file)."""

from __future__ import annotations

import os
from typing import Optional, Tuple

import paddle
import paddle.nn as nn

from .convert import LoadReport, convert_state
from .readers import PathLike, read_checkpoint

__all__ = ["load_pretrained", "convert_file"]


def load_pretrained(model: nn.Layer, path: PathLike, strict: bool = True,
                    source: Optional[str] = None, ema: bool = True) -> LoadReport:
    """Load the weights in ``path`` into ``model`` (in place) and say what was done.

    Reads ``torch.save`` files (``.pth``, ``.pth.tar``, ``.pt``; zip or legacy layout,
    without PyTorch, refusing anything but tensors), safetensors files (timm's hub) and
    ``.pdparams``; unwraps ``{'model': ...}``, ``{'state_dict': ...}``,
    ``{'state_dict_ema': ...}`` (the EMA weights first unless ``ema=False``) and
    ``module.`` prefixes; renames by the source's key map, converts the PyTorch layout,
    resizes relative position tables to the model's window, leaves a classifier of other
    classes at its initialisation, fills what the family's map fills.

    Args:
        model: a miziha network.
        path: the weights file.
        strict: refuse a checkpoint with missing or unexpected keys (the classifier of
            other classes excepted).
        source: ``"official"``, ``"timm"``, ``"paddleclas"`` or ``"miziha"``; None detects
            it from the file's layout and keys.
        ema: prefer ``state_dict_ema`` where a checkpoint has one.

    Returns: the :class:`~miziha.weights.convert.LoadReport` (``print`` it).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint, truncated, a refused global, a shape that does not
            fit (named), or (strict) missing or unexpected keys. The model is then left
            as it was.
    """
    checkpoint = read_checkpoint(path, ema=ema)
    report = LoadReport(path=os.fspath(path), format=checkpoint.format,
                        unwrapped=list(checkpoint.unwrapped),
                        passed_over=list(checkpoint.passed_over))
    arrays, report = convert_state(model, checkpoint.state, checkpoint.layout, source,
                                   strict=strict, report=report)
    current = model.state_dict()
    # Every entry given (the unloaded ones as they are), so Paddle warns of nothing skipped.
    model.set_state_dict({name: arrays[name] if name in arrays else tensor
                          for name, tensor in current.items()})
    return report


def convert_file(path: PathLike, model_name: str, output: PathLike,
                 source: Optional[str] = None, **options) -> Tuple[nn.Layer, LoadReport]:
    """Build ``create_model(model_name, **options)``, load ``path`` into it strictly and
    save its state dict to ``output`` (a ``.pdparams`` file ``paddle.load`` and
    :func:`load_pretrained` read). Returns the model and the report."""
    from ..models.registry import create_model
    model = create_model(model_name, **options)
    report = load_pretrained(model, path, strict=True, source=source)
    paddle.save(model.state_dict(), os.fspath(output))
    return model, report
