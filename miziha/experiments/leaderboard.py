"""The leaderboard: ResNet50 and every ``<mixer>_resnet50`` of :data:`miziha.MIXERS` in the
same network, trained under one protocol, several seeds, on several tasks.

Every (task, model, seed) is a *cell*: trained by :func:`~miziha.experiments.trainer.
train_model` (per-epoch checkpoints under the run folder) and, when it finishes, written to
``cells/<task>/<model>-seed<k>.json``. A run skips the cells already written, so a killed run
resumes where it stopped (mid-cell from the last epoch) and a mixer registered later adds
its cells without redoing the others. When every cell is done, every model's training step
is timed once more, all models interleaved in one process (``steps.json``), so that the
times and their ratios come from one run whatever else shared the machine while the cells
trained. :func:`render` turns whatever cells exist into the markdown, JSON and PNG, saying
which are complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..mixers import MIXERS
from ..models import list_models
from .compare import ModelSpec, build, parse_model_spec, protocol, takes_droppath
from .data import (PHOTO_TILE_SOURCES, ArrayDataset, limit, load_digits,
                   load_photo_tiles, photo_tile_card)
from .metrics import ClassificationMetrics
from .recipes import RECIPES
from .report import _cell, plot_leaderboard, summarize, verdicts
from .runtime import current_runtime, machine_metadata
from .trainer import TrainConfig, checkpoint_state, interleaved_train_speed, train_model

__all__ = ["TASKS", "Task", "leaderboard_models", "leaderboard_config", "run_leaderboard",
           "render", "read_cells", "read_step_times", "TIMING_ROUNDS"]

BASELINE = "resnet50"

#: Timed rounds of the interleaved step timing (one training step of every model a round).
TIMING_ROUNDS = 5


@dataclass(frozen=True)
class Task:
    """A dataset and how long to train on it."""

    name: str
    load: Callable[[], Tuple[ArrayDataset, ArrayDataset]]
    epochs: int
    description: str


#: The two tasks: scikit-learn's digits as ``make demo`` splits them, and the harder photo
#: tiles (:func:`~miziha.experiments.data.load_photo_tiles`). One epoch each: 6 to 8 models x
#: 3 seeds x 2 tasks must fit in about an hour on 2 CPU cores, where a training step of 32
#: images at 32x32 takes 1.6 s (ResNet50) to about 4 s (the mixers).
TASKS: Dict[str, Task] = {
    "digits": Task("digits", load_digits, 1,
                   "scikit-learn's 1,797 handwritten digits (8x8, upsampled to 32x32), 10 "
                   "classes, the demo's fixed stratified 80/20 split: 1,438 train / 359 test"),
    "tiles": Task("tiles", partial(load_photo_tiles, 80, 30), 1,
                  f"32x32 tiles of {len(PHOTO_TILE_SOURCES)} scikit-image photographs, "
                  f"which photograph a tile comes from (greyscale; train tiles from the left "
                  f"80% of each photo, test tiles right of a one-tile gap; "
                  f"`miziha.experiments.data.load_photo_tiles`): 80 train and 30 test tiles "
                  f"a photograph, 960 train / 360 test"),
}

#: The protocol of every cell: the modern recipe (AdamW, weight decay 0.05, label smoothing
#: 0.1) as ``make demo``'s one-cycle schedule: peak lr 2e-3, linear warm-up over a third of
#: the steps, cosine to 0; no augmentation or stochastic depth (a few epochs leave no room
#: for them). Batch 32.
PROTOCOL = dict(RECIPES["modern"], lr=2e-3, warmup_share=1 / 3, augment=False, droppath=0.0,
                batch_size=32)


def leaderboard_models(size: int = 32) -> List[str]:
    """``resnet50@size`` and ``<mixer>_resnet50@size`` for every mixer in
    :data:`miziha.MIXERS` whose network is registered, read at call time."""
    names = set(list_models(task="classification"))
    return [f"{BASELINE}@{size}"] + [f"{mixer}_{BASELINE}@{size}" for mixer in MIXERS
                                     if f"{mixer}_{BASELINE}" in names]


def leaderboard_config(epochs: int, seed: int, **overrides) -> TrainConfig:
    """The :data:`PROTOCOL` as a :class:`TrainConfig` for ``epochs`` and ``seed``."""
    values = {**PROTOCOL, **overrides}
    share = values.pop("warmup_share")
    return TrainConfig(epochs=epochs, seed=seed, warmup_epochs=round(share * epochs, 6),
                       **{k: v for k, v in values.items() if k != "epochs"})


def _cell_file(output: Path, task: str, model: str, seed: int) -> Path:
    return Path(output) / "cells" / task / f"{model}-seed{seed}.json"


def read_cells(output: Path) -> Dict[str, List[dict]]:
    """Task -> the finished cells' records under ``output``."""
    cells: Dict[str, List[dict]] = {}
    for path in sorted((Path(output) / "cells").glob("*/*.json")):
        cells.setdefault(path.parent.name, []).append(json.loads(path.read_text()))
    return cells


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _eta(pending: Sequence[Tuple[str, str, int]], seconds: Dict[Tuple[str, str], List[float]]
         ) -> Optional[float]:
    """Seconds left: each pending cell costs what its (task, model) took on average, else
    the mean of its task's finished cells, else of all finished cells."""
    every = [s for values in seconds.values() for s in values]
    if not every:
        return None
    total = 0.0
    for task, model, _ in pending:
        same = seconds.get((task, model))
        in_task = [s for (t, _), values in seconds.items() if t == task for s in values]
        total += statistics.mean(same or in_task or every)
    return total


