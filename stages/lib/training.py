"""Compiling a registry model for training: one definition for the train stage and the benchmarks."""

from __future__ import annotations

import keras


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
