"""Stage `prepare`: decode every split image once and store uint8 tensors per image size.

Each image is decoded once (EXIF orientation applied, converted to RGB) and
resized to every size in ``prepare.image_sizes``; the results are appended to
``.npy`` files (read back as memory maps, see stages/core/prepared.py), one window of
images at a time, so peak memory does not grow with the dataset
(benchmarks/memory.py measures it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from stages.core.errors import DataError, ParamError, run_stage
from stages.core.files import atomic_output, read_csv, write_csv
from stages.core.params import Schema, parse_section, stage_params
from stages.core.prepared import PREPARED, SPLITS, images_path, index_path
from stages.data.images import BadImage, load_rgb, resize
from stages.data.parallel import imap_progress

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
        files = [_open_npy(images_path(out, s, split), (len(rows), s, s, 3)) for s in sizes]
        try:
            results = imap_progress(_decode, rows["path"], total=len(rows), desc=f"prepare: {split}")
            for i, result in enumerate(results):
                if isinstance(result, str):
                    raise DataError(f"{Path(source) / rows['path'][i]}: {result}; re-run balance")
                for f, resized in zip(files, result):
                    f.write(resized.tobytes())  # rows arrive in order: the file is the array
        finally:
            for f in files:
                f.close()
    meta = {"classes": classes, "image_sizes": sizes, "resize": mode, "rows": counts}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def _open_npy(path: Path, shape: tuple[int, ...]):
    """A .npy file of uint8 ``shape`` opened for its rows to be appended, header written.

    Written with plain writes, not a writable memory map: a map's written pages stay mapped and
    count in the process's resident memory, so peak RSS grew with the store (1.97 GB for
    17,760 images at 224 px); page-cache writes do not. The bytes are those of
    np.lib.format.open_memmap (same version 1.0 header), so the store's hash is unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("wb")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(f, header)
    return f


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
