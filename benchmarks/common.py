"""Shared benchmark helpers: timing with interleaved repetitions, run metadata, output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import paddle


def time_once(fn: Callable[[], None]) -> float:
    """Milliseconds for one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleaved(cases: Dict[str, Callable[[], None]], repeats: int, warmup: int) -> Dict[str, List[float]]:
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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata() -> dict:
    """What a reader needs to reproduce or compare a run."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "paddle": paddle.__version__,
        "device": paddle.get_device(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        # Importing Paddle sets OMP_NUM_THREADS to 1 when it is unset, so after the import
        # it holds the thread count Paddle computes with.
        "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "python": platform.python_version(),
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
