"""Parameters and multiply-accumulates (``miziha.flops``) of the networks miziha compares.

Usage: python examples/model_costs.py [--sizes 224 32]
"""

from __future__ import annotations

import argparse

import paddle

import miziha
from miziha.models import create_model

#: Table rows: label -> (registry name, options).
MODELS = {
    "ResNet50 (baseline head)": ("resnet50", dict(num_classes=10)),
    "SwinResNet50": ("swin_resnet50", dict(num_classes=10)),
    "SwinResNet50, conv last stage": ("swin_resnet50_reference", dict(num_classes=10)),
}
SEGMENTATION_MODELS = {"UNet": ("unet", dict(num_classes=2)),
                       "SwinUNet": ("swin_unet", dict(num_classes=2))}
IMAGENET_MODELS = {"ResNet50 (reference head, 1000 classes)": ("resnet50", dict(num_classes=1000)),
                   "Swin-T (1000 classes)": ("swin_tiny_patch4_window7_224",
                                             dict(num_classes=1000))}


def _table(models, sizes, base_label: str) -> str:
    """Markdown rows of params and GMACs, each size's first model the ratio's base."""
    lines = [f"| model | input | params (M) | GMACs | x {base_label} |", "|---|---|---|---|---|"]
    for size in sizes:
        base = None
        for name, (model, options) in models.items():
            report = miziha.flops(create_model(model, **options), [3, size, size])
            base = base or report.total_macs
            lines.append(f"| {name} | {size}x{size} | {report.total_params / 1e6:.2f} | "
                         f"{report.total_macs / 1e9:.3f} | {report.total_macs / base:.2f} |")
    return "\n".join(lines)


def cost_table(sizes) -> str:
    """ResNet50 vs SwinResNet50 (both layouts), relative to ResNet50."""
    return _table(MODELS, sizes, "ResNet50")


def unet_table(size: int = 128) -> str:
    """UNet vs SwinUNet (2 classes, widths 32-256) at ``size`` x ``size``."""
    return _table(SEGMENTATION_MODELS, [size], "UNet")


def swin_table(size: int = 224) -> str:
    """Swin-T vs Paddle's ResNet50, both with 1000 classes, at ``size`` x ``size``."""
    return _table(IMAGENET_MODELS, [size], "ResNet50")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 32],
                        help="square input sides to count at")
    args = parser.parse_args(argv)
    paddle.seed(0)
    print(cost_table(args.sizes))
    print()
    print(unet_table())
    print()
    print(swin_table())


if __name__ == "__main__":
    main()
