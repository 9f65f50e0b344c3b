"""Multi-head self-attention inside windows with relative position bias (Swin V1), and
attention inside general token groups (stripes, interlaced rows or columns)."""

from __future__ import annotations

from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import TRUNC_NORMAL, linear
from .groups import TokenGroups
from .shapes import Size, shape_of
from .windows import WindowGeometry

__all__ = ["WindowAttention", "split_heads", "merge_heads", "group_attention"]


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

    def bias_and_mask(self, geometry: WindowGeometry) -> paddle.Tensor:
        """Relative position bias plus the window mask, as one additive term.

        Returns:
            ``[K * heads * N * N]`` flattened from ``[K, heads, N, N]``, where ``K`` is
            ``nW`` with a mask and 1 without.
        """
        n = geometry.window_tokens
        bias = paddle.index_select(self.relative_position_bias_table, geometry.relative_index)
        bias = bias.transpose([1, 0]).reshape([1, self.num_heads, n, n])  # [1, heads, N, N]
        if geometry.mask is not None:
            mask = geometry.mask
            if mask.dtype != bias.dtype:  # a half-precision model: keep its dtype
                mask = mask.astype(bias.dtype)
            bias = bias + mask.reshape([-1, 1, n, n])
        return bias.flatten()

    def forward(self, windows: paddle.Tensor, geometry: WindowGeometry,
                input_affine: Optional[Tuple[paddle.Tensor, paddle.Tensor]] = None
                ) -> paddle.Tensor:
        """Attend within each window.

        Args:
            windows: ``[B, nW * N, C]``, the tokens of each window consecutive.
            geometry: the window layout (:class:`~miziha.windows.WindowGeometry`).
            input_affine: a LayerNorm's ``(weight, bias)`` not yet applied to ``windows``
                (folded into ``qkv``), or None.

        Returns:
            ``[B, nW * N, C]``.
        """
        n, heads = geometry.window_tokens, self.num_heads
        q, k, v = split_heads(self.qkv(windows, input_affine), n, heads)  # [B*nW, heads, hd, N]
        attn = paddle.matmul(q * self.scale, k, transpose_x=True)  # [B*nW, heads, N, N]
        bias_mask = self.bias_and_mask(geometry)
        if bias_mask.dtype != attn.dtype:
            bias_mask = bias_mask.astype(attn.dtype)
        # Rows of [..., K*heads*N*N] plus a 1-D term: Paddle's fast broadcast (a rank-matched
        # [1, ...] operand is ~4x slower), and one oneDNN inference handles.
        windows_per_term = geometry.num_windows if geometry.mask is not None else 1
        attn = attn.reshape([-1, windows_per_term * heads * n * n]) + bias_mask
        attn = self.attn_drop(F.softmax(attn.reshape([-1, n]), axis=-1))
        out = paddle.matmul(v, attn.reshape([-1, heads, n, n]), transpose_y=True)
        out = merge_heads(out, n).reshape([-1, self.dim])
        return self.proj_drop(self.proj(out)).reshape(shape_of(windows))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, window_size={self.window_size}, "
                f"num_heads={self.num_heads}, scale={self.scale:.4g}")


def split_heads(qkv: paddle.Tensor, group_tokens: Size, heads: int
                ) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """``[B, nG * N, 3C]`` (q, k, v channels in that order; the tokens of each group
    consecutive) -> ``q, k, v``, each ``[B*nG, heads, C/heads, N]``: channels-first within a
    group.

    One batched 2-D transpose, ``[N, 3C] -> [3C, N]``, which Paddle's CPU copies fast; then
    heads are split without moving channel blocks (moving them, ``[N, heads, d] -> [heads,
    N, d]``, takes Paddle's per-element path, ~10x slower), and every attention matmul works
    on contiguous operands.
    """
    channels = qkv.shape[-1] // 3
    qkv = qkv.reshape([-1, group_tokens, 3 * channels]).transpose([0, 2, 1])
    # Split the 4-D view: a split of the 5-D [B*nG, 3, heads, d, N] view copies ~5x slower.
    return tuple(t.reshape([-1, heads, channels // heads, group_tokens]) for t in paddle.split(
        qkv.reshape([-1, 3, channels, group_tokens]), 3, axis=1))


def merge_heads(x: paddle.Tensor, group_tokens: Size) -> paddle.Tensor:
    """Channels-first ``[B*nG, heads, d, N]`` (or ``[B*nG, C, N]``) -> ``[B*nG, N, C]``, ``C =
    heads * d`` (a batched 2-D transpose)."""
    channels = x.shape[1] * x.shape[2] if x.ndim == 4 else x.shape[1]
    return x.reshape([-1, channels, group_tokens]).transpose([0, 2, 1])


def group_attention(q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor,
                    groups: TokenGroups, scale: float,
                    dropout: Optional[nn.Layer] = None) -> paddle.Tensor:
    """Softmax attention within each token group, padded keys masked out, channels-first.

    Args:
        q, k, v: ``[B*nG, heads, d, N]`` (:func:`split_heads` of the gathered groups).
        groups: the :class:`~miziha.groups.TokenGroups` they were gathered with.
        scale: score scale.
        dropout: applied to the attention weights, or None.

    Returns: ``[B*nG, heads, d, N]``.
    """
    n, heads = groups.group_tokens, q.shape[1]
    attn = paddle.matmul(q * scale, k, transpose_x=True)  # [B*nG, heads, N(query), N(key)]
    if groups.key_mask is not None:  # [nG, 1, N] over [B, nG, heads*N, N]
        attn = attn.reshape([-1, groups.num_groups, heads * n, n]) \
            + groups.key_mask.astype(attn.dtype).reshape([groups.num_groups, 1, n])
    # Eager: in place (its backward needs only its output, QK^T's only q and k), one
    # N x N buffer fewer to allocate and page-fault: ~2x faster on CPU. to_static refuses
    # an in-place op on a reshaped view, and graphs plan their buffers anyway.
    softmax = F.softmax_ if paddle.in_dynamic_mode() else F.softmax
    attn = softmax(attn.reshape([-1, heads, n, n]), axis=-1)
    if dropout is not None:
        attn = dropout(attn)
    return paddle.matmul(v, attn, transpose_y=True)
