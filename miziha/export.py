"""Save a layer for ``paddle.inference`` and run the saved files on NumPy arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import paddle
import paddle.inference as paddle_infer
import paddle.nn as nn
from paddle.static import InputSpec

__all__ = ["save_for_inference", "Predictor"]


def save_for_inference(layer: nn.Layer, path: Union[str, Path], in_channels: int,
                       data_format: str = "NCHW") -> str:
    """``paddle.jit.save`` ``layer`` (in eval mode) with dynamic batch, height and width.

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
    layer.eval()
    paddle.jit.save(layer, str(path), input_spec=[InputSpec(shape, "float32")])
    return str(path)


class Predictor:
    """A ``paddle.inference`` predictor (CPU, oneDNN on as by Paddle's default) for files
    from :func:`save_for_inference`; call it with a float32 array, get the output array.

    Args:
        path: the prefix given to :func:`save_for_inference`.
        threads: CPU math threads; default: Paddle's (1).
    """

    def __init__(self, path: Union[str, Path], threads: Optional[int] = None) -> None:
        model, params = Path(f"{path}.json"), Path(f"{path}.pdiparams")
        missing = [str(p) for p in (model, params) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no exported model at {path}: missing {', '.join(missing)}")
        config = paddle_infer.Config(str(model), str(params))
        config.disable_gpu()
        config.disable_glog_info()
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
