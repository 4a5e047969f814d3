"""Decoding every candidate image once, on every core, before it may count for ``balance``."""

from __future__ import annotations

from pathlib import Path

from stages.data.images import BadImage, ImageInfo, inspect_image
from stages.data.parallel import imap_progress


# Set in the parent before the pool forks, so workers inherit it: jobs are then the relative
# paths already held, not a second list of absolute ones (memory per candidate image).
_ROOT: list[Path] = []


def check_image(rel: str) -> ImageInfo | str:
    """ImageInfo, or why the file is unusable — module level so worker processes can run it.
    Only a bad file is a result; any other error (a bug) propagates."""
    try:
        return inspect_image(_ROOT[0] / rel)
    except BadImage as err:
        return str(err)


def verify(root: Path, files: dict[str, list[str]]) -> tuple[dict[str, dict[str, ImageInfo]], list[dict]]:
    """Decode every candidate; returns (ImageInfo by path per class, undecodable files with reasons)."""
    _ROOT[:] = [Path(root)]
    jobs = (rel for name in files for rel in files[name])
    results = imap_progress(check_image, jobs, total=sum(map(len, files.values())), desc="balance: verifying images")
    valid, undecodable = {}, []
    for name in files:  # results arrive in job order: class by class
        valid[name] = {}
        for rel, result in zip(files[name], results):
            if isinstance(result, str):
                undecodable.append({"path": rel, "reason": result})
            else:
                valid[name][rel] = result
    if next(results, None) is not None:  # also ends the generator, closing its pool and progress bar
        raise RuntimeError("verify: more results than candidate files")
    return valid, undecodable


def reject_cross_class_duplicates(valid: dict[str, dict[str, ImageInfo]]) -> tuple[dict[str, dict[str, ImageInfo]], list[dict]]:
    """Drop every file whose bytes are also a file of another class (``balance.cross_class_duplicates:
    reject``): which label is right cannot be told, in either input form -- the labels CSV already
    rejects one file listed under two labels. Returns (the rest, the rejected with the other classes)."""
    classes_of: dict[str, set[str]] = {}
    for name, files in valid.items():
        for info in files.values():
            classes_of.setdefault(info.sha256, set()).add(name)
    kept, rejected = {}, []
    for name, files in valid.items():
        kept[name] = {}
        for rel, info in files.items():
            others = sorted(classes_of[info.sha256] - {name})
            if others:
                rejected.append({"path": rel, "class": name, "sha256": info.sha256,
                                 "reason": f"identical bytes also in class {', '.join(others)}: one file, one label"})
            else:
                kept[name][rel] = info
    return kept, sorted(rejected, key=lambda r: r["path"])
