"""HRNet (Wang et al., "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI 2020) with its classification head and its segmentation head, under
the official parameter names; with a mixer in the branches' basic blocks instead of their
3x3 convolutions, an HRFormer-like network.

Registry names (timm's for the plain networks): ``hrnet_<config>`` for every key of
:data:`HRNET_CONFIGS` (the official ``cls_hrnet_*`` experiments: ``hrnet_w18_small`` (v1),
``hrnet_w18_small_v2``, ``hrnet_w18``, ``hrnet_w30``, ``hrnet_w32``, ``hrnet_w40``,
``hrnet_w44``, ``hrnet_w48``, ``hrnet_w64``) for classification and ``hrnet_<config>_seg``
for segmentation; and, for the W18 configs only (:data:`MIXER_CONFIGS`), ``<mixer>_`` + each
of their names for every key of :data:`miziha.MIXERS` (``swin_hrnet_w18_small_v2``,
``swin_hrnet_w18_small_v2_seg``, ``cyclemlp_hrnet_w18``...). Any other width with a mixer is
``HRNet(config="w48", mixer="swin")``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..mixers.registry import MIXERS, mixer_class
from ..layers.shapes import Size, spatial_size
from .common import (ConvBN, FrozenStages, check_image, classifier, fitted_head,
                     frozen_stage_count)
from .features import Indices, feature_entry, stage_indices
from .registry import TASKS, register_model

__all__ = ["HRNetConfig", "HRNET_CONFIGS", "MIXER_CONFIGS", "BasicBlock", "Bottleneck",
           "HighResolutionModule", "HRNet", "HRNET_BUILDERS", "hrnet_w18_small_v2", "hrnet_w18",
           "hrnet_w18_small_v2_seg", "hrnet_w18_seg", "swin_hrnet_w18_small_v2",
           "swin_hrnet_w18_small_v2_seg"]

# Every BatchNorm2D keeps Paddle's defaults, momentum 0.9 and epsilon 1e-5: the official
# BN_MOMENTUM 0.1 and eps in PyTorch's convention (new = 0.9 * old + 0.1 * batch).


class HRNetConfig(NamedTuple):
    """One HRNet width/depth setting (the ``MODEL.EXTRA`` of the official configs).

    Attributes:
        layer1_blocks: Bottlenecks in ``layer1``, at stride 4.
        num_modules: HighResolutionModules in ``stage2``, ``stage3``, ``stage4``.
        num_blocks: BasicBlocks per branch in each module of ``stage2``..``stage4``.
        channels: channels of the branches at strides 4, 8, 16, 32 (``stage{s}`` has the
            first ``s`` branches).
        layer1_width: width of ``layer1``'s Bottlenecks (``4 * layer1_width`` out; the
            official ``STAGE1.NUM_CHANNELS``).
    """

    layer1_blocks: int
    num_modules: Tuple[int, int, int]
    num_blocks: Tuple[int, int, int]
    channels: Tuple[int, int, int, int]
    layer1_width: int = 64


def _wide(width: int) -> HRNetConfig:
    """The official W<width> config: 4 Bottlenecks, 1/4/3 modules of 4 BasicBlocks a branch,
    branches ``width * (1, 2, 4, 8)``."""
    return HRNetConfig(4, (1, 4, 3), (4, 4, 4), (width, 2 * width, 4 * width, 8 * width))


#: The official ``cls_hrnet_<key>`` experiment configs (``w18_small`` is ``w18_small_v1``).
HRNET_CONFIGS: Dict[str, HRNetConfig] = {
    "w18_small": HRNetConfig(1, (1, 1, 1), (2, 2, 2), (16, 32, 64, 128), layer1_width=32),
    "w18_small_v2": HRNetConfig(2, (1, 3, 2), (2, 2, 2), (18, 36, 72, 144)),
    **{f"w{width}": _wide(width) for width in (18, 30, 32, 40, 44, 48, 64)},
}

#: The configs registered with every mixer (``<mixer>_hrnet_<config>[_seg]``): the W18 ones,
#: the sizes HRFormer-like networks are tried at, not every width times every mixer.
MIXER_CONFIGS = ("w18_small", "w18_small_v2", "w18")

#: Widths of the classification head's Bottleneck per branch (4x that out) and its output.
HEAD_WIDTHS = (32, 64, 128, 256)
NUM_FEATURES = 2048


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2D:
    return nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=False)


class BasicBlock(nn.Layer):
    """The branches' block, ``[B, C, H, W] -> [B, C, H, W]``: ``relu(bn2(conv2(relu(bn1(
    conv1(x))))) + x)`` with 3x3 convs.

    With ``mixer``, ``conv1`` and ``conv2`` are that mixer (``MIXERS[mixer](C, C,
    **mixer_options)``, each in place of conv + BN, so ``bn1``/``bn2`` are identities);
    the ReLUs and the residual stay.
    """

    expansion = 1

    def __init__(self, channels: int, mixer: Optional[str] = None,
                 mixer_options: Optional[dict] = None) -> None:
        super().__init__()
        if mixer is None:
            self.conv1, self.bn1 = _conv3x3(channels, channels), nn.BatchNorm2D(channels)
            self.conv2, self.bn2 = _conv3x3(channels, channels), nn.BatchNorm2D(channels)
        else:
            layer_class, options = mixer_class(mixer), mixer_options or {}
            self.conv1, self.bn1 = layer_class(channels, channels, **options), nn.Identity()
            self.conv2, self.bn2 = layer_class(channels, channels, **options), nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Layer):
    """1x1 -> 3x3 -> 1x1 (to ``4 * width``) ConvBN, ReLU between, plus the shortcut
    (``downsample``: a 1x1 ConvBN where the channels change), then ReLU. Stride 1:
    ``[B, in_channels, H, W] -> [B, 4 * width, H, W]``."""

    expansion = 4

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2D(in_channels, width, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2D(width)
        self.conv3 = nn.Conv2D(width, out_channels, 1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(out_channels)
        self.relu = nn.ReLU()
        self.downsample = ConvBN(in_channels, out_channels, 1, relu=False) \
            if in_channels != out_channels else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _bottlenecks(in_channels: int, width: int, count: int) -> nn.Sequential:
    """``count`` Bottlenecks, ``in_channels`` -> ``4 * width`` (the official ``_make_layer``)."""
    return nn.Sequential(*[Bottleneck(in_channels if i == 0 else width * Bottleneck.expansion,
                                      width) for i in range(count)])


#: How fusion brings a coarser branch to a finer one: by the official classification code
#: (nearest) or the official segmentation code (bilinear).
UPSAMPLING = ("nearest", "bilinear")


def _upsample_like(x: paddle.Tensor, like: paddle.Tensor, factor: int,
                   mode: str) -> paddle.Tensor:
    """``x`` brought to ``like``'s size.

    ``"nearest"``: upsampling by ``factor`` (``cls_hrnet.py``'s ``nn.Upsample``), cropped to
    ``like``'s size, so output pixel ``i`` comes from ``i // factor`` also when a stride-2
    conv rounded a side up (sizes not multiples of 32, where the official network fails);
    each pixel is repeated by ``expand`` rather than ``F.interpolate`` (workaround 15).
    ``"bilinear"``: bilinear resizing to ``like``'s size, ``align_corners=False``
    (``seg_hrnet.py``'s ``F.interpolate``, any size)."""
    size = spatial_size(like, height_axis=2)
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    rows, cols = spatial_size(x, height_axis=2)
    up = x.reshape([0, 0, rows, 1, cols, 1]).expand([-1, -1, -1, factor, -1, factor])
    return up.reshape([0, 0, rows * factor, cols * factor])[:, :, :size[0], :size[1]]


class HighResolutionModule(nn.Layer):
    """Parallel branches of BasicBlocks, then every output the ReLU of the sum of all
    branches brought to its resolution (``fuse_layers[i][j]``: for ``j > i`` a 1x1 ConvBN
    then ``upsampling`` (one of :data:`UPSAMPLING`), for ``j < i`` ``i - j`` stride-2 3x3
    ConvBNs, ReLU between).

    Maps ``len(channels)`` maps ``[B, channels[i], H_i, W_i]`` to maps of the same shapes.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, mixer: Optional[str] = None,
                 mixer_options: Optional[dict] = None, upsampling: str = "nearest") -> None:
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        self.upsampling = upsampling
        self.branches = nn.LayerList([
            nn.Sequential(*[BasicBlock(c, mixer, mixer_options) for _ in range(num_blocks)])
            for c in channels])
        fuse_layers = []
        for i, c_out in enumerate(channels):
            row = []
            for j, c_in in enumerate(channels):
                if j > i:
                    row.append(ConvBN(c_in, c_out, 1, relu=False))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    row.append(nn.Sequential(*[
                        ConvBN(c_in, c_out if k == i - j - 1 else c_in, 3, 2,
                               relu=k < i - j - 1) for k in range(i - j)]))
            fuse_layers.append(nn.LayerList(row))
        self.fuse_layers = nn.LayerList(fuse_layers)
        self.relu = nn.ReLU()

    def forward(self, xs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outputs = []
        for i, row in enumerate(self.fuse_layers):
            total = None
            for j, (fuse, x) in enumerate(zip(row, xs)):
                x = _upsample_like(fuse(x), xs[i], 2 ** (j - i), self.upsampling) \
                    if j > i else fuse(x)
                total = x if total is None else total + x
            outputs.append(self.relu(total))
        return outputs


def _transition(previous: Sequence[int], current: Sequence[int]) -> nn.LayerList:
    """Inputs of the next stage: a 3x3 ConvBN+ReLU where a branch changes channels (else
    identity); each new branch from the lowest resolution by stride-2 3x3 ConvBN+ReLUs."""
    layers = []
    for i, channels in enumerate(current):
        if i < len(previous):
            layers.append(ConvBN(previous[i], channels, 3) if previous[i] != channels
                          else nn.Identity())
        else:
            steps = i + 1 - len(previous)
            layers.append(nn.Sequential(*[
                ConvBN(previous[-1], channels if k == steps - 1 else previous[-1], 3, 2)
                for k in range(steps)]))
    return nn.LayerList(layers)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int,
                  stride: int = 1) -> nn.Sequential:
    """Conv2D *with* bias -> BatchNorm2D -> ReLU (the official head's layers)."""
    return nn.Sequential(nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                                   padding=kernel_size // 2),
                         nn.BatchNorm2D(out_channels), nn.ReLU())


def _config(config: Union[str, HRNetConfig]) -> HRNetConfig:
    if isinstance(config, HRNetConfig):
        return config
    if config not in HRNET_CONFIGS:
        raise ValueError(f"config must be one of {sorted(HRNET_CONFIGS)} or an HRNetConfig, "
                         f"got {config!r}")
    return HRNET_CONFIGS[config]


class HRNet(FrozenStages, nn.Layer):
    """HRNet for image classification or semantic segmentation, for any input size.

    Stem (two stride-2 3x3 ConvBN+ReLU: ``conv1``/``bn1``, ``conv2``/``bn2``), ``layer1``
    (Bottlenecks), then ``transition1``/``stage2`` ... ``transition3``/``stage4``
    (:class:`HighResolutionModule` s) keeping 4 branches at strides 4, 8, 16, 32. Heads:

    - ``"classification"``: ``incre_modules`` (one Bottleneck per branch, to 128, 256, 512,
      1024 channels), ``downsamp_modules`` (stride-2 3x3 conv+BN+ReLU, summing the branches
      from high to low resolution), ``final_layer`` (1x1 conv+BN+ReLU to 2048), global
      average pooling, ``classifier`` (Linear): logits ``[B, num_classes]``.
    - ``"segmentation"`` (the official segmentation HRNet's head): every branch bilinearly
      upsampled to stride 4 and concatenated, ``last_layer`` (1x1 conv+BN+ReLU, 1x1 conv to
      ``num_classes``), then bilinearly upsampled to the input: logits
      ``[B, num_classes, H, W]``.

    With ``mixer=None`` the parameter names, layout and computation are the official ones:
    ``cls_hrnet.py`` for classification, ``seg_hrnet.py`` (``ALIGN_CORNERS: False``, as its
    Cityscapes, LIP and PASCAL-Context configs) for segmentation; see
    :func:`~miziha.weights.official.official_to_miziha` to load a checkpoint. Fusion
    upsamples as the head's official code does: nearest neighbour for classification,
    bilinear for segmentation. Any input size works (the official classification network
    needs multiples of 32): stride-2 convs round up, and nearest-upsampled maps are cropped
    to the finer branch's size.

    ``frozen_stages=k`` (see :class:`~miziha.models.common.FrozenStages`) freezes stage 0,
    the stem (``conv1``, ``bn1``, ``conv2``, ``bn2``), and the stages up to ``k``: 1 is
    ``layer1``, 2 ``transition1`` + ``stage2``, 3 ``transition2`` + ``stage3``, 4
    ``transition3`` + ``stage4``; the head is never frozen, -1 freezes nothing.

    There is no network-level recompute: Paddle's recompute runs a segment's forward again
    during backward, which updates BatchNorm running statistics a second time, and every
    layer here has BatchNorm. A mixer's own ``use_recompute`` (a mixer option) recomputes
    its LayerNorm blocks.

    HRNet has no stochastic depth; with a mixer, ``droppath`` is the mixer's.

    Args:
        num_classes: classes of the head (classification: 0 for no classifier, the output
            is then the pooled features ``[B, 2048]``; segmentation: at least 1).
        config: a key of :data:`HRNET_CONFIGS` or an :class:`HRNetConfig`.
        head: ``"classification"`` or ``"segmentation"``.
        mixer: None (3x3 convs), or a key of :data:`miziha.MIXERS`: every BasicBlock of the
            branches (``stage2``..``stage4``) gets that mixer for its ``conv1`` and ``conv2``
            (see :class:`BasicBlock`); stem, ``layer1``, transitions, fusion and heads stay
            convolutions.
        in_channels: image channels.
        frozen_stages: -1 (nothing frozen) .. 4: the stem and the stages up to this one get
            no gradient and keep their BatchNorm statistics.
        **mixer_options: further arguments of every mixer (``window_size``, ``depth``,
            ``droppath``, ``use_recompute``...; heads default per mixer and width, ~32
            channels a head).
    """

    #: Stages ``frozen_stages`` counts after the stem: ``layer1`` and ``stage2``..``stage4``.
    num_stages = 4

    def __init__(self, num_classes: int = 1000, config: Union[str, HRNetConfig] = "w18_small_v2",
                 head: str = "classification", mixer: Optional[str] = None,
                 in_channels: int = 3, frozen_stages: int = -1, **mixer_options) -> None:
        super().__init__()
        self.num_classes = checks.class_count(num_classes)
        self.in_channels = checks.positive_int("in_channels", in_channels)
        frozen_count = frozen_stage_count(frozen_stages, self.num_stages)
        if head not in TASKS:
            raise ValueError(f"head must be one of {TASKS}, got {head!r}")
        if mixer is None and mixer_options:
            raise ValueError(f"mixer options need a mixer (mixer=None builds 3x3 convs), got "
                             f"{sorted(mixer_options)}")
        if mixer is not None:
            mixer_class(mixer)  # a clear error for an unknown name, before building anything
        self.config, self.head_type, self.mixer = _config(config), head, mixer
        channels = list(self.config.channels)

        self.conv1 = nn.Conv2D(in_channels, 64, 3, stride=2, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(64)
        self.conv2 = nn.Conv2D(64, 64, 3, stride=2, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(64)
        self.relu = nn.ReLU()
        self.layer1 = _bottlenecks(64, self.config.layer1_width, self.config.layer1_blocks)
        previous = [self.config.layer1_width * Bottleneck.expansion]
        upsampling = "nearest" if head == "classification" else "bilinear"
        transitions, stages = [], []
        for s, (modules, blocks) in enumerate(zip(self.config.num_modules,
                                                  self.config.num_blocks)):
            current = channels[:s + 2]
            transitions.append(_transition(previous, current))
            stages.append(nn.Sequential(*[
                HighResolutionModule(current, blocks, mixer, mixer_options, upsampling)
                for _ in range(modules)]))
            previous = current
        self.transition1, self.transition2, self.transition3 = transitions
        self.stage2, self.stage3, self.stage4 = stages

        if head == "classification":
            widths = [w * Bottleneck.expansion for w in HEAD_WIDTHS]
            self.incre_modules = nn.LayerList([_bottlenecks(c, w, 1)
                                               for c, w in zip(channels, HEAD_WIDTHS)])
            self.downsamp_modules = nn.LayerList([_conv_bn_relu(c_in, c_out, 3, 2)
                                                  for c_in, c_out in zip(widths, widths[1:])])
            self.final_layer = _conv_bn_relu(widths[-1], NUM_FEATURES, 1)
            self.num_features = NUM_FEATURES
            #: timm's ``feature_location="incre"`` maps (without its stride-2 stem map).
            self.feature_info = [feature_entry(w, 4 * 2 ** i, f"incre_modules.{i}")
                                 for i, w in enumerate(widths)]
        else:
            total = sum(channels)
            self.last_layer = nn.Sequential(nn.Conv2D(total, total, 1), nn.BatchNorm2D(total),
                                            nn.ReLU())  # reset_classifier adds its conv
            self.num_features = total
            #: The branches of ``stage4`` (its output list, in order).
            self.feature_info = [feature_entry(c, 4 * 2 ** i, "stage4")
                                 for i, c in enumerate(channels)]
        self.reset_classifier(self.num_classes)
        if frozen_stages >= 0:
            groups = [[self.layer1]] + [list(pair) for pair in zip(transitions, stages)]
            self.freeze([self.conv1, self.bn1, self.conv2, self.bn2] +
                        [layer for group in groups[:frozen_count] for layer in group])

    def get_classifier(self) -> nn.Layer:
        """The classifier layer: ``classifier`` (an identity when ``num_classes`` is 0) or
        the segmentation head's last 1x1 conv."""
        return self.classifier if self.head_type == "classification" else self.last_layer[3]

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new, freshly initialised classifier for ``num_classes`` (classification: 0
        leaves none, forward then gives the pooled ``[B, 2048]``; segmentation: the last 1x1
        conv of ``last_layer``, at least 1 class). See
        :func:`~miziha.models.common.fitted_head`."""
        num_classes = checks.class_count(num_classes)
        if self.head_type == "classification":
            self.classifier = fitted_head(self, classifier(self.num_features, num_classes),
                                          global_pool)
        elif not num_classes:
            raise ValueError("the segmentation head needs num_classes >= 1, got 0")
        else:
            self.last_layer.add_sublayer("3", fitted_head(
                self, nn.Conv2D(self.num_features, num_classes, 1), global_pool))
        self.num_classes = num_classes

    def forward_branches(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        """``[B, C, H, W]`` -> the 4 outputs of ``stage4``, ``[B, channels[i], H_i, W_i]``
        with ``H_i = ceil(H / 2**(i + 2))``."""
        check_image(x, self.in_channels, "HRNet")
        x = self.relu(self.bn1(self.conv1(x)))
        xs = [self.layer1(self.relu(self.bn2(self.conv2(x))))]
        for transition, stage in ((self.transition1, self.stage2),
                                  (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            xs = stage([layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(transition)])
        return xs

    def forward_intermediates(self, x: paddle.Tensor,
                              indices: Indices = None) -> List[paddle.Tensor]:
        """The maps of ``feature_info`` at ``indices`` (default: all), NCHW, at strides 4, 8,
        16, 32: with the classification head the ``incre_modules`` outputs (128, 256, 512,
        1024 channels, as timm's HRNet features), with the segmentation head the branches
        of ``stage4``."""
        wanted = stage_indices(indices, len(self.feature_info))
        xs = self.forward_branches(x)
        if self.head_type == "classification":
            return [self.incre_modules[i](xs[i]) for i in wanted]
        return [xs[i] for i in wanted]

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> classification: the ``final_layer`` map ``[B, 2048, H/32,
        W/32]`` (unpooled); segmentation: the branches at stride 4, concatenated,
        ``[B, sum(channels), H/4, W/4]`` (sides rounded up)."""
        xs = self.forward_branches(x)
        if self.head_type == "classification":
            y = self.incre_modules[0](xs[0])
            for incre, down, branch in zip(self.incre_modules[1:], self.downsamp_modules,
                                           xs[1:]):
                y = incre(branch) + down(y)
            return self.final_layer(y)
        size = spatial_size(xs[0], height_axis=2)
        return paddle.concat([xs[0]] + [F.interpolate(branch, size=size, mode="bilinear",
                                                      align_corners=False)
                                        for branch in xs[1:]], axis=1)

    def forward_head(self, x: paddle.Tensor, pre_logits: bool = False,
                     output_size: Optional[Tuple[Size, Size]] = None) -> paddle.Tensor:
        """Features (:meth:`forward_features`) -> logits.

        Classification: ``[B, 2048, h, w]`` -> ``[B, num_classes]`` (``pre_logits``: the
        pooled ``[B, 2048]``). Segmentation: ``[B, sum(channels), h, w]`` -> ``[B,
        num_classes, h, w]``, bilinearly resized to ``output_size`` if given
        (``pre_logits``: the 1x1 conv+BN+ReLU map, not resized).
        """
        if self.head_type == "classification":
            if output_size is not None:
                raise ValueError("output_size goes with the segmentation head")
            x = x.mean(axis=[2, 3])
            return x if pre_logits else self.classifier(x)
        x = self.last_layer[:3](x)
        if pre_logits:
            return x
        x = self.last_layer[3](x)
        if output_size is None:
            return x
        return F.interpolate(x, size=list(output_size), mode="bilinear", align_corners=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``[B, C, H, W]`` -> logits ``[B, num_classes]`` (``num_classes=0``: the pooled
        features ``[B, 2048]``) or ``[B, num_classes, H, W]``."""
        output_size = spatial_size(x, height_axis=2) \
            if self.head_type == "segmentation" else None
        return self.forward_head(self.forward_features(x), output_size=output_size)


def _register(config: str, mixer: Optional[str], task: str) -> Callable[..., HRNet]:
    classes = 1000 if task == "classification" else 2
    if mixer:
        def builder(num_classes: int = classes, droppath: float = 0.0, **kwargs) -> HRNet:
            return HRNet(num_classes, config, head=task, mixer=mixer, droppath=droppath,
                         **kwargs)
    else:
        def builder(num_classes: int = classes, in_channels: int = 3,
                    frozen_stages: int = -1) -> HRNet:
            return HRNet(num_classes, config, head=task, in_channels=in_channels,
                         frozen_stages=frozen_stages)
    builder.__name__ = (f"{mixer}_" if mixer else "") + f"hrnet_{config}" + \
        ("_seg" if task == "segmentation" else "")
    builder.__doc__ = (f"HRNet with the {config!r} config (:data:`HRNET_CONFIGS`) for {task}" +
                       (f", the {mixer!r} mixer in every branch BasicBlock" if mixer else "") +
                       " (:class:`HRNet`).")
    return register_model(task, mixer)(builder)


#: Every registered HRNet builder by name: ``hrnet_<config>[_seg]`` for every config,
#: ``<mixer>_hrnet_<config>[_seg]`` for those of :data:`MIXER_CONFIGS`.
HRNET_BUILDERS: Dict[str, Callable[..., HRNet]] = {
    builder.__name__: builder
    for builder in (_register(config, mixer, task) for config in HRNET_CONFIGS
                    for mixer in (None, *(MIXERS if config in MIXER_CONFIGS else ()))
                    for task in TASKS)}
hrnet_w18_small_v2 = HRNET_BUILDERS["hrnet_w18_small_v2"]
hrnet_w18 = HRNET_BUILDERS["hrnet_w18"]
hrnet_w18_small_v2_seg = HRNET_BUILDERS["hrnet_w18_small_v2_seg"]
hrnet_w18_seg = HRNET_BUILDERS["hrnet_w18_seg"]
swin_hrnet_w18_small_v2 = HRNET_BUILDERS["swin_hrnet_w18_small_v2"]
swin_hrnet_w18_small_v2_seg = HRNET_BUILDERS["swin_hrnet_w18_small_v2_seg"]


def _paddleclas_fuse_pairs() -> tuple:
    """PaddleClas's ``st{s}...fuse_func.residual_func_list.{n}`` (one flat list per module,
    in the order its forward walks them) -> the official ``fuse_layers.{i}.{j}[.{k}]``."""
    pairs = []
    for stage in (2, 3, 4):
        index = 0
        for i in range(stage):
            for j in range(stage):
                targets = [f"{i}.{j}"] if j > i else \
                    [f"{i}.{j}.{k}" for k in range(i - j)] if j < i else []
                for target in targets:
                    pairs.append((rf"^st{stage}\.stage_func_list\.(\d+)\.fuse_func\."
                                  rf"residual_func_list\.{index}\.",
                                  rf"stage{stage}.\1.fuse_layers.{target}."))
                    index += 1
    return tuple(pairs)


#: Source -> ordered (pattern, replacement) pairs for re.sub, applied to each key of a
#: checkpoint from that source to give miziha's (= the official) key
#: (:func:`miziha.weights.load_pretrained`). PaddleClas (``legendary_models/hrnet.py``,
#: ``HRNet_W{18..64}_C``) names its layers ``conv_layer1_1``, ``conv_tr1_1``, ``st2`` ...
#: and wraps each conv and BN in ``ConvBNLayer`` (``.conv`` / ``.bn``); its modules always
#: have 4 blocks a branch, as ``hrnet_w18``. timm keeps the official names.
KEY_MAPS: dict[str, tuple[tuple[str, str], ...]] = {
    "timm": (),
    "paddleclas": (
        (r"^conv_layer1_1\.conv\.", "conv1."), (r"^conv_layer1_1\.bn\.", "bn1."),
        (r"^conv_layer1_2\.conv\.", "conv2."), (r"^conv_layer1_2\.bn\.", "bn2."),
        (r"^conv_tr1_1\.", "transition1.0."), (r"^conv_tr1_2\.", "transition1.1.0."),
        (r"^conv_tr2\.", "transition2.2.0."), (r"^conv_tr3\.", "transition3.3.0."),
        (r"^st(\d)\.stage_func_list\.(\d+)\.basic_block_list\.", r"stage\1.\2.branches."),
        *_paddleclas_fuse_pairs(),
        (r"^last_cls\.func_list\.(\d+)\.", r"incre_modules.\1.0."),
        (r"^cls_head_conv_list\.(\d+)\.conv\.", r"downsamp_modules.\1.0."),
        (r"^cls_head_conv_list\.(\d+)\.bn\.", r"downsamp_modules.\1.1."),
        (r"^conv_last\.conv\.", "final_layer.0."), (r"^conv_last\.bn\.", "final_layer.1."),
        (r"^fc\.", "classifier."),
        (r"\.conv_down\.conv\.", ".downsample.0."), (r"\.conv_down\.bn\.", ".downsample.1."),
        (r"\.conv(\d)\.conv\.", r".conv\1."), (r"\.conv(\d)\.bn\.", r".bn\1."),
        (r"\.conv\.", ".0."), (r"\.bn\.", ".1."),
    ),
}

#: Source -> patterns of model keys that source does not have, loaded as zeros: PaddleClas's
#: ``downsamp_modules`` and ``final_layer`` convs have no bias (21,295,164 parameters for
#: W18 against the official 21,299,004); a BatchNorm follows each, so zeros give the same
#: function.
ZERO_FILLS: dict[str, tuple[str, ...]] = {
    "paddleclas": (r"^downsamp_modules\.\d+\.0\.bias$", r"^final_layer\.0\.bias$"),
}

# timm's ``hrnet_w18_ssld`` / ``hrnet_w48_ssld`` (PaddleClas's SSLD weights, official names)
# are built with ``head_conv_bias=False``: the same biases are absent from their files.
ZERO_FILLS["timm"] = ZERO_FILLS["paddleclas"]
