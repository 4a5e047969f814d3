"""Test-set predictions and their cost, made by `train` with the model it has just trained.

Predicting in the training process spares a second process its start-up, TensorFlow import and
model load (over 95 % of a separate evaluation stage on the default). Writes nothing itself:
`train` publishes the predictions and the cost with its other outputs; `evaluate` turns the
predictions into metrics without TensorFlow.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.core.errors import DataError
from stages.core.metrics import to_probabilities
from stages.training.dataset import make_dataset


def warm_up(model, batch: np.ndarray) -> None:
    """Trace the predict function outside every timing.

    Two batch shapes: the tf.function then settles on its shape-generic trace, so
    neither the last partial batch nor the batch-1 calls retrace while timed.
    """
    model.predict_on_batch(batch)
    model.predict_on_batch(batch[:1])


def predict_timed(model, split, batch_size: int, desc: str) -> tuple[np.ndarray, float]:
    """Raw outputs [n, K] for ``split`` in order, and the seconds the pass took."""
    dataset = make_dataset(split, batch_size, shuffle=False, seed=0, one_hot=False)
    if model.distribute_strategy.num_replicas_in_sync > 1:
        # Keras' predict_on_batch hands every replica the whole batch and concatenates their
        # outputs (n x replicas rows); predict() shards the dataset across replicas instead.
        model.predict(dataset.take(1), verbose=0)  # trace outside the timing
        start = time.perf_counter()
        outputs = model.predict(dataset, verbose=0)
        return np.asarray(outputs, dtype=np.float64), time.perf_counter() - start
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
    """path, label, class_name, pred_label, pred_class and one ``prob:<class>`` column per class."""
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


def predict_test(model, split, batch_size: int, latency_warmup: int, latency_runs: int,
                 desc: str) -> tuple[pd.DataFrame, dict]:
    """The predictions frame of the test ``split`` and the cost of making it (throughput over the
    whole split at ``batch_size``, batch-1 latency)."""
    if not len(split.labels):
        raise DataError("the test split is empty")
    if model.output_shape[-1] != len(split.class_names):
        raise DataError(f"the model has {model.output_shape[-1]} outputs but the test split "
                        f"{len(split.class_names)} classes")
    outputs, seconds = predict_timed(model, split, batch_size, desc)
    latency = latency_ms(model, np.asarray(split.images[:1]), latency_warmup, latency_runs)
    n = len(split.labels)
    cost = {"eval_time_s": round(seconds, 4), "infer_img_per_s": round(n / seconds, 2),
            "latency_ms_b1": round(latency, 3)}
    return predictions_frame(split, to_probabilities(outputs)), cost


def weights_mb(model) -> float:
    """The deployable model's size: its weights' bytes, decimal MB (no optimizer state)."""
    return round(sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights) / 1e6, 3)
