"""Where the per-run outputs live: one definition for every stage (dvc.yaml spells the same paths).

A *run* is one model trained on one training-set size of ``study.train_percent`` (a
percentage of each class's training images) with one seed of ``study.seeds``; every run has
its own model file, metrics, curves and predictions, under a folder per model and size::

    data/models/<model>/<percent>pct/s<seed>.keras     data/predictions/<model>/<percent>pct/s<seed>.csv
    metrics/train/<model>/<percent>pct/s<seed>.json    metrics/eval/<model>/<percent>pct/s<seed>.json
    plots/train/<model>/<percent>pct/s<seed>/          (dvclive's folder)

A frozen base's features, shared by every size and seed of a model, are in
``data/features/<model>/`` (stage ``features@<model>``).
"""

from __future__ import annotations

from pathlib import Path

MODELS = Path("data/models")
PREDICTIONS = Path("data/predictions")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")
TRAIN_CURVES = Path("plots/train")
FEATURES = Path("data/features")
FULL = 100  # percent: every training image


def run_name(seed: int, percent: int = FULL) -> str:
    """``<model>-<percent>-<seed>``'s folder part, e.g. ``25pct/s0``."""
    return f"{percent}pct/s{seed}"


def run_label(name: str, seed: int, percent: int = FULL) -> str:
    """The suffix DVC gives the run's stages: train@<model>-<percent>-<seed>."""
    return f"{name}-{percent}-{seed}"


def model_path(name: str, seed: int, root: Path = MODELS, *, percent: int = FULL) -> Path:
    return Path(root) / name / f"{run_name(seed, percent)}.keras"


def predictions_path(name: str, seed: int, root: Path = PREDICTIONS, *, percent: int = FULL) -> Path:
    return Path(root) / name / f"{run_name(seed, percent)}.csv"


def train_metrics_path(name: str, seed: int, root: Path = TRAIN_METRICS, *, percent: int = FULL) -> Path:
    return Path(root) / name / f"{run_name(seed, percent)}.json"


def eval_metrics_path(name: str, seed: int, root: Path = EVAL_METRICS, *, percent: int = FULL) -> Path:
    return Path(root) / name / f"{run_name(seed, percent)}.json"


def curves_dir(name: str, seed: int, root: Path = TRAIN_CURVES, *, percent: int = FULL) -> Path:
    """dvclive's folder for one run's per-epoch curves."""
    return Path(root) / name / run_name(seed, percent)


def features_dir(name: str, root: Path = FEATURES) -> Path:
    """A model's frozen-base features of the train and val images (or a note why there are none)."""
    return Path(root) / name
