"""Independent NumPy (float64) CSWin reference (Dong et al., CVPR 2022, "CSWin Transformer: A
General Vision Transformer Backbone with Cross-Shaped Windows"), written from the paper's
equations and the observed behaviour of the official PyTorch code (microsoft/CSWin-Transformer,
models/cswin.py). It uses nothing from miziha. Activations are channels-last ``[B, H, W, C]``.
Parameters are keyed by the official ``CSWinBlock`` / ``Merge_Block`` state_dict names with
Paddle layouts: Linear weights ``[in, out]`` (the transpose of PyTorch's), conv weights
``[out, in / groups, kh, kw]`` as in PyTorch.

What it encodes (inference: dropout, attention dropout and drop-path are identities):

* ``cswin_block``: the official ``CSWinBlock`` as ``CSWinTransformer`` builds it (qkv_bias True,
  LayerNorm eps 1e-5, exact GELU, MLP hidden ``int(C * mlp_ratio)``)::

      y   = LN1(x);  [q | k | v] = y @ Wqkv + bqkv            # q, k, v: channels [0:C], [C:2C], [2C:3C]
      two branches (last_stage False), each on half of the channels / heads:
        branch 0 = channels [0, C/2) of q, k, v, heads 0 .. h/2-1 (``attns.0``):
                   VERTICAL stripes, windows of H rows x split_size columns
        branch 1 = channels [C/2, C), heads h/2 .. h-1 (``attns.1``):
                   HORIZONTAL stripes, windows of split_size rows x W columns
      one branch (last_stage True): all channels and heads, one window = the whole H x W map
      in every window, per head (d = C / num_heads, scale d**-0.5 unless qk_scale is given):
        out = softmax(q k^T * scale) v + LePE(v),  LePE = depthwise 3x3 conv (``get_v``, with
        bias, zero padding 1) applied to V of *that window alone* (so it sees zeros at stripe
        edges, not the neighbouring stripe)
      z = concat(branch 0, branch 1) along channels (branch 0 first);  x = x + z @ Wproj + bproj
      x = x + fc2(GELU(fc1(LN2(x))))

  Heads split channels contiguously: head j of a branch owns that branch's channels
  [j d, (j + 1) d). Note: the paper's text gives the first half of the heads to horizontal
  stripes; the official code (``idx == 0`` -> ``H_sp = resolution, W_sp = split_size``) gives
  the first half vertical stripes; this reference follows the code.

* Sizes the official code rejects (H or W not a multiple of split_size; also H != W), defined
  here: for each branch, q, k, v (i.e. the map after norm1 and qkv) are zero-padded at the
  bottom / right *only along the axis cut into stripes* (W for branch 0, H for branch 1) up to a
  multiple of split_size. The stripe width is always split_size, also when the side is smaller
  (then a single, mostly padded stripe). Padded tokens are never attended to as keys; V is zero
  there, so LePE at the last real row / column sees zeros, like a conv's zero padding; outputs
  at padded positions are dropped. Equivalently: each axis is cut into stripes of width
  split_size and the last stripe is just narrower (width = the remainder), each stripe with its
  own zero-padded LePE. Along the other axis a window always spans the whole side. With
  ``last_stage=True`` nothing is padded (one window = the whole map, any H, W).
  The official code also switches to last_stage by itself when resolution == split_size; that
  changes the parameter layout (a single ``attns.0`` with C channels), so here the caller says
  which layout ``p`` has via ``last_stage``. (A square map of side split_size gives the same
  result either way, with ``attns.0/1.get_v`` being the halves of the single ``get_v``.)

* ``cswin_merge``: the official ``Merge_Block``: Conv2d(C, C_out, 3, stride 2, padding 1, bias)
  then LayerNorm(C_out, eps 1e-5); any H, W -> ceil(H/2) x ceil(W/2).

* ``cswin_macs``: multiply-accumulates of one block, miziha's flops conventions (see its
  docstring).
"""

import math

import numpy as np

from reference import conv3x3_stride2, gelu, layer_norm, linear

LN_EPS = 1e-5  # nn.LayerNorm default; the official model does not change it


