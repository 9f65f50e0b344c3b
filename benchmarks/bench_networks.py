"""SwinResNet50 against ResNet50 (same head): training steps, peak memory, exported inference;
and every mixer's ``<mixer>_resnet50`` step against ResNet50's.

Usage: python benchmarks/bench_networks.py [--sizes 224 32] [--batch 8] [--repeats 5]
                                           [--warmup 3] [--mixers NAME ...]
                                           [--skip-memory] [--skip-inference] [--output FILE]

1. Training step (forward, cross-entropy, backward, Momentum update) on one fixed random
   batch, both networks timed in one process, interleaved; medians and their ratio.
2. Peak memory of a training step: each network runs in a fresh child process; its peak
   resident set size is reset (``/proc/self/clear_refs``) just before the first step and
   read (``VmHWM``) after two, and the resident size before the steps is subtracted.
   Paddle reports no allocator peak on CPU, hence the process figure. SwinResNet50 is
   measured with and without ``use_recompute``.
3. Mixers: ``<mixer>_resnet50`` for every mixer of ``miziha.MIXERS`` (``--mixers``) and
   ResNet50, training steps interleaved in one process at each size; the step-time ratio to
   ResNet50 next to the MAC ratio (``miziha.flops`` at batch 1).
4. Inference: each network saved with ``miziha.export.save_for_inference`` (dynamic sizes)
   and run through ``paddle.inference`` (oneDNN, Paddle's default CPU config), interleaved;
   images per second.

A benchmark, not a test: it prints tables and writes JSON. Thread count is Paddle's default
unless OMP_NUM_THREADS is set; the JSON records which. Linux only (memory from /proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, markdown_table, median, metadata, write_json  # noqa: E402

from miziha.experiments.runtime import (current_runtime, process_memory_mb,  # noqa: E402
                                       reset_resident_peak)
from miziha.experiments.trainer import train_step  # noqa: E402
from miziha.export import Predictor, save_for_inference  # noqa: E402
import miziha  # noqa: E402
from miziha.models import create_model  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "networks.json"
NUM_CLASSES = 10
#: case -> (registry name, options); the memory part also runs SwinResNet50 with recompute.
NETWORKS: Dict[str, Tuple[str, dict]] = {
    "swin_resnet50": ("swin_resnet50", {}),
    "resnet50": ("resnet50", {}),
    "swin_resnet50_recompute": ("swin_resnet50", {"use_recompute": True}),
}


def build(case: str) -> paddle.nn.Layer:
    """The network of a :data:`NETWORKS` case, from the model registry."""
    name, options = NETWORKS[case]
    return create_model(name, num_classes=NUM_CLASSES, **options)


def fixed_batch_step(model: paddle.nn.Layer, batch: int, size: int,
                     seed: int = 0) -> Callable[[], float]:
    """The trainer's step (:func:`miziha.experiments.trainer.train_step`) with Momentum on
    one fixed random batch; the returned function runs a step and gives its loss."""
    paddle.seed(seed)
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, NUM_CLASSES, [batch])
    model.train()
    runtime = current_runtime()
    return lambda: train_step(model, x, y, F.cross_entropy, optimizer, None, runtime)


def bench_training(size: int, batch: int, repeats: int, warmup: int) -> dict:
    paddle.seed(0)
    steps = {name: fixed_batch_step(build(name), batch, size)
             for name in ("swin_resnet50", "resnet50")}
    times = interleaved(steps, repeats=repeats, warmup=warmup)
    med = {name: median(values) for name, values in times.items()}
    return {"input_size": size, "batch": batch, "median_ms": med,
            "ratio": med["swin_resnet50"] / med["resnet50"], "times_ms": times}


def bench_mixer_networks(size: int, batch: int, repeats: int, warmup: int,
                         mixers: List[str]) -> dict:
    """``<mixer>_resnet50`` steps against ResNet50's, interleaved, with MAC ratios."""
    names = ["resnet50"] + [f"{mixer}_resnet50" for mixer in mixers]
    steps, macs = {}, {}
    for name in names:
        paddle.seed(0)
        model = create_model(name, num_classes=NUM_CLASSES)
        macs[name] = miziha.flops(model, [3, size, size]).total_macs
        steps[name] = fixed_batch_step(model, batch, size)
    times = interleaved(steps, repeats=repeats, warmup=warmup)
    med = {name: median(values) for name, values in times.items()}
    return {"input_size": size, "batch": batch, "median_ms": med, "macs": macs,
            "ratio": {name: med[name] / med["resnet50"] for name in names[1:]},
            "mac_ratio": {name: macs[name] / macs["resnet50"] for name in names[1:]},
            "times_ms": times}


def child_memory(name: str, size: int, batch: int) -> dict:
    """Run in a fresh process: resident memory before the first step and the peak over two."""
    paddle.seed(0)
    step = fixed_batch_step(build(name), batch, size)
    before = reset_resident_peak(required=True)  # VmHWM starts from here
    for _ in range(2):
        step()
    peak = process_memory_mb("VmHWM")
    return {"network": name, "input_size": size, "batch": batch,
            "resident_before_mb": before, "peak_resident_mb": peak, "step_peak_mb": peak - before}


