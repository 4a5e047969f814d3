"""Stage `train@<model>`: train one model of the registry on the prepared tensors.

Usage: ``python -m stages.train <model> --seed <seed>``, where ``<model>`` is a key of
the ``models`` section of params.yaml and ``<seed>`` one of ``study.seeds`` (dvc.yaml runs
``train@<model>-<seed>`` for every pair). The seed sets the new layers' initialisation,
the shuffling and dropout; the data is the same for every seed. Its keys are training settings (below) plus
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
dvclive, saves the trained model, and writes training cost metrics.

A frozen base with nothing trainable before the head (``trainable: frozen``) is run
once over train and val; the head then trains on those cached features
(stages/lib/frozen.py, ``train.cache_frozen_features``), which gives the same head.
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

from stages.lib.dataset import make_dataset
from stages.lib.distribute import STRATEGIES, mixed_precision_policy, pick_strategy
from stages.lib.errors import ParamError, run_stage
from stages.lib.files import atomic_output, write_json
from stages.lib.frozen import cached_split, split_at_head
from stages.lib.layout import curves_dir, model_path, train_metrics_path
from stages.lib.params import Section, model_stage_params
from stages.lib.prepared import PREPARED, open_split, read_meta
from stages.lib.training import compile_for_training
from stages.models import build_model

TRAIN_KEYS = ("family", "image_size", "epochs", "batch_size", "optimizer", "learning_rate", "early_stopping")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
STOP_KEYS = ("monitor", "patience", "restore_best_weights")
MONITORS = ("val_loss", "val_accuracy", "val_top3_accuracy", "val_macro_f1")


def parse_model_params(name: str, values: dict, image_sizes: list[int]) -> dict:
    """Validate the training keys of ``models.<name>``; the rest are family options."""
    p = Section(values, f"models.{name}")
    cfg = {
        "family": p.str("family", allow_empty=False),
        "image_size": p.int("image_size", minimum=1),
        "epochs": p.int("epochs", minimum=1),
        "batch_size": p.int("batch_size", minimum=1),
        "optimizer": p.choice("optimizer", OPTIMIZERS),
        "learning_rate": p.raw("learning_rate"),
        "options": {k: v for k, v in values.items() if k not in TRAIN_KEYS},
    }
    lr = cfg["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ParamError(p.key("learning_rate"), f"must be a positive number, got {lr!r}")
    if cfg["image_size"] not in image_sizes:
        raise ParamError(
            p.key("image_size"),
            f"{cfg['image_size']} px is not prepared; prepare.image_sizes is {image_sizes}: add it there",
        )
    stop = Section(p.raw("early_stopping", {}) or {}, p.key("early_stopping"), known=STOP_KEYS)
    cfg["early_stopping"] = {
        "monitor": stop.choice("monitor", MONITORS, default="val_loss"),
        "patience": stop.int("patience", minimum=0, default=0),  # 0 = off
        "restore_best_weights": bool(stop.raw("restore_best_weights", True)),
    }
    return cfg


RUN_FLAGS = ("mixed_precision", "jit_compile", "deterministic", "cache_frozen_features")


def parse_run_params(values: dict) -> dict:
    p = Section(values, "train", known=("strategy", *RUN_FLAGS))
    flags = {}
    for flag in RUN_FLAGS:
        value = p.raw(flag, True if flag == "cache_frozen_features" else ...)
        if not isinstance(value, bool):
            raise ParamError(p.key(flag), f"expected true or false, got {value!r}")
        flags[flag] = value
    return {"strategy": p.choice("strategy", STRATEGIES), **flags}


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


def train(name: str, seed: int, cfg: dict, run: dict, prepared: str | Path = PREPARED) -> dict:
    """Train ``models.<name>`` with ``seed``; writes the model, the dvclive logs and the metrics file."""
    keras.utils.set_random_seed(seed)
    if run["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    if run["mixed_precision"]:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    strategy = pick_strategy(run["strategy"])

    size, batch = cfg["image_size"], cfg["batch_size"]
    train_split, val_split = open_split("train", size, prepared), open_split("val", size, prepared)
    num_classes = len(train_split.class_names)

    with strategy.scope():
        model = build_model(cfg["family"], num_classes, size, cfg["options"], key_prefix=f"models.{name}")
        parts = split_at_head(model) if run["cache_frozen_features"] else None
        # Only the model that trains is compiled: the saved file then holds no unbuilt optimizer.
        trained = parts[1] if parts else model
        compile_for_training(trained, cfg["optimizer"], cfg["learning_rate"], num_classes, run["jit_compile"])
    features_time = None
    if parts:
        start = time.perf_counter()
        train_split, val_split = (cached_split(parts[0], s, batch) for s in (train_split, val_split))
        features_time = time.perf_counter() - start
        print(f"train@{name}-{seed}: frozen base: features of {len(train_split.labels) + len(val_split.labels)} "
              f"images computed once in {features_time:.1f} s; training the head on them", flush=True)
    # One iterator for the whole fit (repeat + steps_per_epoch, each pass reshuffled): a fresh
    # iterator per epoch cost the default ViT ~20 % of its training throughput on 2 cores.
    steps_per_epoch = math.ceil(len(train_split.labels) / batch)
    train_ds = make_dataset(train_split, batch, shuffle=True, seed=seed).repeat()
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
        f"train@{name}-{seed}: {cfg['family']}, {model.count_params():,} parameters, {len(train_split.labels)} train / "
        f"{len(val_split.labels)} val images at {size} px, batch {batch}, up to {cfg['epochs']} epochs, "
        f"{strategy.num_replicas_in_sync} replica(s)",
        flush=True,
    )
    with atomic_output(curves_dir(name, seed)) as tmp_live:
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
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    epoch_seconds, cores = throughput.steady()
    metrics = {
        "fit_time_s": round(fit_time, 3),
        "epochs_run": len(monitored),
        "best_epoch": best + 1,
        "params_total": int(model.count_params()),
        "params_trainable": trainable,
        "time_per_trainable_param": fit_time / trainable if trainable else None,
        "train_img_per_s": round(len(train_split.labels) / epoch_seconds, 2),
        "train_cpu_cores": round(cores, 2),
        "cached_features": bool(parts),
        "features_time_s": None if features_time is None else round(features_time, 3),
        "seed": seed,
    }
    with atomic_output(model_path(name, seed)) as tmp_model:
        model.save(tmp_model)
    write_json(train_metrics_path(name, seed), metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    name, seed, params, model_params = model_stage_params("train", argv)
    cfg = parse_model_params(name, model_params, read_meta()["image_sizes"])
    run = parse_run_params(params["train"])
    metrics = train(name, seed, cfg, run)
    print(
        f"train@{name}-{seed}: {metrics['epochs_run']} epochs in {metrics['fit_time_s']:.1f} s "
        f"(best {metrics['best_epoch']}), {metrics['train_img_per_s']:.0f} img/s on "
        f"{metrics['train_cpu_cores']:.1f} cores -> {model_path(name, seed)}"
    )


if __name__ == "__main__":
    run_stage(main)
