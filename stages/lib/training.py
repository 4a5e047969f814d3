"""Training settings and compiling: one definition for the train and features stages and the benchmarks."""

from __future__ import annotations

import keras

from stages.lib.distribute import STRATEGIES
from stages.lib.errors import ParamError
from stages.lib.params import Section

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



def compile_for_training(model: keras.Model, optimizer: str, learning_rate: float, num_classes: int,
                         jit_compile: bool) -> keras.Model:
    """Categorical cross-entropy on one-hot labels, with accuracy, top-3 accuracy and macro-F1."""
    model.compile(
        optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=min(3, num_classes), name="top3_accuracy"),
            # threshold=None: the arg-max class counts as predicted, i.e. multi-class F1.
            keras.metrics.F1Score(average="macro", name="macro_f1"),
        ],
        jit_compile=jit_compile,
    )
    return model