def bench_memory(size: int, batch: int) -> List[dict]:
    results = []
    for name in NETWORKS:
        print(f"  memory: {name} @{size} (child process) ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--child-memory", name,
                              "--sizes", str(size), "--batch", str(batch)],
                             check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def bench_inference(size: int, batch: int, repeats: int, folder: Path) -> dict:
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype("float32")
    cases = {}
    for name in ("swin_resnet50", "resnet50"):
        paddle.seed(0)
        predictor = Predictor(save_for_inference(build(name), folder / name, 3))
        cases[name] = lambda predictor=predictor: predictor(x)
    times = interleaved(cases, repeats=repeats, warmup=1)
    med = {name: median(values) for name, values in times.items()}
    return {"input_size": size, "batch": batch, "median_ms": med,
            "images_per_second": {name: batch * 1000 / ms for name, ms in med.items()},
            "ratio": med["swin_resnet50"] / med["resnet50"], "times_ms": times}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 32], help="input sides")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed training steps per network first (the first steps "
                             "are slower while the heap grows)")
    parser.add_argument("--mixers", nargs="*", default=sorted(miziha.MIXERS),
                        choices=sorted(miziha.MIXERS),
                        help="mixers whose <mixer>_resnet50 is timed against ResNet50")
    parser.add_argument("--mixer-repeats", type=int, default=3,
                        help="timed steps per network in the mixer part")
    parser.add_argument("--skip-training", action="store_true",
                        help="no SwinResNet50 vs ResNet50 training part")
    parser.add_argument("--skip-memory", action="store_true", help="no memory part")
    parser.add_argument("--skip-inference", action="store_true", help="no inference part")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    parser.add_argument("--child-memory", choices=sorted(NETWORKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1 or min(args.sizes) < 1 or args.warmup < 0:
        parser.error("--repeats, --batch and --sizes must be >= 1, --warmup >= 0")
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, args.sizes[0], args.batch)))
        return {}

    meta = metadata()
    payload = {"benchmark": "bench_networks", "meta": meta, "repeats": args.repeats,
               "warmup": args.warmup,
               "mixer_repeats": args.mixer_repeats,
               "training": [], "mixers": [], "memory": [], "inference": []}
    for size in args.sizes:
        if not args.skip_training:
            print(f"training steps @{size} ...", flush=True)
            payload["training"].append(bench_training(size, args.batch, args.repeats,
                                                      args.warmup))
        if args.mixers:
            print(f"mixer networks' training steps @{size} ...", flush=True)
            payload["mixers"].append(bench_mixer_networks(size, args.batch, args.mixer_repeats,
                                                          min(args.warmup, 1), args.mixers))
    if not args.skip_memory:
        print(f"memory @{args.sizes[0]} ...", flush=True)
        payload["memory"] = bench_memory(args.sizes[0], args.batch)
    if not args.skip_inference:
        with tempfile.TemporaryDirectory() as folder:
            for size in args.sizes:
                print(f"inference @{size} ...", flush=True)
                payload["inference"].append(bench_inference(size, args.batch, args.repeats,
                                                            Path(folder)))

    print(f"\nbatch {args.batch}, median of {args.repeats} interleaved runs after "
          f"{args.warmup} training warm-up steps; Paddle "
          f"{meta['paddle']} on {meta['device']} ({meta['cpu']}, {meta['cpu_count']} cores), "
          f"{meta['omp_num_threads']} compute thread(s) (OMP_NUM_THREADS)\n")
    if payload["mixers"]:
        print(markdown_table(
            ["network", "input", "step ms", "ResNet50 step ms", "time ratio", "MAC ratio"],
            [[name, f"{r['input_size']}", f"{r['median_ms'][name]:.0f}",
              f"{r['median_ms']['resnet50']:.0f}", f"{r['ratio'][name]:.2f}x",
              f"{r['mac_ratio'][name]:.2f}x"]
             for r in payload["mixers"] for name in r["ratio"]]) + "\n")
    if payload["training"]:
        print(markdown_table(
            ["input", "ResNet50 step ms", "SwinResNet50 step ms", "ratio"],
            [[f"{r['input_size']}", f"{r['median_ms']['resnet50']:.0f}",
              f"{r['median_ms']['swin_resnet50']:.0f}", f"{r['ratio']:.2f}x"]
             for r in payload["training"]]))
    if payload["memory"]:
        print("\n" + markdown_table(
            ["network", "input", "peak RSS MB", "step peak over start MB"],
            [[r["network"], f"{r['input_size']}", f"{r['peak_resident_mb']:.0f}",
              f"{r['step_peak_mb']:.0f}"] for r in payload["memory"]]))
    if payload["inference"]:
        print("\n" + markdown_table(
            ["input", "ResNet50 images/s", "SwinResNet50 images/s", "time ratio"],
            [[f"{r['input_size']}", f"{r['images_per_second']['resnet50']:.1f}",
              f"{r['images_per_second']['swin_resnet50']:.1f}", f"{r['ratio']:.2f}x"]
             for r in payload["inference"]]))
    write_json(args.output, payload)
    print(f"\nwrote {args.output}")
    return payload


if __name__ == "__main__":
    main()
