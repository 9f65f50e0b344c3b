"""The leaderboard: which mixer pays. ResNet50 and every ``<mixer>_resnet50`` registered in
``miziha.MIXERS`` (read when the script starts), at 32x32, 3 seeds each, on scikit-learn's
digits and on tiles of scikit-image's photographs, under one protocol (the modern recipe as
``make demo``'s one-cycle schedule). Writes docs/leaderboard.md, docs/leaderboard.png and
benchmarks/results/leaderboard.json from the cells finished so far. When every cell is done,
every model's step is timed once more, all interleaved in one process: the times and
ratios of the leaderboard.

Every (task, model, seed) cell is saved under --output when it finishes; running the same
command again trains only the missing cells (a killed run resumes, a newly registered mixer
adds its cells), continuing a cell cut short from its last finished epoch.

  python examples/leaderboard.py                       # the full run (`make leaderboard`)
  python examples/leaderboard.py --render-only         # re-render from the finished cells
  python examples/leaderboard.py --tasks tiles --models resnet50@32 swin_resnet50@32 --seeds 1
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

# Paddle's import and BatchNorm notices say nothing about this run; keep the log readable.
warnings.filterwarnings("ignore", category=UserWarning, module="paddle")

from miziha.experiments.data import DataUnavailable
from miziha.experiments.leaderboard import (TASKS, TIMING_ROUNDS, leaderboard_models,
                                            render, run_leaderboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--output", default="runs/leaderboard",
        help="run folder: finished cells, checkpoints, VisualDL logs (default: %(default)s)")
    add("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS),
        help="tasks (default: %(default)s)")
    add("--models", nargs="+", metavar="ARCH@SIZE",
        help=f"models (default: resnet50@32 and every <mixer>_resnet50@32 of MIXERS, now "
             f"{' '.join(leaderboard_models())})")
    add("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default: %(default)s)")
    add("--limit-train", type=int, help="random subset of the training images (smoke runs)")
    add("--limit-test", type=int, help="random subset of the test images (smoke runs)")
    add("--batch-size", type=int, help="instead of the protocol's 32 (smoke runs)")
    add("--timing-rounds", type=int, default=TIMING_ROUNDS,
        help="rounds of the interleaved step timing after the cells, 0 for none "
             "(default: %(default)s)")
    add("--markdown", default="docs/leaderboard.md", help="(default: %(default)s)")
    add("--results", default="benchmarks/results/leaderboard.json",
        help="(default: %(default)s)")
    add("--figure", default="docs/leaderboard.png", help="(default: %(default)s)")
    add("--render-only", action="store_true",
        help="train nothing; write the outputs from the cells finished so far")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    try:
        if not args.render_only:
            run_leaderboard(Path(args.output), args.tasks, args.models, args.seeds,
                            limit_train=args.limit_train, limit_test=args.limit_test,
                            overrides=overrides, timing_rounds=args.timing_rounds)
        render(Path(args.output), Path(args.markdown), Path(args.results), Path(args.figure),
               args.tasks, args.models, args.seeds)
    except (ValueError, RuntimeError, DataUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.markdown}, {args.results}, {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
