"""Writing stage outputs so that a failed run never leaves half-written files."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from stages.core.errors import exit_if_interrupted, stop_signals_held


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporary siblings of ``target`` left by killed runs (their process is gone):
    a SIGKILL leaves ``.<stem>.tmp-<pid><suffix>`` behind, which nothing else would remove."""
    removed = []
    for tmp in target.parent.glob(f".{target.stem}.tmp-*{target.suffix}"):
        pid = tmp.name[len(f".{target.stem}.tmp-"):len(tmp.name) - len(target.suffix) or None]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(tmp)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` (file or folder) to write into.

    On success it replaces ``target`` in one rename; on any error (SIGTERM and SIGINT included:
    run_stage turns them into exceptions) it is deleted and ``target`` is left as it was. What a
    SIGKILL leaves behind is removed by the next run (:func:`remove_stale_temporaries`); git
    ignores it meanwhile (``.*.tmp-*`` in .gitignore).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    # Same folder (so the final rename is atomic) and same suffix (Keras insists on ".keras").
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    try:
        exit_if_interrupted()  # a signal whose exception an interpreter callback swallowed
    except BaseException:
        _remove(tmp)
        raise
    _remove(target)
    os.replace(tmp, target)


@contextmanager
def atomic_outputs(*targets: str | Path) -> Iterator[list[Path]]:
    """:func:`atomic_output` for a stage's several outputs, published together: yields their
    temporary siblings, in order, and only once every one is written (and no stop signal came,
    even a swallowed one) renames them all into place, with SIGINT/SIGTERM held back meanwhile. A
    run interrupted at any point before leaves none of the targets, never some of them."""
    paths = [Path(t) for t in targets]
    tmps = []
    for target in paths:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        tmps.append(target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}"))
        _remove(tmps[-1])
    try:
        yield tmps
        exit_if_interrupted()  # a signal whose exception an interpreter callback swallowed
        if unwritten := [str(t) for t, tmp in zip(paths, tmps) if not (tmp.exists() or tmp.is_symlink())]:
            raise FileNotFoundError(f"not written, so nothing published: {', '.join(unwritten)}")
    except BaseException:
        for tmp in tmps:
            _remove(tmp)
        raise
    with stop_signals_held():
        for tmp, target in zip(tmps, paths):
            _remove(target)
            os.replace(tmp, target)
    exit_if_interrupted()  # a signal held back while publishing still fails the stage


def _json_text(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(_json_text(data), encoding="utf-8")


def write_json_to(tmp: Path, data: dict) -> None:
    """The JSON :func:`write_json` writes, into a temporary of :func:`atomic_outputs`."""
    tmp.write_text(_json_text(data), encoding="utf-8")


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
