"""Pieces shared by miziha's example networks."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import paddle
import paddle.nn as nn

from .. import checks
from ..layers.basic import droppath_schedule, layer_norm, linear
from ..mixers.base import TokenMixer
from ..paddle_fixes.workarounds import LeakyReLU

from .features import Indices, feature_entry, stage_indices

Mixer = TypeVar("Mixer", bound=TokenMixer)

__all__ = ["ConvBN", "classification_head", "check_image", "FrozenStages",
           "frozen_stage_count", "index_blocks", "StagedTransformer"]


class ConvBN(nn.Sequential):
    """``Conv2D`` (no bias) -> ``BatchNorm2D`` -> optional ReLU; 'same' padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 relu: bool = True) -> None:
        layers = [nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                            padding=kernel_size // 2, bias_attr=False),
                  nn.BatchNorm2D(out_channels)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


def classification_head(in_features: int, num_classes: int) -> nn.Sequential:
    """The reference experiment's head on pooled features ``[B, in_features]``:
    Dropout(0.2), Linear(in, 256), LayerNorm, Dropout(0.2), LeakyReLU, Linear(256, classes)."""
    num_classes = checks.positive_int("num_classes", num_classes)
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(in_features, 256), layer_norm(256),
                         nn.Dropout(0.2), LeakyReLU(), nn.Linear(256, num_classes))


def classifier(in_features: int, num_classes: int) -> nn.Layer:
    """The classifier on pooled features ``[B, in_features]``: a Linear to ``num_classes``,
    or (``num_classes=0``) an identity that passes the features on, as timm's."""
    return linear(in_features, num_classes) if num_classes else nn.Identity()


def fitted_head(model: nn.Layer, head: nn.Layer, global_pool: Optional[str] = None) -> nn.Layer:
    """A fresh classifier ``head`` for ``model``'s :meth:`reset_classifier`: in the dtype of
    the model's parameters and in its training mode. ``global_pool`` is timm's argument:
    miziha's networks pool by average, so only None and ``"avg"`` are accepted."""
    if global_pool not in (None, "avg"):
        raise ValueError(f"global_pool: {type(model).__name__} pools by average only (None or "
                         f"'avg'), got {global_pool!r}")
    dtype = next(iter(model.parameters())).dtype
    if any(p.dtype != dtype for p in head.parameters()):
        head.to(dtype=dtype)
    head.train(model.training)
    return head


def check_image(x: paddle.Tensor, channels: int, model: str) -> None:
    """A clear error for input that is not ``[B, channels, H, W]``."""
    checks.tensor(model, x)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{model} expects input [B, {channels}, H, W], got shape "
                         f"{list(x.shape)}")


def _keep_in_eval(layer: nn.Layer, inputs) -> None:
    """Forward pre-hook of every layer inside a frozen one: back to eval mode if a parent's
    ``train()`` (which sets ``training`` on every sublayer directly) switched it."""
    layer.training = False


class FrozenStages:
    """Mixin for a network with ``frozen_stages=k``: the stem and the first ``k`` stages get
    no gradient (``stop_gradient`` on their parameters; PyTorch's ``requires_grad``, which
    PaddleDetection once set, is ignored by Paddle) and keep their BatchNorm statistics
    fixed, as detection and segmentation backbones do when fine-tuning.

    The freeze holds however the network is wrapped or switched: BatchNorms of frozen layers
    normalise with their running statistics in every mode (``use_global_stats``), and a
    forward pre-hook on every layer inside a frozen one puts it back in eval mode (no
    dropout, no stochastic depth) before it runs. Call :meth:`freeze` once at the end of
    ``__init__``.
    """

    def freeze(self, layers: Sequence[nn.Layer]) -> None:
        """Freeze ``layers`` (the stem, then the first ``k`` stages)."""
        for layer in layers:
            for param in layer.parameters():
                param.stop_gradient = True
            for sub in [layer] + layer.sublayers():
                if isinstance(sub, nn.layer.norm._BatchNormBase):
                    sub._use_global_stats = True
                sub.register_forward_pre_hook(_keep_in_eval)
            layer.eval()


def frozen_stage_count(frozen_stages: int, num_stages: int) -> int:
    """``frozen_stages`` checked (-1: nothing frozen; 0: the stem; ``k``: the stem and the
    first ``k`` of ``num_stages`` stages); returns how many stages to freeze (0 for -1)."""
    if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int):
        raise TypeError(f"frozen_stages must be an int, got {frozen_stages!r}")
    if not -1 <= frozen_stages <= num_stages:
        raise ValueError(f"frozen_stages must be -1 (none) .. {num_stages} (stem and all "
                         f"stages), got {frozen_stages}")
    return max(frozen_stages, 0)


def index_blocks(stage: Mixer) -> Mixer:
    """``stage`` with its blocks named ``0`` .. ``depth - 1`` instead of ``blocks.{j}``: the
    parameter names of official networks whose stage is a bare sequence of blocks (CycleMLP's
    ``network.{2i}.{j}``). The stage computes as before; returns ``stage``."""
    blocks = tuple(stage.blocks)
    del stage.blocks
    for j, block in enumerate(blocks):
        stage.add_sublayer(str(j), block)
    stage.blocks = blocks  # a tuple: the blocks stay registered under their indices only
    return stage
