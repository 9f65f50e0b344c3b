"""HRNet (Wang et al., "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI 2020) with its classification head and its segmentation head, under
the official parameter names; with a mixer in the branches' basic blocks instead of their
3x3 convolutions, an HRFormer-like network.

Registry names (timm's for the plain networks): ``hrnet_w18_small_v2`` and ``hrnet_w18``
(classification), ``hrnet_w18_small_v2_seg`` and ``hrnet_w18_seg`` (segmentation), and
``<mixer>_`` + each of these for every key of :data:`miziha.MIXERS`
(``swin_hrnet_w18_small_v2``, ``swin_hrnet_w18_small_v2_seg``, ``cyclemlp_hrnet_w18``...).
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import checks
from ..layers.basic import linear
from ..mixers.registry import MIXERS, mixer_class
from ..layers.shapes import Size, spatial_size
from .common import ConvBN, check_image
from .features import feature_entry, stage_indices
from .registry import TASKS, register_model

__all__ = ["HRNetConfig", "HRNET_CONFIGS", "BasicBlock", "Bottleneck", "HighResolutionModule",
           "HRNet", "HRNET_BUILDERS", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w18_small_v2_seg",
           "hrnet_w18_seg", "swin_hrnet_w18_small_v2", "swin_hrnet_w18_small_v2_seg"]

# Every BatchNorm2D keeps Paddle's defaults, momentum 0.9 and epsilon 1e-5: the official
# BN_MOMENTUM 0.1 and eps in PyTorch's convention (new = 0.9 * old + 0.1 * batch).


class HRNetConfig(NamedTuple):
    """One HRNet width/depth setting (the ``MODEL.EXTRA`` of the official configs).

    Attributes:
        layer1_blocks: Bottlenecks (64 wide, 256 out) in ``layer1``, at stride 4.
        num_modules: HighResolutionModules in ``stage2``, ``stage3``, ``stage4``.
        num_blocks: BasicBlocks per branch in each module of ``stage2``..``stage4``.
        channels: channels of the branches at strides 4, 8, 16, 32 (``stage{s}`` has the
            first ``s`` branches).
    """

    layer1_blocks: int
    num_modules: Tuple[int, int, int]
    num_blocks: Tuple[int, int, int]
    channels: Tuple[int, int, int, int]


#: The official ``cls_hrnet_w18_small_v2`` and ``cls_hrnet_w18`` experiment configs.
HRNET_CONFIGS: Dict[str, HRNetConfig] = {
    "w18_small_v2": HRNetConfig(2, (1, 3, 2), (2, 2, 2), (18, 36, 72, 144)),
    "w18": HRNetConfig(4, (1, 4, 3), (4, 4, 4), (18, 36, 72, 144)),
}

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


def _upsample_like(x: paddle.Tensor, like: paddle.Tensor, factor: int) -> paddle.Tensor:
    """Nearest upsampling by ``factor`` (the official ``nn.Upsample``), cropped to
    ``like``'s size: output pixel ``i`` comes from ``i // factor`` also when a stride-2
    conv rounded a side up (odd sizes, where the official network fails). Each pixel is
    repeated by ``expand`` rather than ``F.interpolate`` (workaround 14)."""
    height, width = spatial_size(like, height_axis=2)
    rows, cols = spatial_size(x, height_axis=2)
    up = x.reshape([0, 0, rows, 1, cols, 1]).expand([-1, -1, -1, factor, -1, factor])
    return up.reshape([0, 0, rows * factor, cols * factor])[:, :, :height, :width]


class HighResolutionModule(nn.Layer):
    """Parallel branches of BasicBlocks, then every output the ReLU of the sum of all
    branches brought to its resolution (``fuse_layers[i][j]``: for ``j > i`` a 1x1 ConvBN
    then nearest upsampling, for ``j < i`` ``i - j`` stride-2 3x3 ConvBNs, ReLU between).

    Maps ``len(channels)`` maps ``[B, channels[i], H_i, W_i]`` to maps of the same shapes.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, mixer: Optional[str] = None,
                 mixer_options: Optional[dict] = None) -> None:
        super().__init__()
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
                x = _upsample_like(fuse(x), xs[i], 2 ** (j - i)) if j > i else fuse(x)
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


