"""Independent NumPy (float64) Pale Transformer reference (Wu, Wu, Tan, Guo, AAAI 2022, "Pale
Transformer: A General Vision Transformer Backbone with Pale-Shaped Attention", arXiv
2112.14000). No official code was released (the paper points to BR-IDL/PaddleViT, which never
received it), so this is written from the paper's text and equations only. It uses nothing
from miziha. Activations are channels-last ``[B, H, W, C]``; Paddle layouts: Linear weights
``[in, out]``, conv weights ``[out, in / groups, kh, kw]``. Inference only (dropout,
drop-path are identities).

Provenance: the split into row / column halves, the interlaced groups, and the separable-conv
q/k/v are from the paper's text (Sec. "Pale-Shaped Attention" / "Efficient Parallel
Implementation"); the block equations, the complexity formula, the heads per stage and the
LayerNorm after the merge conv are from the paper as recalled, not re-read when this was
written; dims, depths, pale size 7 and MLP ratio 4 reproduce the paper's params / FLOPs.

What the paper specifies and what this encodes:

* Pale Transformer block (paper Sec. "Pale Transformer Block"; its three block equations):
  CPE, then pre-norm PS-Attention, then pre-norm MLP, each with a residual::

      X~ = X + CPE(X)                      CPE = depthwise 3x3 conv, zero padding 1, with bias
      X^ = X~ + PS-Attention(LN(X~))
      X' = X^ + MLP(LN(X^))                MLP: fc1 (C -> 4C), exact GELU, fc2 (4C -> C)

  LayerNorm eps 1e-5 (the paper does not give one). No relative position bias anywhere:
  positions come only from CPE (and, if present, the depthwise part of the q/k/v projection).

* PS-Attention, "Efficient Parallel Implementation" (paper Sec. of that name: split
  X = [X_r, X_c], groups X_r = [X_r^1..X_r^N], Y_r^i = MSA(phi_Q(X_r^i), phi_K(X_r^i),
  phi_V(X_r^i)), same for columns, Y = Concat(Y_r, Y_c)): channels are split in
  two halves. The first half X_r (channels [0, C/2), heads 0 .. h/2-1) does self-attention
  inside row-wise token groups, the second half X_c (channels [C/2, C), heads h/2 .. h-1)
  inside column-wise token groups. With pale size s, an axis of length n (padded to np, a
  multiple of s) has N = np / s groups; group g holds the s *interlaced* positions
  g, g + N, g + 2N, ... (spacing np / s). A row group is s whole rows (every column); a column
  group is s whole columns (every row). Outputs Y = Concat(Y_r, Y_c) (row half first), then an
  output projection (the paper's complexity term 4hwc^2 = 3hwc^2 for q/k/v + hwc^2 for it).

  q/k/v: ``attn.qkv`` (Linear C -> 3C; q = columns [0, C), k = [C, 2C), v = [2C, 3C)); within
  q/k/v, head j of a branch owns that branch's channels [j d, (j + 1) d), d = C / num_heads;
  scale d ** -0.5 unless qk_scale is given. The paper says (following CvT) that q, k, v come
  from three *separable convolutions* (depthwise 3x3 then pointwise); that is what the +27hwc
  term of its complexity formula counts. miziha's requested layout is the pointwise part only
  (``attn.qkv``); if ``p`` also holds ``attn.dw_q.weight`` / ``attn.dw_k.weight`` /
  ``attn.dw_v.weight`` (each ``[C, 1, 3, 3]``, optional ``.bias`` ``[C]``, which is also where
  a folded eval-mode BatchNorm would go), each is applied to the whole normalised map (zero
  padding 1) before the pointwise projection: q = dw_q(x) @ Wq + bq, etc. Absent: plain
  Linear.

* Sizes that are not multiples of s (the paper only says "padding"), defined here: the row
  branch pads rows at the bottom to a multiple of s, the column branch pads columns at the
  right; padded tokens are never keys; outputs at padded positions are dropped. Written
  literally: an [HW, HW] allowed matrix per branch over the real tokens only (token i may
  attend to token j iff their rows (row branch) / columns (column branch) fall in the same
  interlaced group of the padded axis).

* Patch merging between stages (``pale_merge``): Conv2d(C, C_out, 3, stride 2, padding 1, with
  bias) then LayerNorm(C_out); any H, W -> ceil(H/2) x ceil(W/2). (The stem, not written here,
  is the same with a 7x7 kernel, stride 4.)

* ``pale_macs``: miziha's flops conventions, see its docstring.

Model configurations (paper Table 1, pale size 7 in every stage, MLP ratio 4; the params /
GFLOPs follow from these dims and depths with a 7x7 stride-4 stem and the merge above, which
was re-counted to 21.7M / 4.21G, 48.3M / 8.98G, 85.3M / 15.54G; the heads cannot be checked
that way)::

    Pale-T  C = 64   depths (2, 2, 16, 2)  heads (2, 4, 8, 16)   22M   4.2G
    Pale-S  C = 96   depths (2, 2, 16, 2)  heads (4, 8, 16, 32)  48M   9.0G
    Pale-B  C = 128  depths (2, 2, 16, 2)  heads (4, 8, 16, 32)  85M  15.6G
"""

