"""Image files per class from a labels CSV: the ``balance.labels`` input form.

A labels table inside ``balance.source`` has a file column (paths relative to
``source/<image_dir>``) and a label column. A label may be hierarchical, ``A >> B >> C``,
also wrapped as a one-element JSON list ``["A >> B >> C"]`` (the Flipkart product file);
``level`` picks the class (0 top, -1 leaf).

:func:`parse_labels` validates the params without touching the file system;
:func:`read_labels` turns the table into candidate files per class. Listed files missing
on disk, unusable rows (with their 1-based data row number) and files listed with
conflicting classes are reported in the returned :class:`LabelListing`, not fatal.
Decoding the images is the caller's job.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated
from pathlib import Path, PurePath

import pandas as pd
from pydantic import AfterValidator, BeforeValidator, Field

from stages.core.errors import ParamError
from stages.core.params import Schema, parse_section
from stages.data.image_files import list_class_files, listed_file_problem


def inside_source(value: str | None) -> str | None:
    """A relative path that stays inside source: DVC tracks only the source folder, so
    a labels file elsewhere could change without re-running the stage."""
    if value is not None and (PurePath(value).is_absolute() or ".." in PurePath(value).parts):
        raise ValueError(f"must be a relative path inside balance.source, got {value!r}")
    return value


def _stripped(value: object, empty: str | None) -> object:
    """Surrounding blanks dropped; null or blank -> ``empty``."""
    if value is None:
        return empty
    return (value.strip() or empty) if isinstance(value, str) else value


class LabelsParams(Schema):
    """``balance.labels``: classes from a CSV inside source instead of from sub-folders."""

    # null or "": no CSV, the classes are the sub-folders of source
    csv: Annotated[str | None, BeforeValidator(lambda v: _stripped(v, None)), AfterValidator(inside_source)] = None
    file_column: str = Field("image", min_length=1)
    label_column: str = Field("label", min_length=1)
    image_dir: Annotated[str, BeforeValidator(lambda v: _stripped(v, ".")), AfterValidator(inside_source)] = "."
    separator: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ">>"  # "" = flat labels
    level: int = 0


@dataclass
class LabelListing:
    """What a labels CSV lists, per class (paths relative to source), and what it skipped."""

    files: dict[str, list[str]]  # class name -> files on disk, sorted; a class may be left with none
    renamed_from: dict[str, str] = field(default_factory=dict)  # class name -> label it came from
    missing: list[dict] = field(default_factory=list)  # listed but not on disk
    rejected: list[dict] = field(default_factory=list)  # rows that cannot be used, by row number
    conflicting: int = 0  # files listed with different classes, all their rows rejected
    unlisted: list[str] = field(default_factory=list)  # images under image_dir the CSV does not list
    links_followed: list[dict] = field(default_factory=list)  # listed paths through a symlink, inside source


def parse_labels(values: object) -> LabelsParams | None:
    """The ``balance.labels`` mapping; None (folder mode) when it or its ``csv`` is null."""
    if values is None:
        return None
    labels = parse_section(LabelsParams, values, "balance.labels")
    return labels if labels.csv else None


def read_table(root: Path, labels: LabelsParams) -> pd.DataFrame:
    path = root / labels.csv
    if not path.is_file():
        raise ParamError("balance.labels.csv", f"file not found: {path}")
    try:  # every cell a string: file names and labels such as "007" must not become numbers
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, OSError) as err:  # pandas' ParserError/EmptyDataError and UnicodeDecodeError are ValueErrors
        raise ParamError("balance.labels.csv", f"cannot read {path}: {type(err).__name__}: {err}") from None
    for key in ("file_column", "label_column"):
        column = getattr(labels, key)
        if column not in table.columns:
            columns = ", ".join(map(str, table.columns))
            raise ParamError(f"balance.labels.{key}", f"no column {column!r} in {path}; columns: {columns}")
    return table


def source_path(image_dir: str, file: str) -> tuple[str, str]:
    """(path relative to source, reason it is unusable or "") for a file-column value."""
    file = file.strip()
    if not file:
        return "", "empty file name"
    if posixpath.isabs(file):
        return file, "absolute path (must be relative to balance.labels.image_dir)"
    rel = posixpath.normpath(posixpath.join(image_dir, file))
    if rel == ".." or rel.startswith("../"):
        return file, "path leads outside balance.source"
    return rel, ""


class BadLabel(ValueError):
    """A label cell that cannot be used; ``str()`` is the reason, reported with the row."""


def label_parts(cell: str, separator: str) -> list[str]:
    """``["A >> B"]`` or ``A >> B`` -> ``["A", "B"]``; BadLabel(reason) if unusable."""
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            # Scraped catalogues write product names with stray quotes or backslashes
            # (`["Computers >> Laptops >> 15.6" Laptop"]`): the wrapper alone still tells the label.
            if not (text.startswith('["') and text.endswith('"]')):
                raise BadLabel(f"label looks like a list but is not valid JSON: {text[:80]!r}") from None
            values = [text[2:-2]]
        if len(values) > 1 or not all(isinstance(v, str) for v in values):
            raise BadLabel(f"expected a list holding one label, got {text[:80]!r}")
        text = values[0].strip() if values else ""
    if not text:
        raise BadLabel("empty label")
    return [part.strip() for part in text.split(separator)] if separator else [text]


def label_rows(table: pd.DataFrame, labels: LabelsParams) -> tuple[list[tuple[int, str, str]], list[dict], set[str]]:
    """(usable rows as (row, path, class label), rejected rows, every listed path) of the labels table."""
    usable, rejected, listed, depth = [], [], set(), 0
    cells = zip(table[labels.file_column], table[labels.label_column], strict=True)
    for row, (file, cell) in enumerate(cells, start=1):
        rel, reason = source_path(labels.image_dir, file)
        listed.add(rel)
        if not reason:
            try:
                parts = label_parts(cell, labels.separator)
                depth = max(depth, len(parts))
                if not -len(parts) <= labels.level < len(parts):
                    raise BadLabel(f"label has no level {labels.level}: {cell.strip()[:80]!r}")
                if not parts[labels.level]:
                    raise BadLabel(f"empty label at level {labels.level}")
                usable.append((row, rel, parts[labels.level]))
                continue
            except BadLabel as err:
                reason = str(err)
        rejected.append({"row": row, "path": rel or file, "reason": reason})
    if depth and not -depth <= labels.level < depth:
        raise ParamError(
            "balance.labels.level",
            f"no label in {labels.csv} has level {labels.level}; the deepest has {depth} levels "
            f"(0 to {depth - 1}, or -1 to -{depth})",
        )
    if not usable:
        first = f"; row {rejected[0]['row']}: {rejected[0]['reason']}" if rejected else " (it has no rows)"
        raise ParamError("balance.labels.label_column", f"no usable row in {labels.csv}{first}")
    return usable, rejected, listed


def check_image_dir(root: Path, labels: LabelsParams) -> Path:
    """The folder the CSV's file names are relative to; a ParamError naming the key if it is
    missing, with the folder of another case when there is one (``images/`` for ``Images/``)."""
    folder = root / labels.image_dir
    if folder.is_dir():
        return folder
    near = sorted(e.name for e in folder.parent.iterdir() if e.is_dir() and e.name.lower() == folder.name.lower()) \
        if folder.parent.is_dir() else []
    hint = f" (there is {near[0]!r}: names are case-sensitive)" if near else ""
    raise ParamError("balance.labels.image_dir", f"folder not found: {folder}{hint}")


def read_labels(root: Path, labels: LabelsParams, name_classes: Callable[[list[str]], dict[str, str]]) -> LabelListing:
    """Candidate files per class listed by the labels CSV under ``root`` (balance.source).

    ``name_classes`` maps the sorted distinct labels to {class name: label}; it runs before
    files are grouped because two labels may become one class, and a file's classes can
    only be told to conflict after that mapping.
    """
    check_image_dir(root, labels)
    usable, rejected, listed = label_rows(read_table(root, labels), labels)
    found = LabelListing(files={}, rejected=rejected)

    origin = name_classes(sorted({label for _, _, label in usable}))
    class_of = {raw: name for name, raw in origin.items()}
    found.renamed_from = {name: raw for name, raw in origin.items() if raw != name}
    rows_by_path: dict[str, dict[str, list[int]]] = {}  # identical duplicates collapse here
    for row, rel, label in usable:
        rows_by_path.setdefault(rel, {}).setdefault(class_of[label], []).append(row)
    for rel, classes in rows_by_path.items():
        if len(classes) > 1:  # no way to tell which class is right: the file is left out
            found.conflicting += 1
            detail = "; ".join(f"{c} (rows {', '.join(map(str, rows))})" for c, rows in sorted(classes.items()))
            reason = f"conflicting classes: {detail}"
            found.rejected += [{"row": r, "path": rel, "reason": reason} for rows in classes.values() for r in rows]
            continue
        (name,) = classes
        found.files.setdefault(name, [])
        problem, link = listed_file_problem(root, rel)
        if problem:
            found.missing.append({"path": rel, "reason": problem})
            continue
        found.files[name].append(rel)
        if link:
            found.links_followed.append(link)
    if found.missing and not any(found.files.values()):  # almost surely a wrong image_dir, not a broken dataset
        raise ParamError(
            "balance.labels.image_dir",
            f"none of the {len(found.missing)} files listed in {labels.csv} exist under {root / labels.image_dir} "
            f"(first: {found.missing[0]['path']})",
        )
    found.rejected.sort(key=lambda r: r["row"])
    found.files = {name: sorted(files) for name, files in sorted(found.files.items())}
    on_disk, _, _ = list_class_files(root, labels.image_dir)
    found.unlisted = sorted(set(on_disk) - listed)
    found.links_followed.sort(key=lambda link: link["path"])
    return found
