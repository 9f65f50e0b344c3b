"""Train and evaluate one model with per-epoch checkpoints, resume, timing and VisualDL logs."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..flops import flops
from .data import ArrayDataset, augment, to_input
from .runtime import Progress, Runtime, interleaved, time_once

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "LOSSES", "learning_rate", "train_model",
           "measure_train_speed", "interleaved_train_speed", "train_step", "checkpoint_state",
           "load_trained"]

OPTIMIZERS = ("momentum", "adamw")
SCHEDULES = ("constant", "cosine", "poly")
LOSSES = ("ce", "ce+dice")


@dataclass
class TrainConfig:
    """The training protocol. Defaults are the reference CIFAR-10 experiment's: 40 epochs,
    batch 80, Momentum(lr 0.01, momentum 0.9) with L2 weight decay 1e-4, constant learning
    rate, no augmentation (:data:`miziha.experiments.recipes.RECIPES` names protocols).

    ``optimizer``: ``"momentum"`` (L2 decay ``weight_decay``) or ``"adamw"`` (decoupled
    decay ``weight_decay``, betas 0.9/0.999); ``schedule``: ``"constant"``, ``"cosine"``
    (to 0 at the last step) or ``"poly"`` (``(1 - progress) ** 0.9``, the segmentation
    codes' decay), after ``warmup_epochs`` of linear warm-up from 0 (a fraction of an epoch
    is allowed); ``label_smoothing`` of the training loss; ``loss``: ``"ce"`` or, for
    segmentation, ``"ce+dice"`` (0.4 CE + 0.6 Dice, as Swin-Unet trains); ``droppath``:
    stochastic depth of the models that have it; ``augment``: crop and flip (classification),
    flip and random resized crop of image and mask (segmentation).
    """

    epochs: int = 40
    batch_size: int = 80
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "momentum"
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    loss: str = "ce"
    droppath: float = 0.0
    augment: bool = False
    amp: bool = False
    seed: int = 0
    warmup_steps: int = 2  # first steps of a run left out of the timing

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got lr="
                             f"{self.lr}, momentum={self.momentum}, "
                             f"weight_decay={self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got "
                             f"{self.warmup_epochs}")
        for name in ("label_smoothing", "droppath"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate of training step ``step`` (0-based, over the whole run): linear
    warm-up over ``warmup_epochs``, then constant or cosine decay to 0. A pure function of
    the step, so a resumed run follows the same schedule."""
    total = config.epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = (step - warmup) / max(total - warmup, 1)
    if config.schedule == "poly":
        return config.lr * (1.0 - progress) ** 0.9
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _run_folder(output: Path, kind: str, name: str) -> Path:
    """``output/<kind>/<name>`` with the name made safe for file systems."""
    return Path(output) / kind / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _epoch_file(folder: Path, epoch: int, suffix: str) -> str:
    return str(folder / f"epoch_{epoch}.{suffix}")


def checkpoint_state(output: Path, name: str) -> Optional[dict]:
    """The saved state of ``name`` under ``output`` (``None`` when there is none)."""
    path = _run_folder(output, "checkpoints", name) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_trained(model: nn.Layer, output: Path, name: str) -> nn.Layer:
    """Load the last checkpoint of run ``name`` under ``output`` into ``model``."""
    state = checkpoint_state(output, name)
    if state is None:
        raise ValueError(f"no checkpoint of {name!r} under {output}")
    folder = _run_folder(output, "checkpoints", name)
    model.set_state_dict(paddle.load(_epoch_file(folder, state["epochs_done"], "pdparams")))
    return model


def _save_checkpoint(folder: Path, epoch: int, model: nn.Layer, optimizer, scaler,
                     state: dict) -> None:
    """Write epoch files, then point ``state.json`` at them (atomically), then drop older
    epochs: a run killed at any moment leaves the last complete epoch loadable."""
    folder.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), _epoch_file(folder, epoch, "pdparams"))
    paddle.save(optimizer.state_dict(), _epoch_file(folder, epoch, "pdopt"))
    if scaler is not None:
        paddle.save(scaler.state_dict(), _epoch_file(folder, epoch, "pdscaler"))
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / "state.json")
    for old in folder.glob("epoch_*"):
        if old.stem != f"epoch_{epoch}":
            old.unlink()


def _check_same_protocol(name: str, saved: dict, config: TrainConfig) -> None:
    """Resuming must not mix protocols: everything but the epoch count must match."""
    changed = {key: (value, getattr(config, key)) for key, value in saved.items()
               if key != "epochs" and getattr(config, key, value) != value}
    if changed:
        raise ValueError(f"{name}: the checkpoint was trained with a different protocol: "
                         + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))


