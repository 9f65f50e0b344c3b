"""Multi-head self-attention inside windows with relative position bias (Swin V1), and
attention inside general token groups (stripes, interlaced rows or columns).

Two ways to compute the same attention, chosen per layer by its ``attention`` argument
(:data:`~miziha.checks.ATTENTION_MODES`) and decided per call by :func:`attention_backend`:

* ``"math"``: ``softmax(q k^T * scale + bias + mask) v`` with channels-first matmuls, the
  path tuned for CPU (``docs/performance.md``).
* ``"sdpa"``: Paddle's ``F.scaled_dot_product_attention`` (layout ``[batch, seq, heads,
  head_dim]``), with the relative position bias and the window mask (or the padded-key
  mask of a group) as one additive float mask. Paddle 3.3 picks its backend in
  ``paddle/nn/functional/sdpa.py`` (``select_sdp_for_sdpa``), in this order:

  - *flash attention* on a GPU (SM 8.0-12.1), float16/bfloat16, ``head_dim`` a multiple of
    8 and at most 256. It takes a dense additive mask ``[batch, heads or 1, N_q or 1,
    N_k]`` (the batch is not broadcast), but its backward (``FlashAttnGradKernel``,
    ``paddle/phi/kernels/flash_attn_grad_kernel.h``) returns no gradient for the mask;
  - *memory-efficient attention* (CUTLASS) on a GPU (SM 5.0-12.1) when the mask's last
    dimension is a multiple of 8; its backward does return ``bias_grad``;
  - otherwise the *math* backend (``_math_attention``): matmul, add, softmax, dropout,
    matmul, as Paddle ops. A CPU always takes it.

  So by that selector a 7x7 Swin window (``N = 49``) runs flash attention in half
  precision on a recent GPU and the math backend elsewhere. When the mask needs a gradient
  (the relative position bias with gradients on, i.e. training; inference under
  ``paddle.no_grad()`` does not) :func:`fused_attention` leaves flash attention out, so the
  bias table still learns (memory-efficient attention where ``N % 8 == 0``, else the math
  backend). None of the GPU branches could be run here (no GPU); they follow Paddle's
  source.
* ``"auto"`` (the default): ``"sdpa"`` for float16/bfloat16 on a GPU, ``"math"``
  everywhere else, so a CPU or a float32 model never changes path.

Masked scores get :data:`~miziha.layers.windows.MASK_VALUE` (-1e4), finite in float16 and
bfloat16, and the math path's softmax runs in float32 for half-precision scores
(:func:`softmax_float32`): Paddle's autocast keeps ``softmax`` in float32 at level O1 (its
black list) but not at O2.
"""

from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..paddle_fixes.cpu import place_key
from ..paddle_fixes.workarounds import Affine, Linear, linear_forward
from .basic import TRUNC_NORMAL, linear
from .groups import TokenGroups
from .shapes import Size, shape_of
from .windows import MASK_VALUE, WindowGeometry

__all__ = ["WindowAttention", "with_window_mask", "window_attention", "split_heads",
           "merge_heads", "group_attention", "group_heads", "ungroup", "qkv_half",
           "two_branch_attention", "attention_backend", "use_sdpa", "fused_attention", "softmax_float32",
           "attention_repr", "HALF_DTYPES"]

#: Dtypes for which ``attention="auto"`` takes Paddle's fused attention on a GPU.
HALF_DTYPES = ("float16", "bfloat16")


