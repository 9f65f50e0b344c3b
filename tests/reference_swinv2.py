"""Independent NumPy (float64) Swin V2 reference, written from the paper (Liu et al., CVPR
2022, Sec. 3.2-3.3) and the official code's behaviour (microsoft/Swin-Transformer
``models/swin_transformer_v2.py``). Nothing from miziha: windows, shifts and masks are
Swin V1's literal ones (:mod:`reference`: pad, np.roll, partition, region labels).

What it encodes:

* res-post-norm: ``x + norm1(attn(x))``, ``x + norm2(mlp(x))``;
* ``q, k, v = x W_qkv + (q_bias, 0, v_bias)``;
* scaled cosine attention: ``cos(q, k) * exp(min(logit_scale, log 100))`` per head;
* continuous position bias: the table of every offset of the *effective* window ``w``
  (``min(side, window)``), built the official way: ``(2w-1) x (2w-1)`` coordinates divided
  by ``pretrained - 1`` (when > 0) or ``w - 1``, times 8, ``sign(x) log2(|x|+1) / log2 8``;
  ``cpb_mlp`` = Linear(2, 512) -> ReLU -> Linear(512, heads, no bias); ``16 sigmoid``; the
  official ``relative_position_index`` of the effective window. A 1-token window has only
  the offset 0, whose coordinate is 0;
* masked pairs (shift regions, padding) are excluded from the softmax exactly;
* V2 patch merging: 2x2 concatenation (V1 order), Linear(4C -> 2C, no bias), LayerNorm.
Linear weights are in Paddle's ``[in, out]`` layout.
"""

import math

import numpy as np

from reference import gelu, layer_norm, linear, masked_softmax, shifted_windows

LOGIT_MAX = math.log(100.0)


def log_coords(window, pretrained):
    """``[(2wh-1)*(2ww-1), 2]`` log-spaced coordinates of an effective ``window``."""
    axes = []
    for w, p in zip(window, pretrained):
        d = np.arange(-(w - 1), w, dtype=np.float64)
        span = (p - 1) if p > 0 else (w - 1)
        d = d / span * 8 if span > 0 else d  # w == 1: the single offset 0
        axes.append(np.sign(d) * np.log2(np.abs(d) + 1.0) / np.log2(8.0))
    rows, cols = np.meshgrid(axes[0], axes[1], indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def official_index(window):
    """The official ``relative_position_index`` of a window: ``[N, N]``."""
    coords = np.stack(np.meshgrid(np.arange(window[0]), np.arange(window[1]),
                                  indexing="ij")).reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + window[0] - 1) * (2 * window[1] - 1) + rel[1] + window[1] - 1


def position_bias(p, window, pretrained):
    """``16 sigmoid(cpb_mlp(coords))[index]``: ``[heads, N, N]``."""
    hidden = np.maximum(linear(log_coords(window, pretrained), p["cpb_mlp.0.weight"],
                               p["cpb_mlp.0.bias"]), 0.0)
    table = linear(hidden, p["cpb_mlp.2.weight"])
    bias = 16.0 / (1.0 + np.exp(-table))
    return bias[official_index(window)].transpose(2, 0, 1)


def window_attention_v2(x, p, num_heads, window_size, shifted, pretrained=(0, 0)):
    """Attention part of one V2 block on the (un-normalised) map x [B, H, W, C]."""
    c = x.shape[-1]
    tokens, allowed, window, back = shifted_windows(x, window_size, shifted)
    head_dim = c // num_heads
    q_bias = p.get("q_bias", np.zeros(c))
    v_bias = p.get("v_bias", np.zeros(c))
    qkv = linear(tokens, p["qkv.weight"], np.concatenate([q_bias, np.zeros(c), v_bias]))
    q, k, v = (qkv[..., i * c:(i + 1) * c].reshape(*tokens.shape[:3], num_heads, head_dim)
               .transpose(0, 1, 3, 2, 4) for i in range(3))  # [B, nW, heads, N, d]
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    k = k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
    scale = np.exp(np.minimum(p["logit_scale"], LOGIT_MAX))  # [heads, 1, 1]
    scores = (q @ k.transpose(0, 1, 2, 4, 3)) * scale
    scores = scores + position_bias(p, window, pretrained)
    out = (masked_softmax(scores, allowed) @ v).transpose(0, 1, 3, 2, 4).reshape(tokens.shape)
    return back(linear(out, p["proj.weight"], p["proj.bias"]))


def block_v2(x, p, num_heads, window_size, shifted, pretrained=(0, 0)):
    """One res-post-norm Swin V2 block on x [B, H, W, C]; p keyed like the Paddle block."""
    attn_p = {k[len("attn."):]: v for k, v in p.items() if k.startswith("attn.")}
    y = window_attention_v2(x, attn_p, num_heads, window_size, shifted, pretrained)
    x = x + layer_norm(y, p["norm1.weight"], p["norm1.bias"])
    y = linear(gelu(linear(x, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
               p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + layer_norm(y, p["norm2.weight"], p["norm2.bias"])


def merge_v2(x, p):
    """V2 patch merging on x [B, H, W, C] (odd sides zero-padded at the end)."""
    b, h, w, c = x.shape
    padded = np.zeros((b, h + h % 2, w + w % 2, c))
    padded[:, :h, :w] = x
    cat = np.concatenate([padded[:, 0::2, 0::2], padded[:, 1::2, 0::2],
                          padded[:, 0::2, 1::2], padded[:, 1::2, 1::2]], axis=-1)
    y = linear(cat, p["reduction.weight"])
    return layer_norm(y, p["norm.weight"], p["norm.bias"])


def swinv2_layer(x, params, num_heads, window_size, depth, downsample, pretrained=(0, 0)):
    """A SwinV2T layer: ``depth`` blocks (odd ones shifted), then V2 merging or the Linear
    projection (when ``proj.weight`` is present). x [B, H, W, C]."""
    for i in range(depth):
        prefix = f"blocks.{i}."
        block = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        x = block_v2(x, block, num_heads, window_size, i % 2 == 1, pretrained)
    if downsample:
        return merge_v2(x, {k[len("downsample."):]: v for k, v in params.items()
                            if k.startswith("downsample.")})
    if "proj.weight" in params:
        return linear(x, params["proj.weight"], params["proj.bias"])
    return x