class HRNet(nn.Layer):
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

    With ``mixer=None`` the parameter names and layout are the official ones
    (``cls_hrnet.py``; ``last_layer`` as in ``seg_hrnet.py``): see
    :func:`~miziha.weights.official.official_to_miziha` to load a checkpoint. Fusion
    upsamples by nearest neighbour as the classification code does (the segmentation code
    uses bilinear there). Sides that are not multiples of 32 work: stride-2 convs round up,
    upsampled maps are cropped to the finer branch's size.

    Args:
        num_classes: classes of the head (>= 1).
        config: a key of :data:`HRNET_CONFIGS` or an :class:`HRNetConfig`.
        head: ``"classification"`` or ``"segmentation"``.
        mixer: None (3x3 convs), or a key of :data:`miziha.MIXERS`: every BasicBlock of the
            branches (``stage2``..``stage4``) gets that mixer for its ``conv1`` and ``conv2``
            (see :class:`BasicBlock`); stem, ``layer1``, transitions, fusion and heads stay
            convolutions.
        in_channels: image channels.
        **mixer_options: further arguments of every mixer (``window_size``, ``depth``,
            ``droppath``...; heads default per mixer and width, ~32 channels a head).
    """

    def __init__(self, num_classes: int = 1000, config: Union[str, HRNetConfig] = "w18_small_v2",
                 head: str = "classification", mixer: Optional[str] = None,
                 in_channels: int = 3, **mixer_options) -> None:
        super().__init__()
        self.num_classes = checks.positive_int("num_classes", num_classes)
        self.in_channels = checks.positive_int("in_channels", in_channels)
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
        self.layer1 = _bottlenecks(64, 64, self.config.layer1_blocks)
        previous = [64 * Bottleneck.expansion]
        transitions, stages = [], []
        for s, (modules, blocks) in enumerate(zip(self.config.num_modules,
                                                  self.config.num_blocks)):
            current = channels[:s + 2]
            transitions.append(_transition(previous, current))
            stages.append(nn.Sequential(*[
                HighResolutionModule(current, blocks, mixer, mixer_options)
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
            self.classifier = linear(NUM_FEATURES, self.num_classes)
            #: timm's ``feature_location="incre"`` maps (without its stride-2 stem map).
            self.feature_info = [feature_entry(w, 4 * 2 ** i, f"incre_modules.{i}")
                                 for i, w in enumerate(widths)]
        else:
            total = sum(channels)
            self.last_layer = nn.Sequential(
                nn.Conv2D(total, total, 1), nn.BatchNorm2D(total), nn.ReLU(),
                nn.Conv2D(total, self.num_classes, 1))
            #: The branches of ``stage4`` (its output list, in order).
            self.feature_info = [feature_entry(c, 4 * 2 ** i, "stage4")
                                 for i, c in enumerate(channels)]

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
                              indices: Optional[Sequence[int]] = None) -> List[paddle.Tensor]:
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
        """``[B, C, H, W]`` -> logits ``[B, num_classes]`` or ``[B, num_classes, H, W]``."""
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
        def builder(num_classes: int = classes, **kwargs) -> HRNet:
            return HRNet(num_classes, config, head=task, **kwargs)
    builder.__name__ = (f"{mixer}_" if mixer else "") + f"hrnet_{config}" + \
        ("_seg" if task == "segmentation" else "")
    builder.__doc__ = (f"HRNet with the {config!r} config (:data:`HRNET_CONFIGS`) for {task}" +
                       (f", the {mixer!r} mixer in every branch BasicBlock" if mixer else "") +
                       " (:class:`HRNet`).")
    return register_model(task, mixer)(builder)


#: Every registered HRNet builder by name: ``[<mixer>_]hrnet_<config>[_seg]``.
HRNET_BUILDERS: Dict[str, Callable[..., HRNet]] = {
    builder.__name__: builder
    for builder in (_register(config, mixer, task) for config in HRNET_CONFIGS
                    for mixer in (None, *MIXERS) for task in TASKS)}
hrnet_w18_small_v2 = HRNET_BUILDERS["hrnet_w18_small_v2"]
hrnet_w18 = HRNET_BUILDERS["hrnet_w18"]
hrnet_w18_small_v2_seg = HRNET_BUILDERS["hrnet_w18_small_v2_seg"]
hrnet_w18_seg = HRNET_BUILDERS["hrnet_w18_seg"]
swin_hrnet_w18_small_v2 = HRNET_BUILDERS["swin_hrnet_w18_small_v2"]
swin_hrnet_w18_small_v2_seg = HRNET_BUILDERS["swin_hrnet_w18_small_v2_seg"]
