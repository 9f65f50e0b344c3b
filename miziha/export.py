"""Save a layer for ``paddle.inference`` and run the saved files on NumPy arrays; convert
it to ONNX (:func:`to_onnx`, the ``onnx`` extra)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import paddle
import paddle.inference as paddle_infer
import paddle.nn as nn
from paddle.static import InputSpec

__all__ = ["save_for_inference", "Predictor", "to_onnx", "ONNX_PACKAGES"]

#: The ``onnx`` extra (``pip install miziha[onnx]``): the converter, which :func:`to_onnx`
#: needs, and onnxruntime, to run the files.
ONNX_PACKAGES = ("paddle2onnx", "onnxruntime")
#: Run in a child process: paddle2onnx ends the process that calls it when it cannot convert
#: a program (``sys.exit`` from its logger, or an abort in its C++ code). The child runs in
#: the temporary folder of the saved model, with ``-P`` where Python has it (3.11+), so that
#: no module in the caller's working directory shadows paddle2onnx.
_CONVERT = """
import sys
import paddle2onnx
model, params, out, opset = sys.argv[1:]
paddle2onnx.export(model, params, out, int(opset), auto_upgrade_opset=False,
                   optimize_tool="onnxoptimizer")
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _eval_mode(layer: nn.Layer) -> Iterator[None]:
    """``layer`` in eval mode inside the block; afterwards each sublayer has the mode it had."""
    modes = [(sub, sub.training) for sub in layer.sublayers(include_self=True)]
    layer.eval()
    try:
        yield
    finally:
        layer.train(modes[0][1])
        for sub, training in modes:
            sub.training = training


def save_for_inference(layer: nn.Layer, path: Union[str, Path], in_channels: int,
                       data_format: str = "NCHW") -> str:
    """``paddle.jit.save`` ``layer`` (in eval mode) with dynamic batch, height and width;
    ``layer`` keeps the training mode it had.

    Args:
        layer: a layer or network taking one image tensor.
        path: file prefix; writes ``<path>.json`` and ``<path>.pdiparams``.
        in_channels: input channels ``C``.
        data_format: ``"NCHW"`` (input ``[B, C, H, W]``) or ``"NHWC"``.

    Returns:
        The prefix, for :class:`Predictor`.
    """
    if not isinstance(layer, nn.Layer):
        raise TypeError(f"save_for_inference expects a paddle.nn.Layer, got {type(layer).__name__}")
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    shape = [None, in_channels, None, None] if data_format == "NCHW" \
        else [None, None, None, in_channels]
    with _eval_mode(layer):
        paddle.jit.save(layer, str(path), input_spec=[InputSpec(shape, "float32")])
    return str(path)


class Predictor:
    """A ``paddle.inference`` predictor (CPU, oneDNN on as by Paddle's default) for files
    from :func:`save_for_inference`; call it with a float32 array, get the output array.

    Args:
        path: the prefix given to :func:`save_for_inference`.
        threads: CPU math threads; default: Paddle's (1).
        onednn: False runs Paddle's own CPU kernels instead of oneDNN's.
    """

    def __init__(self, path: Union[str, Path], threads: Optional[int] = None,
                 onednn: bool = True) -> None:
        model, params = Path(f"{path}.json"), Path(f"{path}.pdiparams")
        missing = [str(p) for p in (model, params) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no exported model at {path}: missing {', '.join(missing)}")
        config = paddle_infer.Config(str(model), str(params))
        config.disable_gpu()
        config.disable_glog_info()
        if not onednn:
            config.disable_mkldnn()
        if threads is not None:
            if not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be a positive int, got {threads!r}")
            config.set_cpu_math_library_num_threads(threads)
        self._predictor = paddle_infer.create_predictor(config)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x``: the input batch (float32); returns the first output."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Predictor expects a numpy array, got {type(x).__name__}")
        predictor = self._predictor
        feed = predictor.get_input_handle(predictor.get_input_names()[0])
        feed.reshape(list(x.shape))
        feed.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def to_onnx(model: nn.Layer, path: Union[str, Path], in_channels: int = 3, opset: int = 17,
            data_format: str = "NCHW", timeout: float = 600) -> str:
    """Write ``model`` (in eval mode; it keeps its own mode) as an ONNX file with dynamic
    batch, height and width.

    The layer is saved as by :func:`save_for_inference`, then converted by paddle2onnx in a
    child process, so that a conversion that fails raises here instead of ending the
    caller's process. The file is written beside ``path`` and moved onto it only when the
    conversion succeeds: a failure leaves an existing ``path`` as it was.

    Args:
        model: a layer or network taking one image tensor.
        path: the ``.onnx`` file to write (its folder must exist).
        in_channels: input channels ``C``.
        opset: the ONNX opset (no automatic upgrade).
        data_format: ``"NCHW"`` (input ``[B, C, H, W]``) or ``"NHWC"``.
        timeout: seconds the conversion may take.

    Returns:
        ``path``, as a string; the input is named ``x``.

    Raises:
        ImportError: paddle2onnx is not installed (``pip install miziha[onnx]``).
        RuntimeError: the conversion failed or took over ``timeout`` seconds; the message
            names the model (and gives paddle2onnx's).
    """
    if importlib.util.find_spec("paddle2onnx") is None:
        raise ImportError("to_onnx needs paddle2onnx: pip install miziha[onnx]")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
        raise ValueError(f"opset must be an int >= 7, got {opset!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"to_onnx cannot write {path}: no folder {path.parent}")
    name = type(model).__name__
    safe_path = ["-P"] if sys.version_info >= (3, 11) else []
    with tempfile.TemporaryDirectory(prefix="miziha-onnx-") as folder:
        prefix = save_for_inference(model, Path(folder) / "model", in_channels, data_format)
        params = Path(f"{prefix}.pdiparams")  # absent for a layer without parameters
        handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                           dir=path.absolute().parent)
        os.close(handle)
        os.unlink(partial)  # a free name: the converter creates the file (with the umask)
        try:
            run = subprocess.run([sys.executable, *safe_path, "-c", _CONVERT, f"{prefix}.json",
                                  str(params) if params.is_file() else "", partial, str(opset)],
                                 capture_output=True, text=True, cwd=folder, timeout=timeout)
            if run.returncode != 0 or not os.path.isfile(partial):
                raise RuntimeError(f"paddle2onnx could not convert {name} to ONNX (opset "
                                   f"{opset}): {_converter_message(run)}")
            os.replace(partial, path)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"paddle2onnx did not convert {name} to ONNX within {timeout} "
                               f"seconds (to_onnx's timeout)") from error
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return str(path)


def _converter_message(run: subprocess.CompletedProcess) -> str:
    """paddle2onnx's error lines (from stdout and stderr, colours removed), or the end of
    its output, and how the child process ended."""
    lines = [_ANSI.sub("", line).strip() for line in (run.stdout + run.stderr).splitlines()]
    errors = [line for line in lines if "error" in line.lower() and "warn" not in line.lower()]
    text = " | ".join(errors or [line for line in lines if line][-5:]) or "no output"
    end = f"exit status {run.returncode}" if run.returncode >= 0 \
        else f"killed by signal {-run.returncode}"
    return f"{text} ({end})"
