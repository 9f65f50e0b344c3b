"""Independent NumPy (float64) Swin V1 reference, written from the paper's equations and the
official code's conventions. It uses nothing from miziha: rolls, pads, partitions and masks
are done the literal way (np.roll, slices, explicit loops over mask regions).

Conventions it encodes, per spatial axis of length n with configured window w0:
window min(n, w0); shift w0 // 2 on shifted blocks only where n > w0; zero padding at the
end to a multiple of the window, applied before the cyclic shift; padded tokens are never
attended to.
"""

import math

import numpy as np

_erf = np.vectorize(math.erf)


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x, weight, bias=None):
    """Paddle layout: weight [in, out]."""
    y = x @ weight
    return y if bias is None else y + bias


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def relative_bias(table, window, table_window):
    """[heads, N, N] bias for an effective window, read from a table sized for table_window."""
    coords = np.stack(np.meshgrid(np.arange(window[0]), np.arange(window[1]), indexing="ij"))
    coords = coords.reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]  # [2, N, N]
    index = (rel[0] + table_window[0] - 1) * (2 * table_window[1] - 1) + rel[1] + table_window[1] - 1
    return table[index].transpose(2, 0, 1)


def region_labels(size, window, shift):
    """Official img_mask: label of every (row, col) of the padded, shifted map."""
    labels = np.zeros(size, dtype=np.int64)
    count = 0
    spans = [[slice(None)] if s == 0 else [slice(0, -w), slice(-w, -s), slice(-s, None)]
             for w, s in zip(window, shift)]
    for rows in spans[0]:
        for cols in spans[1]:
            labels[rows, cols] = count
            count += 1
    return labels


