"""Finding image files in an image-folder tree: ``<root>/<class>/<images>``.

Only names are looked at here; whether a file decodes is :mod:`stages.data.images`' job.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Folders created by archivers / OSes next to real class folders.
JUNK_DIRS = {"__MACOSX"}


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_DIRS


def class_folders(root: Path) -> list[str]:
    """Names of the visible sub-folders of ``root`` that are real folders (no symlinks), sorted."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and not is_hidden(e.name))


def skipped_top_folders(root: Path) -> list[tuple[str, str]]:
    """The sub-folders of ``root`` that are not classes, with the reason: hidden ones (``.git``,
    ``__MACOSX``) and directory symlinks (``root/x -> root`` would file every class under "x")."""
    skipped = []
    for e in sorted(os.scandir(root), key=lambda e: e.name):
        if e.is_symlink() and e.is_dir():
            skipped.append((e.name + "/", "directory symlink: not followed"))
        elif e.is_dir() and is_hidden(e.name):
            skipped.append((e.name + "/", "hidden folder"))
    return skipped


def _file_kind(path: str) -> str | None:
    """Why a non-link directory entry is not a candidate file (None: a regular file)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    kind = "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return f"not a regular file ({kind}): never opened"


CLASS_FOLDER = "its class folder (the class would not be what its folder says)"


def _link_problem(path: str, folder: str, leaving: str = CLASS_FOLDER) -> tuple[str | None, str]:
    """(why a file symlink is not followed, or None; its resolved target). ``folder``: where its
    target must be, described by ``leaving``."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return f"dangling symlink (-> {os.readlink(path)})", target
    if not os.path.isfile(target):
        return "symlink to something that is not a regular file", target
    if os.path.commonpath([target, folder]) != folder:
        return f"symlink leaving {leaving}", target
    return None, target


def listed_file_problem(root: Path, rel: str) -> tuple[str | None, dict | None]:
    """A labels-CSV-listed path under ``root`` (balance.source): (why it cannot be read, or None;
    the link followed, or None). A path through a symlink -- the file itself or a folder on the
    way -- is followed only to a regular file inside the source (a file outside it would change
    with no change to the dataset DVC tracks); every one followed is returned, to be listed."""
    path = os.path.join(root, rel)
    real_root = os.path.realpath(root)
    if os.path.realpath(path) != os.path.normpath(os.path.join(real_root, rel)):  # a link on the way
        problem, target = _link_problem(path, real_root, "the source folder (balance.source)")
        if problem:
            return problem, None
        return None, {"path": rel, "target": Path(os.path.relpath(target, real_root)).as_posix()}
    if not os.path.lexists(path):
        return "not found", None
    if os.path.isdir(path):
        return "not a file", None
    return _file_kind(path), None


def list_class_files(root: Path, class_name: str) -> tuple[list[str], list[tuple[str, str]], list[dict]]:
    """Image files under ``root/class_name`` (recursive), the entries skipped with reasons, and
    the file symlinks followed.

    Links: directory symlinks are never followed (a loop would list files again and again, and
    ``cat/more -> ../dog`` would label dog photos "cat"); a file symlink is followed only to a
    regular file inside the same class folder, else it is skipped with the reason (dangling,
    leaving the folder, not a file). FIFOs, sockets and devices are skipped unopened. Paths are
    POSIX-style, relative to ``root``, sorted so the result does not depend on the listing order.
    """
    images, ignored, links = [], [], []
    folder = os.path.realpath(root / class_name)
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root / class_name, followlinks=False):
        kept = []
        for d in dirnames:
            rel = Path(dirpath, d).relative_to(root).as_posix()
            if is_hidden(d):
                ignored.append((rel + "/", "hidden folder"))
            elif os.path.islink(os.path.join(dirpath, d)):
                ignored.append((rel + "/", "directory symlink: not followed"))
            else:
                kept.append(d)
        dirnames[:] = kept  # prune in place
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = Path(path).relative_to(root).as_posix()
            if is_hidden(name):
                ignored.append((rel, "hidden file"))
                continue
            if os.path.islink(path):
                problem, target = _link_problem(path, folder)
                if problem:
                    ignored.append((rel, problem))
                    continue
                links.append({"path": rel, "target": Path(os.path.relpath(target, real_root)).as_posix()})
            elif (kind := _file_kind(path)) is not None:
                ignored.append((rel, kind))
                continue
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                ignored.append((rel, "not an image extension"))
            else:
                images.append(rel)
    return sorted(images), sorted(ignored), sorted(links, key=lambda link: link["path"])


def entries_dvc_cannot_hash(root: Path) -> list[tuple[str, str]]:
    """What `dvc repro` itself trips over in ``root`` before any stage runs (it hashes the stage's
    deps): a FIFO (DVC waits on it forever), a socket or device, a dangling symlink (DVC stops
    with a bare ``[Errno 2]``), a symlink to any of those. Preflight lists them all."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = Path(path).relative_to(root).as_posix()
            try:
                mode = os.stat(path).st_mode  # links followed, as DVC does
            except OSError:
                found.append((rel, f"dangling symlink (-> {os.readlink(path)})" if os.path.islink(path)
                              else "cannot be read"))
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                found.append((rel, "not a regular file (fifo, socket or device)"))
    return found
