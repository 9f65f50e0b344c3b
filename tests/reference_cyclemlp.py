"""Independent NumPy (float64) CycleMLP reference (Chen et al., ICLR 2022), written from the
paper and from what the official PyTorch code (ShoufaChen/CycleMLP, ``cycle_mlp.py``) was
observed to do. It uses nothing from miziha and no deformable convolution: Cycle FC is a
per-channel spatial shift (explicit slices, zero outside the map) followed by a 1x1 channel mix.

Conventions it encodes (all maps are channels-last ``[B, H, W, C]``):

* Cycle FC with pseudo-kernel ``(kh, kw)`` (one of them 1, the other K): input channel ``c`` is
  read at a fixed offset ``d(c) = (c + K // 2) % K - K // 2`` along the axis whose kernel size is
  K, i.e. for K = 3 the offsets cycle 0, +1, -1, 0, +1, -1, ... over c = 0, 1, 2, ...
  ``y[b, h, w, :] = sum_c W[:, c] * x[b, h + dy(c), w + dx(c), c] + bias`` with ``x`` taken as 0
  outside ``[0, H) x [0, W)``.  The official names are the other way round from what one may
  expect: ``sfc_h`` has kernel (1, 3) and so shifts along WIDTH (dx); ``sfc_w`` has kernel
  (3, 1) and shifts along HEIGHT (dy).
* CycleMLP token mixer (official ``attn``): h = sfc_h(x), w = sfc_w(x), c = mlp_c(x) (no bias);
  a = mean over H, W of (h + w + c) -> reweight MLP (C -> C // 4 -> GELU -> 3C), read as
  ``[C, 3]`` (output index 3 * c + k) and softmaxed over k; out = proj(h*a0 + w*a1 + c*a2).
* CycleBlock: pre-norm residual, x + attn(norm1(x)), then x + mlp(norm2(x)); LayerNorm eps 1e-5,
  exact GELU, mlp hidden int(C * mlp_ratio), skip_lam 1.0 (residual branch divided by it),
  drop / drop-path are identities at inference.
* Downsample: 3x3 convolution, stride 2, zero padding 1, so H' = (H + 1) // 2 = ceil(H / 2).

Parameter layouts: Paddle. Linear weights ``[in, out]`` (transposed from PyTorch), conv
weights ``[out, in, kh, kw]`` as in PyTorch. The official CycleFC also has a persistent buffer
``offset`` of shape ``[1, 2 * C, 1, 1]`` (pairs (dy, dx) per channel) that appears in every
state_dict / checkpoint; it is recomputed here (``official_offset_buffer``), not read.
"""

import numpy as np

from reference import gelu, layer_norm, linear


