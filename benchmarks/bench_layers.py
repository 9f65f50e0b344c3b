"""Every mixer against the 3x3 Conv2D it replaces: forward and forward+backward time.

Usage: python benchmarks/bench_layers.py [--repeats N] [--mixer-repeats N] [--batch B]
                                         [--mixers NAME ...] [--output FILE]

First table: each mixer of ``miziha.MIXERS`` (``in == out`` channels) against
``Conv2D(C, C, 3, padding=1)`` at C=64 56x56, 128/28, 256/14 (stages 1-3 of a 224 model),
interleaved in one process: forward (no_grad) and forward+backward medians, MACs from
``miziha.flops``, the time ratio to the conv and the MAC ratio. Each mixer has the options
its official model uses in that stage (:data:`miziha.mixers.STAGE_OPTIONS`: CSWin's
``split_size`` 1, 2, 7); where those differ from the layer's defaults, the defaults get a
row too. Targets of the mixer issue: forward+backward time ratio at most 1.5x the MAC
ratio, and at most 6x, at every setting.

For each setting, the two layers are timed in one process, interleaved, and the medians
and their ratio are reported: forward under ``paddle.no_grad`` (inference), forward+backward
(training), and forward+backward with ``use_recompute=True``. The targets of the
performance issue apply at C=64: forward <= 5.0x, forward+backward <= 6.0x.

A second table times SwinT forward+backward with its eager-CPU sub-batching
(:mod:`miziha.paddle_fixes.cpu`) on and off, interleaved, including the SwinResNet50 layer with the
widest temporaries (``SwinT(128, 128, downsample=True)`` on 56x56 maps).
A benchmark, not a test: it prints a table and writes JSON.
Thread count is Paddle's default unless OMP_NUM_THREADS is set; the JSON records which.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import paddle
import paddle.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, markdown_table, median, metadata, write_json  # noqa: E402

import miziha  # noqa: E402
from miziha.paddle_fixes import cpu  # noqa: E402
from miziha.mixers import stage_options  # noqa: E402

#: (channels, map side, heads), at window 7: the first three Swin-T stage sizes at 224.
SETTINGS = [(64, 56, 4), (128, 28, 8), (256, 14, 16)]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "layers.json"
#: Ratio ceilings at the first setting (C=64, 56x56, 4 heads).
TARGETS = {"ratio_fwd": 5.0, "ratio_fwdbwd": 6.0}
#: Mixer targets: fwd+bwd time ratio <= MIXER_MAC_FACTOR * MAC ratio and <= MIXER_CEILING.
MIXER_MAC_FACTOR, MIXER_CEILING = 1.5, 6.0
#: (channels, map side, heads, downsample) for the sub-batching comparison.
SUB_BATCH_SETTINGS = [(64, 56, 4, False), (128, 56, 8, True)]


def forward_backward(layer: nn.Layer, x: paddle.Tensor):
    def step():
        layer(x).sum().backward()
        layer.clear_gradients()
    return step


def forward_only(layer: nn.Layer, x: paddle.Tensor):
    def step():
        with paddle.no_grad():
            layer(x)
    return step


def bench_setting(channels: int, side: int, heads: int, batch: int, repeats: int,
                  warmup: int) -> dict:
    swint = miziha.SwinT(channels, channels, (side, side), heads, 7)
    recomputed = miziha.SwinT(channels, channels, (side, side), heads, 7, use_recompute=True)
    recomputed.set_state_dict(swint.state_dict())
    conv = nn.Conv2D(channels, channels, 3, padding=1)
    x = paddle.randn([batch, channels, side, side])
    x_grad = x.detach()
    x_grad.stop_gradient = False
    for layer in (swint, recomputed, conv):
        layer.train()
    times = interleaved({
        "swint_fwd": forward_only(swint, x), "conv_fwd": forward_only(conv, x),
        "swint_fwdbwd": forward_backward(swint, x_grad),
        "conv_fwdbwd": forward_backward(conv, x_grad),
        "swint_recompute_fwdbwd": forward_backward(recomputed, x_grad),
    }, repeats=repeats, warmup=warmup)
    med = {name: median(values) for name, values in times.items()}
    return {
        "batch": batch, "channels": channels, "height": side, "width": side,
        "num_heads": heads, "window_size": 7,
        "median_ms": med,
        "ratio_fwd": med["swint_fwd"] / med["conv_fwd"],
        "ratio_fwdbwd": med["swint_fwdbwd"] / med["conv_fwdbwd"],
        "ratio_recompute_fwdbwd": med["swint_recompute_fwdbwd"] / med["conv_fwdbwd"],
        "times_ms": times,
    }


def mixer_configs(name: str, stage: int) -> list:
    """The option sets to time ``name`` with in ``stage``: the official stage's, and the
    layer's defaults where those differ."""
    official = stage_options(name, stage)
    defaults = {key: inspect.signature(miziha.MIXERS[name]).parameters[key].default
                for key in official}
    return [official] + ([{}] if official != defaults else [])


