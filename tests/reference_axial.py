"""Independent NumPy (float64) reference of axial attention in its parallel form (Pale
Transformer, Wu et al., AAAI 2022, Figure 1(c): half the heads along rows, half along
columns), in the Swin-like pre-norm block miziha builds it into. Nothing from miziha:
each row and each column is attended with explicit loops.

What it encodes (inference):

    y = LN1(x);  [q | k | v] = y @ Wqkv + bqkv        # channels [0:C], [C:2C], [2C:3C]
    rows:    channels [0, C/2) of q, k, v, heads 0 .. h/2-1: every token attends to every
             token of its row (W keys)
    columns: channels [C/2, C), heads h/2 .. h-1: every token attends to every token of
             its column (H keys)
    per head (d = C / num_heads, scale d**-0.5 unless given): softmax(q k^T * scale) v
    x = x + concat(rows, columns) @ Wproj + bproj
    x = x + fc2(GELU(fc1(LN2(x))))

Downsampling is CSWin's Merge_Block (:func:`reference_cswin.cswin_merge`). Linear weights
are in Paddle's ``[in, out]`` layout.
"""

import numpy as np

from reference import gelu, layer_norm, linear
from reference_cswin import cswin_merge


def _attend(q, k, v, heads, scale):
    """One line of tokens: q, k, v [B, L, c] -> [B, L, c] with ``heads`` heads."""
    b, n, c = q.shape
    d = c // heads
    q, k, v = (t.reshape(b, n, heads, d).transpose(0, 2, 1, 3) for t in (q, k, v))
    scores = (q * scale) @ k.transpose(0, 1, 3, 2)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights = weights / weights.sum(-1, keepdims=True)
    return (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, c)


def axial_attention(y, p, num_heads, qk_scale=None):
    """The mixing of a normalised map y [B, H, W, C] before ``proj``: [B, H, W, C]."""
    b, h, w, c = y.shape
    half = c // 2
    scale = (c // num_heads) ** -0.5 if qk_scale is None else qk_scale
    qkv = linear(y, p["qkv.weight"], p.get("qkv.bias"))
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    out = np.zeros((b, h, w, c))
    for i in range(h):  # rows: the first half
        out[:, i, :, :half] = _attend(q[:, i, :, :half], k[:, i, :, :half],
                                      v[:, i, :, :half], num_heads // 2, scale)
    for j in range(w):  # columns: the second half
        out[:, :, j, half:] = _attend(q[:, :, j, half:], k[:, :, j, half:],
                                      v[:, :, j, half:], num_heads // 2, scale)
    return out


def axial_block(x, p, num_heads, qk_scale=None):
    """One pre-norm axial block on x [B, H, W, C]; p keyed like the Paddle block."""
    y = layer_norm(x, p["norm1.weight"], p["norm1.bias"])
    x = x + linear(axial_attention(y, p, num_heads, qk_scale), p["proj.weight"],
                   p["proj.bias"])
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"])
    return x + linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
                      p["mlp.fc2.weight"], p["mlp.fc2.bias"])


def axial_layer(x, params, num_heads, depth, downsample, qk_scale=None):
    """An AxialT layer on x [B, H, W, C]: ``depth`` blocks, then Merge_Block or the Linear
    projection (when ``proj.weight`` is present)."""
    for i in range(depth):
        prefix = f"blocks.{i}."
        x = axial_block(x, {k[len(prefix):]: v for k, v in params.items()
                            if k.startswith(prefix)}, num_heads, qk_scale)
    if downsample:
        return cswin_merge(x, {k[len("downsample."):]: v for k, v in params.items()
                               if k.startswith("downsample.")})
    if "proj.weight" in params:
        return linear(x, params["proj.weight"], params["proj.bias"])
    return x