def _clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown until a cell finishes"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _train_cell(output: Path, task: str, spec: ModelSpec, seed: int, config: TrainConfig,
                limit_train: Optional[int], limit_test: Optional[int]) -> None:
    """Train one cell (in its own process) and write its record."""
    warnings.filterwarnings("ignore", category=UserWarning, module="paddle")
    log = partial(print, flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    train, test = TASKS[task].load()
    train, test = limit(train, limit_train), limit(test, limit_test)
    name = f"{task}/{spec.name}-seed{seed}"
    record = train_model(
        name, lambda: build(spec.architecture, train.num_classes, config), train, test,
        ClassificationMetrics, config, current_runtime(False, log), spec.input_size, output,
        resume=checkpoint_state(output, name) is not None, log=log)
    record.update(task=task, model=spec.name, architecture=spec.architecture, seed=seed,
                  droppath=config.droppath if takes_droppath(spec.architecture) else 0.0,
                  protocol=protocol(config), train_images=len(train), test_images=len(test),
                  cell_seconds=time.perf_counter() - started,
                  load_average=[load_before, os.getloadavg()[0]], machine=machine_metadata())
    _write_atomically(_cell_file(output, task, spec.name, seed), json.dumps(record, indent=1))


def _steps_file(output: Path) -> Path:
    return Path(output) / "steps.json"


def read_step_times(output: Path) -> Optional[dict]:
    """The interleaved step timing of the run under ``output`` (None before it ran)."""
    path = _steps_file(output)
    return json.loads(path.read_text()) if path.is_file() else None


def _time_steps(output: Path, task: str, specs: Dict[str, ModelSpec], config: TrainConfig,
                rounds: int, limit_train: Optional[int]) -> None:
    """Time every model's training step, interleaved (in its own process), on a fixed batch
    of ``task``'s training images; write ``steps.json``."""
    warnings.filterwarnings("ignore", category=UserWarning, module="paddle")
    log = partial(print, flush=True)
    load_before = os.getloadavg()[0]
    train = limit(TASKS[task].load()[0], limit_train)
    builds = {name: (partial(build, spec.architecture, train.num_classes, config),
                     spec.input_size) for name, spec in specs.items()}
    models = interleaved_train_speed(builds, train, config.batch_size, rounds,
                                     ClassificationMetrics, config,
                                     current_runtime(False, log), log)
    _write_atomically(_steps_file(output), json.dumps({
        "task": task, "rounds": rounds, "warmup_steps": config.warmup_steps,
        "batch_size": config.batch_size, "models": models,
        "load_average": [load_before, os.getloadavg()[0]], "machine": machine_metadata()},
        indent=1))


def _run_in_process(context, target: Callable, args: tuple, what: str) -> None:
    """``target(*args)`` in a fresh process; a failure names ``what``."""
    worker = context.Process(target=target, args=args)
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise RuntimeError(f"{what} failed (exit code {worker.exitcode}); the cells "
                           f"finished before it are kept, run again to resume")


def run_leaderboard(output: Path, tasks: Sequence[str] = tuple(TASKS),
                    models: Optional[Sequence[str]] = None, seeds: int = 3,
                    epochs: Optional[Dict[str, int]] = None,
                    limit_train: Optional[int] = None, limit_test: Optional[int] = None,
                    overrides: Optional[dict] = None, timing_rounds: int = TIMING_ROUNDS,
                    log: Callable[[str], None] = print) -> Dict[str, List[dict]]:
    """Train every missing cell of ``tasks x models x seeds`` under ``output``, then (when
    the last timing does not cover every model) time every model's step interleaved.

    Args:
        output: the run folder (cells, checkpoints, VisualDL logs).
        tasks: names in :data:`TASKS`.
        models: ``ARCH@SIZE`` names (default: :func:`leaderboard_models`).
        seeds: seeds 0 .. seeds - 1.
        epochs: per task, instead of the task's.
        limit_train, limit_test: random subsets (smoke runs).
        overrides: :class:`TrainConfig` fields over :data:`PROTOCOL` (smoke runs).
        timing_rounds: rounds of the interleaved step timing (0: none).

    Returns: task -> every finished cell's record (this run's and earlier ones').
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks must be among {list(TASKS)}, got {unknown}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    if isinstance(timing_rounds, bool) or not isinstance(timing_rounds, int) or \
            timing_rounds < 0:
        raise ValueError(f"timing_rounds must be an int >= 0, got {timing_rounds!r}")
    models = list(models or leaderboard_models())
    specs = {m: parse_model_spec(m) for m in models}
    output = Path(output)
    # Seed by seed: a run cut short has compared every model on every task before it
    # adds a second seed to any.
    plan = [(task, model, seed) for seed in range(seeds) for task in tasks for model in models]
    pending = [cell for cell in plan if not _cell_file(output, *cell).is_file()]
    log(f"leaderboard: {len(plan)} cells ({len(tasks)} tasks x {len(models)} models x "
        f"{seeds} seeds), {len(plan) - len(pending)} already done, {len(pending)} to train")
    seconds: Dict[Tuple[str, str], List[float]] = {}
    for cell in read_cells(output).values():
        for record in cell:
            if record.get("cell_seconds"):
                seconds.setdefault((record["task"], record["model"]), []).append(
                    record["cell_seconds"])
    context = multiprocessing.get_context("spawn")
    for done, (task, model, seed) in enumerate(pending):
        config = leaderboard_config((epochs or {}).get(task, TASKS[task].epochs), seed,
                                    **(overrides or {}))
        name = f"{task}/{model}-seed{seed}"
        log(f"[{done + 1}/{len(pending)}] {name}: starting; ETA of the rest "
            f"{_clock(_eta(pending[done:], seconds))}")
        # A fresh process a cell: its peak memory is the cell's own, not the largest model's
        # trained before it in the same process.
        _run_in_process(context, _train_cell, (output, task, specs[model], seed, config,
                                               limit_train, limit_test), name)
        record = json.loads(_cell_file(output, task, model, seed).read_text())
        seconds.setdefault((task, model), []).append(record["cell_seconds"])
        log(f"[{done + 1}/{len(pending)}] {name}: top-1 {record['test_top1']:.2%}, "
            f"{_cell(record['train_ms_per_batch'], '{:.0f}')} ms/step, "
            f"{record['cell_seconds']:.0f} s; ETA of the rest "
            f"{_clock(_eta(pending[done + 1:], seconds))}")
    timing = read_step_times(output)
    config = leaderboard_config(1, 0, **(overrides or {}))
    wanted = {"task": tasks[0], "batch_size": config.batch_size,
              "warmup_steps": config.warmup_steps}
    if timing_rounds and (timing is None or not set(models) <= set(timing["models"])
                          or any(timing[k] != v for k, v in wanted.items())):
        log(f"timing every model's training step, interleaved in one process "
            f"({timing_rounds} rounds after {config.warmup_steps} untimed steps)")
        _run_in_process(context, _time_steps, (output, tasks[0], specs, config, timing_rounds,
                                               limit_train), "the step timing")
    return read_cells(output)


def _grid(cells: Dict[str, List[dict]], tasks: Sequence[str], models: Sequence[str],
          seeds: int) -> str:
    """Markdown: finished seeds per task and model."""
    lines = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for model in models:
        row = []
        for task in tasks:
            done = sorted(r["seed"] for r in cells.get(task, []) if r["model"] == model)
            row.append(f"{len(done)}/{seeds}" + (" (complete)" if len(done) >= seeds else ""))
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _summary(records: List[dict], step_ms: Optional[Dict[str, float]]) -> List[dict]:
    """:func:`~miziha.experiments.report.summarize` of a task's cells; with ``step_ms``
    (the interleaved timing, covering every model) each model's time per step is that
    timing's (``ms_per_batch``, no range), the median over its cells kept as
    ``cell_ms_per_batch``."""
    summary = summarize(records)
    for entry in summary:
        entry["cell_ms_per_batch"] = entry["ms_per_batch"]
        if step_ms is not None:
            entry["ms_per_batch"], entry["ms_range"] = step_ms[entry["model"]], None
    return summary


def _task_table(records: List[dict], summary: List[dict]) -> str:
    """Markdown: per model, top-1 mean +- std with each seed's value, time (interleaved and
    in the cells), memory, cost."""
    costs = {r["model"]: r for r in records}
    lines = ["| model | seeds | top-1 mean +- std | per seed | train ms/step | ms/step in the "
             "cells | peak memory MB | params (M) | GMACs |",
             "|---|---|---|---|---|---|---|---|---|"]
    ranked = sorted(summary, key=lambda e: -(e["mean"] or 0.0))
    for entry in ranked:
        runs = ", ".join(f"{s}: {v:.2%}" for s, v in zip(entry["seeds"], entry["values"]))
        cost = costs[entry["model"]]
        spread = f"{entry['std']:.2%}" if len(entry["values"]) > 1 else "n/a (1 seed)"
        lines.append(
            f"| {entry['model']} | {len(entry['values'])} | {entry['mean']:.2%} +- "
            f"{spread} | {runs} | {_cell(entry['ms_per_batch'], '{:.0f}')} | "
            f"{_cell(entry['cell_ms_per_batch'], '{:.0f}')} | "
            f"{_cell(entry['peak_memory_mb'], '{:.0f}')} | {cost['params'] / 1e6:.2f} | "
            f"{cost['macs'] / 1e9:.3f} |")
    return "\n".join(lines)


def _tile_card() -> str:
    """Markdown: the photo tiles' dataset card."""
    lines = [
        "Dataset card of **tiles** (`load_photo_tiles`; the photographs ship inside the "
        "scikit-image wheel, nothing is downloaded). Each photograph is one class. Colour "
        "photographs are made greyscale by `skimage.color.rgb2gray` (luminance 0.2125 R + "
        "0.7154 G + 0.0721 B), greyscale ones scaled to [0, 1], so that colour alone does "
        "not give the class away; the grey level goes to all 3 input channels, in [-1, 1]. "
        "Each photo is cut by columns: train tiles (32x32, every 8 pixels) lie in the left "
        "80% of the columns, test tiles (the same grid) start one whole tile right of that "
        "boundary, so no tile and no overlapping region is in both sets. Tiles with a pixel "
        "standard deviation below 0.02 (flat background) are dropped. Then 80 train and 30 "
        "test tiles are drawn per photo (seed 0): 960 train and 360 test tiles, balanced.",
        "",
        "| class | `skimage.data` | size | colour | train / test tiles cut | licence |",
        "|---|---|---|---|---|---|"]
    for row in photo_tile_card():
        lines.append(f"| {row['class']} | `{row['name']}` | {row['size'][0]}x{row['size'][1]} "
                     f"| {'yes' if row['colour'] else 'no'} | {row['train_tiles']} / "
                     f"{row['test_tiles']} | {row['licence']} |")
    lines += ["", "Left out: `moon` and `stereo_motorcycle` (scikit-image states no licence "
                  "for them), `chelsea` (the same photograph as `cat`), and the images "
                  "scikit-image downloads on first use."]
    return "\n".join(lines)