def attention_backend(mode: str, place: Union[str, paddle.Place, None], dtype) -> str:
    """Which attention a call runs: ``"math"`` or ``"sdpa"``.

    A pure function of its arguments: ``mode`` ``"math"`` or ``"sdpa"`` is taken as it is;
    ``"auto"`` gives ``"sdpa"`` only on a GPU (``place`` such as ``"gpu:0"`` or
    ``Place(gpu:0)``, compared as a string: :mod:`miziha.paddle_fixes.workarounds` item 9) with a
    float16 or bfloat16 ``dtype``, where Paddle has fused kernels; a CPU never takes them.

    Args:
        mode: one of :data:`~miziha.checks.ATTENTION_MODES`.
        place: the device of the scores' inputs, a ``paddle.Place`` or its string.
        dtype: their dtype (``paddle.float16`` or ``"float16"``).
    """
    if mode != "auto":
        return checks.attention_mode(mode)
    device = place_key(place)
    on_gpu = device == "gpu" or device.startswith("gpu:")  # not "gpu_pinned" (host memory)
    return "sdpa" if on_gpu and checks.dtype_name(dtype) in HALF_DTYPES else "math"


def _device(x: paddle.Tensor) -> str:
    """The device of ``x``; inside a graph being built, Paddle's current device (a graph
    has no place to ask)."""
    return place_key(x.place) if paddle.in_dynamic_mode() else place_key(None)


def use_sdpa(mode: str, x: paddle.Tensor) -> bool:
    """:func:`attention_backend` for ``x``, the attention's input (after ``qkv``: under
    autocast its dtype is the one the matmuls run in)."""
    if mode == "math":
        return False
    return attention_backend(mode, _device(x), x.dtype) == "sdpa"


def attention_repr(mode: str) -> List[str]:
    """A mixer's repr entry for its ``attention`` mode: none for the default ``"auto"``."""
    return [] if mode == "auto" else [f"attention={mode!r}"]


def softmax_float32(scores: paddle.Tensor, in_place: bool = False) -> paddle.Tensor:
    """Softmax over the last axis, computed in float32 for float16/bfloat16 ``scores`` and
    returned in their dtype; float32 scores go straight to Paddle's softmax (in place when
    ``in_place``)."""
    if scores.dtype in (paddle.float16, paddle.bfloat16):
        return F.softmax(scores.astype("float32"), axis=-1).astype(scores.dtype)
    return (F.softmax_ if in_place else F.softmax)(scores, axis=-1)


