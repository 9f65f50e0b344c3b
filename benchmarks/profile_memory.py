"""Where the memory of a training step goes: what each layer and op keeps for backward, and
the process's resident size through the step.

Usage: python benchmarks/profile_memory.py [--models swin_resnet50 resnet50] [--size 224]
                                           [--batch 8] [--skip-rss] [--top 25]
                                           [--detail LAYER] [--output FILE]

A few minutes at the defaults (224, batch 8); ``--size 64 --batch 2`` takes seconds.

1. Kept for backward. One forward (training mode, gradients on) runs under
   ``paddle.autograd.saved_tensors_hooks``: every tensor an op keeps for its gradient
   passes the pack hook, which records its shape, dtype and allocation and hands the tensor
   back unchanged. Allocations are counted once (by base address and size, so a view and
   its base, or an in-place op's input and output, are one); parameters and the input
   batch are left out. The index tables a mixer caches per input size (int64, a few hundred
   kB in all) are counted where first saved. Each entry is labelled with the layer that ran
   it (forward pre/post hooks) and the op (the Paddle function called, a PyLayer's class,
   or for an operator such as ``a * b`` the source line). ``--detail`` lists one layer's
   saved tensors in order (default: the second block of the first SwinT).
2. Resident memory (``--skip-rss`` to leave out), each network in a fresh child process, as
   ``bench_networks.py`` measures a step: two training steps, the peak resident size
   (``VmHWM``, reset just before the first step) over the resident size then; and at each
   stage's output, in forward and when backward reaches it, the resident size, its peak,
   and Paddle's own count of live tensor bytes (``host_memory_stat``) with its peak since
   the previous point. Resident memory above the live tensors is what glibc keeps of freed
   memory (and the process's own, non-tensor memory).

The benchmarks' memory figure is the resident one (what the machine must provide); the live
tensor count shows how much of it is tensors. MB are MiB. A profile, not a test: it prints
tables and writes JSON. Linux only (memory from /proc).
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, metadata, write_json  # noqa: E402

from miziha.experiments.runtime import process_memory_mb, reset_resident_peak  # noqa: E402
from miziha.models import create_model  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "memory.json"
NUM_CLASSES = 10
MB = 2 ** 20
_PADDLE_DIR = os.path.dirname(paddle.__file__) + os.sep
_SKIPPED_PADDLE_FRAMES = ("decorator_utils.py", "layers.py", "wrapped_decorator.py")
_OPERATORS = ((" * ", "multiply"), (" / ", "divide"), (" + ", "add"), (" - ", "subtract"),
              ("[", "slice"))


def stage_of(path: str) -> str:
    """``stages.1.0.conv2.blocks.0.attn.qkv`` -> ``stages.1``; ``layer2.0.conv1`` ->
    ``layer2``; a top-level layer -> its name."""
    parts = path.split(".")
    if parts[0] in ("stages", "layers") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0] or "(model)"


def _op_and_site(frame) -> Tuple[str, str]:
    """The op whose grad node is saving (the innermost Paddle API function below the hook,
    or the operator on the innermost source line outside Paddle) and the innermost call site
    outside Paddle (``file:line``)."""
    op, site = None, None
    while frame is not None and site is None:
        filename = frame.f_code.co_filename
        if filename.startswith(_PADDLE_DIR):
            if op is None and not filename.endswith(_SKIPPED_PADDLE_FRAMES):
                op = frame.f_code.co_name.strip("_")
                if op == "save_for_backward":  # a PyLayer: name it by its class
                    op = frame.f_back.f_code.co_qualname.split(".")[0]
        else:
            site = f"{Path(filename).parent.name}/{Path(filename).name}:{frame.f_lineno}"
            if op is None:
                line = linecache.getline(filename, frame.f_lineno)
                op = next((name for token, name in _OPERATORS if token in line), "operator")
        frame = frame.f_back
    return op or "?", site or "?"


class SavedTensorRecorder:
    """Records what a forward keeps for backward (see the module docstring, part 1)."""

    def __init__(self, model: nn.Layer, exclude: List[paddle.Tensor]) -> None:
        self.model = model
        self.entries: List[dict] = []
        self.allocations: Dict[Tuple[int, int], int] = {}  # (base, size) -> first entry
        self.excluded = {self._allocation(t) for t in list(model.parameters()) + exclude
                         if t._is_initialized()}
        self.layer_stack: List[Tuple[str, str]] = [("", type(model).__name__)]
        self.handles = []
        for name, layer in model.named_sublayers():
            self.handles.append(layer.register_forward_pre_hook(self._enter(name)))
            self.handles.append(layer.register_forward_post_hook(self._leave))

    @staticmethod
    def _allocation(t: paddle.Tensor) -> Tuple[int, int]:
        return t.data_ptr() - t._offset(), t._holder_size()

    def _enter(self, name: str):
        def hook(layer, inputs):
            self.layer_stack.append((name, type(layer).__name__))
        return hook

    def _leave(self, layer, inputs, outputs):
        self.layer_stack.pop()

    def pack(self, t: Optional[paddle.Tensor]) -> Optional[paddle.Tensor]:
        if t is None or not t._is_initialized():  # a PyLayer may save None
            return t
        allocation = self._allocation(t)
        op, site = _op_and_site(sys._getframe(1))
        path, layer_class = self.layer_stack[-1]
        new = allocation not in self.allocations and allocation not in self.excluded
        if new:
            self.allocations[allocation] = len(self.entries)
        self.entries.append({
            "layer": path, "layer_class": layer_class, "stage": stage_of(path), "op": op,
            "site": site, "shape": list(t.shape), "dtype": str(t.dtype).replace("paddle.", ""),
            "bytes": allocation[1] if new else 0,
            "shared": not new and allocation not in self.excluded,
        })
        return t

    @staticmethod
    def unpack(t: Optional[paddle.Tensor]) -> Optional[paddle.Tensor]:
        return t

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def kept_for_backward(name: str, size: int, batch: int) -> dict:
    """Part 1 for one network: every saved tensor, deduplicated, with its layer and op."""
    paddle.seed(0)
    model = create_model(name, num_classes=NUM_CLASSES)
    model.train()
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, NUM_CLASSES, [batch])
    recorder = SavedTensorRecorder(model, [x, y])
    with paddle.autograd.saved_tensors_hooks(recorder.pack, recorder.unpack):
        loss = F.cross_entropy(model(x), y)
    recorder.remove()
    loss.backward()
    return {"network": name, "input_size": size, "batch": batch,
            "total_mb": sum(e["bytes"] for e in recorder.entries) / MB,
            "entries": recorder.entries}


def _summaries(profile: dict, top: int) -> dict:
    """Sums of a :func:`kept_for_backward` profile by stage, by op (with its layer class),
    by stage and op, and the largest call sites."""
    entries = profile["entries"]
    by = defaultdict(lambda: defaultdict(float))
    count = defaultdict(int)
    for e in entries:
        mb = e["bytes"] / MB
        kind = f"{e['op']} ({e['layer_class']})"
        by["stage"][e["stage"]] += mb
        by["op"][kind] += mb
        by["stage_op"][(e["stage"], kind)] += mb
        key = (e["stage"], e["site"], e["op"], e["layer_class"], e["dtype"])
        by["site"][key] += mb
        if e["bytes"]:
            count[key] += 1
    sites = sorted(by["site"].items(), key=lambda item: -item[1])[:top]
    return {
        "by_stage_mb": dict(by["stage"]),
        "by_op_mb": dict(sorted(by["op"].items(), key=lambda item: -item[1])),
        "by_stage_op_mb": [{"stage": s, "op": k, "mb": v}
                           for (s, k), v in by["stage_op"].items()],
        "top_sites": [{"stage": s, "site": site, "op": op, "layer_class": cls, "dtype": dt,
                       "mb": mb, "tensors": count[(s, site, op, cls, dt)]}
                      for (s, site, op, cls, dt), mb in sites],
    }


def block_detail(profile: dict, layer_prefix: str) -> List[dict]:
    """Every saved tensor of one layer (e.g. one Swin block), in forward order."""
    return [e for e in profile["entries"]
            if e["layer"] == layer_prefix or e["layer"].startswith(layer_prefix + ".")]


# Part 2: resident memory in a child process.
def _allocated_mb() -> Optional[float]:
    """Paddle's own count of live host (CPU) tensor bytes, in MiB (None if unavailable)."""
    core = paddle.base.core
    if not hasattr(core, "host_memory_stat_current_value"):
        return None
    return core.host_memory_stat_current_value("Allocated", 0) / MB


