"""Finding image files in an image-folder tree: ``<root>/<class>/<images>``.

Only names are looked at here; whether a file decodes is :mod:`stages.lib.images`' job.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Folders created by archivers / OSes next to real class folders.
JUNK_DIRS = {"__MACOSX"}


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_DIRS


def class_folders(root: Path) -> list[str]:
    """Names of the visible sub-folders of ``root``, sorted."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not is_hidden(e.name))


def list_class_files(root: Path, class_name: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Image files under ``root/class_name`` (recursive) and the files ignored, with reasons.

    Paths are POSIX-style and relative to ``root``, sorted so the result does not
    depend on the file system's listing order.
    """
    images, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(root / class_name, followlinks=True):
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]  # prune in place
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if is_hidden(name):
                ignored.append((rel, "hidden file"))
            elif not name.lower().endswith(IMAGE_EXTENSIONS):
                ignored.append((rel, "not an image extension"))
            else:
                images.append(rel)
    return sorted(images), sorted(ignored)
