"""The prepared-tensor store written by `prepare` and read by training and evaluation.

Layout of ``data/prepared/``::

    meta.json               classes, image sizes, resize mode, rows per split
    <split>.csv             path, label, class_name of each row, in tensor order
    <size>px/<split>.npy    uint8 array [rows, size, size, 3], RGB

``.npy`` files are opened as memory maps, so reading a batch costs a memcpy from
the page cache, never an image decode, and no process holds the whole split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.core.errors import DataError
from stages.core.files import read_csv
from stages.core.splitting import SPLITS, assign

PREPARED = "data/prepared"


def images_path(root: str | Path, size: int, split: str) -> Path:
    return Path(root) / f"{size}px" / f"{split}.npy"


def index_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}.csv"


def read_meta(root: str | Path = PREPARED) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro prepare` first")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class PreparedSplit:
    images: np.ndarray  # uint8 memmap [n, size, size, 3]
    labels: np.ndarray  # int32 [n]
    paths: list[str]
    class_names: list[str]


def open_split(split: str, size: int, root: str | Path = PREPARED, needed_by: str | Path | None = None) -> PreparedSplit:
    """Memory-map one split at one image size; ``needed_by`` (e.g. a model file) is named when
    that size is not prepared."""
    meta = read_meta(root)
    if size not in meta["image_sizes"]:
        who = f"{needed_by} takes {size} px images but " if needed_by else ""
        raise DataError(
            f"{who}{root} holds image sizes {meta['image_sizes']}, not {size}: "
            f"add {size} to prepare.image_sizes in params.yaml"
        )
    index = read_csv(index_path(root, split))
    images = np.load(images_path(root, size, split), mmap_mode="r")
    return PreparedSplit(images, index["label"].to_numpy(np.int32), index["path"].tolist(), meta["classes"])


def open_splits(size: int, root: str | Path = PREPARED, *, resample_seed: int | None = None,
                needed_by: str | Path | None = None) -> dict[str, PreparedSplit]:
    """train, val and test at ``size`` px: the ``split`` stage's, or with ``resample_seed`` a split
    re-drawn from the same images (``study.vary_split``).

    A re-drawn split keeps every class's train/val/test counts, and images whose prepared pixels
    are identical (duplicate files, at the largest prepared size) stay in one split, as the split
    stage keeps files of identical bytes; it depends on the seed and the images only, so every model
    run with that seed gets the same one, whatever its image size. Its images are read into memory
    (the memory-mapped store stays untouched).
    """
    fixed = {s: open_split(s, size, root, needed_by) for s in SPLITS}
    if resample_seed is None:
        return fixed
    # Group by pixels at one size for every model: the largest, the finest test of "identical".
    largest = max(read_meta(root)["image_sizes"])
    pixels = [np.load(images_path(root, largest, s), mmap_mode="r") for s in SPLITS]
    pool = pd.DataFrame({
        "split": [s for s in SPLITS for _ in fixed[s].paths],
        "row": [i for s in SPLITS for i in range(len(fixed[s].paths))],
        "path": [p for s in SPLITS for p in fixed[s].paths],
        "label": np.concatenate([fixed[s].labels for s in SPLITS]),
        "sha256": [hashlib.sha256(np.ascontiguousarray(arr[i]).tobytes()).hexdigest()
                   for arr in pixels for i in range(len(arr))],
    })
    counts = {int(c): {s: int((fixed[s].labels == c).sum()) for s in SPLITS} for c in np.unique(pool["label"])}
    pool["new"] = assign(pool, counts, f"resample:{resample_seed}")
    out = {}
    for s in SPLITS:
        rows = pool[pool["new"] == s]
        # Rows in path order: a re-drawn split's order depends on its images only.
        rows = rows.sort_values("path", kind="stable")
        images = np.stack([fixed[src].images[i] for src, i in zip(rows["split"], rows["row"])]) if len(rows) else \
            np.zeros((0, size, size, 3), np.uint8)
        out[s] = PreparedSplit(images, rows["label"].to_numpy(np.int32), rows["path"].tolist(),
                               fixed[s].class_names)
    return out


def images_by_path(paths: list[str], size: int, root: str | Path = PREPARED,
                   needed_by: str | Path | None = None) -> np.ndarray:
    """The prepared images at ``paths`` (from any split) at ``size`` px, in that order: a run's test
    images, whichever split they came from when the run re-drew its split."""
    where: dict = {}
    for s in ("test", "val", "train"):  # the test split first: with a fixed split it holds them all
        if all(p in where for p in paths):
            break
        split = open_split(s, size, root, needed_by)
        where.update({p: (split, i) for i, p in enumerate(split.paths)})
    missing = [p for p in paths if p not in where]
    if missing:
        raise DataError(f"{root}: image {missing[0]} of the predictions is not in the prepared store: "
                        f"re-run `dvc repro` (predictions are stale)")
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([np.asarray(where[p][0].images[where[p][1]]) for p in paths])
