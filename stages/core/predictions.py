"""The evaluate stage's predictions files, read back: one reader and one same-test-set check,
shared by `report` and `explain`.

A file (``data/predictions/<model>/<p>pct/s<seed>.csv``) has one row per test image, in
test-split order: path, label, class_name, pred_label, pred_class and one ``prob:<class>``
column per class.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.core.errors import DataError
from stages.core.files import read_csv

REQUIRED = ("path", "label", "pred_label")


def read_predictions(path: Path, run: str) -> pd.DataFrame:
    """One run's predictions (``run``: ``<model>-<percent>-<seed>``, named in every error)."""
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro train@{run}` first")
    frame = read_csv(path)
    probs = [c for c in frame.columns if c.startswith("prob:")]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing or len(probs) < 2 or frame.empty:
        raise DataError(f"{path}: expected test rows with {', '.join(REQUIRED)} and a prob:<class> column per "
                        f"class (>= 2){f'; missing {missing}' if missing else ''}: re-run `dvc repro train@{run}`")
    frame["pred_label"] = frame["pred_label"].astype(int)
    frame[probs] = frame[probs].astype(float)
    if not frame[["label", "pred_label"]].isin(range(len(probs))).all(axis=None):
        raise DataError(f"{path}: labels outside 0..{len(probs) - 1}: re-run `dvc repro train@{run}`")
    return frame


def check_same_test_set(frames: dict[str, pd.DataFrame], paths: dict[str, Path]) -> None:
    """Paired comparisons need every run's rows to be the same images, classes and labels, in order.
    ``frames`` and ``paths`` are keyed by run (``<model>-<percent>-<seed>``)."""
    first, ref = next(iter(frames.items()))
    for run, frame in frames.items():
        same = (list(frame.columns) == list(ref.columns) and len(frame) == len(ref)
                and (frame["path"].to_numpy() == ref["path"].to_numpy()).all()
                and (frame["label"].to_numpy() == ref["label"].to_numpy()).all())
        if not same:
            raise DataError(f"{paths[run]} and {paths[first]} are not the same test images and classes: "
                            f"re-run `dvc repro train@{run} train@{first}`")
