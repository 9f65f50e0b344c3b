"""Networks built with SwinT."""

from .unet import SwinUNet, UNet
from .swin import PatchEmbed, SwinTransformer, official_to_miziha, swin_tiny
from .resnet import SwinBottleneck, SwinResNet, resnet50_baseline, swin_resnet50

__all__ = ["SwinBottleneck", "SwinResNet", "swin_resnet50", "resnet50_baseline",
           "UNet", "SwinUNet", "PatchEmbed", "SwinTransformer", "swin_tiny",
           "official_to_miziha"]
