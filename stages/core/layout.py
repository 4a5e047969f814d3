"""Where the per-run outputs live: one definition for every stage (dvc.yaml spells the same paths).

A *run* is one model trained on one training-set size of ``study.train_percent`` (a
percentage of each class's training images) with one seed of ``study.seeds``; every run has
its own model file, metrics, curves and predictions, under a folder per model and size::

    data/models/<model>/<percent>pct/s<seed>.keras     data/predictions/<model>/<percent>pct/s<seed>.csv
    metrics/train/<model>/<percent>pct/s<seed>.json    metrics/eval/<model>/<percent>pct/s<seed>.json
    plots/train/<model>/<percent>pct/s<seed>/          (dvclive's folder)
    metrics/cost/train/<model>/<percent>pct/s<seed>.json   metrics/cost/eval/<model>/<percent>pct/s<seed>.json

Quality (metrics/train, metrics/eval) and cost (metrics/cost: seconds, images per second, cores)
are in separate files: timings change on every re-run and on every machine, so
``dvc metrics diff metrics/eval`` shows whether quality moved without that noise.

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
TRAIN_COST = Path("metrics/cost/train")
EVAL_COST = Path("metrics/cost/eval")
EXPLAIN_COST = Path("metrics/cost/explain.json")
FEATURES = Path("data/features")
FAMILIES = Path("data/families")
FULL = 100  # percent: every training image


def run_name(seed: int, percent: int = FULL) -> str:
    """``<model>-<percent>-<seed>``'s folder part, e.g. ``25pct/s0``."""
    return f"{percent}pct/s{seed}"


def run_label(name: str, seed: int, percent: int = FULL) -> str:
    """The suffix DVC gives the run's stages: train@<model>-<percent>-<seed>."""
    return f"{name}-{percent}-{seed}"


def run_file(name: str, seed: int, root: Path, percent: int, suffix: str) -> Path:
    """``<root>/<model>/<percent>pct/s<seed><suffix>``: every per-run file."""
    return Path(root) / name / f"{run_name(seed, percent)}{suffix}"


def _per_run(default_root: Path, suffix: str):
    """A path function ``(name, seed, root=default_root, *, percent=FULL) -> Path`` for one kind of file."""
    def path(name: str, seed: int, root: Path = default_root, *, percent: int = FULL) -> Path:
        return run_file(name, seed, root, percent, suffix)
    return path


model_path = _per_run(MODELS, ".keras")
predictions_path = _per_run(PREDICTIONS, ".csv")
train_metrics_path = _per_run(TRAIN_METRICS, ".json")
eval_metrics_path = _per_run(EVAL_METRICS, ".json")
train_cost_path = _per_run(TRAIN_COST, ".json")
eval_cost_path = _per_run(EVAL_COST, ".json")


def curves_dir(name: str, seed: int, root: Path = TRAIN_CURVES, *, percent: int = FULL) -> Path:
    """dvclive's folder for one run's per-epoch curves."""
    return Path(root) / name / run_name(seed, percent)


def family_path(name: str, root: Path = FAMILIES) -> Path:
    """The fingerprint of the code of model ``name``'s family (stage ``family@<model>``)."""
    return Path(root) / f"{name}.json"


def features_dir(name: str, root: Path = FEATURES) -> Path:
    """A model's frozen-base features of the train and val images (or a note why there are none)."""
    return Path(root) / name
