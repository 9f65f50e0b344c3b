"""Multi-head self-attention inside windows, with relative position bias (Swin V1)."""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .init import TRUNC_NORMAL, linear

__all__ = ["WindowAttention"]


class WindowAttention(nn.Layer):
    """W-MSA / SW-MSA on tokens already grouped into windows.

    Parameter names match the official Swin code (``qkv``, ``proj``,
    ``relative_position_bias_table``). Paddle's ``Linear.weight`` is ``[in, out]``, the
    transpose of PyTorch's.

    Args:
        dim: channels ``C``.
        window_size: configured window ``(Wh, Ww)``; sizes the bias table
            ``[(2Wh-1)*(2Ww-1), heads]``.
        num_heads: heads; must divide ``dim``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: score scale; default ``head_dim ** -0.5``.
        attention_dropout: dropout on the attention weights.
        dropout: dropout after the output projection.
    """

    def __init__(self, dim: int, window_size: Tuple[int, int], num_heads: int,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 attention_dropout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = tuple(window_size)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else self.head_dim ** -0.5
        rows = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
        self.relative_position_bias_table = self.create_parameter(
            [rows, num_heads], default_initializer=TRUNC_NORMAL)
        self.qkv = linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def bias_and_mask(self, relative_index: paddle.Tensor, window_tokens,
                      mask: Optional[paddle.Tensor]) -> paddle.Tensor:
        """Relative position bias plus mask, added to the scores in one step.

        Args:
            relative_index: ``[N*N]`` rows of the bias table.
            window_tokens: ``N`` (int or 0-D tensor).
            mask: ``[nW, N, N]`` additive mask, or None.

        Returns:
            ``[1, nW, heads, N, N]`` (``nW`` is 1 without a mask). It has the rank of the
            scores: oneDNN inference fails to broadcast a lower-rank operand when
            ``nW == 1``.
        """
        bias = paddle.index_select(self.relative_position_bias_table, relative_index)
        bias = bias.transpose([1, 0]).reshape([1, 1, self.num_heads, window_tokens, -1])
        if mask is None:
            return bias
        if mask.dtype != bias.dtype:  # a half-precision model: keep its dtype
            mask = mask.astype(bias.dtype)
        return bias + mask.reshape([1, -1, 1, window_tokens, window_tokens])

    def forward(self, windows: paddle.Tensor, bias_mask: paddle.Tensor) -> paddle.Tensor:
        """Attend within each window.

        Args:
            windows: ``[B, nW, N, C]`` tokens grouped by window.
            bias_mask: ``[1, nW or 1, heads, N, N]`` from :meth:`bias_and_mask`.

        Returns:
            ``[B, nW, N, C]``.
        """
        # split, not slicing: on Paddle CPU the backward of each slice writes a
        # full-size gradient. reshape's 0 keeps a dimension, so sizes may be dynamic.
        q, k, v = paddle.split(self.qkv(windows), 3, axis=-1)
        q, k, v = (t.reshape([0, 0, 0, self.num_heads, self.head_dim]).transpose([0, 1, 3, 2, 4])
                   for t in (q * self.scale, k, v))
        attn = paddle.matmul(q, k, transpose_y=True)  # [B, nW, heads, N, N]
        if bias_mask.dtype != attn.dtype:
            bias_mask = bias_mask.astype(attn.dtype)
        attn = self.attn_drop(F.softmax(attn + bias_mask, axis=-1))
        out = paddle.matmul(attn, v).transpose([0, 1, 3, 2, 4]).reshape([0, 0, 0, self.dim])
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, window_size={self.window_size}, "
                f"num_heads={self.num_heads}, scale={self.scale:.4g}")
