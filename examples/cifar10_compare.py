"""SwinResNet vs ResNet50 on CIFAR-10: test accuracy and training speed side by side.

The defaults are the reference experiment's protocol (--recipe reference): SwinResNet at
224x224 (CIFAR images resized), ResNet50 at 224x224 and at 32x32, plus SwinResNet at 32x32;
40 epochs, batch 80, Momentum(lr 0.01, momentum 0.9, L2 1e-4), no augmentation.
--recipe modern trains as vision transformers are trained (AdamW, warm-up and cosine decay,
label smoothing, stochastic depth, crop and flip); any option given overrides the recipe.
--seeds N trains every model N times and reports mean, spread and a verdict per pair.
Outputs go to --output: results.json, results.md, comparison.png, VisualDL logs (vdl/) and
checkpoints/.

  python examples/cifar10_compare.py --data-file ~/cifar-10-python.tar.gz
  python examples/cifar10_compare.py --quick            # the `make demo` run (digits, CPU)
  python examples/cifar10_compare.py --recipe modern --seeds 3 --models pale_resnet50@32 resnet50@32
  python -m paddle.distributed.launch --devices 0,1 examples/cifar10_compare.py ...
  python examples/cifar10_compare.py --resume           # continue an interrupted run
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

# Paddle's import and BatchNorm notices say nothing about this run; keep the output readable.
warnings.filterwarnings("ignore", category=UserWarning, module="paddle")

from miziha.experiments import CompareOptions, run_comparison
from miziha.experiments.cli import (add_recipe_option, add_training_options,
                                    parse_with_recipe, train_config)
from miziha.experiments.compare import REFERENCE_MODELS
from miziha.models import list_models
from miziha.experiments.data import DataUnavailable

#: ``--quick``: the CPU run of ``make demo``: all of scikit-learn's digits (a fixed,
#: stratified 80/20 split), both models to convergence with the modern recipe's optimizer
#: as a short one-cycle schedule (peak lr 2e-3, a third of the steps warming up, cosine to
#: 0), no augmentation or stochastic depth (two epochs leave no room for them), and the
#: 224x224 pair timed. Any option given explicitly wins.
QUICK = dict(dataset="digits", models=["swin_resnet50@32", "resnet50@32"], recipe="modern",
             epochs=2, batch_size=32, lr=2e-3, warmup_epochs=2 / 3, augment=False,
             droppath=0.0, speed_models=["swin_resnet50@224", "resnet50@224"],
             speed_batch=2, speed_steps=2, output="runs/demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--models", nargs="+", default=list(REFERENCE_MODELS), metavar="ARCH@SIZE",
        help=f"models to train, each an architecture "
             f"({', '.join(list_models(task='classification'))}) and "
             f"the square input side its images are resized to (default: %(default)s)")
    add("--dataset", choices=["cifar10", "digits"], default="cifar10",
        help="cifar10 (downloads, or --data-file), or scikit-learn's handwritten digits "
             "(offline, 8x8 scans upsampled, 80/20 split) (default: %(default)s)")
    add("--data-file", help="a local cifar-10-python.tar.gz, for machines without internet")
    add("--limit-train", type=int, help="use only this many training images (smoke runs)")
    add("--limit-test", type=int, help="use only this many test images")
    add("--seeds", type=int, default=1,
        help="train every model this many times, with seeds --seed, --seed + 1, ...; the "
             "results give mean, spread and a verdict per pair (default: %(default)s)")
    add_recipe_option(parser)
    add_training_options(parser, epochs=40, batch_size=80, lr=0.01,
                         output="runs/cifar10_compare")
    add("--speed-models", nargs="*", default=[], metavar="ARCH@SIZE",
        help="models timed on a few training steps only, reported apart as speed-only")
    add("--speed-batch", type=int, default=8, help="batch of the speed-only runs "
                                                   "(default: %(default)s)")
    add("--speed-steps", type=int, default=3, help="timed steps of the speed-only runs "
                                                   "(default: %(default)s)")
    add("--quick", action="store_true",
        help="the CPU demo: " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
            for k, v in QUICK.items()))
    return parser


def parse_options(argv=None) -> CompareOptions:
    parser = build_parser()
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    args = parse_with_recipe(parser, argv, QUICK if quick else None)
    if args.data_file and args.dataset != "cifar10":
        raise ValueError(f"--data-file is a CIFAR-10 archive; it cannot go with --dataset "
                         f"{args.dataset}")
    config = train_config(args)
    return CompareOptions(models=args.models, dataset=args.dataset, data_file=args.data_file,
                          limit_train=args.limit_train, limit_test=args.limit_test,
                          output=Path(args.output), resume=args.resume,
                          overwrite=args.overwrite,
                          speed_models=args.speed_models, speed_batch=args.speed_batch,
                          speed_steps=args.speed_steps, seeds=args.seeds,
                          recipe=args.recipe, config=config)


def main(argv=None) -> int:
    try:
        options = parse_options(argv)
        run_comparison(options)
    except (ValueError, DataUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
