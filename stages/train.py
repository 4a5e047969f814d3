"""Stage `train@<model>-<percent>-<seed>`: train one model of the registry on the prepared tensors.

Usage: ``python -m stages.train <model> --percent <p> --seed <seed>``, where ``<model>`` is a
key of the ``models`` section of params.yaml, ``<p>`` one of ``study.train_percent`` and
``<seed>`` one of ``study.seeds`` (dvc.yaml runs ``train@<model>-<p>-<seed>`` for every
combination). The run trains on ``p`` % of each class's training images, a nested subset
(stages/training/subsets.py: a smaller subset of a seed is inside every larger one); validation
is always the whole val split. The seed sets the new layers' initialisation, the subset's
order, the shuffling and dropout; with ``study.vary_split`` also the run's train/val/test split,
re-drawn from the same images with the same per-class counts (stages/core/prepared.py), the same
for every model at that seed. A model's keys are training settings (below) plus
the family's own options (see stages/models/<family>.py), e.g.::

    models:
      mobilenet_v2:
        family: mobilenet_v2
        image_size: 96
        epochs: 5
        batch_size: 32
        ...
        weights: imagenet      # a family option
        trainable: frozen      # a family option

Logs per-epoch train/val loss, accuracy, top-3 accuracy and macro-F1 with
dvclive, saves the trained model (weights and architecture, no optimizer state: nothing resumes
from it), and writes the run's metrics (epochs, parameters, model size, data size) and, apart, its
cost (fit time, throughput: machine-dependent) to metrics/cost/train/. With the model still in
memory it then predicts the whole test split: ``data/predictions/<model>/<p>pct/s<seed>.csv``
(scored by the ``evaluate`` stage without TensorFlow) and the prediction cost (throughput at the
training batch size, batch-1 latency: ``predict`` params) in ``metrics/cost/eval/``.

A frozen base with nothing trainable before the head (``trainable: frozen``) is run
once over train and val; the head then trains on those cached features
(stages/training/frozen.py, ``train.cache_frozen_features``), which gives the same head. A
pretrained frozen base's features come from the ``features@<model>`` stage, computed once
for every size and seed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from stages.core.errors import run_stage
from stages.core.files import atomic_outputs, write_json_to
from stages.core.layout import (FEATURES, FULL, curves_dir, eval_cost_path, features_dir, model_path,
                                predictions_path, run_label, train_cost_path, train_metrics_path)
from stages.core.params import model_stage_params, study_vary_split
from stages.core.prepared import PREPARED, open_splits, read_meta
from stages.models import build_model, count_params
from stages.training.dataset import make_dataset
from stages.training.distribute import mixed_precision_policy, pick_strategy
from stages.training.fit import compile_for_training, parse_model_params, parse_predict_params, parse_run_params
from stages.training.frozen import cached_split, load_features, split_at_head, take_rows
from stages.training.inference import predict_test, weights_mb
from stages.training.platform import platform_info
from stages.training.subsets import nested_subset

class TrainThroughput(keras.callbacks.Callback):
    """Times the training part of each epoch (validation excluded), wall and process CPU."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu, self._stopped = time.perf_counter(), time.process_time(), False

    def on_test_begin(self, logs=None):
        if not self._stopped:
            self.seconds.append(time.perf_counter() - self._start)
            self.cpu_seconds.append(time.process_time() - self._cpu)
            self._stopped = True

    def steady(self) -> tuple[float, float]:
        """Mean seconds per epoch and CPU cores busy, epochs after the first (which traces graphs)."""
        wall = self.seconds[1:] or self.seconds
        cpu = self.cpu_seconds[1:] or self.cpu_seconds
        return sum(wall) / len(wall), sum(cpu) / sum(wall)


def frozen_inputs(name: str, extractor, train_split, val_split, rows, batch: int, features_root: Path):
    """Train and val as base features: the features stage's (rows of the whole split) when they were
    made by this very base, else computed here for this run's rows. Returns (train, val, source,
    the stored features' one-off seconds or None)."""
    policy = keras.mixed_precision.global_policy().name
    stored, why, seconds = load_features(features_dir(name, features_root), extractor, policy,
                                         {"train": train_split, "val": val_split})
    if stored is not None:
        return take_rows(stored["train"], rows), stored["val"], "features stage", seconds
    print(f"train: computing this run's frozen-base features ({why})", flush=True)
    return (cached_split(extractor, train_split, batch, rows), cached_split(extractor, val_split, batch),
            "this run", None)


