"""Shared benchmark helpers: timing with interleaved repetitions, run metadata, output."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

from miziha.experiments.runtime import machine_metadata as metadata  # noqa: F401 (re-export)


def time_once(fn: Callable[[], None]) -> float:
    """Milliseconds for one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleaved(cases: Dict[str, Callable[[], None]], repeats: int,
                warmup: int) -> Dict[str, List[float]]:
    """Time every case ``repeats`` times, round-robin, so drifts in machine speed hit all
    cases alike. Returns all timings in ms per case."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(time_once(fn))
    return times


def median(values: List[float]) -> float:
    return statistics.median(values)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
