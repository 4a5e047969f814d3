"""Stage `evaluate@<model>`: test-set predictions, quality metrics and inference cost of one model.

Usage: ``python -m stages.evaluate <model> --percent <p> --seed <seed>`` (one run: a model
trained on ``p`` % of the training images with one seed; stage ``evaluate@<model>-<p>-<seed>``).
Reads ``data/models/<model>/<p>pct/s<seed>.keras`` and the test split (always the whole
test split) at the model's input size, and writes

- ``data/predictions/<model>/<p>pct/s<seed>.csv``: path, label, class_name, pred_label, pred_class
  and one ``prob:<class_name>`` column per class (label order), in test-split order;
- ``metrics/eval/<model>/<p>pct/s<seed>.json``: accuracy, top-3 accuracy, macro/weighted F1, log loss,
  ECE, per-class precision/recall/F1, model size and parameter counts;
- ``metrics/cost/eval/<model>/<p>pct/s<seed>.json``: test evaluation time, throughput and batch-1
  latency (machine-dependent, so apart from quality).

Params: ``evaluate`` (ece_bins, latency_warmup, latency_runs),
``models.<model>.batch_size`` (the test set is predicted at the training batch size) and
``models.<model>.family`` (its module is imported to load the model).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field
from tqdm import tqdm

from stages.lib.dataset import make_dataset
from stages.lib.errors import DataError, run_stage
from stages.lib.files import write_csv, write_json
from stages.lib.layout import eval_cost_path, eval_metrics_path, model_path, predictions_path, run_label
from stages.lib.metrics import classification_metrics, to_probabilities
from stages.lib.params import Schema, model_stage_params, parse_section
from stages.lib.prepared import PREPARED, open_split
from stages.models import count_params, load_model

class Evaluate(Schema):
    ece_bins: int = Field(ge=1)
    latency_warmup: int = Field(ge=0)
    latency_runs: int = Field(ge=1)


class RunModel(Schema):
    """The keys of ``models.<model>`` this stage declares."""

    batch_size: int = Field(ge=1)
    family: str = Field(min_length=1)


def parse_eval_params(values: dict) -> dict:
    return parse_section(Evaluate, values, "evaluate").model_dump()


def input_size(model, path: Path) -> int:
    """The square image size the model takes, from its input shape (None, s, s, 3)."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise DataError(f"{path}: expected a model taking (size, size, 3) images, its input shape is {shape}")
    return int(shape[1])


def open_test_split(prepared: str | Path, size: int, path: Path):
    split = open_split("test", size, prepared, needed_by=path)
    if not len(split.labels):
        raise DataError(f"{prepared}: the test split is empty")
    return split


def warm_up(model, batch: np.ndarray) -> None:
    """Trace the predict function outside every timing.

    Two batch shapes: the tf.function then settles on its shape-generic trace, so
    neither the last partial batch nor the batch-1 calls retrace while timed.
    """
    model.predict_on_batch(batch)
    model.predict_on_batch(batch[:1])


def predict_timed(model, split, batch_size: int, desc: str) -> tuple[np.ndarray, float]:
    """Raw outputs [n, K] for the test split in order, and the seconds the pass took."""
    dataset = make_dataset(split, batch_size, shuffle=False, seed=0, one_hot=False)
    warm_up(model, next(iter(dataset))[0])
    outputs = []
    bar = tqdm(total=len(split.labels), desc=desc, unit="img", mininterval=1.0, dynamic_ncols=True)
    start = time.perf_counter()
    for images, _ in dataset:
        outputs.append(model.predict_on_batch(images))
        bar.update(len(outputs[-1]))
    seconds = time.perf_counter() - start
    bar.close()
    return np.concatenate(outputs).astype(np.float64), seconds