def bench_mixer(name: str, options: dict, channels: int, side: int, batch: int, repeats: int,
                warmup: int) -> dict:
    """One mixer (built with ``options``) against the conv at one setting."""
    paddle.seed(0)
    mixer = miziha.MIXERS[name](channels, channels, **options)
    conv = nn.Conv2D(channels, channels, 3, padding=1)
    x = paddle.randn([batch, channels, side, side])
    x_grad = x.detach()
    x_grad.stop_gradient = False
    times = interleaved({"mixer_fwd": forward_only(mixer, x), "conv_fwd": forward_only(conv, x),
                         "mixer_fwdbwd": forward_backward(mixer, x_grad),
                         "conv_fwdbwd": forward_backward(conv, x_grad)},
                        repeats=repeats, warmup=warmup)
    med = {case: median(values) for case, values in times.items()}
    (row,) = miziha.flops(nn.Sequential(mixer), [batch, channels, side, side]).rows
    mac_ratio = row.macs / row.conv_macs
    ratio_fwdbwd = med["mixer_fwdbwd"] / med["conv_fwdbwd"]
    return {"mixer": name, "options": options, "class": type(mixer).__name__, "batch": batch,
            "channels": channels, "height": side, "width": side, "macs": row.macs,
            "conv_macs": row.conv_macs, "mac_ratio": mac_ratio, "median_ms": med,
            "ratio_fwd": med["mixer_fwd"] / med["conv_fwd"], "ratio_fwdbwd": ratio_fwdbwd,
            "target": min(MIXER_MAC_FACTOR * mac_ratio, MIXER_CEILING),
            "met": ratio_fwdbwd <= min(MIXER_MAC_FACTOR * mac_ratio, MIXER_CEILING),
            "times_ms": times}


def with_chunk_bytes(step, chunk_bytes):
    """``step`` run with :data:`miziha.paddle_fixes.cpu.BATCH_CHUNK_BYTES` set to ``chunk_bytes``."""
    def run():
        saved, cpu.BATCH_CHUNK_BYTES = cpu.BATCH_CHUNK_BYTES, chunk_bytes
        try:
            step()
        finally:
            cpu.BATCH_CHUNK_BYTES = saved
    return run


