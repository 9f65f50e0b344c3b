"""Swap the 3x3 convolutions of a paddle.vision model for a mixer with miziha.replace_conv.

Prints what was replaced and skipped, parameters and MACs before and after, and runs one
forward pass of the converted model.

  python examples/replace_conv.py resnet18 --size 224
  python examples/replace_conv.py vgg11 --size 64 --window-size 4
  python examples/replace_conv.py resnet50 --mixer swin --size 64
"""

from __future__ import annotations

import argparse
import sys

import paddle

import miziha

#: paddle.vision.models factories this example accepts.
MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "vgg11", "vgg16", "mobilenet_v2")


def convert(name: str, size: int = 224, num_classes: int = 10, mixer: str = "swin",
            **mixer_options) -> dict:
    """Build ``paddle.vision.models.<name>``, replace its 3x3 convs by ``mixer`` and measure
    both versions.

    Returns: ``report`` (the ReplaceReport), ``before``/``after`` (FlopsReports) and the
    converted model's ``output_shape`` on a ``[1, 3, size, size]`` input.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    model = getattr(paddle.vision.models, name)(num_classes=num_classes)
    before = miziha.flops(model, [3, size, size])
    model, report = miziha.replace_conv(model, mixer, **mixer_options)
    after = miziha.flops(model, [3, size, size])
    model.eval()
    with paddle.no_grad():
        output = model(paddle.randn([1, 3, size, size]))
    return {"report": report, "before": before, "after": after,
            "output_shape": list(output.shape)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=MODELS, help="paddle.vision.models factory")
    parser.add_argument("--size", type=int, default=224, help="input side (default: "
                                                              "%(default)s)")
    parser.add_argument("--num-classes", type=int, default=10, help="classes (default: "
                                                                     "%(default)s)")
    parser.add_argument("--mixer", choices=sorted(miziha.MIXERS), default="swin",
                        help="mixer replacing the 3x3 convs (default: %(default)s)")
    parser.add_argument("--window-size", type=int, default=7, help="SwinT window, with "
                                                                    "--mixer swin (default: "
                                                                    "%(default)s)")
    args = parser.parse_args(argv)
    options = {"window_size": args.window_size} if args.mixer == "swin" else {}
    result = convert(args.model, args.size, args.num_classes, args.mixer, **options)
    before, after = result["before"], result["after"]
    print(result["report"])
    print()
    print(result["after"].table(mixers_only=True))
    print()
    print(f"| {args.model} @ {args.size} | params (M) | GMACs |\n|---|---|---|\n"
          f"| before | {before.total_params / 1e6:.2f} | {before.total_macs / 1e9:.3f} |\n"
          f"| after replace_conv ({args.mixer}) | {after.total_params / 1e6:.2f} | "
          f"{after.total_macs / 1e9:.3f} |")
    print(f"\none forward pass: input [1, 3, {args.size}, {args.size}] -> output "
          f"{result['output_shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