import numpy as np

from reference import conv3x3_stride2, gelu, layer_norm, linear

LN_EPS = 1e-5


def _param(p, name):
    """Block-level keys (``attn.qkv.weight``) or attention-level keys (``qkv.weight``)."""
    if "attn." + name in p:
        return p["attn." + name]
    return p.get(name)


def depthwise3x3(x, weight, bias=None):
    """Depthwise 3x3 conv, stride 1, zero padding 1, on x [B, H, W, c]; weight [c, 1, 3, 3]."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out += xp[:, dy:dy + h, dx:dx + w, :] * weight[:, 0, dy, dx]
    return out if bias is None else out + bias


def pale_groups(n, pale_size):
    """Interlaced grouping of one axis of length n.

    Returns (np_, groups): np_ = smallest multiple of pale_size >= n (the padded length), and
    groups [np_] with groups[i] = i mod (np_ / pale_size): the N = np_ / pale_size groups each
    hold pale_size positions spaced N apart. Positions >= n are padding."""
    np_ = -(-n // pale_size) * pale_size
    return np_, np.arange(np_) % (np_ // pale_size)


def allowed_matrix(h, w, pale_size, axis):
    """[HW, HW] boolean: query token i (row-major) may attend to key token j.

    axis 0: row branch (same interlaced row group, any column); axis 1: column branch."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = (rows if axis == 0 else cols).reshape(-1)
    _, groups = pale_groups(h if axis == 0 else w, pale_size)
    g = groups[pos]
    return g[:, None] == g[None, :]


def _masked_attention(q, k, v, allowed, scale):
    """q, k, v: [B, heads, N, d]; allowed [N, N] -> [B, heads, N, d]."""
    scores = (q * scale) @ k.transpose(0, 1, 3, 2)
    scores = np.where(allowed, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)  # every query has itself as a key
    weights = np.exp(scores)
    weights = weights / weights.sum(-1, keepdims=True)
    return weights @ v


def ps_attention(x, p, num_heads, pale_size, qk_scale=None, return_branches=False):
    """PS-Attention on normalised tokens x [B, H, W, C] -> [B, H, W, C].

    p: ``attn.qkv.weight`` [C, 3C], ``attn.qkv.bias`` [3C], ``attn.proj.weight`` [C, C],
    ``attn.proj.bias`` [C]; optional ``attn.dw_{q,k,v}.weight`` [C, 1, 3, 3] (+ ``.bias``), see
    the module docstring. Any H, W (padding rule in the module docstring).
    return_branches: also return the two branch outputs before the projection,
    [B, H, W, C/2] each (row branch, column branch)."""
    b, h, w, c = x.shape
    if num_heads % 2 or c % num_heads:
        raise ValueError("num_heads must be even and divide C")
    d = c // num_heads
    scale = d ** -0.5 if qk_scale is None else qk_scale
    wqkv, bqkv = _param(p, "qkv.weight"), _param(p, "qkv.bias")
    if bqkv is None:
        bqkv = np.zeros(3 * c)
    qkv = []
    for i, name in enumerate("qkv"):
        t = x
        dw = _param(p, f"dw_{name}.weight")
        if dw is not None:
            t = depthwise3x3(x, dw, _param(p, f"dw_{name}.bias"))
        qkv.append(linear(t, wqkv[:, i * c:(i + 1) * c], bqkv[i * c:(i + 1) * c]))

    half, heads = c // 2, num_heads // 2
    outs = []
    for axis, ch in ((0, slice(0, half)), (1, slice(half, c))):
        def split(t):  # [B, H, W, C] -> [B, heads, HW, d] for this branch
            return t[..., ch].reshape(b, h * w, heads, d).transpose(0, 2, 1, 3)

        allowed = allowed_matrix(h, w, pale_size, axis)
        out = _masked_attention(split(qkv[0]), split(qkv[1]), split(qkv[2]), allowed, scale)
        outs.append(out.transpose(0, 2, 1, 3).reshape(b, h, w, half))
    y = linear(np.concatenate(outs, axis=-1), _param(p, "proj.weight"), _param(p, "proj.bias"))
    return (y, outs[0], outs[1]) if return_branches else y


