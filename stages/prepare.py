"""Stage `prepare`: decode every split image once and store uint8 tensors per image size.

Each image is decoded once (EXIF orientation applied, converted to RGB) and
resized to every size in ``prepare.image_sizes``; the results stream into
memory-mapped ``.npy`` files (see stages/lib/prepared.py), one window of images
at a time, so peak memory does not grow with the dataset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from stages.lib.errors import DataError, ParamError, run_stage
from stages.lib.files import atomic_output, read_csv, write_csv
from stages.lib.images import BadImage, load_rgb, resize
from stages.lib.parallel import imap_progress
from stages.lib.params import Schema, parse_section, stage_params
from stages.lib.prepared import PREPARED, SPLITS, images_path, index_path

SPLITS_CSV = "data/splits.csv"
RESIZE_MODES = ("squash", "crop", "pad")

# Set in the parent before the pool forks, so workers inherit it without pickling.
_JOB: dict = {}


def _decode(rel_path: str) -> list[np.ndarray] | str:
    """One image resized to every size, or why the file cannot be used (any other error propagates)."""
    sizes, mode = _JOB["sizes"], _JOB["resize"]
    try:
        img = load_rgb(Path(_JOB["root"]) / rel_path, draft=max(sizes))
    except BadImage as err:  # reported with the file name by the caller
        return str(err)
    return [np.asarray(resize(img, s, mode), dtype=np.uint8) for s in sizes]


def check_disk(rows: int, sizes: list[int], out: Path) -> int:
    """The store's bytes (rows x size^2 x 3 per size); a ParamError on prepare.image_sizes when the
    disk holding ``out`` has less free (a memory map would fail mid-write, or fill the disk)."""
    needed = rows * sum(s * s * 3 for s in set(sizes))
    parent = Path(out).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise ParamError("prepare.image_sizes", f"{sorted(set(sizes))} px for {rows} images needs "
                         f"{needed / 1e9:.2f} GB; {free / 1e9:.2f} GB free on {parent}: drop a size or free space")
    return needed


def prepare(splits: pd.DataFrame, source: str, sizes: list[int], mode: str, out: str | Path = PREPARED) -> dict:
    """Write the prepared store for ``splits`` to the folder ``out`` (all or nothing); returns meta."""
    check_disk(len(splits), sizes, Path(out))
    with atomic_output(out) as tmp:
        tmp.mkdir()
        return _write_store(splits, source, sorted(set(sizes)), mode, tmp)


def _write_store(splits: pd.DataFrame, source: str, sizes: list[int], mode: str, out: Path) -> dict:
    _JOB.update(root=source, sizes=sizes, resize=mode)
    classes = splits.groupby("label")["class_name"].first().sort_index().tolist()
    counts = {}
    for split in SPLITS:
        rows = splits[splits["split"] == split].reset_index(drop=True)
        counts[split] = len(rows)
        write_csv(index_path(out, split), rows[["path", "label", "class_name"]])
        arrays = []
        for s in sizes:
            images_path(out, s, split).parent.mkdir(parents=True, exist_ok=True)
            arrays.append(
                np.lib.format.open_memmap(images_path(out, s, split), mode="w+", dtype=np.uint8, shape=(len(rows), s, s, 3))
            )
        results = imap_progress(_decode, rows["path"], total=len(rows), desc=f"prepare: {split}")
        for i, result in enumerate(results):
            if isinstance(result, str):
                raise DataError(f"{Path(source) / rows['path'][i]}: {result}; re-run balance")
            for array, resized in zip(arrays, result):
                array[i] = resized
        for array in arrays:
            array.flush()
        del arrays
    meta = {"classes": classes, "image_sizes": sizes, "resize": mode, "rows": counts}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


# An upper bound where a size stops being an image classifier's input and starts exhausting the
# machine (2048^2 x 3 = 12.6 MB per image and size); the free disk is checked in prepare().
MAX_IMAGE_SIZE = 2048


class Prepare(Schema):
    image_sizes: list[Annotated[int, Field(ge=8, le=MAX_IMAGE_SIZE)]] = Field(min_length=1)
    resize: Literal[RESIZE_MODES]


class Source(Schema):
    model_config = ConfigDict(extra="ignore")  # the stage declares balance.source only
    source: str = Field(min_length=1)


def parse_params(values: dict) -> dict:
    """Validate the `prepare` section: {"image_sizes": [...], "resize": mode}."""
    return parse_section(Prepare, values, "prepare").model_dump()


def main() -> None:
    params = stage_params("prepare")
    source = parse_section(Source, params["balance"], "balance").source
    cfg = parse_params(params["prepare"])
    sizes, mode = cfg["image_sizes"], cfg["resize"]
    splits = read_csv(SPLITS_CSV)
    meta = prepare(splits, source, sizes, mode)
    print(f"prepare: {meta['rows']} images at sizes {sizes} px ({mode}) -> {PREPARED}")


if __name__ == "__main__":
    run_stage(main)
