"""``SwinT``: a Swin Transformer stage that is used like ``nn.Conv2D``."""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import paddle
import paddle.nn as nn
from paddle.distributed.fleet.utils import recompute

from . import checks, chunks
from .blocks import PatchMerging, SwinTransformerBlock
from .shapes import eager_on_cpu, spatial_size
from .init import linear
from .windows import WindowGeometry, cached_geometry, window_geometry

__all__ = ["SwinT"]

IntPair = Union[int, Sequence[int]]


class SwinT(nn.Layer):
    """Window attention with a Conv2D interface: ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    ``depth`` Swin V1 blocks run at ``in_channels``, alternating W-MSA and SW-MSA (shifted
    windows with the cyclic-shift mask), each with relative position bias. Then either patch
    merging (``downsample=True``: ``H' = ceil(H/2)``, ``W' = ceil(W/2)``), or a linear
    projection to ``out_channels`` when it differs from ``in_channels``.

    Any input size works: maps are padded up to a multiple of the window and padded tokens
    are masked out as keys; where a map side is no larger than the window, the window
    shrinks to it on that side and that side is not shifted.

    On CPU in eager mode the blocks run on sub-batches sized by
    :data:`miziha.chunks.BATCH_CHUNK_BYTES` (same outputs; dropout and stochastic depth
    draw per sub-batch).

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None. Only a hint (shown in the repr);
            inputs of any size are accepted.
        num_heads: attention heads; must divide ``in_channels``. Default: about 32
            channels a head.
        window_size: window side, an int or ``(Wh, Ww)``.
        mlp_ratio: MLP hidden width over ``in_channels``.
        qkv_bias: learn a bias for q, k, v.
        qk_scale: attention score scale; default ``head_dim ** -0.5``.
        dropout: dropout after the attention projection and in the MLP.
        attention_dropout: dropout on attention weights.
        droppath: stochastic depth rate, a float or one per block.
        downsample: end with 2x2 patch merging to ``out_channels``.
        depth: number of blocks, even (W-MSA, SW-MSA pairs).
        data_format: ``"NCHW"`` or ``"NHWC"``, for input and output, as in ``nn.Conv2D``.
        use_recompute: in eager training, keep only each block's input and recompute its
            activations during backward (Paddle's non-reentrant ``recompute``): less memory,
            one more forward pass of time. Gradients are the same as without it.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, num_heads: Optional[int] = None,
                 window_size: IntPair = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 droppath: Union[float, Sequence[float]] = 0.0, downsample: bool = False,
                 *, depth: int = 2, data_format: str = "NCHW",
                 use_recompute: bool = False) -> None:
        super().__init__()
        self.in_channels = checks.positive_int("in_channels", in_channels)
        self.out_channels = checks.positive_int("out_channels", out_channels)
        self.input_resolution = None if input_resolution is None else \
            checks.int_pair("input_resolution", input_resolution)
        self.num_heads = checks.default_num_heads(self.in_channels) if num_heads is None \
            else checks.positive_int("num_heads", num_heads)
        if self.in_channels % self.num_heads:
            raise ValueError(f"in_channels must be divisible by num_heads: got in_channels="
                             f"{self.in_channels}, num_heads={self.num_heads}")
        self.window_size = checks.int_pair("window_size", window_size)
        self.depth = checks.positive_int("depth", depth)
        if self.depth % 2:
            raise ValueError(f"depth must be even (W-MSA and SW-MSA blocks in pairs), "
                             f"got {self.depth}")
        if data_format not in ("NCHW", "NHWC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        self.data_format = data_format
        if not isinstance(use_recompute, bool):
            raise TypeError(f"use_recompute must be a bool, got {type(use_recompute).__name__}")
        self.use_recompute = use_recompute
        self.downsample_enabled = bool(downsample)
        droppaths = checks.rates("droppath", droppath, self.depth)
        if int(self.in_channels * checks.positive_float("mlp_ratio", mlp_ratio)) < 1:
            raise ValueError(f"mlp_ratio * in_channels must be at least 1 (the MLP width), got "
                             f"{mlp_ratio} * {self.in_channels}")
        block_options = dict(
            mlp_ratio=mlp_ratio, qkv_bias=bool(qkv_bias),
            qk_scale=checks.positive_float("qk_scale", qk_scale, allow_none=True),
            dropout=checks.rate("dropout", dropout),
            attention_dropout=checks.rate("attention_dropout", attention_dropout))

        self.blocks = nn.LayerList([
            SwinTransformerBlock(self.in_channels, self.num_heads, self.window_size,
                                 shifted=i % 2 == 1, droppath=droppaths[i], **block_options)
            for i in range(self.depth)])
        self.downsample = PatchMerging(self.in_channels, self.out_channels) \
            if self.downsample_enabled else None
        self.proj = linear(self.in_channels, self.out_channels) \
            if not self.downsample_enabled and self.out_channels != self.in_channels else None

    def _check_input(self, x: paddle.Tensor) -> None:
        checks.tensor("SwinT", x)
        if x.ndim != 4:
            raise ValueError(f"SwinT expects a 4-D {self.data_format} input, got "
                             f"{x.ndim}-D input of shape {list(x.shape)}")
        channels = x.shape[1 if self.data_format == "NCHW" else 3]
        if channels != self.in_channels:
            raise ValueError(f"SwinT expects {self.in_channels} input channels "
                             f"({self.data_format}), got {channels} in shape {list(x.shape)}")

    def _sub_batches(self, tokens: paddle.Tensor, geometry: WindowGeometry) -> List[int]:
        """Sub-batch sizes for the blocks (:func:`~miziha.chunks.batch_chunks`): eager CPU
        only, sized by the widest per-sample temporary of a block, the MLP hidden layer,
        ``qkv`` or the attention scores, over the padded tokens ``nW * N``."""
        batch = tokens.shape[0]
        if not eager_on_cpu(tokens):
            return [batch]
        block = self.blocks[0]
        width = max(block.mlp.fc1.weight.shape[1], 3 * self.in_channels,
                    self.num_heads * geometry.window_tokens)
        sample_bytes = geometry.num_windows * geometry.window_tokens * width \
            * tokens.element_size()
        return chunks.batch_chunks(batch, sample_bytes, chunks.BATCH_CHUNK_BYTES)

    def _run_blocks(self, tokens: paddle.Tensor, plain: WindowGeometry,
                    shifted: WindowGeometry) -> paddle.Tensor:
        """The blocks on ``[B, H*W, C]``, alternating plain and shifted windows."""
        recompute_blocks = self.use_recompute and paddle.in_dynamic_mode() \
            and paddle.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            geometry = shifted if i % 2 else plain
            # Non-reentrant: the reentrant default gives the parameters no gradient when
            # the input needs none.
            tokens = recompute(block, tokens, geometry, use_reentrant=False) \
                if recompute_blocks else block(tokens, geometry)
        return tokens

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """Args: x ``[B, C_in, H, W]`` (``[B, H, W, C_in]`` for NHWC).

        Returns: ``[B, C_out, H', W']`` (``[B, H', W', C_out]`` for NHWC).
        """
        self._check_input(x)
        if self.data_format == "NCHW":
            x = x.transpose([0, 2, 3, 1])
        height, width = spatial_size(x, height_axis=1)
        if paddle.in_dynamic_mode():
            plain = cached_geometry(height, width, self.window_size, (0, 0), x.place)
            shifted = cached_geometry(height, width, self.window_size,
                                      self.blocks[1].shift_size, x.place)
        else:  # static graph: sizes may be dynamic, so the tables are part of the graph
            plain = window_geometry(height, width, self.window_size, (0, 0))
            shifted = window_geometry(height, width, self.window_size,
                                      self.blocks[1].shift_size)
        tokens = x.reshape([0, -1, self.in_channels])  # [B, H*W, C]
        sizes = self._sub_batches(tokens, plain)
        if len(sizes) > 1:
            tokens = paddle.concat([self._run_blocks(part, plain, shifted)
                                    for part in paddle.split(tokens, sizes, axis=0)], axis=0)
        else:
            tokens = self._run_blocks(tokens, plain, shifted)
        x = tokens.reshape([0, height, width, self.in_channels])
        if self.downsample is not None:
            x = self.downsample(x, height, width)
        elif self.proj is not None:
            x = self.proj(x)
        return x.transpose([0, 3, 1, 2]) if self.data_format == "NCHW" else x

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}",
                 f"num_heads={self.num_heads}", f"window_size={self.window_size}",
                 f"depth={self.depth}", f"downsample={self.downsample_enabled}"]
        if self.input_resolution is not None:
            parts.append(f"input_resolution={self.input_resolution}")
        if self.data_format != "NCHW":
            parts.append(f"data_format={self.data_format}")
        if self.use_recompute:
            parts.append("use_recompute=True")
        return ", ".join(parts)
