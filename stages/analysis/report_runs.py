"""The report's inputs, read back: every run's quality and cost metrics, predictions and curves.

A run's four metrics files (stages/analysis/run_columns.py) are merged into one dict per stage
(``eval``, ``train``); a missing file or key is a DataError that names the file and the
``dvc repro`` command that writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.analysis.figures import CURVE_METRICS
from stages.analysis.run_columns import (COLUMNS, EVAL_COLUMNS, EVAL_COST, EVAL_QUALITY, MODEL_COLUMNS, SIZE_COLUMNS,
                                         TRAIN_COLUMNS, TRAIN_COST, TRAIN_QUALITY)
from stages.core import layout, predictions
from stages.core.errors import DataError
from stages.core.prepared import PREPARED, images_by_path, read_meta

HISTORY_SPLITS = {"train": "train", "eval": "val"}  # dvclive folder -> column prefix


@dataclass(frozen=True)
class Inputs:
    predictions: Path = layout.PREDICTIONS
    eval: Path = layout.EVAL_METRICS
    train: Path = layout.TRAIN_METRICS
    curves: Path = layout.TRAIN_CURVES
    prepared: Path = Path(PREPARED)
    eval_cost: Path = layout.EVAL_COST
    train_cost: Path = layout.TRAIN_COST


def read_metrics(path: Path, keys, stage: str) -> dict:
    """A metrics JSON that must hold ``keys``; ``stage`` (``train@<run>``) is the one that writes it."""
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro {stage}` first")
    values = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in keys if k not in values]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}: re-run `dvc repro {stage}`")
    return values


def read_history(folder: Path, name: str) -> pd.DataFrame:
    """dvclive's per-epoch curves as one frame: epoch (1-based), train_<metric>, val_<metric>.

    dvclive writes these files but has no API to read them back (nor has dvc.api), so its
    on-disk layout is read here with pandas: ``plots/metrics/<train|eval>/<metric>.tsv``, one
    per curve, with a 0-based ``step`` column and the metric's."""
    root = folder / "plots" / "metrics"
    if not root.is_dir():
        raise DataError(f"{root} not found: run `dvc repro train@{name}` first")
    curves = {f"{prefix}_{metric}": pd.read_csv(tsv, sep="\t", index_col="step")[metric]
              for sub, prefix in HISTORY_SPLITS.items() for metric in CURVE_METRICS
              if (tsv := root / sub / f"{metric}.tsv").is_file()}
    if not curves:
        raise DataError(f"{root}: no training curves: re-run `dvc repro train@{name}`")
    history = pd.concat(curves, axis=1).sort_index()  # outer join on step: a curve may stop earlier
    history.insert(0, "epoch", history.index.to_numpy() + 1)
    return history.reset_index(drop=True)


def load_run_metrics(name: str, seed: int, percent: int, inputs: Inputs) -> dict:
    """One run's metrics: ``eval`` (quality and cost of evaluate) and ``train`` (of train), each one dict."""
    run = layout.run_label(name, seed, percent)
    evaluate, train = "evaluate", f"train@{run}"
    return {
        "eval": {**read_metrics(layout.eval_metrics_path(name, seed, inputs.eval, percent=percent),
                                (*EVAL_QUALITY, "num_test_images"), evaluate),
                 **read_metrics(layout.eval_cost_path(name, seed, inputs.eval_cost, percent=percent),
                                EVAL_COST, train)},  # train predicts the test split and times it
        "train": {**read_metrics(layout.train_metrics_path(name, seed, inputs.train, percent=percent),
                                 (*TRAIN_QUALITY, *SIZE_COLUMNS, *MODEL_COLUMNS), train),
                  **read_metrics(layout.train_cost_path(name, seed, inputs.train_cost, percent=percent),
                                 TRAIN_COST, train)},
    }


def load_run_inputs(name: str, seed: int, percent: int, inputs: Inputs) -> dict:
    """One run's metrics, predictions and curves."""
    run = layout.run_label(name, seed, percent)
    return {**load_run_metrics(name, seed, percent, inputs),
            "predictions": predictions.read_predictions(
                layout.predictions_path(name, seed, inputs.predictions, percent=percent), run),
            "history": read_history(layout.curves_dir(name, seed, inputs.curves, percent=percent), run)}