def latency_ms(model, image: np.ndarray, warmup: int, runs: int) -> float:
    """Median wall time of a batch-1 prediction, in milliseconds.

    predict_on_batch, not an eager ``model(x)``: it runs the same compiled graph as the
    throughput pass (what a deployed model runs) and returns numpy, so the time includes
    the device sync; eager calls would mostly time Python dispatch per layer.
    """
    for _ in range(warmup):
        model.predict_on_batch(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict_on_batch(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def predictions_frame(split, probs: np.ndarray) -> pd.DataFrame:
    names = np.asarray(split.class_names, dtype=object)
    pred = probs.argmax(axis=1)
    frame = pd.DataFrame({
        "path": split.paths,
        "label": split.labels.astype(int),
        "class_name": names[split.labels],
        "pred_label": pred,
        "pred_class": names[pred],
    })
    probs_cols = pd.DataFrame(probs, columns=[f"prob:{c}" for c in split.class_names])
    return pd.concat([frame, probs_cols], axis=1)


def evaluate(
    name: str,
    model_file: str | Path,
    prepared: str | Path,
    batch_size: int,
    cfg: dict,
    predictions_out: str | Path,
    metrics_out: str | Path,
    cost_out: str | Path,
    family: str | None = None,
) -> dict:
    """Predict the test split with one saved model; write the predictions, metrics and cost
    files. Returns the metrics and cost keys in one dict."""
    model_file = Path(model_file)
    if not model_file.is_file():
        raise DataError(f"{model_file} not found: run `dvc repro train@{name}` first")
    model = load_model(model_file, family)
    size = input_size(model, model_file)
    split = open_test_split(prepared, size, model_file)
    num_classes = len(split.class_names)
    if model.output_shape[-1] != num_classes:
        raise DataError(
            f"{model_file} has {model.output_shape[-1]} outputs but {prepared} has {num_classes} classes: retrain it"
        )
    n = len(split.labels)
    print(f"evaluate@{name}: {n} test images at {size} px, batch {batch_size}", flush=True)

    outputs, seconds = predict_timed(model, split, batch_size, f"evaluate@{name}")
    probs = to_probabilities(outputs)
    latency = latency_ms(model, np.asarray(split.images[:1]), cfg["latency_warmup"], cfg["latency_runs"])
    quality = classification_metrics(split.labels, probs, split.class_names, cfg["ece_bins"])
    per_class = quality.pop("per_class")
    total, trainable = count_params(model)
    metrics = {
        **quality,
        "model_size_mb": round(model_file.stat().st_size / 1e6, 3),  # decimal MB of the .keras file
        "params_total": total,
        "params_trainable": trainable,
        "num_test_images": n,
        "per_class": per_class,  # last: the long part of the file
    }
    cost = {"eval_time_s": round(seconds, 4), "infer_img_per_s": round(n / seconds, 2),
            "latency_ms_b1": round(latency, 3)}
    write_csv(predictions_out, predictions_frame(split, probs))
    write_json(metrics_out, metrics)
    write_json(cost_out, cost)
    return {**metrics, **cost}


def main(argv: list[str] | None = None) -> None:
    name, seed, percent, params, model_params = model_stage_params("evaluate", argv)
    cfg = parse_eval_params(params.get("evaluate"))
    entry = parse_section(RunModel, model_params, f"models.{name}")
    batch_size, family = entry.batch_size, entry.family
    run = run_label(name, seed, percent)
    preds, metrics = predictions_path(name, seed, percent=percent), eval_metrics_path(name, seed, percent=percent)
    cost = eval_cost_path(name, seed, percent=percent)
    m = evaluate(run, model_path(name, seed, percent=percent), PREPARED, batch_size, cfg, preds, metrics, cost,
                 family)
    print(
        f"evaluate@{run}: accuracy {m['accuracy']:.4f}, top-3 {m['top3_accuracy']:.4f}, "
        f"macro-F1 {m['macro_f1']:.4f}, log loss {m['log_loss']:.4f}, ECE {m['ece']:.4f} on "
        f"{m['num_test_images']} images; {m['infer_img_per_s']:.0f} img/s, batch-1 {m['latency_ms_b1']:.1f} ms "
        f"-> {preds}, {metrics}, {cost}"
    )


if __name__ == "__main__":
    run_stage(main)
