"""The prepared-tensor store written by `prepare` and read by training and evaluation.

Layout of ``data/prepared/``::

    meta.json               classes, image sizes, resize mode, rows per split
    <split>.csv             path, label, class_name of each row, in tensor order
    <size>px/<split>.npy    uint8 array [rows, size, size, 3], RGB

``.npy`` files are opened as memory maps, so reading a batch costs a memcpy from
the page cache, never an image decode, and no process holds the whole split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.core.errors import DataError
from stages.core.files import read_csv

PREPARED = "data/prepared"
SPLITS = ("train", "val", "test")


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
