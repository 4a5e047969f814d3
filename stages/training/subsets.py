"""Nested training subsets: the data-size curve's training sets.

A run at ``p`` percent trains on the first ``round(p / 100 * n_c)`` images (at least one)
of each class ``c``'s ``n_c`` training images, in an order fixed by the run's seed. Every
subset of a seed is therefore contained in every larger one of that seed, per class: a
curve over sizes shows the effect of adding images, not of drawing different ones. Two
models with the same seed and size see the same images, so they stay paired.

An image's place in the order is a hash of (seed, its path), not a shuffle of the split:
it does not depend on the order of the rows, or on which other images the class has.
Validation and test are never subset.
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np


def per_class_count(n: int, percent: int) -> int:
    """Images kept of a class with ``n`` training images (round half up, at least 1)."""
    if not 1 <= percent <= 100:
        raise ValueError(f"percent must be in 1..100, got {percent}")
    return max(1, min(n, math.floor(n * percent / 100 + 0.5)))


def _rank(seed: int, path: str) -> str:
    return hashlib.sha256(f"{seed}:{path}".encode()).hexdigest()


def nested_subset(paths: Sequence[str], labels: Sequence[int], percent: int, seed: int) -> np.ndarray:
    """Row indices (ascending, i.e. in split order) of the ``percent`` subset for ``seed``."""
    labels = np.asarray(labels)
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    keep: list[int] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        ordered = sorted(rows, key=lambda i: _rank(seed, paths[i]))
        keep += ordered[:per_class_count(len(rows), percent)]
    return np.sort(np.asarray(keep, dtype=np.int64))
