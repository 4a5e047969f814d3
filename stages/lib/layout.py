"""Where the per-run outputs live: one definition for every stage (dvc.yaml spells the same paths).

A *run* is one model trained with one seed of ``study.seeds``; every run has its own
model file, metrics, curves and predictions, under a folder per model::

    data/models/<model>/s<seed>.keras        data/predictions/<model>/s<seed>.csv
    metrics/train/<model>/s<seed>.json       metrics/eval/<model>/s<seed>.json
    plots/train/<model>/s<seed>/             (dvclive's folder)
"""

from __future__ import annotations

from pathlib import Path

MODELS = Path("data/models")
PREDICTIONS = Path("data/predictions")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
TRAIN_CURVES = Path("plots/train")


def run_name(seed: int) -> str:
    return f"s{seed}"


def model_path(name: str, seed: int, root: Path = MODELS) -> Path:
    return Path(root) / name / f"{run_name(seed)}.keras"


def predictions_path(name: str, seed: int, root: Path = PREDICTIONS) -> Path:
    return Path(root) / name / f"{run_name(seed)}.csv"


def train_metrics_path(name: str, seed: int, root: Path = TRAIN_METRICS) -> Path:
    return Path(root) / name / f"{run_name(seed)}.json"


def eval_metrics_path(name: str, seed: int, root: Path = EVAL_METRICS) -> Path:
    return Path(root) / name / f"{run_name(seed)}.json"


def curves_dir(name: str, seed: int, root: Path = TRAIN_CURVES) -> Path:
    """dvclive's folder for one run's per-epoch curves."""
    return Path(root) / name / run_name(seed)