def _lepe(windows, weight, bias):
    """Depthwise 3x3 conv, zero padding 1, on every window separately.

    windows: [B, nW, wh, ww, c]; weight [c, 1, 3, 3]; bias [c]."""
    wh, ww = windows.shape[2:4]
    padded = np.pad(windows, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros_like(windows)
    for dy in range(3):
        for dx in range(3):
            out += padded[:, :, dy:dy + wh, dx:dx + ww, :] * weight[:, 0, dy, dx]
    return out + bias


def _to_windows(t, wh, ww):
    """[B, Hp, Wp, c] -> [B, nW, wh, ww, c], windows in row-major order."""
    b, hp, wp, c = t.shape
    t = t.reshape(b, hp // wh, wh, wp // ww, ww, c).transpose(0, 1, 3, 2, 4, 5)
    return t.reshape(b, (hp // wh) * (wp // ww), wh, ww, c)


def _from_windows(t, hp, wp):
    b, _, wh, ww, c = t.shape
    t = t.reshape(b, hp // wh, wp // ww, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
    return t.reshape(b, hp, wp, c)


def stripe_attention(q, k, v, get_v_weight, get_v_bias, num_heads, window, scale):
    """Attention + LePE of one branch on q, k, v [B, H, W, c] with windows of ``window`` =
    (wh, ww) tokens; H, W are zero-padded at the bottom / right to multiples of wh, ww."""
    b, h, w, c = q.shape
    wh, ww = window
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    d = c // num_heads

    def pad(t):
        out = np.zeros((b, hp, wp, c))
        out[:, :h, :w] = t
        return out

    valid = np.zeros((1, hp, wp, 1), dtype=bool)
    valid[:, :h, :w] = True
    qw, kw, vw = (_to_windows(pad(t), wh, ww) for t in (q, k, v))
    key_ok = _to_windows(valid, wh, ww).reshape(1, -1, 1, 1, wh * ww)  # [1, nW, 1, 1, N]
    lepe = _lepe(vw, get_v_weight, get_v_bias)  # [B, nW, wh, ww, c]

    n_w = qw.shape[1]

    def heads(t):  # [B, nW, wh, ww, c] -> [B, nW, heads, N, d]
        return t.reshape(b, n_w, wh * ww, num_heads, d).transpose(0, 1, 3, 2, 4)

    scores = (heads(qw) * scale) @ heads(kw).transpose(0, 1, 2, 4, 3)  # [B, nW, heads, N, N]
    scores = np.where(key_ok, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)  # every window has >= 1 real key
    weights = np.exp(scores)
    weights = weights / weights.sum(-1, keepdims=True)
    out = (weights @ heads(vw)).transpose(0, 1, 3, 2, 4).reshape(b, n_w, wh, ww, c)
    out = out + lepe
    return _from_windows(out, hp, wp)[:, :h, :w]


def cswin_block(x, p, num_heads, split_size, last_stage=False, qk_scale=None):
    """One official CSWinBlock on x [B, H, W, C] (float64) -> [B, H, W, C].

    p: official CSWinBlock state_dict names, Paddle layouts (see the module docstring)."""
    b, h, w, c = x.shape
    y = layer_norm(x, p["norm1.weight"], p["norm1.bias"], eps=LN_EPS)
    qkv = linear(y, p["qkv.weight"], p["qkv.bias"])
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]

    if last_stage:
        branches = [(slice(0, c), num_heads, (h, w))]
    else:
        if "attns.1.get_v.weight" not in p:
            raise ValueError("two-branch block needs attns.1.*; official blocks built with "
                             "resolution == split_size are last_stage blocks")
        half = c // 2
        branches = [(slice(0, half), num_heads // 2, (h, split_size)),      # vertical stripes
                    (slice(half, c), num_heads // 2, (split_size, w))]      # horizontal stripes
    outs = []
    for i, (ch, heads, window) in enumerate(branches):
        dim = ch.stop - ch.start
        scale = (dim // heads) ** -0.5 if qk_scale is None else qk_scale
        outs.append(stripe_attention(q[..., ch], k[..., ch], v[..., ch],
                                     p[f"attns.{i}.get_v.weight"], p[f"attns.{i}.get_v.bias"],
                                     heads, window, scale))
    z = np.concatenate(outs, axis=-1)
    x = x + linear(z, p["proj.weight"], p["proj.bias"])
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"], eps=LN_EPS)
    y = linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
               p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + y


def cswin_merge(x, p):
    """Official Merge_Block on x [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C_out]:
    Conv2d 3x3, stride 2, padding 1 (``conv.weight`` [C_out, C, 3, 3], ``conv.bias``), then
    LayerNorm(C_out) (``norm.weight``, ``norm.bias``)."""
    y = conv3x3_stride2(x, p["conv.weight"], p["conv.bias"])
    return layer_norm(y, p["norm.weight"], p["norm.bias"], eps=LN_EPS)


def cswin_macs(B, H, W, C, num_heads, split_size, last_stage, mlp_ratio=4):
    """MACs of one CSWin block on [B, H, W, C] (num_heads does not change the count).

    Counted: norm1 and norm2 one MAC per element (B H W C each, as Swin's flops()); qkv
    B H W * C * 3C; proj B H W * C * C; MLP 2 * B H W * C * int(C * mlp_ratio); per branch
    with c channels and windows of N = wh * ww tokens over the padded map Hp x Wp:
    QK^T and AV 2 * B * nW * N^2 * c (nW = Hp Wp / N, padded stripes included) and the LePE
    depthwise conv 9 * B * Hp * Wp * c. Not counted: scaling, softmax, additions, GELU.
    For divisible sizes this is exactly the matmuls / convs the official forward runs."""
    tokens = B * H * W
    hidden = int(C * mlp_ratio)
    macs = 2 * tokens * C + tokens * C * 3 * C + tokens * C * C + 2 * tokens * C * hidden
    if last_stage:
        branches = [(C, H, W)]
    else:
        branches = [(C // 2, H, split_size), (C // 2, split_size, W)]
    for c, wh, ww in branches:
        hp, wp = math.ceil(H / wh) * wh, math.ceil(W / ww) * ww
        n = wh * ww
        n_w = (hp * wp) // n
        macs += 2 * B * n_w * n * n * c + 9 * B * hp * wp * c
    return macs
