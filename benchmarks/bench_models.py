"""Each family's smallest official network: a training step and inference at 224, side by
side in one process with PaddleClas's implementation where PaddleClas has one.

Usage: python benchmarks/bench_models.py [--models NAME ...] [--batch 8] [--size 224]
                                         [--repeats 5] [--warmup 2] [--paddleclas DIR]
                                         [--output FILE]

For every pair (miziha network, PaddleClas network of the same architecture) and for the
families PaddleClas does not have, both measures are taken with the cases interleaved round
by round, so a drift in machine speed hits all alike:

1. Training step: forward, cross-entropy, backward and a Momentum update on one fixed
   random batch (:func:`miziha.experiments.trainer.train_step`), 1000 classes.
2. Inference: eager forward in eval mode under ``paddle.no_grad``.

The ratio is PaddleClas's median time over miziha's (above 1: miziha is faster).

PaddleClas comes from the package registry, as a benchmark-only install; its wheel pins
NumPy and OpenCV versions that the rest of the environment does not take, and its backbones
need none of them, so install it without dependencies (``make bench-models`` does):
``pip install --no-deps paddleclas==2.6.0 && pip install tqdm easydict prettytable ujson
pyyaml``. The backbones are imported from the installed package's ``ppcls`` directory
(or ``--paddleclas DIR``, a folder holding ``ppcls``).

A benchmark, not a test: it prints a table and writes JSON with the machine (CPU model,
instruction set, threads).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import paddle
import paddle.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, markdown_table, median, metadata, write_json  # noqa: E402

from miziha.experiments.runtime import current_runtime  # noqa: E402
from miziha.experiments.trainer import train_step  # noqa: E402
from miziha.models import create_model, list_models  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "models.json"
NUM_CLASSES = 1000

#: Each family's smallest network, and PaddleClas's implementation of the same architecture
#: (module under ``ppcls.arch.backbone``, builder) where one exists.
PAIRS: Dict[str, Optional[Tuple[str, str]]] = {
    "swin_tiny_patch4_window7_224": ("legendary_models.swin_transformer",
                                     "SwinTransformer_tiny_patch4_window7_224"),
    "cswin_tiny_224": ("model_zoo.cswin_transformer", "CSWinTransformer_tiny_224"),
    "hrnet_w18": ("legendary_models.hrnet", "HRNet_W18_C"),
    "hrnet_w18_small": None,
    "cyclemlp_b1": None,
    "asmlp_tiny": None,
    "pale_tiny": None,
    "swinv2_tiny_window8_256": None,
}


def paddleclas_root(folder: Optional[Path]) -> Path:
    """The folder holding PaddleClas's ``ppcls`` package: ``folder`` or the installed
    ``paddleclas`` distribution's (found without importing it: its ``__init__`` needs
    OpenCV)."""
    if folder is None:
        spec = importlib.util.find_spec("paddleclas")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("PaddleClas is not installed: pip install --no-deps "
                             "paddleclas==2.6.0 && pip install tqdm easydict prettytable "
                             "ujson pyyaml (or pass --paddleclas DIR, or --no-paddleclas)")
        folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / "ppcls").is_dir():
        raise SystemExit(f"no ppcls package in {folder}")
    return folder


def paddleclas_model(root: Path, module: str, builder: str) -> paddle.nn.Layer:
    """PaddleClas's network ``builder`` from ``ppcls.arch.backbone.<module>`` (its logger,
    which some constructors write to, initialised first)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.import_module("ppcls.utils.logger").init_logger()
    return getattr(importlib.import_module(f"ppcls.arch.backbone.{module}"), builder)(
        class_num=NUM_CLASSES)


def training_step(model: paddle.nn.Layer, x: paddle.Tensor,
                  y: paddle.Tensor) -> Callable[[], float]:
    """One trainer step with Momentum on the fixed batch ``x``, ``y``."""
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    runtime = current_runtime()

    def step() -> float:
        model.train()
        return train_step(model, x, y, F.cross_entropy, optimizer, None, runtime)
    return step


