"""UNet vs SwinUNet (same widths and depth) on segmentation: mIoU, pixel accuracy, speed.

Without --data-dir the data is a generated shapes dataset (discs, squares, triangles on a
noisy background): synthetic, and labelled so wherever results are printed. With --data-dir,
any folder laid out as images/<name>.{png,jpg} and masks/<name>.png (one class index per pixel).
Outputs in --output: results.json, results.md, comparison.png, predictions.png (inputs, ground
truth, both models' predictions), VisualDL logs (vdl/) and checkpoints/.

  python examples/swin_unet_segmentation.py                      # synthetic shapes, CPU minutes
  python examples/swin_unet_segmentation.py --data-dir DIR --size 128 --epochs 40
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

#: The default protocol (see ``--recipe``).
DEFAULT_RECIPE = "transformer"

# Paddle's import and BatchNorm notices say nothing about this run; keep the output readable.
warnings.filterwarnings("ignore", category=UserWarning, module="paddle")

from miziha.experiments.cli import (add_recipe_option, add_training_options,
                                    parse_with_recipe, train_config)
from miziha.experiments.recipes import SEGMENTATION_RECIPES
from miziha.experiments.segmentation import (DEFAULT_MODELS, SegmentationOptions,
                                             run_segmentation)
from miziha.models import list_models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME",
        help=f"segmentation models of the registry "
             f"({', '.join(list_models(task='segmentation'))}) (default: %(default)s)")
    add("--data-dir", help="folder with images/ and masks/ (default: generated shapes)")
    add("--size", type=int, default=48, help="square side images are resized or generated at "
                                             "(default: %(default)s)")
    add("--samples", type=int, default=2000, help="generated samples, 80/20 train/test "
                                                  "(default: %(default)s)")
    add("--num-classes", type=int, help="classes in --data-dir masks (default: max + 1)")
    add("--widths", type=int, nargs="+", default=[16, 32, 64, 128],
        help="channels per UNet level, for both models (default: %(default)s)")
    add("--window-size", type=int, default=7, help="SwinT window (default: %(default)s)")
    add("--limit-train", type=int, help="use only this many training images")
    add("--limit-test", type=int, help="use only this many test images")
    add_training_options(parser, epochs=3, batch_size=8, lr=0.05,
                         output="runs/swin_unet_segmentation")
    add_recipe_option(parser, SEGMENTATION_RECIPES, default=DEFAULT_RECIPE)
    return parser


def parse_options(argv=None) -> SegmentationOptions:
    args = parse_with_recipe(build_parser(), argv)
    if args.num_classes is not None and not args.data_dir:
        raise ValueError("--num-classes describes --data-dir masks; the generated shapes have "
                         "4 classes")
    config = train_config(args)
    return SegmentationOptions(models=args.models, recipe=args.recipe,
                               data_dir=args.data_dir, size=args.size, samples=args.samples,
                               num_classes=args.num_classes, widths=args.widths,
                               window_size=args.window_size, limit_train=args.limit_train,
                               limit_test=args.limit_test, output=Path(args.output),
                               resume=args.resume, overwrite=args.overwrite, config=config)


def main(argv=None) -> int:
    try:
        run_segmentation(parse_options(argv))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
