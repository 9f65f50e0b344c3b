"""Relative position bias tables for another window size, as the official Swin
``load_pretrained`` resizes them: bicubic (PyTorch's: ``A = -0.75``, ``align_corners=False``,
border samples clamped), computed in float64 as two small matrices."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bicubic_matrix", "resize_relative_position_table", "table_side"]

_A = -0.75  # PyTorch's bicubic coefficient


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """The four weights of the samples at offsets -1, 0, 1, 2 for fractions ``t``:
    ``[len(t), 4]``."""
    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((_A + 2) * x - (_A + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A
    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` float64: row ``i`` weighs the input samples of output ``i``
    (source coordinate ``(i + 0.5) * size_in / size_out - 0.5``, neighbours clamped to the
    border, as PyTorch's ``interpolate(mode="bicubic", align_corners=False)``)."""
    source = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    first = np.floor(source)
    weights = _cubic_weights(source - first)
    matrix = np.zeros((size_out, size_in))
    for k in range(4):
        columns = np.clip(first.astype(np.int64) - 1 + k, 0, size_in - 1)
        np.add.at(matrix, (np.arange(size_out), columns), weights[:, k])
    return matrix


def table_side(length: int) -> int:
    """The side ``2w - 1`` of a square table of ``length`` rows; ValueError if not square."""
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"a relative position table of {length} rows is not square")
    return side


def resize_relative_position_table(table: np.ndarray, length: int) -> np.ndarray:
    """``[L1, heads]`` (``L1 = (2w1 - 1)**2``) -> ``[length, heads]``: each head's
    ``(2w1-1) x (2w1-1)`` grid bicubically resized to the new side, as float32."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"a relative position table is [L, heads], got shape {list(table.shape)}")
    side_in, side_out = table_side(table.shape[0]), table_side(length)
    matrix = bicubic_matrix(side_in, side_out)
    grids = table.T.reshape(-1, side_in, side_in)  # [heads, S1, S1]
    resized = matrix @ grids @ matrix.T  # [heads, S2, S2]
    return resized.reshape(-1, length).T.astype(np.float32)
