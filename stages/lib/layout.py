"""Where the per-model outputs live: one definition for every stage (dvc.yaml spells the same paths)."""

from __future__ import annotations

from pathlib import Path

MODELS = Path("data/models")
PREDICTIONS = Path("data/predictions")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
TRAIN_CURVES = Path("plots/train")


def model_path(name: str) -> Path:
    return MODELS / f"{name}.keras"


def predictions_path(name: str) -> Path:
    return PREDICTIONS / f"{name}.csv"


def train_metrics_path(name: str) -> Path:
    return TRAIN_METRICS / f"{name}.json"


def eval_metrics_path(name: str) -> Path:
    return EVAL_METRICS / f"{name}.json"


def curves_dir(name: str) -> Path:
    """dvclive's folder for one model's per-epoch curves."""
    return TRAIN_CURVES / name
