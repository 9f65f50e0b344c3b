"""``TokenMixer``: the Conv2D-like contract every miziha mixer shares.

A mixer maps ``[B, C_in, H, W]`` to ``[B, C_out, H', W']`` like ``nn.Conv2D``: ``depth``
blocks of its design at ``in_channels`` on the tokens of the map, then the design's
downsampling (``downsample=True``: ``H' = ceil(H/2)``, ``W' = ceil(W/2)``) or a linear
projection to ``out_channels`` when it differs from ``in_channels``. This class owns what is
the same for all of them: argument and input checks, NCHW/NHWC to tokens and back, the
CPU sub-batches (:func:`miziha.paddle_fixes.cpu.run_in_sub_batches`), recompute, and the interface
``miziha.flops`` reads. A design subclasses it and contributes its blocks
(``self.blocks``), its downsampling layer (passed to :meth:`_build_output`, which also makes
the projection) and its geometry:

* :meth:`layout` ``(height, width, like)``: one entry per block, the index tables that
  block needs for this map size (built with :func:`miziha.layers.size_cache.size_cached`, so they
  are cached in eager mode and traced under ``to_static``). The mixer decides every
  per-block choice (which blocks shift, which stripes) here; blocks receive it.
* :meth:`sample_bytes`: the widest temporary a block makes per sample (for sub-batches).
* :meth:`mixing_macs`: the MACs that ``flops``' Conv2D/Linear/norm hooks cannot see (the
  attention matmuls).

Blocks are called as ``block(tokens [B, H*W, C], geometry)``; the downsampling layer as
``downsample(x [B, H, W, C], height, width)``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
from paddle.distributed.fleet.utils import recompute

from .. import checks
from ..paddle_fixes.cpu import run_in_sub_batches
from ..layers.basic import linear
from ..layers.shapes import Size, spatial_size

__all__ = ["TokenMixer", "IntPair"]

IntPair = Union[int, Sequence[int]]


class TokenMixer(nn.Layer):
    """Base of the Conv2D-like mixers; see the module docstring.

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        input_resolution: expected ``(H, W)``, or None: a hint (shown in the repr, and
            used by designs whose parameters depend on the stage, such as CSWin's last
            stage); inputs of any size are accepted.
        downsample: end with the design's 2x downsampling to ``out_channels``.
        depth: number of blocks.
        droppath: stochastic depth rate, a float or one per block (:attr:`droppaths`).
        data_format: ``"NCHW"`` or ``"NHWC"``, for input and output, as in ``nn.Conv2D``.
        use_recompute: in eager training, keep only each block's input and recompute its
            activations during backward (Paddle's non-reentrant ``recompute``): less memory,
            one more forward pass of time. Gradients are the same as without it.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 input_resolution: Optional[IntPair] = None, downsample: bool = False, *,
                 depth: int = 2, droppath: Union[float, Sequence[float]] = 0.0,
                 data_format: str = "NCHW", use_recompute: bool = False) -> None:
        super().__init__()
        self.in_channels = checks.positive_int("in_channels", in_channels)
        self.out_channels = checks.positive_int("out_channels", out_channels)
        self.input_resolution = None if input_resolution is None else \
            checks.int_pair("input_resolution", input_resolution)
        self.downsample_enabled = checks.flag("downsample", downsample)
        self.depth = checks.positive_int("depth", depth)
        self.droppaths = checks.rates("droppath", droppath, self.depth)
        if data_format not in ("NCHW", "NHWC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        self.data_format = data_format
        self.use_recompute = checks.flag("use_recompute", use_recompute)

    # What a design provides.
    #: Whether the design splits channels and heads into two branches (rows / columns,
    #: stripe directions), so its default head count must be even.
    two_branches = False

    @classmethod
    def default_heads(cls, channels: int, head_dim: int = 32) -> int:
        """Attention heads of about ``head_dim`` channels each for ``channels`` (used when
        ``num_heads`` is None); even for a design with :attr:`two_branches`."""
        if cls.two_branches:
            return checks.two_branch_heads(channels, head_dim)
        return checks.default_num_heads(channels, head_dim)

    def layout(self, height: Size, width: Size, like: Optional[paddle.Tensor] = None
               ) -> List[Any]:
        """Per block, its geometry for a ``height x width`` map (``like``: a tensor on the
        device the tables should be on)."""
        raise NotImplementedError

    def sample_bytes(self, layout: List[Any], element_size: int) -> int:
        """The widest temporary a block makes for one sample, in bytes."""
        raise NotImplementedError

    def mixing_macs(self, batch: int, height: int, width: int) -> int:
        """MACs of the token mixing that ``miziha.flops``' layer hooks do not count."""
        raise NotImplementedError

    # The shared contract.
    def _build_output(self, downsampler: Callable[[int, int], nn.Layer]) -> None:
        """Set what follows the blocks: ``downsample``, the design's
        ``downsampler(in_channels, out_channels)`` when downsampling, else ``proj``, a
        Linear to ``out_channels`` where they differ from ``in_channels`` (else None)."""
        self.downsample = downsampler(self.in_channels, self.out_channels) \
            if self.downsample_enabled else None
        self.proj = linear(self.in_channels, self.out_channels) \
            if not self.downsample_enabled and self.out_channels != self.in_channels else None

    def _check_input(self, x: paddle.Tensor) -> None:
        name = type(self).__name__
        checks.tensor(name, x)
        if x.ndim != 4:
            raise ValueError(f"{name} expects a 4-D {self.data_format} input, got "
                             f"{x.ndim}-D input of shape {list(x.shape)}")
        channels = x.shape[1 if self.data_format == "NCHW" else 3]
        if channels != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} input channels "
                             f"({self.data_format}), got {channels} in shape {list(x.shape)}")
        if not paddle.in_dynamic_mode():
            return
        expected, got = checks.dtype_name(self._dtype), checks.dtype_name(x.dtype)
        if not paddle.is_floating_point(x):
            raise TypeError(f"{name} expects a floating-point input ({expected}, the dtype of "
                            f"its parameters), got {got}: cast it with "
                            f"x.astype('{expected}')")
        if got != expected and not paddle.is_autocast_enabled():
            raise TypeError(f"{name} has {expected} parameters and got a {got} input: "
                            f"cast the input with x.astype('{expected}'), or the layer with "
                            f"layer.to(dtype='{got}')")
        spatial = x.shape[2:] if self.data_format == "NCHW" else x.shape[1:3]
        if min(spatial) < 1:
            raise ValueError(f"{name} expects H and W of at least 1, got shape "
                             f"{list(x.shape)} ({self.data_format})")

    def _run_blocks(self, tokens: paddle.Tensor, layout: List[Any]) -> paddle.Tensor:
        """The blocks on ``[B, H*W, C]``, each with its geometry."""
        recompute_blocks = self.use_recompute and paddle.in_dynamic_mode() \
            and paddle.is_grad_enabled()
        for block, geometry in zip(self.blocks, layout):
            # Non-reentrant: the reentrant default gives the parameters no gradient when
            # the input needs none.
            tokens = recompute(block, tokens, geometry, use_reentrant=False) \
                if recompute_blocks else block(tokens, geometry)
        return tokens

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """Args: x ``[B, C_in, H, W]`` (``[B, H, W, C_in]`` for NHWC).

        Returns: ``[B, C_out, H', W']`` (``[B, H', W', C_out]`` for NHWC).
        """
        return self.forward_blocks(x)[1]

    def forward_blocks(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """:meth:`forward`, also returning the blocks' output before the downsampling or
        projection (``[B, C_in, H, W]``, or NHWC): the map a multi-scale backbone taps.

        Returns: ``(blocks' output, output)``.
        """
        self._check_input(x)
        if self.data_format == "NCHW":
            x = x.transpose([0, 2, 3, 1])
        height, width = spatial_size(x, height_axis=1)
        layout = self.layout(height, width, like=x)
        tokens = x.reshape([0, -1, self.in_channels])  # [B, H*W, C]
        tokens = run_in_sub_batches(lambda part: self._run_blocks(part, layout), tokens,
                                    lambda: self.sample_bytes(layout, tokens.element_size()))
        mixed = x = tokens.reshape([0, height, width, self.in_channels])
        if self.downsample is not None:
            x = self.downsample(x, height, width)
        elif self.proj is not None:
            x = self.proj(x)
        if self.data_format == "NCHW":
            return mixed.transpose([0, 3, 1, 2]), x.transpose([0, 3, 1, 2])
        return mixed, x

    def _repr_options(self) -> List[str]:
        """The design's own options for :meth:`extra_repr`."""
        return []

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", *self._repr_options(),
                 f"depth={self.depth}", f"downsample={self.downsample_enabled}"]
        if self.input_resolution is not None:
            parts.append(f"input_resolution={self.input_resolution}")
        if self.data_format != "NCHW":
            parts.append(f"data_format={self.data_format}")
        if self.use_recompute:
            parts.append("use_recompute=True")
        return ", ".join(parts)