def cycle_offsets(channels, kernel_size):
    """Per-channel integer offsets (dy, dx), each an int array of length ``channels``."""
    kh, kw = kernel_size
    assert kh == 1 or kw == 1, kernel_size
    c = np.arange(channels)
    dy = np.zeros(channels, dtype=np.int64)
    dx = np.zeros(channels, dtype=np.int64)
    if kh == 1:
        dx = (c + (kh * kw) // 2) % kw - kw // 2
    else:
        dy = (c + (kh * kw) // 2) % kh - kh // 2
    return dy, dx


def official_offset_buffer(channels, kernel_size):
    """What the official CycleFC stores as its ``offset`` buffer: [1, 2C, 1, 1], (dy, dx) pairs."""
    dy, dx = cycle_offsets(channels, kernel_size)
    return np.stack([dy, dx], axis=1).reshape(1, 2 * channels, 1, 1).astype(np.float64)


def shift_channels(x, dy, dx):
    """out[b, h, w, c] = x[b, h + dy[c], w + dx[c], c], zero where that lies outside the map."""
    b, h, w, c = x.shape
    out = np.zeros_like(x)
    for ch in range(c):
        sy, sx = int(dy[ch]), int(dx[ch])
        # output rows r with 0 <= r + sy < h
        r0, r1 = max(0, -sy), min(h, h - sy)
        c0, c1 = max(0, -sx), min(w, w - sx)
        if r0 < r1 and c0 < c1:
            out[:, r0:r1, c0:c1, ch] = x[:, r0 + sy:r1 + sy, c0 + sx:c1 + sx, ch]
    return out


def cycle_fc(x, weight, bias, kernel_size):
    """Cycle FC on x [B, H, W, C_in]; weight [C_out, C_in, 1, 1]; bias [C_out] or None."""
    dy, dx = cycle_offsets(x.shape[-1], kernel_size)
    shifted = shift_channels(x, dy, dx)
    y = shifted @ weight[:, :, 0, 0].T
    return y if bias is None else y + bias


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cycle_mlp(x, p, prefix="attn."):
    """Official CycleMLP token mixer (the block's ``attn``) on a normalised map [B, H, W, C]."""
    b, _, _, c = x.shape
    h = cycle_fc(x, p[prefix + "sfc_h.weight"], p.get(prefix + "sfc_h.bias"), (1, 3))
    w = cycle_fc(x, p[prefix + "sfc_w.weight"], p.get(prefix + "sfc_w.bias"), (3, 1))
    ch = linear(x, p[prefix + "mlp_c.weight"], p.get(prefix + "mlp_c.bias"))
    a = (h + w + ch).mean(axis=(1, 2))  # [B, C]
    a = linear(gelu(linear(a, p[prefix + "reweight.fc1.weight"], p[prefix + "reweight.fc1.bias"])),
               p[prefix + "reweight.fc2.weight"], p[prefix + "reweight.fc2.bias"])  # [B, 3C]
    a = _softmax(a.reshape(b, c, 3), axis=2)  # weight of branch k for channel c
    mixed = (h * a[:, None, None, :, 0] + w * a[:, None, None, :, 1]
             + ch * a[:, None, None, :, 2])
    return linear(mixed, p[prefix + "proj.weight"], p[prefix + "proj.bias"])


def cycle_block(x, p, eps=1e-5, skip_lam=1.0):
    """Official CycleBlock (inference) on x [B, H, W, C] -> [B, H, W, C]; p: block state_dict
    names in Paddle layout. ``*.offset`` entries, if present, are ignored (they are fixed)."""
    x = x + cycle_mlp(layer_norm(x, p["norm1.weight"], p["norm1.bias"], eps), p) / skip_lam
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"], eps)
    y = linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
               p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + y / skip_lam


def conv2d(x, weight, bias, stride, padding):
    """Plain 2-D convolution (cross-correlation) on x [B, H, W, C_in]; weight [O, I, kh, kw]."""
    b, h, w, _ = x.shape
    o, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    out = np.zeros((b, ho, wo, o))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            out += patch @ weight[:, :, i, j].T
    return out if bias is None else out + bias


def cycle_downsample(x, p):
    """Official Downsample (3x3 conv, stride 2, padding 1): [B, H, W, C] -> [B, ceil(H/2),
    ceil(W/2), C_out]; p: ``proj.weight`` [C_out, C, 3, 3], ``proj.bias`` [C_out]."""
    return conv2d(x, p["proj.weight"], p.get("proj.bias"), stride=2, padding=1)


def cycle_macs(B, H, W, C, mlp_ratio=4):
    """Multiply-accumulates of one CycleBlock.

    Counted: mlp_c, sfc_h, sfc_w and proj as C x C channel mixes on every token (4 * N * C^2);
    the reweight MLP on the pooled [B, C] vector (C * (C // 4) + (C // 4) * 3C per image);
    the MLP (2 * N * C * hidden, hidden = int(C * mlp_ratio)); the two LayerNorms as one MAC per
    element (2 * N * C). Not counted: biases, the Cycle FC shifts (pure data movement), the
    mean pooling, softmax, GELU, the branch sum, the 3-way reweighting and the residual adds.
    """
    n = H * W
    hidden = int(C * mlp_ratio)
    r = C // 4
    per_image = (4 * n * C * C            # mlp_c, sfc_h, sfc_w, proj
                 + C * r + r * 3 * C       # reweight fc1, fc2 (once per image)
                 + 2 * n * C * hidden      # mlp fc1, fc2
                 + 2 * n * C)              # norm1, norm2
    return B * per_image