def _allocated_peak_mb(reset: bool) -> Optional[float]:
    """Paddle's peak of live host tensor bytes since the last reset (then reset it)."""
    core = paddle.base.core
    if not hasattr(core, "host_memory_stat_peak_value"):
        return None
    peak = core.host_memory_stat_peak_value("Allocated", 0) / MB
    if reset:
        core.host_memory_stat_reset_peak_value("Allocated", 0)
    return peak


def child_resident(name: str, size: int, batch: int) -> dict:
    """Two training steps (forward, cross-entropy, backward, Momentum) in a fresh process:
    resident size, its peak and Paddle's live tensor bytes at each stage, forward and
    backward, relative to the start."""
    paddle.seed(0)
    model = create_model(name, num_classes=NUM_CLASSES)
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, NUM_CLASSES, [batch])
    model.train()
    stages = [(n, layer) for n, layer in model.named_children()
              if not isinstance(layer, nn.LayerList)]
    stages += [(f"{n}.{i}", layer) for n, layers in model.named_children()
               if isinstance(layers, nn.LayerList) for i, layer in enumerate(layers)]
    points: List[dict] = []
    step = [0]

    def record(where: str, stage: str) -> None:
        points.append({"step": step[0] + 1, "where": where, "stage": stage,
                       "resident_mb": process_memory_mb("VmRSS"),
                       "resident_peak_mb": process_memory_mb("VmHWM"),
                       "allocated_mb": _allocated_mb(),
                       "allocated_peak_mb": _allocated_peak_mb(reset=True)})

    def after_stage(stage_name):
        def hook(layer, inputs, output):
            record("forward", stage_name)
            if not output.stop_gradient:
                output.register_hook(lambda grad: record("backward", stage_name))
        return hook

    for stage_name, layer in stages:
        layer.register_forward_post_hook(after_stage(stage_name))
    before, allocated_before = reset_resident_peak(required=True), _allocated_mb()
    _allocated_peak_mb(reset=True)
    for step[0] in range(2):
        loss = F.cross_entropy(model(x), y)
        record("forward end", "")
        loss.backward()
        record("backward end", "")
        optimizer.step()
        optimizer.clear_grad()
        record("step end", "")
        loss = None
    for point in points:
        for key in ("resident_mb", "resident_peak_mb"):
            point[key] -= before
        if allocated_before is not None:
            for key in ("allocated_mb", "allocated_peak_mb"):
                point[key] -= allocated_before
    peaks = [p["allocated_peak_mb"] for p in points if p["allocated_peak_mb"] is not None]
    return {"network": name, "input_size": size, "batch": batch, "resident_before_mb": before,
            "parameters_mb": sum(p.size for p in model.parameters()) * 4 / MB,
            "step_peak_mb": points[-1]["resident_peak_mb"],
            "first_step_peak_mb": [p for p in points if p["step"] == 1][-1][
                "resident_peak_mb"],
            "allocated_peak_mb": max(peaks) if peaks else None, "points": points}


