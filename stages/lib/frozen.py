"""Frozen bases computed once: train a model's head on cached base features.

When nothing before a model's head trains (a frozen base in inference mode, no
augmentation), the base maps each image to the same features in every epoch.
Computing them once and training only the head on them gives the same head
updates -- the same batches in the same order, through the same layers -- at the
cost of one forward pass of the base instead of one per epoch.

The head model built here *shares* the full model's head layers (the same weight
variables), so training it trains the full model: saving the full model afterwards
gives a self-contained base + head file, and `evaluate` / `explain` see no difference.
"""

from __future__ import annotations

import keras
import numpy as np

from stages.lib.prepared import PreparedSplit

HEAD_PREFIX = "head"  # the registry's head layers: "head_dropout" (optional), then "head"


def split_at_head(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """(features model, head model) if nothing before the head has trainable weights, else None."""
    head_layers = [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    if not head_layers:
        return None
    features = head_layers[0].input
    extractor = keras.Model(model.inputs, features, name=f"{model.name}_features")
    if extractor.trainable_weights:
        return None
    x = inputs = keras.Input(tuple(features.shape[1:]), dtype=features.dtype, name="features")
    for layer in head_layers:  # a chain: [Dropout ->] Dense, as _common.assemble builds it
        x = layer(x)
    return extractor, keras.Model(inputs, x, name=f"{model.name}_head")


def cached_split(extractor: keras.Model, split: PreparedSplit, batch_size: int) -> PreparedSplit:
    """The split with each image replaced by its base features (computed once, in split order)."""
    from stages.lib.dataset import make_dataset  # tf.data; imported here to keep this module light

    images = make_dataset(split, batch_size, shuffle=False, seed=0, one_hot=False).map(lambda x, y: x)
    features = np.asarray(extractor.predict(images, verbose=0))
    if len(features) != len(split.labels):
        raise RuntimeError(f"computed {len(features)} feature rows for {len(split.labels)} images")
    return PreparedSplit(features, split.labels, split.paths, split.class_names)
