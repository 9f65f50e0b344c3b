"""Shared benchmark helpers: timing with interleaved repetitions, run metadata, output."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import List

from miziha.experiments.runtime import interleaved  # noqa: F401 (re-export)
from miziha.experiments.runtime import machine_metadata as metadata  # noqa: F401 (re-export)


def median(values: List[float]) -> float:
    return statistics.median(values)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
