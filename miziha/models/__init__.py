"""Networks built with miziha's mixers, and the registry that names them
(:func:`create_model`, :func:`list_models`)."""

from .registry import MODELS, create_model, list_models, register_model
from .hrnet import (HRNET_CONFIGS, HRNet, HRNetConfig, hrnet_w18, hrnet_w18_seg,
                    hrnet_w18_small_v2, hrnet_w18_small_v2_seg, swin_hrnet_w18_small_v2,
                    swin_hrnet_w18_small_v2_seg)
from .resnet import (ResNet50, SwinBottleneck, SwinResNet, resnet50, swin_resnet50,
                     swin_resnet50_reference)
from .swin import PatchEmbed, SwinTransformer, swin_tiny
from .swinv2 import (SwinTransformerV2, swinv2_base_window8_256, swinv2_base_window16_256,
                     swinv2_small_window8_256, swinv2_small_window16_256,
                     swinv2_tiny_window8_256, swinv2_tiny_window16_256)
from .unet import SwinUNet, UNet

__all__ = ["MODELS", "create_model", "list_models", "register_model",
           "SwinBottleneck", "SwinResNet", "ResNet50", "swin_resnet50", "swin_resnet50_reference",
           "resnet50",
           "UNet", "SwinUNet", "PatchEmbed", "SwinTransformer", "swin_tiny",
           "SwinTransformerV2", "swinv2_tiny_window8_256", "swinv2_tiny_window16_256",
           "swinv2_small_window8_256", "swinv2_small_window16_256", "swinv2_base_window8_256",
           "swinv2_base_window16_256",
           "HRNet", "HRNetConfig", "HRNET_CONFIGS", "hrnet_w18_small_v2", "hrnet_w18",
           "hrnet_w18_small_v2_seg", "hrnet_w18_seg", "swin_hrnet_w18_small_v2",
           "swin_hrnet_w18_small_v2_seg"]