def bench_sub_batches(channels: int, side: int, heads: int, downsample: bool, batch: int,
                      repeats: int, warmup: int) -> dict:
    layer = miziha.SwinT(channels, channels, (side, side), heads, 7, downsample=downsample)
    x = paddle.randn([batch, channels, side, side])
    x.stop_gradient = False
    step = forward_backward(layer, x)
    times = interleaved({"whole": with_chunk_bytes(step, None),
                         "sub_batched": with_chunk_bytes(step, cpu.BATCH_CHUNK_BYTES)},
                        repeats=repeats, warmup=warmup)
    med = {name: median(values) for name, values in times.items()}
    return {"batch": batch, "channels": channels, "height": side, "width": side,
            "num_heads": heads, "downsample": downsample,
            "chunk_bytes": cpu.BATCH_CHUNK_BYTES, "median_ms": med,
            "speedup": med["whole"] / med["sub_batched"], "times_ms": times}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per case first")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--mixer-repeats", type=int, default=5,
                        help="timed runs per case of the mixer table")
    parser.add_argument("--mixers", nargs="*", default=sorted(miziha.MIXERS),
                        choices=sorted(miziha.MIXERS), help="mixers of the first table")
    parser.add_argument("--skip-swint", action="store_true",
                        help="only the mixer table (no SwinT recompute / sub-batch tables)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    args = parser.parse_args(argv)
    if min(args.repeats, args.mixer_repeats, args.batch) < 1 or args.warmup < 0:
        parser.error("--repeats, --mixer-repeats and --batch must be >= 1, --warmup >= 0")

    mixers = []
    for stage, (channels, side, _) in enumerate(SETTINGS):
        for name in args.mixers:
            for options in mixer_configs(name, stage):
                print(f"timing {name} {options or ''} vs Conv2D, C={channels} {side}x{side} "
                      f"...", flush=True)
                mixers.append(bench_mixer(name, options, channels, side, args.batch,
                                          args.mixer_repeats, args.warmup))
    meta = metadata()
    print(f"\nB={args.batch}, median of {args.mixer_repeats} interleaved runs; Paddle "
          f"{meta['paddle']} on {meta['device']} ({meta['cpu']}, {meta['cpu_count']} cores), "
          f"{meta['omp_num_threads']} compute thread(s) (OMP_NUM_THREADS)\n")
    print(markdown_table(
        ["mixer", "options", "C", "map", "MAC ratio", "Conv2D fwd ms", "fwd ms", "ratio",
         "Conv2D fwd+bwd ms", "fwd+bwd ms", "ratio", "target", "met"],
        [[r["mixer"], ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults",
          f"{r['channels']}", f"{r['height']}x{r['width']}",
          f"{r['mac_ratio']:.2f}x", f"{r['median_ms']['conv_fwd']:.1f}",
          f"{r['median_ms']['mixer_fwd']:.1f}", f"{r['ratio_fwd']:.2f}x",
          f"{r['median_ms']['conv_fwdbwd']:.1f}", f"{r['median_ms']['mixer_fwdbwd']:.1f}",
          f"{r['ratio_fwdbwd']:.2f}x", f"<= {r['target']:.2f}x",
          "met" if r["met"] else "MISSED"] for r in mixers]))
    if args.skip_swint:
        payload = {"benchmark": "bench_layers", "meta": meta, "batch": args.batch,
                   "mixer_repeats": args.mixer_repeats, "warmup": args.warmup,
                   "mixers": mixers}
        write_json(args.output, payload)
        print(f"\nwrote {args.output}")
        return payload

    results = []
    for channels, side, heads in SETTINGS:
        print(f"timing C={channels} {side}x{side} heads={heads} ...", flush=True)
        results.append(bench_setting(channels, side, heads, args.batch, args.repeats,
                                     args.warmup))
    sub_batches = []
    for channels, side, heads, downsample in SUB_BATCH_SETTINGS:
        print(f"timing sub-batching, C={channels} {side}x{side} downsample={downsample} ...",
              flush=True)
        sub_batches.append(bench_sub_batches(channels, side, heads, downsample, args.batch,
                                             args.repeats, args.warmup))
    rows = [[f"{r['channels']}", f"{r['height']}x{r['width']}", f"{r['num_heads']}",
             f"{r['median_ms']['conv_fwd']:.1f}", f"{r['median_ms']['swint_fwd']:.1f}",
             f"{r['ratio_fwd']:.2f}x", f"{r['median_ms']['conv_fwdbwd']:.1f}",
             f"{r['median_ms']['swint_fwdbwd']:.1f}", f"{r['ratio_fwdbwd']:.2f}x",
             f"{r['median_ms']['swint_recompute_fwdbwd']:.1f}",
             f"{r['ratio_recompute_fwdbwd']:.2f}x"]
            for r in results]
    table = markdown_table(["C", "map", "heads", "Conv2D fwd ms", "SwinT fwd ms", "ratio",
                            "Conv2D fwd+bwd ms", "SwinT fwd+bwd ms", "ratio",
                            "recompute fwd+bwd ms", "ratio"], rows)
    targets = {key: {"ceiling": ceiling, "measured": results[0][key],
                     "met": results[0][key] <= ceiling} for key, ceiling in TARGETS.items()}
    print(f"\nB={args.batch}, window 7, median of {args.repeats} interleaved runs; "
          f"Paddle {meta['paddle']} on {meta['device']} ({meta['cpu']}, "
          f"{meta['cpu_count']} cores), {meta['omp_num_threads']} compute thread(s) "
          f"(OMP_NUM_THREADS)\n")
    print(table)
    print(f"\nSwinT fwd+bwd with sub-batches of at most "
          f"{cpu.BATCH_CHUNK_BYTES / 2 ** 20:g} MiB of temporaries, and whole:\n")
    print(markdown_table(
        ["C", "map", "heads", "downsample", "whole ms", "sub-batched ms", "speedup"],
        [[f"{r['channels']}", f"{r['height']}x{r['width']}", f"{r['num_heads']}",
          f"{r['downsample']}", f"{r['median_ms']['whole']:.1f}",
          f"{r['median_ms']['sub_batched']:.1f}", f"{r['speedup']:.2f}x"]
         for r in sub_batches]))
    print(f"\ntargets at C={results[0]['channels']}: " + "; ".join(
        f"{key} {t['measured']:.2f}x <= {t['ceiling']}x: {'met' if t['met'] else 'MISSED'}"
        for key, t in targets.items()))
    payload = {"benchmark": "bench_layers", "meta": meta, "repeats": args.repeats,
               "mixer_repeats": args.mixer_repeats, "warmup": args.warmup,
               "mixers": mixers, "targets": targets, "results": results,
               "sub_batches": sub_batches}
    write_json(args.output, payload)
    print(f"\nwrote {args.output}")
    return payload


if __name__ == "__main__":
    main()