def fused_attention(q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor,
                    mask: Optional[paddle.Tensor], scale: float,
                    dropout: Optional[nn.Layer] = None) -> paddle.Tensor:
    """``softmax(q^T k * scale + mask) v`` by ``F.scaled_dot_product_attention``, on the
    channels-first layout of :func:`split_heads`.

    Paddle's sdpa scales scores by ``head_dim ** -0.5``; another ``scale`` is applied to
    ``q`` first (``q * scale * head_dim ** 0.5``), which keeps flash attention eligible
    (Paddle's selector skips flash attention when sdpa is given a ``scale``). A mask that
    needs a gradient (the relative position bias while training) excludes flash attention,
    whose backward gives the mask none (module docstring; :mod:`miziha.paddle_fixes.workarounds` item
    10).

    Args:
        q, k, v: ``[B', heads, d, N]``.
        mask: additive float mask ``[B', heads or 1, N, N]`` (cast to q's dtype), or None.
        scale: score scale.
        dropout: the layer's attention dropout (its ``p`` applies in training), or None.

    Returns: ``[B', heads, d, N]``.
    """
    head_dim = q.shape[2]
    q, k, v = (t.transpose([0, 3, 1, 2]) for t in (q, k, v))  # [B', N, heads, d]
    if scale != head_dim ** -0.5:
        q = q * (scale * head_dim ** 0.5)
    if mask is not None and mask.dtype != q.dtype:
        mask = mask.astype(q.dtype)
    training = dropout is not None and dropout.training
    p = dropout.p if training else 0.0
    backends = contextlib.nullcontext()
    if mask is not None and not mask.stop_gradient and _device(q) != "cpu":
        from paddle.nn.attention import SDPBackend, sdpa_kernel
        backends = sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    with backends:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                             training=training)
    return out.transpose([0, 2, 3, 1])


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
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (module docstring).
    """

    def __init__(self, dim: int, window_size: Tuple[int, int], num_heads: int,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 attention_dropout: float = 0.0, dropout: float = 0.0,
                 attention: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.attention = checks.attention_mode(attention)
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
        """Relative position bias plus the window mask, as one additive term
        (:func:`with_window_mask`): ``[K * heads * N * N]``."""
        n = geometry.window_tokens
        bias = paddle.index_select(self.relative_position_bias_table, geometry.relative_index)
        bias = bias.transpose([1, 0]).reshape([1, self.num_heads, n, n])  # [1, heads, N, N]
        return with_window_mask(bias, geometry)

    def forward(self, windows: paddle.Tensor, geometry: WindowGeometry,
                input_affine: Optional[Tuple[paddle.Tensor, paddle.Tensor]] = None
                ) -> paddle.Tensor:
        """Attend within each window.

        Args:
            windows: ``[B, nW * N, C]``, the tokens of each window consecutive.
            geometry: the window layout (:class:`~miziha.layers.windows.WindowGeometry`).
            input_affine: a LayerNorm's ``(weight, bias)`` not yet applied to ``windows``
                (folded into ``qkv``), or None.

        Returns:
            ``[B, nW * N, C]``.
        """
        n = geometry.window_tokens
        q, k, v = split_heads(self.qkv(windows, input_affine), n, self.num_heads)
        out = window_attention(q, k, v, self.bias_and_mask(geometry), geometry, self.scale,
                               self.attn_drop, self.attention)
        out = merge_heads(out, n).reshape([-1, self.dim])
        return self.proj_drop(self.proj(out)).reshape(shape_of(windows))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, window_size={self.window_size}, "
                f"num_heads={self.num_heads}, scale={self.scale:.4g}, "
                f"attention={self.attention!r}")


def with_window_mask(bias: paddle.Tensor, geometry: WindowGeometry,
                     mask_value: Optional[float] = None) -> paddle.Tensor:
    """A position bias ``[1, heads, N, N]`` plus the window mask of ``geometry`` (if any),
    flattened: ``[K * heads * N * N]`` from ``[K, heads, N, N]``, where ``K`` is ``nW`` with
    a mask and 1 without. Masked pairs get ``mask_value`` (None: :data:`MASK_VALUE`). The
    mask takes the bias's dtype (a half-precision model keeps its own)."""
    n = geometry.window_tokens
    if geometry.mask is not None:
        mask = geometry.mask
        if mask.dtype != bias.dtype:
            mask = mask.astype(bias.dtype)
        if mask_value is not None:
            mask = mask * (mask_value / MASK_VALUE)
        bias = bias + mask.reshape([-1, 1, n, n])
    return bias.flatten()


