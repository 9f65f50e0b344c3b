"""Outputs of a comparison: ``results.json``, ``results.md`` and ``comparison.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

from .runtime import Runtime, machine_metadata

__all__ = ["run_metadata", "results_tables", "write_results", "plot_comparison"]

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
    header = ["model", "input", "epochs"] + [h for _, h, _ in metrics] + \
        ["train ms/batch", "images/s", "eval s", "params (M)", "GMACs", "peak MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        cells = [r["name"], "x".join(map(str, r["input_hw"])), str(r["epochs_done"])]
        cells += [_cell(r.get(key), fmt) for key, _, fmt in metrics]
        cells += [_cell(r["train_ms_per_batch"], "{:.0f}"), _cell(r["images_per_second"], "{:.1f}"),
                  _cell(r["eval_seconds"], "{:.1f}"), f"{r['params'] / 1e6:.2f}",
                  f"{r['macs'] / 1e9:.3f}", _cell(r["peak_memory_mb"], "{:.0f}")]
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


def plot_comparison(path: Path, records: Sequence[dict], speed_records: Sequence[dict] = (),
                    metric: str = "top1", metric_label: str = "test top-1 accuracy") -> None:
    """PNG with three panels: ``metric`` per epoch, test loss per epoch, ms per batch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (acc, loss, speed) = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in records:
        epochs = [h["epoch"] for h in r["history"]]
        acc.plot(epochs, [h["test"][metric] for h in r["history"]], marker="o", label=r["name"])
        loss.plot(epochs, [h["test"]["loss"] for h in r["history"]], marker="o",
                  label=r["name"])
    for axis, label in ((acc, metric_label), (loss, "test loss")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    bars = [(f"{r['name']} (batch {r['batch_size']})", r["train_ms_per_batch"], "C0")
            for r in records if r["train_ms_per_batch"]]
    bars += [(f"{r['name']} (speed only, batch {r['batch_size']})", r["train_ms_per_batch"],
              "C1") for r in speed_records]
    speed.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    speed.set_xlabel("train ms per batch (median)")
    speed.tick_params(axis="y", labelsize=8)
    speed.invert_yaxis()
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
    (output / "results.json").write_text(json.dumps(
        {"metadata": metadata, "models": records, "speed_only": speed_records}, indent=2))
    tables = results_tables(records, speed_records, task)
    setting = ", ".join(f"{k} {v}" for k, v in metadata.items() if k != "date")
    text = f"# {title or 'Comparison'}\n\n{tables}\n\nRun: {setting}; {metadata.get('date')}.\n"
    (output / "results.md").write_text(text)
    metric = "top1" if task == "classification" else "miou"
    plot_comparison(output / "comparison.png", records, speed_records, metric,
                    "test top-1 accuracy" if task == "classification" else "test mIoU")
    return tables