def resident(name: str, size: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child-rss", name, "--size", str(size),
                          "--batch", str(batch)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_report(name: str, profile: dict, summary: dict, rss: Optional[dict]) -> None:
    print(f"\n## {name} @{profile['input_size']}, batch {profile['batch']}: kept for backward "
          f"{profile['total_mb']:.0f} MB")
    stages = list(summary["by_stage_mb"])
    ops = list(summary["by_op_mb"])
    cells = {(r["stage"], r["op"]): r["mb"] for r in summary["by_stage_op_mb"]}
    print("\nBy op (rows) and stage (columns), MB:\n")
    print(markdown_table(["op (layer)"] + stages + ["total"], [
        [op] + [f"{cells.get((s, op), 0):.0f}" for s in stages]
        + [f"{summary['by_op_mb'][op]:.0f}"] for op in ops
        if summary["by_op_mb"][op] >= 0.5] + [
        ["total"] + [f"{summary['by_stage_mb'][s]:.0f}" for s in stages]
        + [f"{profile['total_mb']:.0f}"]]))
    print("\nLargest call sites, MB:\n")
    print(markdown_table(["stage", "site", "op (layer)", "dtype", "tensors", "MB"], [
        [r["stage"], r["site"], f"{r['op']} ({r['layer_class']})", r["dtype"],
         str(r["tensors"]), f"{r['mb']:.0f}"] for r in summary["top_sites"]]))
    if rss is None:
        return
    print(f"\nResident memory over the start ({rss['resident_before_mb']:.0f} MB) through two "
          f"steps, MB: peak {rss['step_peak_mb']:.0f} (first step {rss['first_step_peak_mb']:.0f}"
          f"); Paddle's live tensor bytes peak at {rss['allocated_peak_mb'] or 0:.0f} "
          f"(parameters {rss['parameters_mb']:.0f}, as many again for their gradients and for "
          f"the momentum)\n")
    saved = summary["by_stage_mb"]
    rows = []
    for p in rss["points"]:
        if p["step"] != 2:
            continue
        fmt = lambda v: "" if v is None else f"{v:.0f}"  # noqa: E731
        rows.append([p["where"], p["stage"],
                     fmt(saved.get(p["stage"])) if p["where"] == "forward" else "",
                     fmt(p["allocated_mb"]), fmt(p["allocated_peak_mb"]),
                     fmt(p["resident_mb"]), fmt(p["resident_peak_mb"])])
    print("Second step (where the peak is), after each stage:\n")
    print(markdown_table(["pass", "stage", "kept for backward MB", "live tensors MB",
                          "live peak since previous MB", "resident MB", "resident peak MB"],
                         rows))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["swin_resnet50", "resnet50"],
                        help="registry names")
    parser.add_argument("--size", type=int, default=224, help="input side")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--top", type=int, default=25, help="call sites listed")
    parser.add_argument("--detail", default="stages.0.0.conv2.blocks.1",
                        help="a layer whose saved tensors are listed one by one")
    parser.add_argument("--skip-rss", action="store_true", help="no resident-memory part")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    parser.add_argument("--child-rss", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.size < 1:
        parser.error("--batch and --size must be >= 1")
    if args.child_rss:
        print(json.dumps(child_resident(args.child_rss, args.size, args.batch)))
        return {}
    meta = metadata()
    payload = {"benchmark": "profile_memory", "meta": meta, "networks": []}
    for name in args.models:
        print(f"{name}: kept for backward ...", flush=True)
        profile = kept_for_backward(name, args.size, args.batch)
        summary = _summaries(profile, args.top)
        detail = block_detail(profile, args.detail)
        rss = None
        if not args.skip_rss:
            print(f"{name}: resident memory (child process) ...", flush=True)
            rss = resident(name, args.size, args.batch)
        print_report(name, profile, summary, rss)
        if detail:
            print(f"\nSaved by {args.detail}, in forward order (0 MB: already counted):\n")
            print(markdown_table(["op (layer)", "site", "shape", "dtype", "MB"], [
                [f"{e['op']} ({e['layer_class']})", e["site"], str(e["shape"]), e["dtype"],
                 f"{e['bytes'] / MB:.2f}"] for e in detail]))
        payload["networks"].append({
            "network": name, "input_size": args.size, "batch": args.batch,
            "kept_for_backward_mb": profile["total_mb"], **summary,
            "detail": {"layer": args.detail, "entries": detail}, "resident": rss})
    print(f"\nPaddle {meta['paddle']} on {meta['device']} ({meta['cpu']}, "
          f"{meta['cpu_count']} cores), {meta['omp_num_threads']} compute thread(s)")
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return payload


if __name__ == "__main__":
    main()