def deployable(model: keras.Model) -> keras.Model:
    """``model`` without its optimizer state and compile settings (a same-weights clone): what a
    user deploys. Keras 3's .keras format saves a compiled model's optimizer variables, twice the
    weights again with Adam, and has no option to leave them out."""
    if getattr(model, "optimizer", None) is None:
        return model
    # From the architecture's config: clone_model and model_from_json compile the copy like the original.
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def train(name: str, seed: int, cfg: dict, run: dict, prepared: str | Path = PREPARED, *,
          percent: int = FULL, features_root: Path = FEATURES, predict: dict | None = None,
          vary_split: bool = False) -> dict:
    """Train ``models.<name>`` with ``seed`` on ``percent`` % of each class's training images
    (stages/training/subsets.py) and predict the test split with it; writes the model, the dvclive logs,
    the metrics and cost files, the test predictions and their cost. ``predict``: latency_warmup,
    latency_runs (default 3, 30). ``vary_split``: train, val and test re-drawn from ``seed``
    (``study.vary_split``), the same for every model. Returns the metrics, cost and prediction-cost
    keys in one dict."""
    predict = predict or {"latency_warmup": 3, "latency_runs": 30}
    label = f"train@{run_label(name, seed, percent)}"
    keras.utils.set_random_seed(seed + cfg["seed_offset"])
    if run["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    if run["mixed_precision"]:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    strategy = pick_strategy(run["strategy"])

    size, batch = cfg["image_size"], cfg["batch_size"]
    splits = open_splits(size, prepared, resample_seed=seed if vary_split else None)
    train_split, val_split, test_split = splits["train"], splits["val"], splits["test"]
    num_classes = len(train_split.class_names)
    rows = nested_subset(train_split.paths, train_split.labels, percent, seed)
    per_class = np.bincount(train_split.labels[rows], minlength=num_classes)

    with strategy.scope():
        model = build_model(cfg["family"], num_classes, size, cfg["options"], key_prefix=f"models.{name}")
        parts = split_at_head(model) if run["cache_frozen_features"] else None
        # Only the model that trains is compiled: the saved file then holds no unbuilt optimizer.
        trained = parts[1] if parts else model
        compile_for_training(trained, cfg["optimizer"], cfg["learning_rate"], num_classes, run["jit_compile"])
    features_time = features_source = stored_time = None
    if parts:
        start = time.perf_counter()
        train_split, val_split, features_source, stored_time = frozen_inputs(
            name, parts[0], train_split, val_split, rows, batch, features_root)
        rows = None  # the feature arrays hold this run's rows only
        features_time = time.perf_counter() - start
        print(f"{label}: frozen base: features of {len(train_split.labels) + len(val_split.labels)} images from "
              f"{features_source} in {features_time:.1f} s; training the head on them", flush=True)
    n_train = len(train_split.labels) if rows is None else len(rows)
    # One iterator for the whole fit (repeat + steps_per_epoch, each pass reshuffled): a fresh
    # iterator per epoch cost the default ViT ~20 % of its training throughput on 2 cores.
    steps_per_epoch = math.ceil(n_train / batch)
    train_ds = make_dataset(train_split, batch, shuffle=True, seed=seed + cfg["seed_offset"], rows=rows).repeat()
    val_ds = make_dataset(val_split, batch, shuffle=False, seed=seed)

    stop = cfg["early_stopping"]
    throughput = TrainThroughput()
    callbacks = [throughput]
    if stop["patience"] > 0:
        mode = "min" if stop["monitor"] == "val_loss" else "max"
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stop["monitor"], mode=mode, patience=stop["patience"],
                restore_best_weights=stop["restore_best_weights"], verbose=1,
            )
        )
    print(
        f"{label}: {cfg['family']}, {model.count_params():,} parameters, {n_train} train ({percent} %, "
        f"{per_class.min()}-{per_class.max()} per class) / {len(val_split.labels)} val images at {size} px, batch {batch}, up to {cfg['epochs']} epochs, "
        f"{strategy.num_replicas_in_sync} replica(s)",
        flush=True,
    )
    # Every output is written to a temporary, and all are published together once the last is
    # written: a run stopped at any point (during the fit, while the model is saved) leaves none.
    outputs = (curves_dir(name, seed, percent=percent), model_path(name, seed, percent=percent),
               train_metrics_path(name, seed, percent=percent), train_cost_path(name, seed, percent=percent),
               predictions_path(name, seed, percent=percent), eval_cost_path(name, seed, percent=percent))
    with atomic_outputs(*outputs) as (tmp_live, tmp_model, tmp_metrics, tmp_cost, tmp_preds, tmp_eval_cost):
        # dvcyaml=False / save_dvc_exp=False: dvclive must not rewrite dvc.yaml or create experiments.
        live = Live(str(tmp_live), dvcyaml=False, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
        start = time.perf_counter()
        history = trained.fit(
            train_ds, validation_data=val_ds, epochs=cfg["epochs"], steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=2, shuffle=False,
        )
        fit_time = time.perf_counter() - start + (features_time or 0.0)

        monitored = history.history[stop["monitor"]]
        best = (min if stop["monitor"] == "val_loss" else max)(range(len(monitored)), key=monitored.__getitem__)
        # Keras's EarlyStopping restores the best epoch's weights at the end of fit (stopped early
        # or not) when restore_best_weights is set; the saved model, which evaluate scores, carries them.
        restored = stop["patience"] > 0 and stop["restore_best_weights"]
        total, trainable = count_params(model)
        epoch_seconds, cores = throughput.steady()
        metrics = {
            "epochs_run": len(monitored),
            "best_epoch": best + 1,
            "evaluated_epoch": best + 1 if restored else len(monitored),
            "params_total": total,
            "params_trainable": trainable,
            "model_size_mb": weights_mb(model),  # the weights, decimal MB; model_file_mb: the .keras file
            "cached_features": bool(parts),
            "features_source": features_source,
            "seed": seed,
            # The run's split: the split stage's (null) or re-drawn from this seed (study.vary_split).
            "split_seed": seed if vary_split else None,
            "train_percent": percent,
            "train_images": n_train,
            "train_images_per_class": round(n_train / num_classes, 3),
            "val_images": len(val_split.labels),
        }
        cost = {  # machine-dependent: its own file (stages/core/layout.py)
            "fit_time_s": round(fit_time, 3),
            "time_per_trainable_param": fit_time / trainable if trainable else None,
            "train_img_per_s": round(n_train / epoch_seconds, 2),
            "train_cpu_cores": round(cores, 2),
            "features_time_s": None if features_time is None else round(features_time, 3),
            # The features stage's one-off time, shared by every run of the model: not in fit_time_s.
            "stored_features_time_s": stored_time,
            "platform": platform_info(),  # what these figures (and the weights) came from
        }
        predictions, eval_cost = predict_test(model, test_split, batch, predict["latency_warmup"],
                                              predict["latency_runs"], f"{label} test")
        deployable(model).save(tmp_model)
        metrics["model_file_mb"] = round(tmp_model.stat().st_size / 1e6, 3)
        predictions.to_csv(tmp_preds, index=False, encoding="utf-8", lineterminator="\n")
        write_json_to(tmp_eval_cost, eval_cost)
        write_json_to(tmp_metrics, metrics)
        write_json_to(tmp_cost, cost)
    return {**metrics, **cost, **eval_cost}


def main(argv: list[str] | None = None) -> None:
    name, seed, percent, params, model_params = model_stage_params("train", argv)
    cfg = parse_model_params(name, model_params, read_meta()["image_sizes"])
    run = parse_run_params(params["train"])
    metrics = train(name, seed, cfg, run, percent=percent, predict=parse_predict_params(params.get("predict")),
                    vary_split=study_vary_split(params.get("study")))
    print(
        f"train@{run_label(name, seed, percent)}: {metrics['epochs_run']} epochs in {metrics['fit_time_s']:.1f} s "
        f"(best {metrics['best_epoch']}), {metrics['train_img_per_s']:.0f} img/s on "
        f"{metrics['train_cpu_cores']:.1f} cores; test predicted at {metrics['infer_img_per_s']:.0f} img/s, batch-1 "
        f"{metrics['latency_ms_b1']:.1f} ms -> {model_path(name, seed, percent=percent)}, "
        f"{predictions_path(name, seed, percent=percent)}"
    )


if __name__ == "__main__":
    run_stage(main)
