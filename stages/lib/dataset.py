"""tf.data input pipelines over the prepared memory maps.

Batches are gathered from the ``.npy`` memory maps by index: a memcpy from the
page cache, never an image decode. The index stream is what gets shuffled and
sharded, so the pipeline shards cheaply across workers under tf.distribute.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from stages.lib.prepared import PreparedSplit


def make_dataset(
    split: PreparedSplit, batch_size: int, shuffle: bool, seed: int, one_hot: bool = True
) -> tf.data.Dataset:
    """(uint8 images [b, s, s, 3], labels) batches; labels one-hot float32 unless ``one_hot=False``."""
    images, labels = split.images, split.labels
    num_classes = len(split.class_names)
    shape = images.shape[1:]

    def gather(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(idx)  # sequential reads from the memory map; order within a batch is irrelevant
        return np.ascontiguousarray(images[idx]), labels[idx]

    def load(idx):
        x, y = tf.numpy_function(gather, [idx], (tf.uint8, tf.int32), stateful=False)
        x.set_shape((None, *shape))
        y.set_shape((None,))
        if one_hot:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
        return x, y

    ds = tf.data.Dataset.range(len(labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    # Shard the index stream across workers (each worker reads only its own batches).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def in_memory_dataset(split: PreparedSplit, batch_size: int, seed: int) -> tf.data.Dataset:
    """The same batches from tensors held in RAM: the reference the benchmark compares against."""
    images = np.asarray(split.images)
    labels = tf.one_hot(split.labels, len(split.class_names), dtype=tf.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return ds.shuffle(len(images), seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)
