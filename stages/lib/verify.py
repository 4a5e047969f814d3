"""Decoding every candidate image once, on every core, before it may count for ``balance``."""

from __future__ import annotations

from pathlib import Path

from stages.lib.images import BadImage, ImageInfo, inspect_image
from stages.lib.parallel import imap_progress


def check_image(path: str) -> tuple[str, ImageInfo | str]:
    """(path, ImageInfo) or (path, why it is unusable) — module level so worker processes can run it.
    Only a bad file is a result; any other error (a bug) propagates."""
    try:
        return path, inspect_image(path)
    except BadImage as err:
        return path, str(err)


def verify(root: Path, files: dict[str, list[str]]) -> tuple[dict[str, dict[str, ImageInfo]], list[dict]]:
    """Decode every candidate; returns (ImageInfo by path per class, undecodable files with reasons)."""
    classes = list(files)
    jobs = [str(root / p) for name in classes for p in files[name]]
    checked = dict(imap_progress(check_image, jobs, total=len(jobs), desc="balance: verifying images"))
    valid, undecodable = {}, []
    for name in classes:
        valid[name] = {}
        for rel in files[name]:
            result = checked[str(root / rel)]
            if isinstance(result, str):
                undecodable.append({"path": rel, "reason": result})
            else:
                valid[name][rel] = result
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