def _timing_text(timing: Optional[dict], covered: bool, config: dict) -> str:
    """Markdown: how the times per step were measured (``covered``: the timing covers
    every model of the leaderboard, so its times are the ones shown)."""
    cells = (f"the median over a cell's own training steps (forward, backward and update "
             f"of a batch of {config['batch_size']}, after {config['warmup_steps']} untimed "
             f"steps), median over the model's cells")
    if not timing or not covered:
        why = ("has not run yet (it runs when the run's cells are done)" if not timing else
               "does not cover every model here (run again to time them all)")
        return (f"Train ms/step is {cells}; the interleaved timing {why}, so other jobs may "
                f"weigh on some cells more than on others.")
    return (f"Train ms/step (also the time ratios and the figure's x axis): every model's "
            f"training step (forward, backward and the protocol's update of one fixed batch "
            f"of {timing['batch_size']} {timing['task']} images) timed in one process, "
            f"interleaved, after the cells: median of {timing['rounds']} rounds after "
            f"{timing['warmup_steps']} untimed steps (`steps.json` of the run, in the "
            f"results JSON as `step_timing`), so a change in the machine's speed hits every "
            f"model alike. Ms/step in the cells is {cells}: it varies with what else ran "
            f"during each cell.")


def _sharing(loads: List[float], machine: dict) -> str:
    """Markdown: whether other jobs shared the machine, from the cells' load averages."""
    if not loads:
        return "No load average was recorded."
    spread = f"{min(loads):.1f} to {max(loads):.1f} on {machine['cpu_count']} cores"
    if max(loads) > machine["cpu_count"]:
        return (f"Other jobs shared the machine during the run (1-minute load average at "
                f"the cells' starts and ends {spread}): the times per step in the cells "
                f"are indicative only.")
    return f"The machine was otherwise idle (1-minute load average {spread})."


