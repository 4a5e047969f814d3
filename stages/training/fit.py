"""Training settings and compiling: one definition for the train and features stages and the benchmarks."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field

from stages.core.errors import ParamError
from stages.core.params import Schema, parse_section
from stages.training.distribute import STRATEGIES

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
MONITORS = ("val_loss", "val_accuracy", "val_top3_accuracy", "val_macro_f1")


class EarlyStopping(Schema):
    monitor: Literal[MONITORS] = "val_loss"
    patience: int = Field(0, ge=0)  # 0 = off
    restore_best_weights: bool = True


class ModelTraining(Schema):
    """The training keys of a ``models.<name>`` entry; every other key is an option of its family
    (checked by the family's module)."""

    model_config = ConfigDict(extra="allow")
    family: str = Field(min_length=1)
    image_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal[OPTIMIZERS]
    learning_rate: float = Field(gt=0)
    early_stopping: EarlyStopping = EarlyStopping()
    # Added to the run's seed for this model's training randomness (initialisation, shuffling),
    # never for its training subset: two identical entries with different offsets differ as two
    # honest runs do, on the same images (the A/A check of the verdicts, tests/test_verdicts_aa.py).
    seed_offset: int = Field(0, ge=0)


def parse_model_params(name: str, values: dict, image_sizes: list[int]) -> dict:
    """Validate the training keys of ``models.<name>``; the rest are family options."""
    key = f"models.{name}"
    entry = parse_section(ModelTraining, values, key)
    if entry.image_size not in image_sizes:
        raise ParamError(f"{key}.image_size", f"{entry.image_size} px is not prepared; prepare.image_sizes is "
                                              f"{image_sizes}: add it there")
    cfg = entry.model_dump(exclude=set(entry.model_extra or {}))
    return {**cfg, "options": dict(entry.model_extra or {})}


class Run(Schema):
    """``train``: settings shared by every training run."""

    strategy: Literal[STRATEGIES]
    mixed_precision: bool
    jit_compile: bool
    deterministic: bool
    cache_frozen_features: bool = True


def parse_run_params(values: dict) -> dict:
    return parse_section(Run, values, "train").model_dump()


class Predict(Schema):
    """``predict``: how `train` times its test-set predictions."""

    latency_warmup: int = Field(ge=0)
    latency_runs: int = Field(ge=1)


def parse_predict_params(values: dict) -> dict:
    return parse_section(Predict, values, "predict").model_dump()


def compile_for_training(model, optimizer: str, learning_rate: float, num_classes: int,
                         jit_compile: bool):
    """Categorical cross-entropy on one-hot labels, with accuracy, top-3 accuracy and macro-F1.

    Every variable the train step needs is created here, before fit traces it: a tf.function
    whose first trace creates variables (Adam's slots, F1Score's counters, both made lazily by
    Keras) is traced a second time, which cost MobileNetV2 at 32 px ~12 s of a ~45 s run."""
    import keras  # here, not at the top: stages that only parse these params need no TensorFlow

    f1 = keras.metrics.F1Score(average="macro", name="macro_f1")  # threshold=None: arg-max, multi-class F1
    f1.update_state(np.zeros((1, num_classes), "float32"), np.zeros((1, num_classes), "float32"))  # builds it
    f1.reset_state()
    model.compile(
        optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=min(3, num_classes), name="top3_accuracy"),
            f1,
        ],
        jit_compile=jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model