def varied_split(sized: dict) -> bool:
    """Whether every run re-drew its split from its seed (``study.vary_split``; train records it as
    ``split_seed``), or none did; a mix cannot be compared and is a DataError naming one of each."""
    drawn = {key: data["train"].get("split_seed") is not None for key, data in sized.items()}
    if len(set(drawn.values())) > 1:
        mine, fixed = (next(layout.run_label(n, s, p) for (n, s, p), d in drawn.items() if d is flag)
                       for flag in (True, False))
        raise DataError(f"run {mine} re-drew its split from its seed and run {fixed} used the split stage's: "
                        f"their verdicts cannot be combined; re-run `dvc repro` (train declares study.vary_split)")
    return all(drawn.values())


def check_same_runs(loaded: dict, inputs: Inputs, percent: int, varied: bool = False) -> None:
    """Every run of the largest size was tested on the same images, in the same order -- with
    re-drawn splits (``varied``), every run of one seed (a pair's runs share their seed's split)."""
    groups: dict = {}
    for name, seed in loaded:
        groups.setdefault(seed if varied else None, []).append((name, seed))
    for keys in groups.values():
        runs = {layout.run_label(name, seed, percent): (name, seed) for name, seed in keys}
        predictions.check_same_test_set(
            {run: loaded[key]["predictions"] for run, key in runs.items()},
            {run: layout.predictions_path(*key, inputs.predictions, percent=percent) for run, key in runs.items()})


def check_same_test_size(sized: dict, n_test: int, inputs: Inputs) -> None:
    """Every size's runs were evaluated on the test split the main runs were (evaluate uses all of it)."""
    for (name, seed, percent), data in sized.items():
        if data["eval"]["num_test_images"] != n_test:
            raise DataError(f"{layout.eval_metrics_path(name, seed, inputs.eval, percent=percent)}: "
                            f"{data['eval']['num_test_images']} test images, the other runs {n_test}: re-run "
                            f"`dvc repro train@{layout.run_label(name, seed, percent)} evaluate`")


def thumbnails(frame: pd.DataFrame, num_classes: int, prepared: Path) -> dict[int, np.ndarray]:
    """label -> the first test image of that class, at the largest prepared size."""
    first = frame.drop_duplicates("label")
    first = first[(first["label"] >= 0) & (first["label"] < num_classes)]
    images = images_by_path(first["path"].tolist(), max(read_meta(prepared)["image_sizes"]), prepared)
    return {int(lab): image for lab, image in zip(first["label"], images)}


def runs_table(loaded: dict, families: dict) -> pd.DataFrame:
    """One row per run: model, family, seed, its size, then its evaluation and training metrics."""
    rows = [{"model": name, "family": families[name], "seed": seed, **{k: data["train"][k] for k in SIZE_COLUMNS},
             **{k: {**data["train"], **data["eval"]}[k] for k in EVAL_COLUMNS},
             **{k: data["train"][k] for k in TRAIN_COLUMNS}}
            for (name, seed, *_), data in loaded.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def platform_label(info: dict | None) -> str:
    """One line: the device, oneDNN on/off and the library versions (what a run's numbers hold on)."""
    if not info:
        return "not recorded (a run trained before platforms were recorded: re-run it)"
    device = ", ".join(info.get("gpus") or []) or f"{info.get('cpu', 'unknown CPU')} ({info.get('cpu_cores')} cores)"
    isa = f" [{', '.join(info['isa'])}]" if info.get("isa") else ""
    onednn = {True: "oneDNN on", False: "oneDNN off"}.get(info.get("onednn"), "oneDNN unknown")
    return f"{device}{isa}; {onednn}; TensorFlow {info.get('tensorflow')}, Keras {info.get('keras')}"


def platforms(sized: dict) -> dict[str, list[str]]:
    """Each platform the runs trained on (train's record, metrics/cost/train) -> the runs on it."""
    out: dict[str, list[str]] = {}
    for (name, seed, percent), data in sized.items():
        out.setdefault(platform_label(data["train"].get("platform")), []).append(layout.run_label(name, seed, percent))
    return out
