"""tf.data input pipelines over the prepared memory maps.

Batches are gathered from the ``.npy`` memory maps by index: a memcpy from the
page cache, never an image decode. Only the index stream is shuffled, so the
shuffle is exact and costs no memory however large the split.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from stages.core.prepared import PreparedSplit

CHUNK_IMAGES = 256


def make_dataset(
    split: PreparedSplit, batch_size: int, shuffle: bool, seed: int, one_hot: bool = True,
    rows: np.ndarray | None = None,
) -> tf.data.Dataset:
    """(images, labels) batches; labels one-hot float32 unless ``one_hot=False``.

    ``rows``: only these rows of the split (a nested training subset), in this order before
    shuffling; None = every row.

    ``split.images`` is usually the uint8 [n, s, s, 3] memory map; any array with one
    row per image works (the frozen-base path passes the base's features here, so the
    head sees the very batches, in the very order, that the whole model would).
    """
    # A plain ndarray view of the memory map: indexing an np.memmap builds memmap subclasses.
    images, labels = np.asarray(split.images), split.labels
    num_classes = len(split.class_names)
    shape, dtype = images.shape[1:], tf.as_dtype(images.dtype)

    def gather(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.take(images, idx, axis=0), np.take(labels, idx)

    def load(idx):
        x, y = tf.numpy_function(gather, [idx], (dtype, tf.int32), stateful=False)
        x.set_shape((None, *shape))
        y.set_shape((None,))
        if one_hot:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
        return x, y

    if rows is None:
        ds, n = tf.data.Dataset.range(len(labels)), len(labels)
    else:
        ds, n = tf.data.Dataset.from_tensor_slices(np.asarray(rows, dtype=np.int64)), len(rows)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # One Python call per chunk of several batches, then split into batches in C++:
    # a numpy_function per batch cost ~4 % of MobileNetV2's training throughput on 2 cores.
    chunk = batch_size * max(1, CHUNK_IMAGES // batch_size)
    ds = ds.batch(chunk).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).rebatch(batch_size)
    # rebatch() loses the cardinality; without it Keras learns the epoch length by running
    # out of data and warns "Your input ran out of data" every epoch.
    ds = ds.apply(tf.data.experimental.assert_cardinality(math.ceil(n / batch_size)))
    # One process reads it all (multi-worker training is refused: stages/training/distribute.py);
    # MirroredStrategy splits each global batch across the replicas.
    return ds.prefetch(tf.data.AUTOTUNE)


def in_memory_dataset(split: PreparedSplit, batch_size: int, seed: int) -> tf.data.Dataset:
    """The same batches gathered by TF ops from tensors resident in RAM.

    The benchmark's reference: no file access and no Python in the loop, so the
    ratio of throughputs shows what the memory-mapped pipeline costs.
    """
    images = tf.constant(np.asarray(split.images))
    labels = tf.one_hot(split.labels, len(split.class_names), dtype=tf.float32)
    ds = tf.data.Dataset.range(len(split.labels)).shuffle(len(split.labels), seed=seed).batch(batch_size)
    ds = ds.map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