def window_attention(q: paddle.Tensor, k: paddle.Tensor, v: paddle.Tensor,
                     bias_mask: paddle.Tensor, geometry: WindowGeometry,
                     scale: Optional[float], dropout: Optional[nn.Layer] = None,
                     attention: str = "math") -> paddle.Tensor:
    """``softmax(q^T k * scale + bias_mask) v`` in each window, channels-first: the core of
    Swin V1's and V2's window attention, on the math or the sdpa path.

    Args:
        q, k, v: ``[B*nW, heads, d, N]`` (:func:`split_heads` of the gathered windows).
        bias_mask: :func:`with_window_mask`'s ``[K * heads * N * N]``.
        geometry: the windows' :class:`~miziha.layers.windows.WindowGeometry`.
        scale: score scale, or None where ``q`` is already scaled (Swin V2's per-head
            logit scale).
        dropout: applied to the attention weights, or None.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (module docstring).

    Returns: ``[B*nW, heads, d, N]``.
    """
    n, heads = geometry.window_tokens, q.shape[1]
    windows_per_term = geometry.num_windows if geometry.mask is not None else 1
    if use_sdpa(attention, q):
        # One mask row per attention batch entry: flash attention broadcasts heads and
        # query rows, not the batch.
        rows = shape_of(q)[0] // windows_per_term  # B (with a mask) or B*nW
        mask = bias_mask.reshape([1, -1]).expand([rows, -1]).reshape([-1, heads, n, n])
        return fused_attention(q, k, v, mask, 1.0 if scale is None else scale, dropout)
    attn = paddle.matmul(q if scale is None else q * scale, k,
                         transpose_x=True)  # [B*nW, heads, N, N]
    if bias_mask.dtype != attn.dtype:
        bias_mask = bias_mask.astype(attn.dtype)
    # Rows of [..., K*heads*N*N] plus a 1-D term: Paddle's fast broadcast (a rank-matched
    # [1, ...] operand is ~4x slower), and one oneDNN inference handles.
    attn = attn.reshape([-1, windows_per_term * heads * n * n]) + bias_mask
    attn = softmax_float32(attn.reshape([-1, n]))
    if dropout is not None:
        attn = dropout(attn)
    return paddle.matmul(v, attn.reshape([-1, heads, n, n]), transpose_y=True)


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
                    dropout: Optional[nn.Layer] = None, attention: str = "math"
                    ) -> paddle.Tensor:
    """Softmax attention within each token group, padded keys masked out, channels-first.

    Args:
        q, k, v: ``[B*nG, heads, d, N]`` (:func:`split_heads` of the gathered groups).
        groups: the :class:`~miziha.layers.groups.TokenGroups` they were gathered with.
        scale: score scale.
        dropout: applied to the attention weights, or None.
        attention: ``"auto"``, ``"math"`` or ``"sdpa"`` (module docstring).

    Returns: ``[B*nG, heads, d, N]``.
    """
    n, heads = groups.group_tokens, q.shape[1]
    if use_sdpa(attention, q):
        mask = None
        if groups.key_mask is not None:  # [nG, N] -> [B*nG, 1, N, N]
            mask = groups.key_mask.reshape([1, -1, 1, 1, n]).expand(
                [shape_of(q)[0] // groups.num_groups, -1, -1, n, -1]).reshape([-1, 1, n, n])
        return fused_attention(q, k, v, mask, scale, dropout)
    attn = paddle.matmul(q * scale, k, transpose_x=True)  # [B*nG, heads, N(query), N(key)]
    if groups.key_mask is not None:  # [nG, 1, N] over [B, nG, heads*N, N]
        attn = attn.reshape([-1, groups.num_groups, heads * n, n]) \
            + groups.key_mask.astype(attn.dtype).reshape([groups.num_groups, 1, n])
    # Eager: in place (its backward needs only its output, QK^T's only q and k), one
    # N x N buffer fewer to allocate and page-fault: ~2x faster on CPU. to_static refuses
    # an in-place op on a reshaped view, and graphs plan their buffers anyway.
    attn = softmax_float32(attn.reshape([-1, heads, n, n]), in_place=paddle.in_dynamic_mode())
    if dropout is not None:
        attn = dropout(attn)
    return paddle.matmul(v, attn, transpose_y=True)


def group_heads(qkv: paddle.Tensor, groups: TokenGroups, heads: int
                ) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """:func:`split_heads` of the tokens gathered into ``groups``:
    ``[B, H*W, 3c]`` -> ``q, k, v``, each ``[B*nG, heads, c/heads, N]``.

    By the groups' :attr:`~miziha.layers.groups.TokenGroups.order`: the map's own order needs no
    gather; for the map's columns (stripes one wide), ``[B, H, W*3c] -> [B, W*3c, H]`` is
    the gather and split_heads' transpose in one batched 2-D transpose.
    """
    if groups.order != "transposed":
        grouped = qkv if groups.order == "same" else \
            paddle.index_select(qkv, groups.gather, axis=1)
        return split_heads(grouped, groups.group_tokens, heads)
    n, channels = groups.group_tokens, qkv.shape[-1] // 3
    columns = qkv.reshape([0, n, -1]).transpose([0, 2, 1])  # [B, W*3c, H]
    # As split_heads: split the 4-D view, then the heads.
    return tuple(t.reshape([-1, heads, channels // heads, n]) for t in paddle.split(
        columns.reshape([-1, 3, channels, n]), 3, axis=1))


def ungroup(out: paddle.Tensor, groups: TokenGroups) -> paddle.Tensor:
    """Channels-first group outputs ``[B*nG, c, N]`` back to the map's tokens ``[B, H*W,
    c]`` (:func:`merge_heads` and the scatter; for the map's columns one
    batched 2-D transpose, ``[B, W*c, H] -> [B, H, W*c]``)."""
    n, c = groups.group_tokens, out.shape[1]
    if groups.order == "transposed":
        return out.reshape([-1, groups.num_groups * c, n]).transpose([0, 2, 1]) \
            .reshape([0, -1, c])
    tokens = merge_heads(out, n).reshape([-1, groups.num_groups * n, c])
    return tokens if groups.order == "same" else \
        paddle.index_select(tokens, groups.scatter, axis=1)


def qkv_half(normed: paddle.Tensor, qkv: Linear, branch: int,
               input_affine: Optional[Affine] = None) -> paddle.Tensor:
    """The q, k, v columns of branch ``branch`` (0 or 1) of a two-branch block (CSWin, axial
    attention): ``[B, H*W, C]`` -> ``[B, H*W, 3 * C/2]``.

    ``qkv.weight`` is ``[C, (3, 2, C/2)]`` (q, k, v; each split into the two branches'
    channel halves): one GEMM on the branch's columns, instead of one on all of them and a
    split of the ``[B, H*W, 3C]`` output (a copy in forward, another in backward). The
    ``flops`` hooks do not see it (``qkv`` itself is not called), so mixers count it in
    their ``mixing_macs``.

    Args:
        normed: ``[B, H*W, C]``.
        qkv: the block's ``Linear(C, 3C)``.
        branch: 0 or 1.
        input_affine: a LayerNorm's ``(weight, bias)`` not yet applied to ``normed``.
    """
    dim = qkv.weight.shape[0]
    half = dim // 2
    weight = qkv.weight.reshape([dim, 3, 2, half])[:, :, branch]
    bias = qkv.bias
    if bias is not None:
        bias = bias.reshape([3, 2, half])[:, branch].reshape([3 * half])
    return linear_forward(normed, weight.reshape([dim, 3 * half]), bias, input_affine)


def two_branch_attention(normed: paddle.Tensor, qkv: Linear, input_affine: Optional[Affine],
                         branches: Sequence[TokenGroups], num_heads: int,
                         scale: float, dropout: Optional[nn.Layer],
                         attention: str) -> paddle.Tensor:
    """The attention of a two-branch block (Pale, axial attention), before its ``proj``:
    channels ``[0, C/2)`` and heads ``0 .. h/2-1`` attend within the groups of
    ``branches[0]``, the other half within those of ``branches[1]``
    (:func:`qkv_half`, :func:`group_heads`, :func:`group_attention`, :func:`ungroup`);
    ``[B, H*W, C]`` -> the two halves concatenated, ``[B, H*W, C]``.

    Args:
        normed: ``[B, H*W, C]``.
        qkv: the block's ``Linear(C, 3C)`` (its MACs are the mixer's to count).
        input_affine: a LayerNorm's ``(weight, bias)`` not yet applied to ``normed``.
        branches: the two branches' token groups.
        num_heads: heads over both branches (even).
        scale, dropout, attention: see :func:`group_attention`.
    """
    half = qkv.weight.shape[0] // 2
    outputs = []
    for branch, groups in enumerate(branches):
        q, k, v = group_heads(qkv_half(normed, qkv, branch, input_affine), groups,
                              num_heads // 2)  # [B*nG, heads/2, d, N]
        out = group_attention(q, k, v, groups, scale, dropout, attention)
        outputs.append(ungroup(out.reshape([-1, half, groups.group_tokens]), groups))
    return paddle.concat(outputs, axis=-1)
