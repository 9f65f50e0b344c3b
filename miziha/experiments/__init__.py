"""Training and comparison machinery behind the examples: data, metrics, a resumable trainer
with timing and VisualDL logs, and result files (JSON, markdown, PNG)."""

from .compare import CompareOptions, run_comparison
from .trainer import TrainConfig, measure_train_speed, train_model

__all__ = ["CompareOptions", "run_comparison", "TrainConfig", "train_model",
           "measure_train_speed"]
