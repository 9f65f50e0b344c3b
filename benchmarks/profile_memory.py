"""Where the memory of a training step goes: what each layer and op keeps for backward, and
the process's resident size through the step.

Usage: python benchmarks/profile_memory.py [--models swin_resnet50 resnet50] [--size 224]
                                           [--batch 8] [--skip-rss] [--top 25]
                                           [--output FILE]

1. Kept for backward. One forward (training mode, gradients on) runs under
   ``paddle.autograd.saved_tensors_hooks``: every tensor an op keeps for its gradient
   passes the pack hook, which records its shape, dtype and allocation and hands the tensor
   back unchanged. Allocations are counted once (by base address and size, so a view and
   its base, or an in-place op's input and output, are one); parameters and the input
   batch are left out. The index tables a mixer caches per input size (int64, a few hundred
   kB in all) are counted where first saved. Each entry is labelled with the layer that ran
   it (forward pre/post hooks) and the op (the Paddle function called; for an operator such
   as ``a * b``, the source line).
2. Resident memory (``--skip-rss`` to leave out), each network in a fresh child process, as
   ``bench_networks.py`` measures a step: the peak resident size (``VmHWM``, reset just
   before the first step) over the resident size then, after the forward (with the loss), after
   the first step and after the second; and the resident size after each stage of the
   first forward, and when backward reaches each stage's output.

Paddle reports no allocator statistics on CPU, hence the process figures; they include
what glibc keeps of freed memory. MB are MiB. A profile, not a test: it prints tables and
writes JSON. Linux only (memory from /proc).
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

    def pack(self, t: paddle.Tensor) -> paddle.Tensor:
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
    def unpack(t: paddle.Tensor) -> paddle.Tensor:
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
def child_resident(name: str, size: int, batch: int) -> dict:
    """Resident memory of two training steps (run in a fresh process)."""
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
    forward_rss, backward_rss, outputs = [], [], []
    first = [True]

    def after_stage(stage_name):
        def hook(layer, inputs, output):
            if first[0]:
                forward_rss.append({"stage": stage_name,
                                    "resident_mb": process_memory_mb("VmRSS")})
                if not output.stop_gradient:
                    output.register_hook(lambda grad: backward_rss.append(
                        {"stage": stage_name, "resident_mb": process_memory_mb("VmRSS"),
                         "peak_mb": process_memory_mb("VmHWM")}))
        return hook

    for stage_name, layer in stages:
        layer.register_forward_post_hook(after_stage(stage_name))
    reset_resident_peak()
    before = process_memory_mb("VmRSS")
    loss = F.cross_entropy(model(x), y)
    forward_peak, forward_end = process_memory_mb("VmHWM"), process_memory_mb("VmRSS")
    first[0] = False
    loss.backward()
    backward_peak = process_memory_mb("VmHWM")
    optimizer.step()
    optimizer.clear_grad()
    step1_peak, step1_end = process_memory_mb("VmHWM"), process_memory_mb("VmRSS")
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.clear_grad()
    step2_peak = process_memory_mb("VmHWM")
    parameters = sum(p.size for p in model.parameters()) * 4 / MB
    rel = lambda value: value - before  # noqa: E731
    return {
        "network": name, "input_size": size, "batch": batch, "resident_before_mb": before,
        "parameters_mb": parameters,
        "forward_peak_mb": rel(forward_peak), "after_forward_mb": rel(forward_end),
        "first_step_peak_mb": rel(backward_peak), "after_first_step_mb": rel(step1_end),
        "step_peak_mb": rel(step2_peak),
        "after_stage_mb": [{"stage": r["stage"], "mb": rel(r["resident_mb"])}
                           for r in forward_rss],
        "backward_at_stage_mb": [{"stage": r["stage"], "mb": rel(r["resident_mb"]),
                                  "peak_mb": rel(r["peak_mb"])} for r in backward_rss],
    }


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
    print(f"\nResident memory over the start ({rss['resident_before_mb']:.0f} MB), MB: "
          f"forward peak {rss['forward_peak_mb']:.0f}, after forward "
          f"{rss['after_forward_mb']:.0f}, first step peak {rss['first_step_peak_mb']:.0f}, "
          f"after it {rss['after_first_step_mb']:.0f}, two-step peak "
          f"{rss['step_peak_mb']:.0f} (parameters {rss['parameters_mb']:.0f})\n")
    saved_by_stage = summary["by_stage_mb"]
    back = {r["stage"]: r for r in rss["backward_at_stage_mb"]}
    rows, previous = [], 0.0
    for r in rss["after_stage_mb"]:
        b = back.get(r["stage"])
        rows.append([r["stage"], f"{r['mb'] - previous:.0f}", f"{r['mb']:.0f}",
                     f"{saved_by_stage.get(r['stage'], 0):.0f}",
                     f"{b['mb']:.0f}" if b else "", f"{b['peak_mb']:.0f}" if b else ""])
        previous = r["mb"]
    print(markdown_table(["stage", "forward delta MB", "after it MB", "kept for backward MB",
                          "backward reaches its output: MB", "peak so far MB"], rows))


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
