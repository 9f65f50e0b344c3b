"""Command-line options shared by the example scripts."""

from __future__ import annotations

import argparse
from typing import List, Optional

from .recipes import RECIPES
from .trainer import LOSSES, OPTIMIZERS, SCHEDULES, TrainConfig

__all__ = ["add_training_options", "add_recipe_option", "parse_with_recipe", "train_config"]


def add_training_options(parser: argparse.ArgumentParser, epochs: int, batch_size: int,
                         lr: float, output: str) -> None:
    """The protocol options (epochs, batch, optimizer, schedule, regularisation, AMP, seed,
    timing warm-up) and the output/resume pair, with the given defaults."""
    add = parser.add_argument
    add("--epochs", type=int, default=epochs, help="training epochs (default: %(default)s)")
    add("--batch-size", type=int, default=batch_size,
        help="batch size per process (default: %(default)s)")
    add("--optimizer", choices=OPTIMIZERS, default="momentum",
        help="momentum (L2 decay) or adamw (decoupled decay) (default: %(default)s)")
    add("--lr", type=float, default=lr, help="peak learning rate (default: %(default)s)")
    add("--momentum", type=float, default=0.9, help="momentum (default: %(default)s)")
    add("--weight-decay", type=float, default=1e-4,
        help="weight decay: L2 with momentum, decoupled with adamw (default: %(default)s)")
    add("--schedule", choices=SCHEDULES, default="constant",
        help="learning rate after the warm-up (default: %(default)s)")
    add("--warmup-epochs", type=float, default=None,
        help="linear learning-rate warm-up, in epochs (fractions allowed) (default: none, "
             "or the recipe's share of the epochs)")
    add("--label-smoothing", type=float, default=0.0,
        help="label smoothing of the training loss (default: %(default)s)")
    add("--loss", choices=LOSSES, default="ce",
        help="training loss: ce, or ce+dice (segmentation: 0.4 CE + 0.6 Dice) "
             "(default: %(default)s)")
    add("--augment", action=argparse.BooleanOptionalAction, default=False,
        help="light augmentation: random crop (zero padding of 1/8 the side) and flip for "
             "classification; flip and random resized crop of image and mask for "
             "segmentation (default: off, or the recipe's)")
    add("--droppath", type=float, default=0.0,
        help="stochastic depth of the models that have it (default: %(default)s)")
    add("--amp", action="store_true", help="float16 mixed precision (O1) on GPUs that support "
                                           "it; on CPU a notice is printed and fp32 is used")
    add("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add("--warmup-steps", type=int, default=2,
        help="training steps left out of the timing (default: %(default)s)")
    add("--output", default=output, help="output folder (default: %(default)s)")
    add("--resume", action="store_true", help="continue from the checkpoints in --output")
    add("--overwrite", action="store_true",
        help="start afresh, replacing checkpoints and logs in --output (without --resume or "
             "--overwrite, existing checkpoints stop the run)")


def add_recipe_option(parser: argparse.ArgumentParser, recipes: Optional[dict] = None,
                      default: str = "reference") -> None:
    """``--recipe``: a named protocol of ``recipes`` (default:
    :data:`~miziha.experiments.recipes.RECIPES`), ``default`` when none is given."""
    recipes = RECIPES if recipes is None else recipes
    parser.set_defaults(recipe_table=recipes, recipe_default=default)
    parser.add_argument("--recipe", choices=sorted(recipes), default=None,
                        help=f"training protocol (default: {default}); options given "
                             "explicitly override it: "
                             + "; ".join(f"{name}: " + ", ".join(f"{k}={v:.3g}" if isinstance(
                                 v, float) else f"{k}={v}" for k, v in values.items())
                                 for name, values in recipes.items()))


def parse_with_recipe(parser: argparse.ArgumentParser, argv: Optional[List[str]] = None,
                      preset: Optional[dict] = None) -> argparse.Namespace:
    """Parse ``argv`` with the chosen recipe's values as defaults. ``preset`` (for example
    a demo's settings, which may name a recipe) sits between the recipe and the command
    line: explicit options win over both."""
    preset = dict(preset or {})
    known, _ = parser.parse_known_args(argv)
    recipe = known.recipe or preset.get("recipe") or known.recipe_default
    parser.set_defaults(**known.recipe_table[recipe])
    parser.set_defaults(**preset)
    parser.set_defaults(recipe=recipe)
    args = parser.parse_args(argv)
    if args.warmup_epochs is None:
        args.warmup_epochs = round(args.warmup_share * args.epochs, 6)  # 0.1 * 3: 0.3
    for internal in ("recipe_table", "recipe_default", "warmup_share"):
        delattr(args, internal)
    return args


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the parsed options describe."""
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       momentum=args.momentum, weight_decay=args.weight_decay,
                       optimizer=args.optimizer, schedule=args.schedule,
                       warmup_epochs=args.warmup_epochs or 0.0,
                       label_smoothing=args.label_smoothing, loss=args.loss,
                       droppath=args.droppath, augment=args.augment, amp=args.amp,
                       seed=args.seed,
                       warmup_steps=args.warmup_steps)
