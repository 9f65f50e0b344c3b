"""Networks built with miziha's mixers, and the registry that names them
(:func:`create_model`, :func:`list_models`)."""

from .registry import MODELS, create_model, list_models, register_model
from .resnet import (ResNet50, SwinBottleneck, SwinResNet, resnet50, swin_resnet50,
                     swin_resnet50_reference)
from .swin import PatchEmbed, SwinTransformer, official_to_miziha, swin_tiny
from .unet import SwinUNet, UNet

__all__ = ["MODELS", "create_model", "list_models", "register_model",
           "SwinBottleneck", "SwinResNet", "ResNet50", "swin_resnet50", "swin_resnet50_reference",
           "resnet50",
           "UNet", "SwinUNet", "PatchEmbed", "SwinTransformer", "swin_tiny",
           "official_to_miziha"]
