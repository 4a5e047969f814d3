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
