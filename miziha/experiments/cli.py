"""Command-line options shared by the example scripts."""

from __future__ import annotations

import argparse

from .trainer import TrainConfig

__all__ = ["add_training_options", "train_config"]


def add_training_options(parser: argparse.ArgumentParser, epochs: int, batch_size: int,
                         lr: float, output: str) -> None:
    """The protocol options (epochs, batch, optimizer, augmentation, AMP, seed, timing warm-up)
    and the output/resume pair, with the given defaults."""
    add = parser.add_argument
    add("--epochs", type=int, default=epochs, help="training epochs (default: %(default)s)")
    add("--batch-size", type=int, default=batch_size,
        help="batch size per process (default: %(default)s)")
    add("--lr", type=float, default=lr, help="Momentum learning rate (default: %(default)s)")
    add("--momentum", type=float, default=0.9, help="momentum (default: %(default)s)")
    add("--weight-decay", type=float, default=1e-4, help="L2 decay (default: %(default)s)")
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


def train_config(args: argparse.Namespace, augment: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` the parsed options describe."""
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       momentum=args.momentum, weight_decay=args.weight_decay,
                       augment=augment, amp=args.amp, seed=args.seed,
                       warmup_steps=args.warmup_steps)
