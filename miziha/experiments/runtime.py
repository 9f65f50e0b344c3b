"""Where a run executes: device, processes (``paddle.distributed.launch``), AMP support."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import paddle
import paddle.distributed as dist
import paddle.nn as nn

__all__ = ["Runtime", "current_runtime", "Progress", "cpu_name", "machine_metadata",
           "process_memory_mb", "reset_resident_peak", "time_once", "interleaved"]


def time_once(fn: Callable[[], object]) -> float:
    """Milliseconds for one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleaved(cases: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                after_round: Optional[Callable[[int], None]] = None) -> Dict[str, List[float]]:
    """Time every case ``repeats`` times, round-robin (after ``warmup`` untimed calls of
    each), so drifts in machine speed hit all cases alike; ``after_round(k)`` is called
    after round ``k`` (1-based), for progress. Returns all timings in ms per case."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for round_ in range(repeats):
        for name, fn in cases.items():
            times[name].append(time_once(fn))
        if after_round is not None:
            after_round(round_ + 1)
    return times


def process_memory_mb(field: str) -> Optional[float]:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``: resident now, ``VmHWM``: its
    peak) in MiB; None where there is no such file (not Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_resident_peak(required: bool = False) -> Optional[float]:
    """Reset the process's peak resident size (``VmHWM``) to the current one (Linux's
    ``/proc/self/clear_refs``) and return it in MiB: the baseline of a later ``VmHWM``,
    which never falls below it (``VmRSS``, a separate count, can differ from it by a few
    pages). Where that is not possible: None, or with ``required`` a ``RuntimeError``."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak = process_memory_mb("VmHWM")
    except OSError:
        peak = None
    if peak is None and required:
        raise RuntimeError("measuring a peak resident size needs Linux's /proc/self/status "
                           "and a writable /proc/self/clear_refs, which this system lacks")
    return peak


@dataclass
class Runtime:
    """The process's place in a run. ``rank == 0`` writes every output."""

    rank: int
    world_size: int
    device: str
    amp: bool  # float16 autocast in use
    resident_start_mb: Optional[float] = None  # CPU: resident size at the last reset

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("gpu")

    def synchronize(self) -> None:
        """Wait for queued device work, so that wall-clock timings are real (GPU only)."""
        if self.on_gpu:
            paddle.device.synchronize()

    def reset_peak_memory(self) -> None:
        """Start measuring peak memory: the GPU allocator's peak, or on CPU the process's
        peak resident size (as ``benchmarks/bench_networks.py`` measures a step)."""
        if self.on_gpu:
            paddle.device.cuda.reset_max_memory_allocated()
        else:
            self.resident_start_mb = reset_resident_peak()

    def peak_memory_mb(self) -> Optional[float]:
        """Since the last reset: peak allocated device memory on a GPU; on CPU the peak
        resident size over the resident size at the reset (None where the system cannot
        tell, i.e. not Linux)."""
        if self.on_gpu:
            return paddle.device.cuda.max_memory_allocated() / 2 ** 20
        peak = process_memory_mb("VmHWM")
        if peak is None or self.resident_start_mb is None:
            return None
        return peak - self.resident_start_mb

    def average_batch_norm_statistics(self, model: nn.Layer) -> None:
        """Average BatchNorm running statistics over processes. ``DataParallel`` syncs them
        only when it wraps the model; afterwards each process tracks its own shard's, so
        without this the processes would evaluate (and rank 0 save) different models."""
        if self.world_size == 1:
            return
        for layer in model.sublayers(include_self=True):
            if isinstance(layer, nn.layer.norm._BatchNormBase):
                for stat in (layer._mean, layer._variance):
                    total = stat.detach().clone()
                    dist.all_reduce(total)
                    stat.set_value(total / self.world_size)

    def all_sum(self, values):
        """Sum a float64 numpy array over all processes."""
        if self.world_size == 1:
            return values
        tensor = paddle.to_tensor(values, dtype="float64")
        dist.all_reduce(tensor)
        return tensor.numpy()


_initialised = False


def current_runtime(amp: bool = False, log=print) -> Runtime:
    """Set up the process (once): data-parallel when started by ``paddle.distributed.launch``
    with more than one process. ``amp`` is honoured only on a GPU with float16 support; else a
    notice is logged and the run stays in float32."""
    global _initialised
    world_size = dist.get_world_size()
    if world_size > 1 and not _initialised:
        dist.init_parallel_env()
        _initialised = True
    device = paddle.device.get_device()
    use_amp = False
    if amp:
        use_amp = device.startswith("gpu") and paddle.amp.is_float16_supported(device)
        if not use_amp and dist.get_rank() == 0:
            log(f"notice: --amp needs a CUDA GPU with float16 support; this run is on "
                f"{device}, so it stays in float32")
    return Runtime(dist.get_rank(), world_size, device, use_amp)


class Progress:
    """A progress line on stderr: ``label [#####-----] 12/40 loss 1.234 256 ms/batch``.

    On a terminal the line is redrawn in place; otherwise a line is printed about every tenth
    of the steps, so logs stay short.
    """

    def __init__(self, label: str, total: int, enabled: bool = True, stream=None) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        decile = step * 10 // self.total
        if not self.tty and decile == self._last_decile and step != self.total:
            return
        self._last_decile = decile
        filled = step * 20 // self.total
        fields = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        line = (f"{self.label} [{'#' * filled}{'-' * (20 - filled)}] {step}/{self.total} "
                f"{fields} {time.perf_counter() - self.start:.0f}s")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and step == self.total:
            self.stream.write("\n")
        self.stream.flush()


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Instruction-set flags of ``/proc/cpuinfo`` that decide which CPU kernels Paddle and the
#: inference runtimes pick.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "neon", "asimd")
#: The vector instruction sets, widest first.
VECTOR_ISAS = ("avx512f", "avx2", "avx", "sse4_2", "neon", "asimd")


def cpu_flags() -> List[str]:
    """The :data:`ISA_FLAGS` this CPU lists (empty where ``/proc/cpuinfo`` is missing)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
    flags = next((set(line.split(":", 1)[1].split()) for line in lines
                  if line.startswith(("flags", "Features"))), set())
    return [flag for flag in ISA_FLAGS if flag in flags]


def cpu_isa() -> str:
    """The widest vector instruction set the CPU lists (``"unknown"`` when none is)."""
    return next((isa for isa in VECTOR_ISAS if isa in cpu_flags()), "unknown")


def machine_metadata() -> dict:
    """What a reader needs to reproduce or compare a run: date, Paddle version, device, CPU
    and its widest vector instruction set, core and thread counts, Python version."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "paddle": paddle.__version__,
        "device": paddle.get_device(),
        "cpu": cpu_name(),
        "isa": cpu_isa(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        # Importing Paddle sets OMP_NUM_THREADS to 1 when it is unset, so after the import
        # it holds the thread count Paddle computes with.
        "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "python": platform.python_version(),
    }