def _shuffled_batches(data: ArrayDataset, batch_size: int, runtime: Runtime, epoch: int,
                      seed: int):
    """Index batches of this process's shard, shuffled per (seed, epoch) (Paddle's
    ``DistributedBatchSampler``)."""
    sampler = paddle.io.DistributedBatchSampler(
        data, batch_size, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True)
    sampler.set_epoch(seed * 100_003 + epoch)
    return sampler


def _evaluate(model: nn.Layer, data: ArrayDataset, input_size: Optional[int], metrics,
              batch_size: int, runtime: Runtime) -> Tuple[Dict[str, float], int]:
    """Metrics over the whole set, and the number of images seen by all processes together;
    each process takes every world_size-th sample."""
    model.eval()
    shard = np.arange(runtime.rank, len(data), runtime.world_size)
    with paddle.no_grad():
        for start in range(0, len(shard), batch_size):
            index = shard[start:start + batch_size]
            with paddle.amp.auto_cast(enable=runtime.amp, level="O1", dtype="float16"):
                logits = model(_input(data.images[index], input_size))
            metrics.update(logits, paddle.to_tensor(data.labels[index]))
    model.train()
    totals = runtime.all_sum(np.append(metrics.sums, len(shard)))
    metrics.sums = totals[:-1]
    return metrics.result(), int(totals[-1])


def _input(images: np.ndarray, input_size: Optional[int]) -> paddle.Tensor:
    return paddle.to_tensor(images) if input_size is None else to_input(images, input_size)


def _model_costs(model: nn.Layer, data: ArrayDataset, input_size: Optional[int]) -> dict:
    height, width = (input_size, input_size) if input_size else data.images.shape[2:]
    report = flops(model, [data.images.shape[1], int(height), int(width)])
    return {"input_hw": [int(height), int(width)], "params": report.total_params,
            "macs": report.total_macs}


def _optimizer(model: nn.Layer, config: TrainConfig) -> paddle.optimizer.Optimizer:
    if config.optimizer == "adamw":
        return paddle.optimizer.AdamW(learning_rate=config.lr, parameters=model.parameters(),
                                      weight_decay=config.weight_decay)
    return paddle.optimizer.Momentum(
        learning_rate=config.lr, momentum=config.momentum, parameters=model.parameters(),
        weight_decay=paddle.regularizer.L2Decay(config.weight_decay))


def _training_loss(metrics_type, config: TrainConfig):
    """The task's training loss under the protocol (label smoothing, Dice)."""
    return metrics_type.training_loss(config.label_smoothing, config.loss)


def _scaler(runtime: Runtime) -> Optional[paddle.amp.GradScaler]:
    """Loss scaling for float16 AMP (None without AMP)."""
    return paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if runtime.amp else None


