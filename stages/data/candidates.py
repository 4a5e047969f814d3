"""Candidate image files per class for ``balance``, from one of its two input forms.

  folders  (``balance.labels.csv`` null) ``<source>/<class>/<images>``: every visible
           sub-folder is a class.
  CSV      a labels table inside ``source`` (file column + possibly hierarchical label
           column; read by :mod:`stages.data.labels`, which documents the format).

Only names are looked at: whether a candidate decodes is :mod:`stages.data.verify`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from stages.core.errors import ParamError
from stages.data.balance_params import BalanceParams
from stages.data.image_files import IMAGE_EXTENSIONS, class_folders, is_hidden, list_class_files, skipped_top_folders
from stages.data.labels import read_labels


@dataclass
class Candidates:
    """Image files per class (paths relative to source) and what the listing skipped."""

    files: dict[str, list[str]]
    ignored: list[dict] = field(default_factory=list)  # folders: hidden files, other extensions, loose images
    missing: list[dict] = field(default_factory=list)  # CSV: listed but not on disk
    rejected: list[dict] = field(default_factory=list)  # CSV: rows that cannot be used
    conflicting: int = 0  # CSV: files listed with different classes, all their rows rejected
    unlisted: list[str] = field(default_factory=list)  # CSV: images under image_dir it does not list
    renamed_from: dict[str, str] = field(default_factory=dict)  # class name -> folder / label it came from
    links_followed: list[dict] = field(default_factory=list)  # file symlinks followed: inside the class folder / the source (CSV)


def source_root(p: BalanceParams) -> Path:
    root = Path(p.source).expanduser()
    if not root.is_dir():
        raise ParamError("balance.source", f"folder not found: {p.source}")
    return root


def find_candidates(root: Path, p: BalanceParams) -> Candidates:
    """The candidates of the classes the rule may keep, from the CSV or the folders."""
    return read_label_csv(root, p) if p.labels else read_folders(root, p)


def map_class_names(raw_names: list[str], pattern: re.Pattern | None, what: str) -> dict[str, str]:
    """{class name: folder name or label}. The pattern's group is the class name; a name it
    does not match stays as is. Two sources for one class is an error: merging them silently
    would mix classes."""
    origin: dict[str, str] = {}
    for raw in sorted(raw_names):
        match = pattern.search(raw) if pattern else None
        name = match.group(1) if match and match.group(1) else raw
        if name in origin:
            raise ParamError(
                "balance.class_name_pattern", f"{what} {origin[name]!r} and {raw!r} both map to class {name!r}"
            )
        origin[name] = raw
    return origin


def restrict(classes: list[str], p: BalanceParams, where: str) -> list[str]:
    """The classes worth decoding; checks what the rule needs before minutes of decoding."""
    if p.select == "names":
        unknown = sorted(set(p.class_names) - set(classes))
        if unknown:
            raise ParamError(
                "balance.class_names",
                f"not found in {where}: {', '.join(unknown)} (available: {', '.join(classes[:20])}"
                + (", ..." if len(classes) > 20 else "") + ")",
            )
        return list(p.class_names)
    if p.select == "fewest" and p.num_classes > len(classes):
        raise ParamError(
            "balance.num_classes", f"{p.num_classes} classes requested but {where} has only {len(classes)}"
        )
    return classes


def read_folders(root: Path, p: BalanceParams) -> Candidates:
    folders = class_folders(root)
    if not folders:
        loose = [e.name for e in root.iterdir() if not is_hidden(e.name)]
        detail = f"it holds {len(loose)} loose files and" if loose else "it is empty and"
        raise ParamError(
            "balance.source",
            f"{p.source}: {detail} has no class sub-folders (expected <source>/<class name>/<image files>)",
        )
    folder_of = map_class_names(folders, p.class_name_pattern, "folders")
    found = Candidates(files={})
    for name in restrict(sorted(folder_of), p, p.source):
        found.files[name], skipped, links = list_class_files(root, folder_of[name])
        found.ignored += [{"path": path, "reason": reason} for path, reason in skipped]
        found.links_followed += links
        if folder_of[name] != name:
            found.renamed_from[name] = folder_of[name]
    found.ignored += [{"path": path, "reason": reason} for path, reason in skipped_top_folders(root)]
    found.ignored += [
        {"path": e.name, "reason": "outside any class folder"}
        for e in sorted(root.iterdir(), key=lambda e: e.name)
        if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
    ]
    return found


def read_label_csv(root: Path, p: BalanceParams) -> Candidates:
    """The CSV form: stages.data.labels reads the table; naming classes and the rule stay here."""
    listing = read_labels(root, p.labels, lambda labels: map_class_names(labels, p.class_name_pattern, "labels"))
    found = Candidates(files={}, missing=listing.missing, rejected=listing.rejected,
                       conflicting=listing.conflicting, unlisted=listing.unlisted,
                       links_followed=listing.links_followed)
    for name in restrict(list(listing.files), p, f"{p.labels.csv} at level {p.labels.level}"):
        found.files[name] = listing.files[name]
        if name in listing.renamed_from:
            found.renamed_from[name] = listing.renamed_from[name]
    return found