def inference(model: paddle.nn.Layer, x: paddle.Tensor) -> Callable[[], None]:
    """Eager eval-mode forward without gradients; waits for the result."""
    def run() -> None:
        model.eval()
        with paddle.no_grad():
            model(x).numpy()
    return run


def bench(cases: Dict[str, paddle.nn.Layer], batch: int, size: int, repeats: int,
          warmup: int) -> dict:
    """Training steps and inference of every case, interleaved; medians in ms."""
    paddle.seed(0)
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, NUM_CLASSES, [batch])
    result = {}
    for kind, make in (("train", lambda m: training_step(m, x, y)),
                       ("infer", lambda m: inference(m, x))):
        print(f"  {kind}: {', '.join(cases)} ...", flush=True)
        times = interleaved({name: make(model) for name, model in cases.items()},
                            repeats=repeats, warmup=warmup)
        result[kind] = {"median_ms": {n: median(t) for n, t in times.items()},
                        "times_ms": times}
    return result


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[n for n in PAIRS if n in list_models()],
                        choices=sorted(PAIRS), help="miziha networks (each family's smallest)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="input side")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per case first")
    parser.add_argument("--paddleclas", type=Path, default=None,
                        help="folder holding PaddleClas's ppcls package (default: the "
                             "installed paddleclas)")
    parser.add_argument("--no-paddleclas", action="store_true",
                        help="time miziha's networks only")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    args = parser.parse_args(argv)
    if min(args.batch, args.size, args.repeats) < 1 or args.warmup < 0:
        parser.error("--batch, --size and --repeats must be >= 1, --warmup >= 0")
    root = None if args.no_paddleclas else paddleclas_root(args.paddleclas)

    meta = metadata()
    payload = {"benchmark": "bench_models", "meta": meta, "batch": args.batch,
               "input_size": args.size, "repeats": args.repeats, "warmup": args.warmup,
               "results": []}
    for name in args.models:
        print(f"{name} @{args.size}, batch {args.batch} ...", flush=True)
        paddle.seed(0)
        cases = {name: create_model(name, num_classes=NUM_CLASSES)}
        pair = PAIRS[name]
        if pair and root is not None:
            paddle.seed(0)
            cases[f"paddleclas:{pair[1]}"] = paddleclas_model(root, *pair)
        entry = {"model": name, "paddleclas": pair[1] if pair and root else None,
                 "parameters": {case: sum(int(p.size) for p in model.parameters()
                                          if not p.stop_gradient)
                                for case, model in cases.items()}}
        entry.update(bench(cases, args.batch, args.size, args.repeats, args.warmup))
        if entry["paddleclas"]:
            other = f"paddleclas:{pair[1]}"
            entry["speedup_over_paddleclas"] = {
                kind: entry[kind]["median_ms"][other] / entry[kind]["median_ms"][name]
                for kind in ("train", "infer")}
        payload["results"].append(entry)
        write_json(args.output, payload)

    print(f"\nbatch {args.batch} at {args.size}, median of {args.repeats} interleaved runs "
          f"after {args.warmup} warm-up runs; Paddle {meta['paddle']} on {meta['device']} "
          f"({meta['cpu']}, {meta['isa']}, {meta['cpu_count']} cores), "
          f"{meta['omp_num_threads']} compute thread(s)\n")
    rows = []
    for entry in payload["results"]:
        for case in entry["train"]["median_ms"]:
            speed = entry.get("speedup_over_paddleclas", {})
            rows.append([case, f"{entry['parameters'][case]:,}",
                         f"{entry['train']['median_ms'][case]:.0f}",
                         f"{entry['infer']['median_ms'][case]:.0f}",
                         f"{speed['train']:.2f}x / {speed['infer']:.2f}x"
                         if speed and case == entry["model"] else ""])
    print(markdown_table(["network", "parameters", "train step ms", "inference ms",
                          "speed vs PaddleClas (train / infer)"], rows))
    print(f"\nwrote {args.output}")
    return payload


if __name__ == "__main__":
    main()
