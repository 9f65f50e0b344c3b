"""Independent NumPy (float64) AS-MLP reference (Lian et al., ICLR 2022, "AS-MLP: An Axial
Shifted MLP Architecture for Vision"), written from the paper and from the behaviour of the
official PyTorch code (svip-lab/AS-MLP, models/as_mlp.py). It uses nothing from miziha.
Activations are channels-last ``[B, H, W, C]``; parameters keep the official PyTorch names and
layouts (1x1 conv weights ``[out, in, 1, 1]``), so an official state_dict converts with
``.numpy()`` only.

What it encodes:

* ``axial_shift_groups``: the official pure-op shift (``torch_shift``), done literally: zero-pad
  both spatial axes by ``pad = shift_size // 2``, split channels with torch.chunk semantics
  (groups of ``ceil(C / shift_size)`` channels, last group smaller, and *fewer* than
  ``shift_size`` groups when that is all the chunk size allows), roll group ``g`` by
  ``g - pad`` along the axis, concatenate, crop back to ``H x W``. Hence
  ``out[..., k, ..., c] = x[..., k - (g - pad), ..., c]`` with zeros from outside the map:
  group 0 moves content towards lower indices (up / left), the middle group stays, the last
  group moves content towards higher indices (down / right). The official CUDA kernel computes
  the same thing.
* ``group_norm_1``: the official ``MyNorm`` = ``nn.GroupNorm(1, C)``, eps 1e-5: mean and biased
  variance over (H, W, C) of each sample, then a per-channel affine.
* ``as_block``: ``AxialShiftedBlock`` as ``AS_MLP`` builds it (norm_layer MyNorm, as_bias True,
  GELU exact, inference: dropout/drop-path identity)::

      a  = GELU(GN_a1(conv1(GN1(x))))
      y  = conv3(GN_a2(GELU(conv2_1(shift_W(a))) + GELU(conv2_2(shift_H(a)))))
      x  = x + y
      x  = x + fc2(GELU(fc1(GN2(x))))          # fc1/fc2 are Conv2d 1x1 in the official code

  Any H, W >= 1 (the shift needs no padding beyond its own zero fill).
* ``as_patch_merging``: the official ``PatchMerging``: concat of the four 2x2 phases in the order
  (0::2, 0::2), (1::2, 0::2), (0::2, 1::2), (1::2, 1::2) -> GroupNorm(1, 4C) -> Conv2d 1x1
  4C -> 2C without bias. The official asserts even H and W; here odd sizes are *defined* as zero
  padding at the bottom / right (as Swin does) before the phase split; the padded zeros are
  part of the GroupNorm statistics (GroupNorm pools over the whole map, unlike Swin's LayerNorm).
"""

import numpy as np

from reference import gelu, linear

GN_EPS = 1e-5  # nn.GroupNorm default, the official MyNorm does not change it


def torch_chunk_sizes(n, chunks):
    """Group sizes of torch.chunk(t, chunks) for a dimension of length n."""
    size = -(-n // chunks)  # ceil
    sizes = []
    left = n
    while left > 0:
        sizes.append(min(size, left))
        left -= size
    return sizes


def axial_shift_groups(x, shift_size, axis):
    """Official pure-op axial shift of x [B, H, W, C] along ``axis`` (1: H, the official dim 2,
    the "td" branch; 2: W, the official dim 3, the "lr" branch)."""
    if axis not in (1, 2):
        raise ValueError("axis must be 1 (H) or 2 (W)")
    b, h, w, c = x.shape
    pad = shift_size // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0.0)
    bounds = np.cumsum(torch_chunk_sizes(c, shift_size))[:-1]
    groups = np.split(xp, bounds, axis=3)
    # zip(chunks, range(-pad, pad + 1)): stops at the shorter of the two
    shifted = [np.roll(g, s, axis=axis) for g, s in zip(groups, range(-pad, pad + 1))]
    out = np.concatenate(shifted, axis=3)
    return out[:, pad:pad + h, pad:pad + w, :]


def group_norm_1(x, weight, bias, eps=GN_EPS):
    """GroupNorm(1, C) on x [B, H, W, C]."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def conv1x1(x, weight, bias=None):
    """PyTorch Conv2d 1x1 (weight [out, in, 1, 1]) on channels-last x."""
    return linear(x, weight[:, :, 0, 0].T, bias)


def as_block(x, p, shift_size):
    """Official AxialShiftedBlock (MyNorm, as_bias=True) on x [B, H, W, C]; p keyed by the
    block's state_dict names."""
    shortcut = x
    h = group_norm_1(x, p["norm1.weight"], p["norm1.bias"])
    h = conv1x1(h, p["axial_shift.conv1.weight"], p.get("axial_shift.conv1.bias"))
    h = group_norm_1(h, p["axial_shift.norm1.weight"], p["axial_shift.norm1.bias"])
    h = gelu(h)
    x_lr = axial_shift_groups(h, shift_size, axis=2)  # official shift_dim3 (W)
    x_td = axial_shift_groups(h, shift_size, axis=1)  # official shift_dim2 (H)
    x_lr = gelu(conv1x1(x_lr, p["axial_shift.conv2_1.weight"], p.get("axial_shift.conv2_1.bias")))
    x_td = gelu(conv1x1(x_td, p["axial_shift.conv2_2.weight"], p.get("axial_shift.conv2_2.bias")))
    h = group_norm_1(x_lr + x_td, p["axial_shift.norm2.weight"], p["axial_shift.norm2.bias"])
    h = conv1x1(h, p["axial_shift.conv3.weight"], p.get("axial_shift.conv3.bias"))
    x = shortcut + h
    h = group_norm_1(x, p["norm2.weight"], p["norm2.bias"])
    h = gelu(conv1x1(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
    h = conv1x1(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + h


def as_patch_merging(x, p):
    """Official PatchMerging on x [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]; p keys
    ``norm.weight`` [4C], ``norm.bias`` [4C], ``reduction.weight`` [2C, 4C, 1, 1] (no bias).
    Odd H or W: zero row / column appended at the bottom / right first (not in the official,
    which asserts even sizes)."""
    b, h, w, c = x.shape
    x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    x0 = x[:, 0::2, 0::2, :]
    x1 = x[:, 1::2, 0::2, :]
    x2 = x[:, 0::2, 1::2, :]
    x3 = x[:, 1::2, 1::2, :]
    x = np.concatenate([x0, x1, x2, x3], axis=3)
    x = group_norm_1(x, p["norm.weight"], p["norm.bias"])
    return conv1x1(x, p["reduction.weight"], p.get("reduction.bias"))


def as_macs(B, H, W, C, mlp_ratio=4):
    """MACs of one AxialShiftedBlock: conv1, conv2_1, conv2_2, conv3 (4 * C * C per pixel),
    mlp fc1 + fc2 (2 * C * int(C * mlp_ratio) per pixel) and the four GroupNorms (norm1,
    axial_shift.norm1, axial_shift.norm2, norm2; one MAC per element). Shifts, GELUs, biases,
    the branch sum and the residual adds count 0. (The official ``flops()`` additionally
    counts the branch sum x_lr + x_td as H * W * C and is per image.)"""
    hidden = int(C * mlp_ratio)
    per_pixel = 4 * C * C + 2 * C * hidden + 4 * C
    return B * H * W * per_pixel
