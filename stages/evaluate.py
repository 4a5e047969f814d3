"""Stage `evaluate`: every run's quality metrics, from the test-set predictions `train` saved.

Usage: ``python -m stages.evaluate``. For each run (model of ``models`` x size of
``study.train_percent`` x seed of ``study.seeds``) reads
``data/predictions/<model>/<p>pct/s<seed>.csv`` (written by ``train@<model>-<p>-<seed>`` with the
model it had just trained) and writes ``metrics/eval/<model>/<p>pct/s<seed>.json``: accuracy, top-3
accuracy, macro/weighted F1, log loss, ECE, per-class precision/recall/F1 and the number of test
images. The model's size and parameter counts are in the train metrics file; the prediction cost
(throughput, batch-1 latency) in ``metrics/cost/eval/``, both written by train.

No TensorFlow here: metrics from predictions need scikit-learn only, so this stage takes a couple of
seconds for every run together, and changing an ``evaluate`` param re-runs no training.
Params: ``evaluate`` (ece_bins), ``study`` and ``models`` (which runs there are).
"""

from __future__ import annotations


import numpy as np
from pydantic import Field

from stages.core.compared_models import model_families
from stages.core.errors import DataError, run_stage
from stages.core.files import atomic_output, read_csv, write_json_to
from stages.core.layout import EVAL_METRICS, PREDICTIONS, eval_metrics_path, predictions_path, run_label
from stages.core.metrics import classification_metrics
from stages.core.params import Schema, parse_section, stage_params, study_percents, study_seeds

PROB = "prob:"


class Evaluate(Schema):
    ece_bins: int = Field(ge=1)


def parse_eval_params(values: dict) -> dict:
    return parse_section(Evaluate, values, "evaluate").model_dump()


def run_metrics(path, ece_bins: int, run: str) -> dict:
    """The quality metrics of one run's predictions file (columns of stages/training/inference.py)."""
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro train@{run}` first")
    frame = read_csv(path)
    class_names = [c[len(PROB):] for c in frame.columns if c.startswith(PROB)]
    if len(class_names) < 2 or "label" not in frame.columns or frame.empty:
        raise DataError(f"{path}: expected a label column, >= 2 prob:<class> columns and >= 1 row: "
                        f"re-run `dvc repro train@{run}`")
    probs = frame[[PROB + c for c in class_names]].to_numpy(dtype=np.float64)
    quality = classification_metrics(frame["label"].to_numpy(), probs, class_names, ece_bins)
    per_class = quality.pop("per_class")
    return {**quality, "num_test_images": len(frame), "per_class": per_class}  # per_class last: the long part


def evaluate(runs: list[tuple[str, int, int]], ece_bins: int, predictions=PREDICTIONS, out=EVAL_METRICS) -> dict:
    """Write ``out/<model>/<p>pct/s<seed>.json`` for every (model, percent, seed) in ``runs``, all
    published together (a failing run leaves no metrics folder). Returns {run label: metrics}."""
    results = {}
    with atomic_output(out) as tmp:
        tmp.mkdir(parents=True)
        for name, percent, seed in runs:
            run = run_label(name, seed, percent)
            results[run] = run_metrics(predictions_path(name, seed, predictions, percent=percent), ece_bins, run)
            target = eval_metrics_path(name, seed, tmp, percent=percent)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_to(target, results[run])
    return results


def main() -> None:
    params = stage_params("evaluate")
    cfg = parse_eval_params(params.get("evaluate"))
    names = list(model_families(params.get("models")))
    study = params.get("study")
    runs = [(n, p, s) for n in names for p in study_percents(study) for s in study_seeds(study)]
    results = evaluate(runs, cfg["ece_bins"])
    for run, m in results.items():
        print(f"evaluate: {run}: accuracy {m['accuracy']:.4f}, top-3 {m['top3_accuracy']:.4f}, "
              f"macro-F1 {m['macro_f1']:.4f}, log loss {m['log_loss']:.4f}, ECE {m['ece']:.4f} "
              f"on {m['num_test_images']} images")
    print(f"evaluate: {len(results)} run(s) -> {EVAL_METRICS}/")


if __name__ == "__main__":
    run_stage(main)