class StagedTransformer(FrozenStages, nn.Layer):
    """The timm-style API of a hierarchical network made of mixer stages: a stem
    (:meth:`stem`, ``[B, C, H, W] -> [B, h, w, C0]``), ``pos_drop``, the stages
    (:meth:`stages`: each an NHWC :class:`~miziha.mixers.base.TokenMixer`, and the
    downsampling after it where it is a layer of its own), ``norm`` on the last map, global
    average pooling and ``head`` (``num_classes=0``: none, the pooled features are the
    output; :meth:`reset_classifier` changes it).

    A subclass calls ``super().__init__(num_classes, in_channels)`` first (which checks and
    keeps both), builds its layers, ``norm`` and ``feature_info``, then its ``head`` with
    :meth:`reset_classifier`, says where its stem and stages are when they are not
    ``patch_embed`` and ``layers``, then calls :meth:`freeze_stages`.
    """

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.num_classes = checks.class_count(num_classes)
        self.in_channels = checks.positive_int("in_channels", in_channels)
        self.pos_drop: nn.Layer = nn.Identity()

    def get_classifier(self) -> nn.Layer:
        """The classifier layer (``head``; an identity when ``num_classes`` is 0)."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new ``head`` for ``num_classes`` (0: none; forward then gives the pooled
        features ``[B, num_features]``), freshly initialised (see :func:`fitted_head`)."""
        num_classes = checks.class_count(num_classes)
        self.head = fitted_head(self, classifier(self.num_features, num_classes), global_pool)
        self.num_classes = num_classes

    def build_stages(self, embed_dim: int, depths: Sequence[int], droppath: float,
                     stride: int, make_stage: Callable[..., TokenMixer]) -> None:
        """``layers`` of the common hierarchical layout: stage ``i`` at ``embed_dim * 2**i``
        channels, ``make_stage(i, dim, out_dim, depth=, droppath=, downsample=,
        data_format="NHWC")`` ending at twice its channels except the last, stochastic depth
        rising linearly over all blocks; then ``num_features`` and ``feature_info`` (the
        stem's ``stride``, doubling per stage)."""
        rates = droppath_schedule(droppath, sum(depths))
        layers, start = [], 0
        for i, depth in enumerate(depths):
            dim, last = embed_dim * 2 ** i, i == len(depths) - 1
            layers.append(make_stage(i, dim, dim if last else 2 * dim, depth=depth,
                                     droppath=rates[start:start + depth], downsample=not last,
                                     data_format="NHWC"))
            start += depth
        self.layers = nn.LayerList(layers)
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.feature_info = [feature_entry(embed_dim * 2 ** i, stride * 2 ** i, f"layers.{i}")
                             for i in range(len(depths))]

    def stem(self) -> nn.Layer:
        """The layer from the image to the first stage's tokens (``patch_embed``)."""
        return self.patch_embed

    def stages(self) -> List[Tuple[TokenMixer, Optional[nn.Layer]]]:
        """Per stage, the mixer and the downsampling layer after it (``None`` when the mixer
        holds its downsampling, or after the last stage); default: ``layers``."""
        return [(layer, None) for layer in self.layers]

    def freeze_stages(self, frozen_stages: int) -> None:
        """``frozen_stages=k``: -1 freezes nothing, 0 the stem, ``k >= 1`` also the first
        ``k`` stages, each with its downsampling."""
        stages = self.stages()
        count = frozen_stage_count(frozen_stages, len(stages))
        if frozen_stages >= 0:
            self.freeze([self.stem()] + [layer for pair in stages[:count] for layer in pair
                                         if layer is not None])

    def _embed(self, x: paddle.Tensor) -> paddle.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        return self.pos_drop(self.stem()(x))

    def forward_intermediates(self, x: paddle.Tensor,
                              indices: Indices = None) -> List[paddle.Tensor]:
        """Per stage ``indices`` (default: all), its blocks' output before the
        downsampling, NCHW, at the strides of ``feature_info``; the last stage's is
        normalised, as in :meth:`forward_features`."""
        stages = self.stages()
        wanted = stage_indices(indices, len(stages))
        x = self._embed(x)
        maps, last = [], len(stages) - 1
        for i, (stage, after) in enumerate(stages[:wanted[-1] + 1]):
            mixed, x = stage.forward_blocks(x)
            if after is not None:
                x = after(x)
            if i == last:
                mixed = self.norm(mixed)
            if i in wanted:
                maps.append(mixed.transpose([0, 3, 1, 2]))
        return maps

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> the normalised last map ``[B, num_features, h, w]``."""
        x = self._embed(x)
        for stage, after in self.stages():
            x = stage(x)
            if after is not None:
                x = after(x)
        return self.norm(x).transpose([0, 3, 1, 2])

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False) -> paddle.Tensor:
        """Features ``[B, C, h, w]`` -> logits (``pre_logits``: pooled ``[B, C]``)."""
        x = x.mean(axis=[2, 3])
        return x if pre_logits else self.head(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes]`` (``num_classes=0``: the pooled
        features ``[B, num_features]``)."""
        return self.forward_head(self.forward_features(x))
