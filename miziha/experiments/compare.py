"""The CIFAR-10 (or digits) comparison: SwinResNet vs ResNet50, accuracy and speed."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import paddle.nn as nn

from ..models import MODELS, create_model, list_models
from .data import ArrayDataset, limit, load_cifar10, load_digits
from .metrics import ClassificationMetrics
from .report import run_metadata, write_results
from .runtime import current_runtime
from .trainer import TrainConfig, measure_train_speed, train_model

__all__ = ["ModelSpec", "parse_model_spec", "CompareOptions",
           "load_dataset", "run_comparison", "REFERENCE_MODELS"]

#: The reference experiment's three models, plus SwinResNet at 32x32.
REFERENCE_MODELS = ("swin_resnet50@224", "resnet50@224", "resnet50@32", "swin_resnet50@32")

DATASETS = ("cifar10", "digits")


@dataclass(frozen=True)
class ModelSpec:
    """An architecture and the square input side its images are resized to."""

    architecture: str
    input_size: int

    @property
    def name(self) -> str:
        return f"{self.architecture}@{self.input_size}"


def parse_model_spec(text: str) -> ModelSpec:
    """``"swin_resnet50@224"`` -> ``ModelSpec("swin_resnet50", 224)``; the architecture is
    a classification model of the registry (:func:`miziha.models.list_models`)."""
    architecture, _, size = text.partition("@")
    names = list_models(task="classification")
    if architecture not in names or not size.isdigit() or int(size) < 1:
        raise ValueError(f"a model is ARCHITECTURE@SIZE with ARCHITECTURE one of "
                         f"{names} and SIZE a positive int, got {text!r}")
    return ModelSpec(architecture, int(size))


@dataclass
class CompareOptions:
    """What to compare, on what data, and where the outputs go."""

    models: Sequence[str] = REFERENCE_MODELS
    dataset: str = "cifar10"
    data_file: Optional[str] = None
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    output: Path = Path("runs/cifar10_compare")
    resume: bool = False
    overwrite: bool = False
    speed_models: Sequence[str] = ()
    speed_batch: int = 8
    speed_steps: int = 3
    seeds: int = 1
    recipe: str = "reference"
    config: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not self.models and not self.speed_models:
            raise ValueError("nothing to run: give at least one model or speed model")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive int, got {self.seeds!r}")
        if self.speed_models and (self.speed_batch < 1 or self.speed_steps < 1):
            raise ValueError(f"speed_batch and speed_steps must be >= 1, got "
                             f"{self.speed_batch} and {self.speed_steps}")
        self.specs = [parse_model_spec(m) for m in self.models]
        self.speed_specs = [parse_model_spec(m) for m in self.speed_models]
        self.output = Path(self.output)


def takes_droppath(architecture: str) -> bool:
    """Whether the registry's builder of ``architecture`` names ``droppath`` (the builders of
    networks with mixer or transformer blocks do)."""
    return "droppath" in inspect.signature(MODELS[architecture]).parameters


def build(architecture: str, num_classes: int, config: TrainConfig) -> nn.Layer:
    """The registry's ``architecture``, with the protocol's stochastic depth where it has
    any."""
    options = {"droppath": config.droppath} \
        if config.droppath and takes_droppath(architecture) else {}
    return create_model(architecture, num_classes=num_classes, **options)


def protocol(config: TrainConfig) -> dict:
    """Every resolved hyper-parameter of ``config`` but the seed, for the result files."""
    values = asdict(config)
    for key in ("seed", "amp"):  # the seeds are listed per run; AMP as it ran
        values.pop(key)
    return values


def load_dataset(options: CompareOptions) -> Tuple[ArrayDataset, ArrayDataset]:
    """Train and test sets, limited as asked."""
    train, test = load_cifar10(options.data_file) if options.dataset == "cifar10" \
        else load_digits()
    return (limit(train, options.limit_train, options.config.seed),
            limit(test, options.limit_test, options.config.seed))


def run_comparison(options: CompareOptions,
                   log: Callable[[str], None] = print) -> Tuple[List[dict], List[dict], str]:
    """Train and evaluate every model, time the speed-only ones, and (main process) write
    ``results.json``, ``results.md``, ``comparison.png``, VisualDL logs and checkpoints.

    Returns: the trained models' records, the speed-only records and the markdown tables.
    """
    runtime = current_runtime(options.config.amp, log)
    say = log if runtime.is_main else (lambda _: None)
    train, test = load_dataset(options)
    say(f"data: {options.dataset}, {len(train)} train / {len(test)} test images; "
        f"{runtime.world_size} process(es) on {runtime.device}")
    records = []
    for spec in options.specs:
        for i in range(options.seeds):
            config = replace(options.config, seed=options.config.seed + i)
            run = spec.name if options.seeds == 1 else f"{spec.name}-seed{config.seed}"
            records.append(train_model(
                run, lambda: build(spec.architecture, train.num_classes, config), train, test,
                ClassificationMetrics, config, runtime, spec.input_size, options.output,
                options.resume, options.overwrite, say))
            records[-1].update(model=spec.name, architecture=spec.architecture,
                               seed=config.seed,
                               droppath=config.droppath if takes_droppath(spec.architecture)
                               else 0.0)
    speed_records, tables = [], ""
    if runtime.is_main:  # speed-only runs are single-process timings; rank 0 writes
        for spec in options.speed_specs:
            speed_records.append(measure_train_speed(
                spec.name,
                lambda: build(spec.architecture, train.num_classes, options.config), train,
                spec.input_size, options.speed_batch, options.speed_steps,
                ClassificationMetrics, options.config, runtime, say))
        metadata = run_metadata(runtime, dataset=options.dataset, train_images=len(train),
                                test_images=len(test), recipe=options.recipe,
                                seeds=options.seeds, **protocol(options.config))
        tables = write_results(options.output, records, speed_records, metadata,
                               title=f"Comparison on {options.dataset}")
        say(tables)
        say(f"wrote {options.output}/results.json, results.md, comparison.png; VisualDL: "
            f"visualdl --logdir {options.output}/vdl")
    return records, speed_records, tables
