"""Outputs of a comparison: ``results.json``, ``results.md`` and ``comparison.png``."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .runtime import Runtime, machine_metadata

__all__ = ["run_metadata", "results_tables", "summarize", "verdicts", "write_results",
           "plot_comparison", "plot_leaderboard"]

#: The primary metric of each task: (record key, label).
_PRIMARY = {"classification": ("test_top1", "top-1"), "segmentation": ("test_miou", "mIoU")}

#: Columns of the accuracy table per task: (record key, header, format).
_METRIC_COLUMNS = {
    "classification": [("test_top1", "top-1", "{:.2%}"), ("test_top5", "top-5", "{:.2%}"),
                       ("test_loss", "test loss", "{:.4f}")],
    "segmentation": [("test_miou", "mIoU", "{:.2%}"),
                     ("test_pixel_accuracy", "pixel acc.", "{:.2%}"),
                     ("test_loss", "test loss", "{:.4f}")],
}


def run_metadata(runtime: Runtime, **details) -> dict:
    """The machine (:func:`machine_metadata`), processes and AMP, plus ``details``."""
    return {**machine_metadata(), "processes": runtime.world_size, "amp": runtime.amp,
            **details}


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def results_tables(records: Sequence[dict], speed_records: Sequence[dict] = (),
                   task: str = "classification") -> str:
    """Markdown: the accuracy-and-speed table, and a speed-only table when there is one."""
    metrics = _METRIC_COLUMNS[task]
    per_class = task == "segmentation"
    header = ["model", "input", "epochs"] + [h for _, h, _ in metrics] + \
        ["train ms/batch", "images/s", "eval s", "params (M)", "GMACs", "peak memory MB"] + \
        (["IoU per class"] if per_class else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        cells = [r["name"], "x".join(map(str, r["input_hw"])), str(r["epochs_done"])]
        cells += [_cell(r.get(key), fmt) for key, _, fmt in metrics]
        cells += [_cell(r["train_ms_per_batch"], "{:.0f}"), _cell(r["images_per_second"], "{:.1f}"),
                  _cell(r["eval_seconds"], "{:.1f}"), f"{r['params'] / 1e6:.2f}",
                  f"{r['macs'] / 1e9:.3f}", _cell(r["peak_memory_mb"], "{:.0f}")]
        if per_class:
            cells.append(" ".join(f"{key[len('test_iou_class'):]}: {value:.0%}"
                                  for key, value in r.items()
                                  if key.startswith("test_iou_class")))
        lines.append("| " + " | ".join(cells) + " |")
    if speed_records:
        lines += ["", "Speed only (training steps on one batch, no accuracy):", "",
                  "| model | input | batch | train ms/batch | images/s | params (M) | GMACs |",
                  "|---|---|---|---|---|---|---|"]
        for r in speed_records:
            lines.append(f"| {r['name']} | {'x'.join(map(str, r['input_hw']))} | "
                         f"{r['batch_size']} | {r['train_ms_per_batch']:.0f} | "
                         f"{r['images_per_second']:.1f} | {r['params'] / 1e6:.2f} | "
                         f"{r['macs'] / 1e9:.3f} |")
    return "\n".join(lines)


def _model(record: dict) -> str:
    return record.get("model", record["name"])


def _spread(values: List[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(records: Sequence[dict], task: str = "classification") -> List[dict]:
    """One entry per model over its seeds: mean and standard deviation (n - 1) of the
    primary metric, median ms per batch (and the runs' range of it), largest peak memory,
    and the runs' metric values in seed order."""
    key, _ = _PRIMARY[task]
    by_model: Dict[str, List[dict]] = {}
    for record in records:
        by_model.setdefault(_model(record), []).append(record)
    summary = []
    for model, runs in by_model.items():
        values = [r[key] for r in runs if r.get(key) is not None]
        times = [r["train_ms_per_batch"] for r in runs if r["train_ms_per_batch"]]
        memory = [r["peak_memory_mb"] for r in runs if r.get("peak_memory_mb") is not None]
        summary.append({"model": model, "seeds": [r.get("seed") for r in runs],
                        "values": values,
                        "mean": statistics.mean(values) if values else None,
                        "std": _spread(values) if values else None,
                        "ms_per_batch": statistics.median(times) if times else None,
                        "ms_range": [min(times), max(times)] if times else None,
                        "peak_memory_mb": max(memory) if memory else None})
    return summary


def _baseline_of(model: str, models: Sequence[str]) -> Optional[str]:
    """The model a verdict compares ``model`` with: ``resnet50`` at the same input size when
    it is in the run, else the first model listed (None for the baseline itself)."""
    size = model.partition("@")[2]
    candidates = [m for m in models if re.fullmatch(rf"resnet50@{size}", m)] or [models[0]]
    return None if candidates[0] == model else candidates[0]


def _ratio(value: float) -> str:
    """``1.7x``; two significant digits below 0.1 (``0.032x``)."""
    return f"{value:.1f}x" if value >= 0.1 else f"{value:.2g}x"


def verdicts(summary: Sequence[dict], task: str = "classification") -> List[str]:
    """One line per model and its baseline: the difference of the primary metric in points
    with its spread over the seeds (paired by seed index), the time and memory ratios."""
    _, label = _PRIMARY[task]
    entries = {entry["model"]: entry for entry in summary}
    lines = []
    for entry in summary:
        base_name = _baseline_of(entry["model"], list(entries))
        if base_name is None or not entry["values"] or not entries[base_name]["values"]:
            continue
        base = entries[base_name]
        pairs = list(zip(entry["values"], base["values"]))
        differences = [100.0 * (a - b) for a, b in pairs]
        line = (f"{entry['model']} - {base_name}: {statistics.mean(differences):+.1f} +- "
                f"{_spread(differences):.1f} points {label}, {len(pairs)} seed"
                f"{'s' if len(pairs) > 1 else ''}")
        if entry["ms_per_batch"] and base["ms_per_batch"]:
            line += f"; {_ratio(entry['ms_per_batch'] / base['ms_per_batch'])} the time per batch"
        if entry["peak_memory_mb"] and base["peak_memory_mb"]:
            line += (f"; {_ratio(entry['peak_memory_mb'] / base['peak_memory_mb'])} the peak "
                     f"memory")
        lines.append(line)
    return lines


def _summary_table(summary: Sequence[dict], task: str) -> str:
    _, label = _PRIMARY[task]
    lines = [f"| model | seeds | {label} mean | {label} std | runs | ms/batch | peak memory MB |",
             "|---|---|---|---|---|---|---|"]
    for entry in summary:
        runs = ", ".join(f"{v:.2%}" for v in entry["values"])
        lines.append(f"| {entry['model']} | {len(entry['seeds'])} | "
                     f"{_cell(entry['mean'], '{:.2%}')} | {_cell(entry['std'], '{:.2%}')} | "
                     f"{runs} | {_cell(entry['ms_per_batch'], '{:.0f}')} | "
                     f"{_cell(entry['peak_memory_mb'], '{:.0f}')} |")
    return "\n".join(lines)


def plot_comparison(path: Path, records: Sequence[dict], speed_records: Sequence[dict] = (),
                    task: str = "classification") -> None:
    """PNG with three panels: the primary metric per epoch (mean over seeds, with a band of
    one standard deviation), ms per batch and peak memory as bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    key, label = _PRIMARY[task]
    metric = key[len("test_"):]
    figure, (accuracy, speed, memory) = plt.subplots(1, 3, figsize=(15, 4.2))
    by_model: Dict[str, List[dict]] = {}
    for record in records:
        by_model.setdefault(_model(record), []).append(record)
    for model, runs in by_model.items():
        epochs = min(len(r["history"]) for r in runs)
        if not epochs:
            continue
        values = np.array([[h["test"][metric] for h in r["history"][:epochs]] for r in runs])
        x = np.arange(1, epochs + 1)
        mean = values.mean(0)
        line, = accuracy.plot(x, mean, marker="o", label=f"{model} ({len(runs)} seed"
                                                         f"{'s' if len(runs) > 1 else ''})")
        if len(runs) > 1:
            std = values.std(0, ddof=1)
            accuracy.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    accuracy.set_xlabel("epoch")
    accuracy.set_ylabel(f"test {label}")
    accuracy.grid(alpha=0.3)
    accuracy.legend(fontsize=8)
    summary = summarize(records, task)
    bars = [(f"{e['model']}", e["ms_per_batch"], "C0") for e in summary if e["ms_per_batch"]]
    bars += [(f"{r['name']} (speed only, batch {r['batch_size']})", r["train_ms_per_batch"],
              "C1") for r in speed_records]
    for axis, rows, xlabel in (
            (speed, bars, "train ms per batch (median)"),
            (memory, [(e["model"], e["peak_memory_mb"], "C2") for e in summary
                      if e["peak_memory_mb"] is not None], "peak memory of training, MB")):
        axis.barh([b[0] for b in rows], [b[1] for b in rows], color=[b[2] for b in rows])
        axis.set_xlabel(xlabel)
        axis.tick_params(axis="y", labelsize=8)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_leaderboard(path: Path, summaries: Dict[str, Sequence[dict]], time_label: str,
                     task: str = "classification") -> None:
    """PNG with one panel per task: each model's primary metric (mean over seeds, error bar
    one standard deviation) against its ``ms_per_batch`` (error bar ``ms_range`` where the
    entry has one), labelled with the model. ``summaries``: task -> :func:`summarize`'s
    entries; ``time_label`` says what the times are."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = _PRIMARY[task]
    panels = list(summaries.items())
    figure, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 5.6),
                                squeeze=False)
    for axis, (name, summary) in zip(axes[0], panels):
        for index, entry in enumerate(summary):
            if entry["mean"] is None or entry["ms_per_batch"] is None:
                continue
            x, low_high = entry["ms_per_batch"], entry.get("ms_range")
            spread = [[x - low_high[0]], [low_high[1] - x]] if low_high else None
            axis.errorbar(x, 100 * entry["mean"], yerr=100 * entry["std"],
                          xerr=spread, fmt="o", color=f"C{index % 10}", capsize=3,
                          label=f"{entry['model']} ({len(entry['values'])} seed"
                                f"{'s' if len(entry['values']) > 1 else ''})")
        axis.set_title(name)
        axis.set_xlabel(f"train ms per step ({time_label})")
        axis.set_ylabel(f"test {label}, % (mean; bar: std over seeds)")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # below the panel: it hides no error bar
            axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        else:
            axis.text(0.5, 0.5, "no finished cell yet", ha="center", transform=axis.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(output: Path, records: List[dict], speed_records: List[dict],
                  metadata: dict, task: str = "classification",
                  title: Optional[str] = None) -> str:
    """Write ``results.json``, ``results.md`` and ``comparison.png`` under ``output``;
    returns the markdown tables."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    summary = summarize(records, task)
    lines = verdicts(summary, task)
    tables = results_tables(records, speed_records, task)
    if records:
        tables += "\n\nOver the seeds:\n\n" + _summary_table(summary, task)
    setting = ", ".join(f"{k} {v}" for k, v in metadata.items() if k != "date")
    text = f"# {title or 'Comparison'}\n\n{tables}\n\nRun: {setting}; {metadata.get('date')}.\n"
    if lines:
        text += "\nVerdict:\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    (output / "results.md").write_text(text)
    (output / "results.json").write_text(json.dumps(
        {"metadata": metadata, "models": records, "speed_only": speed_records,
         "summary": summary, "verdicts": lines}, indent=2))
    plot_comparison(output / "comparison.png", records, speed_records, task)
    return tables + ("\n\n" + "\n".join(lines) if lines else "")
