"""Picking a tf.distribute strategy, so one training script runs on a laptop, a multi-GPU box or a cluster."""

from __future__ import annotations

import os

from stages.core.errors import ParamError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


# Keras 3's Model.fit does not run under MultiWorkerMirroredStrategy (it fails converting a
# PerReplica batch: keras-team/keras#20585, tensorflow/tensorflow#72388; reproduced by
# tests/test_distribute.py, which fails once an upgrade fixes it). Refused up front, not after
# the workers have connected.
MULTI_WORKER_UNSUPPORTED = (
    "multi-worker training (MultiWorkerMirroredStrategy) does not work with Keras 3's Model.fit "
    "(keras-team/keras#20585); use one machine's GPUs (mirrored) and run experiments in parallel "
    "with `dvc exp run --queue` + `dvc queue start -j N` (README: Scaling out)")


def pick_strategy(name: str, key: str = "train.strategy"):
    """``auto``: Mirrored when more than one GPU is visible, otherwise the default (single-device)
    strategy. ``mirrored`` replicates over every visible GPU, or over the logical CPU devices where
    there is none (one, unless a test splits the CPU). ``multi_worker`` -- also implied by a set
    TF_CONFIG under ``auto`` -- is refused with the reason (above)."""
    import tensorflow as tf  # here: importing this module (STRATEGIES) must not load TensorFlow

    if name not in STRATEGIES:
        raise ParamError(key, f"must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "multi_worker" or (name == "auto" and os.environ.get("TF_CONFIG")):
        where = "" if name == "multi_worker" else " (auto, with TF_CONFIG set)"
        raise ParamError(key, f"{name}{where}: {MULTI_WORKER_UNSUPPORTED}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def mixed_precision_policy(compute_capability: tuple | None = None) -> str:
    """The Keras dtype policy for ``train.mixed_precision``: ``mixed_bfloat16`` on GPUs with
    bfloat16 tensor cores (compute capability >= 8.0: Ampere, Hopper), which needs no loss
    scaling (float32's exponent range); else ``mixed_float16``, for which Model.compile wraps
    the optimizer in a LossScaleOptimizer itself (keras 3: compile(auto_scale_loss=True)).
    ``compute_capability`` defaults to the first visible GPU's (none: float16)."""
    if compute_capability is None:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            compute_capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return "mixed_bfloat16" if compute_capability and tuple(compute_capability) >= (8, 0) else "mixed_float16"
