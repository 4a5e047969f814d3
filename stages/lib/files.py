"""Writing stage outputs so that a failed run never leaves half-written files."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` (file or folder) to write into.

    On success it replaces ``target`` in one rename; on any error it is deleted
    and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (so the final rename is atomic) and same suffix (Keras insists on ".keras").
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(target)
    os.replace(tmp, target)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")


def read_csv(path: str | Path) -> pd.DataFrame:
    # Class names such as "007" must stay strings; only label is numeric.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for col in ("label", "width", "height"):
        if col in frame:
            frame[col] = frame[col].astype(int)
    return frame