def partition(x, window):
    """[B, Hp, Wp, ...] -> [B, nW, N, ...]."""
    b, hp, wp = x.shape[:3]
    rest = x.shape[3:]
    x = x.reshape(b, hp // window[0], window[0], wp // window[1], window[1], *rest)
    x = np.moveaxis(x, 3, 2)
    return x.reshape(b, (hp // window[0]) * (wp // window[1]), window[0] * window[1], *rest)


def reverse(windows, window, hp, wp):
    """[B, nW, N, C] -> [B, Hp, Wp, C]."""
    b, c = windows.shape[0], windows.shape[-1]
    x = windows.reshape(b, hp // window[0], wp // window[1], window[0], window[1], c)
    return np.moveaxis(x, 2, 3).reshape(b, hp, wp, c)


def shifted_windows(x, window_size, shifted):
    """The (shifted) windows of a map x [B, H, W, C] as the official code cuts them, with
    miziha's padding: the window clipped to a smaller side, shifted by half a window where
    the side is larger than it, the map zero-padded to a multiple of the window.

    Returns: tokens [B, nW, N, C]; allowed [nW, N, N] (query and key in the same shifted
    region, the key not padding); the window; and ``back(out)``, which takes windows
    [B, nW, N, C'] back to the map [B, H, W, C']."""
    b, h, w, c = x.shape
    window = tuple(min(n, w0) for n, w0 in zip((h, w), window_size))
    shift = tuple(w0 // 2 if shifted and n > w0 else 0 for n, w0 in zip((h, w), window_size))
    hp, wp = (-(-h // window[0]) * window[0]), (-(-w // window[1]) * window[1])
    padded = np.zeros((b, hp, wp, c))
    padded[:, :h, :w] = x
    valid = np.zeros((hp, wp), dtype=bool)
    valid[:h, :w] = True
    padded = np.roll(padded, (-shift[0], -shift[1]), axis=(1, 2))
    valid = np.roll(valid, (-shift[0], -shift[1]), axis=(0, 1))
    labels = region_labels((hp, wp), window, shift)

    tokens = partition(padded, window)  # [B, nW, N, C]
    valid_w = partition(valid[None], window)[0]  # [nW, N]
    labels_w = partition(labels[None], window)[0]
    allowed = (labels_w[:, :, None] == labels_w[:, None, :]) & valid_w[:, None, :]

    def back(out):
        return np.roll(reverse(out, window, hp, wp), shift, axis=(1, 2))[:, :h, :w]

    return tokens, allowed, window, back


def masked_softmax(scores, allowed):
    """Softmax over the last axis of scores [B, nW, heads, N, N] where ``allowed`` [nW, N,
    N]; a query with no allowed key gets zero weights."""
    allowed = np.broadcast_to(allowed[None, :, None], scores.shape)
    top = np.max(np.where(allowed, scores, -1e300), axis=-1, keepdims=True)
    top = np.where(top < -1e299, 0.0, top)  # a query with no allowed key
    weights = np.exp(np.where(allowed, scores - top, -np.inf))
    return weights / np.maximum(weights.sum(-1, keepdims=True), 1e-300)


def window_attention(x, p, num_heads, window_size, shifted, scale=None):
    """Attention part of one block on a normalised map x [B, H, W, C]; p: its parameters."""
    c = x.shape[-1]
    tokens, allowed, window, back = shifted_windows(x, window_size, shifted)
    head_dim = c // num_heads
    scale = head_dim ** -0.5 if scale is None else scale
    qkv = linear(tokens, p["qkv.weight"], p.get("qkv.bias"))
    q, k, v = (qkv[..., i * c:(i + 1) * c].reshape(*tokens.shape[:3], num_heads, head_dim)
               .transpose(0, 1, 3, 2, 4) for i in range(3))  # [B, nW, heads, N, d]
    scores = (q * scale) @ k.transpose(0, 1, 2, 4, 3)
    scores = scores + relative_bias(p["relative_position_bias_table"], window, window_size)
    out = (masked_softmax(scores, allowed) @ v).transpose(0, 1, 3, 2, 4).reshape(tokens.shape)
    return back(linear(out, p["proj.weight"], p["proj.bias"]))


def block(x, p, num_heads, window_size, shifted, scale=None):
    """One pre-norm Swin V1 block on x [B, H, W, C]; p keyed like the Paddle block."""
    attn_p = {k[len("attn."):]: v for k, v in p.items() if k.startswith("attn.")}
    y = layer_norm(x, p["norm1.weight"], p["norm1.bias"])
    x = x + window_attention(y, attn_p, num_heads, window_size, shifted, scale)
    y = layer_norm(x, p["norm2.weight"], p["norm2.bias"])
    y = linear(gelu(linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
               p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return x + y


def patch_merging(x, p):
    """Official patch merging on [B, H, W, C]: zero-pad odd sizes, concat x0..x3, norm, reduce."""
    b, h, w, c = x.shape
    x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    x0, x1 = x[:, 0::2, 0::2], x[:, 1::2, 0::2]
    x2, x3 = x[:, 0::2, 1::2], x[:, 1::2, 1::2]
    x = np.concatenate([x0, x1, x2, x3], axis=-1)
    return linear(layer_norm(x, p["norm.weight"], p["norm.bias"]), p["reduction.weight"])


def swint(x, params, num_heads, window_size, depth, downsample, out_channels,
          data_format="NCHW", scale=None):
    """Whole SwinT layer; params is the layer's state_dict as float64 arrays."""
    if data_format == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    for i in range(depth):
        prefix = f"blocks.{i}."
        p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        x = block(x, p, num_heads, window_size, shifted=i % 2 == 1, scale=scale)
    if downsample:
        x = patch_merging(x, {k[len("downsample."):]: v for k, v in params.items()
                              if k.startswith("downsample.")})
    elif out_channels != x.shape[-1]:
        x = linear(x, params["proj.weight"], params["proj.bias"])
    return x.transpose(0, 3, 1, 2) if data_format == "NCHW" else x


def patch_embed(x, params, patch):
    """Official patch embedding on x [B, C, H, W]: zero-pad bottom/right to multiples of
    patch, a stride-patch convolution written as a matmul per patch, LayerNorm -> [B, h, w, D]."""
    b, c, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % patch), (0, -w % patch)))
    hp, wp = x.shape[2] // patch, x.shape[3] // patch
    patches = x.reshape(b, c, hp, patch, wp, patch).transpose(0, 2, 4, 1, 3, 5)
    weight = params["proj.weight"]  # [D, C, p, p]
    y = patches.reshape(b, hp, wp, -1) @ weight.reshape(weight.shape[0], -1).T + params["proj.bias"]
    return layer_norm(y, params["norm.weight"], params["norm.bias"])


def swin_transformer(x, params, depths, num_heads, window_size, patch):
    """Whole Swin V1 classifier on x [B, C, H, W] -> logits; params keyed like miziha's."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    x = patch_embed(x, sub("patch_embed."), patch)
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        last = i == len(depths) - 1
        x = swint(x, sub(f"layers.{i}."), heads, window_size, depth, downsample=not last,
                  out_channels=x.shape[-1] * (1 if last else 2), data_format="NHWC")
    x = layer_norm(x, params["norm.weight"], params["norm.bias"]).mean(axis=(1, 2))
    return linear(x, params["head.weight"], params["head.bias"])


def conv3x3_stride2(x, weight, bias):
    """Conv2d 3x3, stride 2, padding 1 on x [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C_out];
    weight [C_out, C, 3, 3] (PyTorch layout), bias [C_out]; a sum over the nine taps."""
    b, h, w, _ = x.shape
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros((b, ho, wo, weight.shape[0])) + bias
    for dy in range(3):
        for dx in range(3):
            tap = xp[:, dy:dy + 2 * ho - 1:2, dx:dx + 2 * wo - 1:2, :]  # [B, ho, wo, C]
            y += tap @ weight[:, :, dy, dx].T
    return y
