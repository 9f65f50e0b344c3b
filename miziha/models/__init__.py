"""Networks built with miziha's mixers, and the registry that names them
(:func:`create_model`, :func:`list_models`)."""

from .registry import MODELS, create_model, list_models, register_model
from .asmlp import ASMLP, asmlp_base, asmlp_small, asmlp_tiny
from .cyclemlp import (CycleNet, cyclemlp_b1, cyclemlp_b2, cyclemlp_b3, cyclemlp_b4,
                       cyclemlp_b5)
from .cswin import (CSWinStage, CSWinTransformer, ConvEmbed, cswin_base_224,
                    cswin_base_384, cswin_large_224, cswin_large_384, cswin_small_224,
                    cswin_tiny_224)
from .hrnet import (HRNET_CONFIGS, HRNet, HRNetConfig, hrnet_w18, hrnet_w18_seg,
                    hrnet_w18_small_v2, hrnet_w18_small_v2_seg, swin_hrnet_w18_small_v2,
                    swin_hrnet_w18_small_v2_seg)
from .resnet import (ResNet50, SwinBottleneck, SwinResNet, resnet50, swin_resnet50,
                     swin_resnet50_reference)
from .swin import (PatchEmbed, SwinTransformer, swin_base_patch4_window7_224,
                   swin_base_patch4_window12_384, swin_large_patch4_window7_224,
                   swin_large_patch4_window12_384, swin_small_patch4_window7_224,
                   swin_tiny_patch4_window7_224)
from .swinv2 import (SwinTransformerV2, swinv2_base_window8_256, swinv2_base_window16_256,
                     swinv2_small_window8_256, swinv2_small_window16_256,
                     swinv2_tiny_window8_256, swinv2_tiny_window16_256)
from .unet import SwinUNet, UNet
from .pale import PaleTransformer, pale_base, pale_small, pale_tiny

__all__ = ["MODELS", "create_model", "list_models", "register_model",
           "SwinBottleneck", "SwinResNet", "ResNet50", "swin_resnet50", "swin_resnet50_reference",
           "resnet50",
           "UNet", "SwinUNet", "PatchEmbed", "SwinTransformer", "swin_tiny_patch4_window7_224",
           "swin_small_patch4_window7_224", "swin_base_patch4_window7_224",
           "swin_base_patch4_window12_384", "swin_large_patch4_window7_224",
           "swin_large_patch4_window12_384",
           "SwinTransformerV2", "swinv2_tiny_window8_256", "swinv2_tiny_window16_256",
           "swinv2_small_window8_256", "swinv2_small_window16_256", "swinv2_base_window8_256",
           "swinv2_base_window16_256",
           "HRNet", "HRNetConfig", "HRNET_CONFIGS", "hrnet_w18_small_v2", "hrnet_w18",
           "hrnet_w18_small_v2_seg", "hrnet_w18_seg", "swin_hrnet_w18_small_v2",
           "swin_hrnet_w18_small_v2_seg",
           "CycleNet", "cyclemlp_b1", "cyclemlp_b2", "cyclemlp_b3", "cyclemlp_b4", "cyclemlp_b5",
           "ASMLP", "asmlp_tiny", "asmlp_small", "asmlp_base",
           "ConvEmbed", "CSWinStage", "CSWinTransformer", "cswin_tiny_224", "cswin_small_224",
           "cswin_base_224", "cswin_base_384", "cswin_large_224", "cswin_large_384",
           "PaleTransformer", "pale_tiny", "pale_small", "pale_base"]