def pale_block(x, p, num_heads, pale_size, qk_scale=None):
    """One Pale Transformer block on x [B, H, W, C] -> [B, H, W, C] ("Pale Transformer Block").

    p: ``cpe.weight`` [C, 1, 3, 3], ``cpe.bias`` [C], ``norm1.*``, ``attn.*`` (see
    ps_attention), ``norm2.*``, ``mlp.fc1.weight`` [C, hidden], ``mlp.fc1.bias``,
    ``mlp.fc2.weight`` [hidden, C], ``mlp.fc2.bias``."""
    x = x + depthwise3x3(x, p["cpe.weight"], p["cpe.bias"])
    y = layer_norm(x, p["norm1.weight"], p["norm1.bias"], eps=LN_EPS)
    x = x + ps_attention(y, p, num_heads, pale_size, qk_scale)
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"], eps=LN_EPS)
    y = linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
               p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + y


def pale_merge(x, p):
    """Patch merging on x [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C_out]: Conv2d 3x3,
    stride 2, padding 1 (``conv.weight`` [C_out, C, 3, 3], ``conv.bias``), then LayerNorm(C_out)
    (``norm.weight``, ``norm.bias``)."""
    y = conv3x3_stride2(x, p["conv.weight"], p["conv.bias"])
    return layer_norm(y, p["norm.weight"], p["norm.bias"], eps=LN_EPS)


def pale_macs(B, H, W, C, num_heads, pale_size, mlp_ratio=4, dw_qkv=False):
    """MACs of one Pale block on [B, H, W, C] (num_heads does not change the count).

    Counted: CPE 9 B H W C; norm1 and norm2 one MAC per element (B H W C each); qkv
    B H W * C * 3C; proj B H W * C * C; MLP 2 * B H W * C * int(C * mlp_ratio); QK^T and AV per
    branch over padded groups: row branch N_r = Hp / s groups of s * W tokens, column branch
    N_c = Wp / s groups of s * H tokens, each 2 * B * N * n^2 * (C / 2) (padded tokens included
    as queries and keys). dw_qkv: add the paper's depthwise 3x3 part of the q/k/v separable
    convs, 3 * 9 * B H W C. Not counted: biases, scaling, softmax, additions, GELU.
    For H, W multiples of s and hidden = r C this is B H W C (11 + 4 C + 2 r C + s (H + W))
    (+ 27 with dw_qkv): the paper's Omega(Pale) = 4hwc^2 + hwc(s_r w + s_c h + 27) for the
    attention module, plus CPE (9), the two norms (2) and the MLP (2 r C)."""
    tokens = B * H * W
    hidden = int(C * mlp_ratio)
    macs = 9 * tokens * C + 2 * tokens * C + tokens * C * 3 * C + tokens * C * C
    macs += 2 * tokens * C * hidden
    if dw_qkv:
        macs += 27 * tokens * C
    half = C // 2
    for n_axis, other in ((H, W), (W, H)):
        np_, _ = pale_groups(n_axis, pale_size)
        groups = np_ // pale_size
        n = pale_size * other
        macs += 2 * B * groups * n * n * half
    return macs


def _dilate3x3(mask):
    h, w = mask.shape
    mp = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= mp[dy:dy + h, dx:dx + w]
    return out


def dependency_mask(H, W, pale_size, row, col, dw_qkv=False):
    """Which inputs of one PS-attention the output token (row, col) can depend on.

    Returns (row_branch, col_branch), boolean [H, W] each: the input positions the row-branch
    output (channels [0, C/2) before the projection) / the column-branch output (channels
    [C/2, C)) at (row, col) depends on. Row branch: every column of every row in the same
    interlaced row group as ``row``; column branch: every row of every column in the same
    interlaced column group as ``col``. The projection mixes the two, so the block output
    channels depend on the union. dw_qkv: q/k/v see a 3x3 neighbourhood, so each set is dilated
    by one position in every direction. CPE and MLP are not counted."""
    _, rg = pale_groups(H, pale_size)
    _, cg = pale_groups(W, pale_size)
    row_mask = np.zeros((H, W), dtype=bool)
    row_mask[rg[:H] == rg[row], :] = True
    col_mask = np.zeros((H, W), dtype=bool)
    col_mask[:, cg[:W] == cg[col]] = True
    if dw_qkv:
        row_mask, col_mask = _dilate3x3(row_mask), _dilate3x3(col_mask)
    return row_mask, col_mask
