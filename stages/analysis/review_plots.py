"""The data behind dvc.yaml's top-level ``plots:`` -- what `dvc plots show` / `dvc plots diff` draw.

The PNGs of plots/report/ are pictures: `dvc plots diff <rev>` can only show them side by side.
These files are data, drawn by DVC's renderer (templates in .dvc/plots/), so a diff overlays or
facets both revisions. They name no model in a path, so one dvc.yaml plot definition holds for
every preset's model set:

- ``curves/<metric>.csv``: model, split, epoch, <metric> -- the mean train and validation curve
  over the runs at the largest size (the dogs study's panels), and the test score as one ``test``
  row at the evaluated epoch (the report's cross);
- ``confusion.csv``: model, actual, predicted -- every test prediction of those runs (the counts
  pool the seeds), drawn as one confusion matrix per model.

The per-run chart (each seed's score at each size) reads metrics/comparison.csv directly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.analysis.figures import CURVE_METRICS
from stages.core.files import write_csv

TEST_METRIC = {"loss": "log_loss"}  # the test score each curve's cross shows; others share the name


def curve_frames(histories: dict[str, pd.DataFrame], stats: dict, test_epochs: dict[str, float]) -> dict[str, pd.DataFrame]:
    """Per metric, the long table of every model's mean train/val curve and its test point."""
    frames = {}
    for metric in CURVE_METRICS:
        rows = []
        for name, history in histories.items():
            for split in ("train", "val"):
                column = f"{split}_{metric}"
                if column in history:
                    rows += [{"model": name, "split": split, "epoch": int(e), metric: v}
                             for e, v in zip(history["epoch"], history[column]) if pd.notna(v)]
            test = stats[name].get(TEST_METRIC.get(metric, metric), {}).get("mean")
            if test is not None:
                rows.append({"model": name, "split": "test", "epoch": test_epochs[name], metric: test})
        if rows:
            frames[metric] = pd.DataFrame(rows, columns=["model", "split", "epoch", metric])
    return frames


def confusion_frame(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """model, actual, predicted (class names) for every pooled test prediction of each model."""
    return pd.concat([pd.DataFrame({"model": name, "actual": frame["class_name"], "predicted": frame["pred_class"]})
                      for name, frame in predictions.items()], ignore_index=True)


def write_review_plots(folder: Path, curves: dict[str, pd.DataFrame], confusion: pd.DataFrame) -> None:
    """Into a fresh ``folder`` (the caller makes it atomic)."""
    for metric, frame in curves.items():
        write_csv(folder / "curves" / f"{metric}.csv", frame)
    write_csv(folder / "confusion.csv", confusion)
