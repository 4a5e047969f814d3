"""Stratified, duplicate-aware allocation of images to train/val/test: what the `split` stage draws
once and what a run re-draws from its seed when ``study.vary_split`` is on (stages/core/prepared.py).

Written by hand because scikit-learn has no splitter that does both: ``train_test_split(stratify=...)``
ignores groups, and ``StratifiedGroupKFold`` makes k equal folds rather than arbitrary split sizes.
"""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def allocate(class_sizes: dict[int, int], totals: dict[str, int], rng: np.random.Generator) -> dict[int, dict[str, int]]:
    """Per-class split counts: proportional to class size, rows and columns summing exactly.

    Each class first gets the floor of its proportional share; the leftover units go
    to the cells with the largest fractional parts (ties broken at random), never
    past a split's total. This is "controlled rounding".
    """
    n = sum(class_sizes.values())
    used = sum(totals.values())
    ideal = {c: {s: Fraction(size * totals[s], n) for s in SPLITS} for c, size in class_sizes.items()}
    # Images beyond the requested totals (counts summing to < n) are left out of every split.
    share = {c: Fraction(size * used, n) for c, size in class_sizes.items()}
    alloc = {c: {s: math.floor(ideal[c][s]) for s in SPLITS} for c in class_sizes}
    row_need = {c: math.floor(share[c] + Fraction(1, 2)) - sum(alloc[c].values()) for c in class_sizes}
    col_need = {s: totals[s] - sum(alloc[c][s] for c in class_sizes) for s in SPLITS}
    cells = [(c, s) for c in class_sizes for s in SPLITS]
    order = rng.permutation(len(cells))
    cells = sorted((cells[i] for i in order), key=lambda cs: -(ideal[cs[0]][cs[1]] % 1))
    for allow_repeat in (False, True):
        for c, s in cells:
            if row_need[c] > 0 and col_need[s] > 0 and (allow_repeat or alloc[c][s] == math.floor(ideal[c][s])):
                alloc[c][s] += 1
                row_need[c] -= 1
                col_need[s] -= 1
    return alloc


def assign(manifest: pd.DataFrame, alloc: dict[int, dict[str, int]], seed: int) -> pd.Series:
    """Split name per row; rows sharing a sha256 move together as one unit.

    A duplicate group can never straddle two splits: each group gets one split name,
    written to all of its rows at once, or stays unused as a whole.
    """
    need = {c: dict(v) for c, v in alloc.items()}
    rank = lambda h: hashlib.sha256(f"{seed}:{h}".encode()).hexdigest()  # noqa: E731
    groups = sorted(manifest.groupby("sha256").groups.items(), key=lambda kv: (-len(kv[1]), rank(kv[0])))
    result = pd.Series("", index=manifest.index, dtype=object)
    for _, rows in groups:
        labels = manifest.loc[rows, "label"].tolist()
        score = {s: sum(need[c][s] for c in labels) for s in SPLITS}
        best = max(SPLITS, key=lambda s: score[s])
        if score[best] <= 0:
            continue  # every split of these classes is full: this image is not used
        for c in labels:
            need[c][best] -= 1
        result[rows] = best
    return result
