"""Picking a tf.distribute strategy, so one training script runs on a laptop, a multi-GPU box or a cluster."""

from __future__ import annotations

import os

import tensorflow as tf

from stages.lib.errors import ParamError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def pick_strategy(name: str, key: str = "train.strategy") -> tf.distribute.Strategy:
    """``auto``: MultiWorkerMirrored when TF_CONFIG is set, Mirrored when more than one GPU is
    visible, otherwise the default (single-device) strategy."""
    if name not in STRATEGIES:
        raise ParamError(key, f"must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def mixed_precision_policy(compute_capability: tuple | None = None) -> str:
    """The Keras dtype policy for ``train.mixed_precision``: ``mixed_bfloat16`` on GPUs with
    bfloat16 tensor cores (compute capability >= 8.0: Ampere, Hopper), which needs no loss
    scaling (float32's exponent range); else ``mixed_float16``, for which Model.compile wraps
    the optimizer in a LossScaleOptimizer itself (keras 3: compile(auto_scale_loss=True)).
    ``compute_capability`` defaults to the first visible GPU's (none: float16)."""
    if compute_capability is None:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            compute_capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return "mixed_bfloat16" if compute_capability and tuple(compute_capability) >= (8, 0) else "mixed_float16"