def render(output: Path, markdown: Path, results: Path, figure: Path,
           tasks: Sequence[str] = tuple(TASKS), models: Optional[Sequence[str]] = None,
           seeds: int = 3, command: str = "make leaderboard") -> str:
    """Write the leaderboard from the cells under ``output``: ``markdown`` (tables,
    verdicts, which cells are complete, the machine), ``results`` (JSON of every cell and
    summary) and ``figure`` (top-1 against ms per step, error bars over the seeds).
    Returns the markdown."""
    cells = read_cells(output)
    models = list(models or leaderboard_models())
    for task in cells:  # cells of models no longer listed are still reported
        models += [m for m in dict.fromkeys(r["model"] for r in cells[task]) if m not in models]
    seeds_ordered = {task: sorted(cells.get(task, []), key=lambda r: (models.index(r["model"]),
                                                                     r["seed"]))
                     for task in tasks}
    complete = all(sum(r["model"] == m for r in cells.get(t, [])) >= seeds
                   for t in tasks for m in models)
    machines = [r["machine"] for records in cells.values() for r in records]
    machine = machines[-1] if machines else machine_metadata()
    loads = [load for records in cells.values() for r in records for load in r["load_average"]]
    config = next((r["protocol"] for records in cells.values() for r in records), None)
    timing = read_step_times(output)
    shown = {r["model"] for task in tasks for r in seeds_ordered[task]}
    covered = timing is not None and shown <= set(timing["models"])
    step_ms = {m: r["train_ms_per_batch"] for m, r in timing["models"].items()} \
        if covered else None
    text = [
        "# Leaderboard: which mixer pays",
        "",
        f"ResNet50 and every `<mixer>_resnet50` of `miziha.MIXERS` (the mixer replaces the "
        f"bottleneck's 3x3 convolution; same stem, stages, widths, head), at 32x32 inputs, "
        f"trained from scratch under one protocol, {seeds} seeds each, on {len(tasks)} "
        f"tasks. Made by `{command}` (`examples/leaderboard.py`)" +
        ("." if complete else "; the numbers below are from the cells finished so far."),
        "",
        "**Status: " + ("complete.**" if complete else
                        "incomplete: the run did not finish every cell; the grid says which "
                        "are done; means and verdicts use the finished seeds only.**"),
        "",
        _grid(cells, tasks, models, seeds),
        "",
        "## Tasks and protocol",
        "",
    ]
    text += [f"- **{t}**: {TASKS[t].description}." for t in tasks]
    if "tiles" in tasks:
        text += ["", _tile_card()]
    if config:
        text += ["", "Protocol (every cell): " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in config.items()
            if k not in ("epochs", "warmup_epochs")) + "; epochs " + ", ".join(
            f"{t} {TASKS[t].epochs}" for t in tasks) + "; warm-up a third of the epochs. "
            + _timing_text(timing, covered, config) + " Peak memory is the growth of the peak "
            "resident size of the cell's own process during training (the cell runs in a "
            "fresh process)."]
    summaries = {}
    for task in tasks:
        records = seeds_ordered[task]
        text += ["", f"## {task}", ""]
        if not records:
            text.append("No cell of this task has finished yet.")
            continue
        summary = _summary(records, step_ms)
        text.append(_task_table(records, summary))
        lines = verdicts(summary)
        summaries[task] = {"summary": summary, "verdicts": lines}
        if lines:
            text += ["", "Verdicts against ResNet50 (difference of top-1 in points, mean +- "
                         "std over the seeds paired by seed; time and memory ratios):", ""]
            text += [f"- {line}" for line in lines]
    text += [
        "", "![top-1 against time per step](leaderboard.png)", "",
        "## Machine",
        "",
        f"{machine['cpu']}, {machine['cpu_count']} cores, {machine['omp_num_threads']} "
        f"compute thread(s) (OMP_NUM_THREADS), Paddle {machine['paddle']} on "
        f"{machine['device']}, Python {machine['python']}. " + _sharing(loads, machine),
    ]
    if covered:
        text[-1] += (" During the interleaved timing the 1-minute load average was "
                     + " and ".join(f"{load:.1f}" for load in timing["load_average"])
                     + " (start and end).")
    markdown_text = "\n".join(text) + "\n"
    _write_atomically(Path(markdown), markdown_text)
    _write_atomically(Path(results), json.dumps({
        "complete": complete, "tasks": list(tasks), "models": models, "seeds": seeds,
        "machine": machine,
        "shared_machine": bool(loads) and max(loads) > machine["cpu_count"],
        "load_average_range": [min(loads), max(loads)] if loads else None,
        "cells_done": {t: {m: sorted(r["seed"] for r in cells.get(t, []) if r["model"] == m)
                           for m in models} for t in tasks},
        "step_timing": timing, "step_timing_used": covered, "results": summaries,
        "cells": seeds_ordered}, indent=1))
    plot_leaderboard(Path(figure), {t: summaries[t]["summary"] if t in summaries else []
                                    for t in tasks},
                     "interleaved timing: median of its rounds" if covered else
                     "median over the seeds' cells; bar: their range")
    return markdown_text
