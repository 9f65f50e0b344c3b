"""Inference throughput of registered networks in four runtimes: eager Paddle, Paddle
Inference with oneDNN on and off, and onnxruntime.

Usage: python benchmarks/bench_inference.py [--models NAME ...] [--batches 1 32]
                                            [--size 224] [--repeats 10] [--warmup 2]
                                            [--threads N] [--output FILE]

For each network (default: ``resnet50``, ``swin_resnet50`` and the smallest registered
network of each family) and each batch size: one fixed random batch ``[B, 3, size, size]``
run by

- ``eager``: the network in eval mode under ``paddle.no_grad()``;
- ``paddle_inference_onednn`` / ``paddle_inference_plain``: the files of
  ``miziha.export.save_for_inference`` (dynamic sizes) in a ``paddle.inference`` predictor
  with oneDNN on (Paddle's default) and off;
- ``onnxruntime``: the file of ``miziha.export.to_onnx`` (opset 17) in an onnxruntime CPU
  session (default graph optimisations).

The four runtimes are timed interleaved (round-robin, ``--repeats`` rounds after
``--warmup``), so that drifts in machine speed hit all alike; the median time of one forward
gives images per second. Each runtime uses ``--threads`` threads (default: Paddle's, from
OMP_NUM_THREADS, else 1). Before timing, each runtime's output is compared with eager's
(``max_abs_diff``, next to ``max_abs_eager``). A benchmark, not a test: it prints a table
and writes JSON with the machine (CPU model, instruction-set flags, threads, versions).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import paddle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, markdown_table, median, metadata, write_json  # noqa: E402

import miziha  # noqa: E402
from miziha.export import Predictor, save_for_inference, to_onnx  # noqa: E402

#: Networks timed by default (those registered): the ResNet pair, then the smallest network
#: of each family.
DEFAULT_MODELS = ["resnet50", "swin_resnet50", "swin_tiny_patch4_window7_224",
                  "swinv2_tiny_window8_256", "cswin_tiny_224", "pale_tiny", "cyclemlp_b1",
                  "asmlp_tiny", "hrnet_w18_small"]
RUNTIMES = ["eager", "paddle_inference_onednn", "paddle_inference_plain", "onnxruntime"]
def runners(model: paddle.nn.Layer, folder: Path, threads: int) -> Dict[str, Callable]:
    """Runtime name -> function of a float32 batch returning the output array."""
    import onnxruntime as ort

    prefix = save_for_inference(model, folder / "model", 3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(to_onnx(model, folder / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def eager(x):
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    return {"eager": eager,
            "paddle_inference_onednn": Predictor(prefix, threads=threads),
            "paddle_inference_plain": Predictor(prefix, threads=threads, onednn=False),
            "onnxruntime": lambda x: session.run(None, {name: x})[0]}


def bench_model(name: str, batches: List[int], size: int, repeats: int, warmup: int,
                threads: int) -> List[dict]:
    paddle.seed(0)
    model = miziha.create_model(name)
    model.eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as folder:
        run = runners(model, Path(folder), threads)
        for batch in batches:
            x = np.random.default_rng(batch).standard_normal(
                (batch, 3, size, size)).astype("float32")
            reference = run["eager"](x)
            scale = float(np.abs(reference).max())
            diffs = {k: float(np.abs(fn(x) - reference).max()) for k, fn in run.items()}
            times = interleaved({k: (lambda fn=fn: fn(x)) for k, fn in run.items()},
                                repeats, warmup)
            for runtime in RUNTIMES:
                ms = median(times[runtime])
                rows.append({"model": name, "batch": batch, "size": size, "runtime": runtime,
                             "median_ms": ms, "images_per_s": batch * 1e3 / ms,
                             "max_abs_diff": diffs[runtime], "max_abs_eager": scale,
                             "times_ms": times[runtime]})
            print(f"{name} batch {batch}: " + ", ".join(
                f"{r['runtime']} {r['images_per_s']:.1f}/s" for r in rows[-len(RUNTIMES):]),
                flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+",
                        default=[m for m in DEFAULT_MODELS if m in miziha.list_models()])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int,
                        default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent
                        / "results" / "inference.json")
    args = parser.parse_args()
    unknown = [m for m in args.models if m not in miziha.list_models()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {miziha.list_models()}")
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 \
            or any(b < 1 for b in args.batches) or args.size < 1:
        parser.error("--threads, --repeats, --batches and --size must be positive, "
                     "--warmup not negative")
    import onnxruntime
    import paddle2onnx

    machine = dict(metadata(), threads=args.threads,
                   machine=platform.machine(), onnxruntime=onnxruntime.__version__,
                   paddle2onnx=paddle2onnx.__version__, numpy=np.__version__)
    rows = []
    for name in args.models:
        rows += bench_model(name, args.batches, args.size, args.repeats, args.warmup,
                            args.threads)
        # Written after every network, so a long run cut short keeps what it measured.
        write_json(args.output, {"machine": machine, "size": args.size,
                                 "repeats": args.repeats, "warmup": args.warmup,
                                 "results": rows})
    table = markdown_table(
        ["model", "batch"] + [f"{r} (img/s)" for r in RUNTIMES],
        [[name, str(batch)] + [f"{row['images_per_s']:.1f}" for runtime in RUNTIMES
                               for row in rows if row["model"] == name
                               and row["batch"] == batch and row["runtime"] == runtime]
         for name in args.models for batch in args.batches])
    print(f"\nImages per second at {args.size}x{args.size}, {args.threads} thread(s), "
          f"median of {args.repeats}:\n{table}")
    write_json(args.output, {"machine": machine, "size": args.size, "repeats": args.repeats,
                             "warmup": args.warmup, "results": rows, "table": table})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
