"""The CIFAR-10 (or digits) comparison: SwinResNet vs ResNet50, accuracy and speed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from ..models import create_model, list_models
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
    config: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not self.models and not self.speed_models:
            raise ValueError("nothing to run: give at least one model or speed model")
        if self.speed_models and (self.speed_batch < 1 or self.speed_steps < 1):
            raise ValueError(f"speed_batch and speed_steps must be >= 1, got "
                             f"{self.speed_batch} and {self.speed_steps}")
        self.specs = [parse_model_spec(m) for m in self.models]
        self.speed_specs = [parse_model_spec(m) for m in self.speed_models]
        self.output = Path(self.output)


def load_dataset(options: CompareOptions) -> Tuple[ArrayDataset, ArrayDataset]:
    """Train and test sets, limited as asked."""
    train, test = load_cifar10(options.data_file) if options.dataset == "cifar10" \
        else load_digits(seed=options.config.seed)
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
        records.append(train_model(
            spec.name, lambda: create_model(spec.architecture, num_classes=train.num_classes),
            train, test,
            ClassificationMetrics, options.config, runtime, spec.input_size, options.output,
            options.resume, options.overwrite, say))
        records[-1]["architecture"] = spec.architecture
    speed_records, tables = [], ""
    if runtime.is_main:  # speed-only runs are single-process timings; rank 0 writes
        for spec in options.speed_specs:
            speed_records.append(measure_train_speed(
                spec.name,
                lambda: create_model(spec.architecture, num_classes=train.num_classes), train,
                spec.input_size, options.speed_batch, options.speed_steps,
                ClassificationMetrics, options.config, runtime, say))
        metadata = run_metadata(runtime, dataset=options.dataset, train_images=len(train),
                                test_images=len(test), epochs=options.config.epochs,
                                batch_size=options.config.batch_size,
                                augment=options.config.augment)
        tables = write_results(options.output, records, speed_records, metadata,
                               title=f"SwinResNet vs ResNet50 on {options.dataset}")
        say(tables)
        say(f"wrote {options.output}/results.json, results.md, comparison.png; VisualDL: "
            f"visualdl --logdir {options.output}/vdl")
    return records, speed_records, tables