def train_step(model: nn.Layer, x: paddle.Tensor, y: paddle.Tensor, loss_fn, optimizer,
                scaler, runtime: Runtime) -> float:
    """Forward, backward and update (loss-scaled under AMP); returns the loss, which also
    waits for the step to finish."""
    with paddle.amp.auto_cast(enable=runtime.amp, level="O1", dtype="float16"):
        loss = loss_fn(model(x), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.clear_grad()
    value = loss.item()
    runtime.synchronize()
    return value


def train_model(name: str, build: Callable[[], nn.Layer], train_data: ArrayDataset,
                test_data: ArrayDataset, metrics_type, config: TrainConfig,
                runtime: Runtime, input_size: Optional[int] = None,
                output: Optional[Path] = None, resume: bool = False,
                overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Train ``build()`` for ``config.epochs`` epochs, evaluating after each.

    Args:
        name: the run's name (checkpoint and log folder names derive from it).
        build: makes the model (called once, after seeding).
        train_data, test_data: images ``[N, 3, h, w]`` and labels.
        metrics_type: :class:`~miziha.experiments.metrics.ClassificationMetrics` or
            :class:`~miziha.experiments.metrics.SegmentationMetrics`.
        input_size: resize images to this square side; None keeps the stored size.
        output: where the main process writes checkpoints (``checkpoints/<name>/``) and
            VisualDL logs (``vdl/<name>/``); None writes nothing.
        resume: continue from the last checkpoint of ``name`` under ``output``.
        overwrite: start afresh even where ``output`` holds checkpoints of ``name`` (they and
            its VisualDL logs are replaced). Without ``resume`` or ``overwrite``, existing
            checkpoints raise ``ValueError`` rather than being lost.

    Each epoch reseeds Paddle from ``(config.seed, epoch, rank)`` and NumPy and the sampler
    from ``(config.seed, epoch)``, so the random state of an epoch is the same whether or not
    the run was resumed before it.

    Returns:
        A record: ``history`` (one entry per epoch), the last epoch's test metrics,
        ``train_ms_per_batch`` (median over all timed steps; forward, backward and update,
        after ``warmup_steps``, data preparation excluded), ``images_per_second`` (all
        processes), ``eval_seconds``, ``params``, ``macs``, ``peak_memory_mb``.
    """
    # Fresh Paddle names, as in a new process: optimizer state saved by one run loads in
    # another even within one process (its accumulators are named after counters).
    with paddle.utils.unique_name.guard():
        return _train_model(name, build, train_data, test_data, metrics_type, config, runtime,
                            input_size, output, resume, overwrite, log)


def _train_model(name, build, train_data, test_data, metrics_type, config, runtime,
                 input_size, output, resume, overwrite, log) -> dict:
    folder = _run_folder(output, "checkpoints", name) if output else None
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    saved = checkpoint_state(output, name) if output and not overwrite else None
    if saved is not None and not resume:
        raise ValueError(f"{output} already holds checkpoints of {name}; pass --resume to "
                         f"continue them, or choose another --output")
    if saved is not None:
        _check_same_protocol(name, saved["config"], config)
    elif resume:
        log(f"{name}: no checkpoint under {output}, starting from epoch 1")
    if output:
        from visualdl import LogWriter  # on every process, so a missing package fails all
    paddle.seed(config.seed)
    model = build()
    optimizer = _optimizer(model, config)
    costs = _model_costs(model, test_data, input_size)
    scaler = _scaler(runtime)
    history: List[dict] = []
    step_ms: List[float] = []
    start_epoch = 0
    if saved is not None:
        epoch = saved["epochs_done"]
        model.set_state_dict(paddle.load(_epoch_file(folder, epoch, "pdparams")))
        optimizer.set_state_dict(paddle.load(_epoch_file(folder, epoch, "pdopt")))
        if scaler is not None and Path(_epoch_file(folder, epoch, "pdscaler")).is_file():
            scaler.load_state_dict(paddle.load(_epoch_file(folder, epoch, "pdscaler")))
        history, step_ms, start_epoch = saved["history"], saved["step_ms"], epoch
        log(f"{name}: resuming after epoch {epoch} of {config.epochs}")
    trained = paddle.DataParallel(model) if runtime.world_size > 1 else model
    writer = None
    if output and runtime.is_main:
        logs = _run_folder(output, "vdl", name)
        if overwrite:
            shutil.rmtree(logs, ignore_errors=True)
        writer = LogWriter(logdir=str(logs))
    runtime.reset_peak_memory()
    steps_taken = 0
    loss_fn = _training_loss(metrics_type, config)
    try:
        for epoch in range(start_epoch, config.epochs):
            paddle.seed(config.seed * 1000 + epoch + 7919 * runtime.rank)
            rng = np.random.default_rng([config.seed, epoch])
            sampler = _shuffled_batches(train_data, config.batch_size, runtime, epoch,
                                        config.seed)
            progress = Progress(f"{name} epoch {epoch + 1}/{config.epochs}", len(sampler),
                                runtime.is_main)
            started, losses = time.perf_counter(), []
            trained.train()
            for step, index in enumerate(sampler, 1):
                if config.optimizer != "momentum" or config.schedule != "constant" \
                        or config.warmup_epochs:
                    optimizer.set_lr(learning_rate(config, epoch * len(sampler) + step - 1,
                                                   len(sampler)))
                images, labels = train_data.images[index], train_data.labels[index]
                if config.augment:
                    images, labels = augment(images, labels, rng)
                x, y = _input(images, input_size), paddle.to_tensor(labels)
                runtime.synchronize()
                tick = time.perf_counter()
                losses.append(train_step(trained, x, y, loss_fn, optimizer, scaler, runtime))
                elapsed = (time.perf_counter() - tick) * 1000
                steps_taken += 1
                if steps_taken > config.warmup_steps:
                    step_ms.append(elapsed)
                progress.update(step, loss=losses[-1], ms_per_batch=elapsed)
            runtime.average_batch_norm_statistics(model)
            tick = time.perf_counter()
            test, test_images = _evaluate(model, test_data, input_size,
                                          metrics_type(test_data.num_classes),
                                          config.batch_size, runtime)
            eval_seconds = time.perf_counter() - tick
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                            "test": test, "test_images": test_images,
                            "eval_seconds": eval_seconds,
                            "epoch_seconds": time.perf_counter() - started})
            log(f"{name} epoch {epoch + 1}/{config.epochs}: train loss "
                f"{history[-1]['train_loss']:.4f}, " +
                ", ".join(f"test {k} {v:.4f}" for k, v in test.items()) +
                f", eval {eval_seconds:.1f}s")
            if writer is not None:
                writer.add_scalar("train/loss", history[-1]["train_loss"], epoch + 1)
                if step_ms:
                    writer.add_scalar("train/ms_per_batch", statistics.median(step_ms), epoch + 1)
                for key, value in test.items():
                    writer.add_scalar(f"test/{key}", value, epoch + 1)
            if folder is not None and runtime.is_main:
                _save_checkpoint(folder, epoch + 1, model, optimizer, scaler, {
                    "name": name, "epochs_done": epoch + 1, "history": history,
                    "step_ms": step_ms, "config": asdict(config)})
    finally:
        if writer is not None:
            writer.close()
    median = statistics.median(step_ms) if step_ms else None
    return {
        "name": name, "input_size": input_size, "batch_size": config.batch_size,
        "epochs_done": len(history), "history": history,
        **({f"test_{k}": v for k, v in history[-1]["test"].items()} if history else {}),
        "train_ms_per_batch": median, "timed_steps": len(step_ms),
        "images_per_second": config.batch_size * runtime.world_size * 1000 / median
        if median else None,
        "eval_seconds": history[-1]["eval_seconds"] if history else None,
        "peak_memory_mb": runtime.peak_memory_mb(), **costs}


def _fixed_batch_step(build: Callable[[], nn.Layer], data: ArrayDataset, input_size: int,
                      batch_size: int, metrics_type, config: TrainConfig,
                      runtime: Runtime) -> Tuple[Callable[[], float], dict]:
    """``build()`` (seeded by ``config.seed``) with the protocol's optimizer and loss on one
    fixed batch of ``data``: a function running one training step, and the model's costs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paddle.seed(config.seed)
    model = build()
    costs = _model_costs(model, data, input_size)
    optimizer, scaler = _optimizer(model, config), _scaler(runtime)
    loss = _training_loss(metrics_type, config)
    index = np.arange(batch_size) % len(data)
    x, y = to_input(data.images[index], input_size), paddle.to_tensor(data.labels[index])
    return lambda: train_step(model, x, y, loss, optimizer, scaler, runtime), costs


def measure_train_speed(name: str, build: Callable[[], nn.Layer], data: ArrayDataset,
                        input_size: int, batch_size: int, steps: int, metrics_type,
                        config: TrainConfig, runtime: Runtime,
                        log: Callable[[str], None] = print) -> dict:
    """Time ``steps`` training steps (after ``config.warmup_steps`` untimed ones) on one
    fixed batch: speed only, no accuracy. Returns the median ms per batch and images/s."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step, costs = _fixed_batch_step(build, data, input_size, batch_size, metrics_type, config,
                                    runtime)
    progress = Progress(f"{name} speed", config.warmup_steps + steps, runtime.is_main)
    runtime.reset_peak_memory()
    times = []
    for index in range(config.warmup_steps + steps):
        elapsed = time_once(step)  # train_step waits for the step to finish
        if index >= config.warmup_steps:
            times.append(elapsed)
        progress.update(index + 1, ms_per_batch=elapsed)
    median = statistics.median(times)
    log(f"{name}: {median:.0f} ms per batch of {batch_size} (speed only, {steps} steps)")
    return {"name": name, "input_size": input_size, "batch_size": batch_size,
            "train_ms_per_batch": median, "timed_steps": steps,
            "images_per_second": batch_size * 1000 / median,
            "peak_memory_mb": runtime.peak_memory_mb(), **costs}


def interleaved_train_speed(builds: Dict[str, Tuple[Callable[[], nn.Layer], int]],
                            data: ArrayDataset, batch_size: int, rounds: int, metrics_type,
                            config: TrainConfig, runtime: Runtime,
                            log: Callable[[str], None] = print) -> Dict[str, dict]:
    """Every model's training step timed in one process, round-robin: ``config.warmup_steps``
    untimed steps each, then ``rounds`` rounds of one step per model, so a change in the
    machine's speed (other jobs, clock) hits every model alike and their ratios hold.

    Args:
        builds: name -> (builder, input size).
        data, batch_size: the fixed batch (the first ``batch_size`` images, cycled).
        rounds: timed steps per model.

    Returns: name -> median ms per batch, every timing, and the model's costs.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    steps, costs = {}, {}
    for name, (build, input_size) in builds.items():
        steps[name], costs[name] = _fixed_batch_step(build, data, input_size, batch_size,
                                                     metrics_type, config, runtime)
    progress = Progress("interleaved steps", rounds, runtime.is_main)
    times = interleaved(steps, rounds, config.warmup_steps, after_round=progress.update)
    result = {name: {"train_ms_per_batch": statistics.median(values), "times_ms": values,
                     "batch_size": batch_size, **costs[name]} for name, values in times.items()}
    log("interleaved steps: " + ", ".join(f"{name} {r['train_ms_per_batch']:.0f} ms"
                                          for name, r in result.items()))
    return result
