"""Stage `balance`: pick classes and exactly K decodable images per class.

Two input forms, chosen by ``balance.labels.csv``:

  folders  (csv null) ``<source>/<class>/<images>``: every visible sub-folder is a class.
  CSV      a labels table inside ``source`` (file column + possibly hierarchical label
           column; read by :mod:`stages.lib.labels`, which documents the format).

``class_name_pattern``, a regex with one group, turns folder names / labels into class
names: ``^n\\d+-(.+)$`` maps Stanford Dogs' ``n02085620-Chihuahua`` to ``Chihuahua``.

Every candidate image is decoded before it counts; classes are selected by one of three
rules and K images per class by a seeded rule. Writes a manifest (no image copies, paths
relative to ``source``) plus a data report listing every file that was skipped and why.

Selection rules (``balance.select``):
  fewest  the ``num_classes`` classes with the fewest images that still have at
          least K (how the Stanford Dogs study built its 13- and 28-breed subsets)
  names   the classes listed in ``class_names`` (class names after the pattern)
  all     every class with at least K images

K (``balance.images_per_class``) is a number, or ``min``: the smallest number of decodable
images among the classes the rule keeps (``all``: every class with at least one; ``names``:
the named ones), so "about 150 per class" keeps a class that has 148. ``fewest`` needs a number.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stages.lib.errors import ParamError, run_stage
from stages.lib.files import write_csv, write_json
from stages.lib.images import IMAGE_EXTENSIONS, class_folders, inspect_image, is_hidden, list_class_files
from stages.lib.labels import LabelsParams, parse_labels, read_labels
from stages.lib.parallel import imap_progress
from stages.lib.params import Section, stage_params

MANIFEST = "data/manifest.csv"
REPORT = "metrics/data.json"
MANIFEST_COLUMNS = ["path", "class_name", "label", "sha256", "width", "height"]
SELECT_RULES = ("fewest", "names", "all")
KEYS = ("source", "class_name_pattern", "labels", "select", "num_classes", "class_names", "images_per_class", "seed")
MIN = "min"  # images_per_class: K = the smallest class the rule keeps
MIN_K = 3  # split puts at least one image of every class in each of train, val and test


# --- params: validated without touching the file system --------------------------------------

@dataclass(frozen=True)
class BalanceParams:
    source: str
    select: str
    images_per_class: int | str  # a number, or MIN: resolved once images are decoded
    seed: int
    num_classes: int | None  # always set when select is "fewest"
    class_names: tuple[str, ...]
    class_name_pattern: re.Pattern | None
    labels: LabelsParams | None  # None: classes are the sub-folders of source


def parse_pattern(value: object) -> re.Pattern | None:
    key = "balance.class_name_pattern"
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ParamError(key, f"expected a regular expression with one group, or null; got {value!r}")
    try:
        pattern = re.compile(value)
    except re.error as err:
        raise ParamError(key, f"invalid regular expression {value!r}: {err}") from None
    if pattern.groups != 1:
        raise ParamError(key, f"needs exactly one group (...) capturing the class name; {value!r} has {pattern.groups}")
    return pattern


def parse_images_per_class(value: object, select: str) -> int | str:
    key = "balance.images_per_class"
    if value == MIN:
        if select == "fewest":  # fewest ranks classes by who still has K images: K must come first
            raise ParamError(key, f"{MIN!r} does not work with select 'fewest': fewest needs a number")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(key, f"expected an integer >= 1 or {MIN!r}, got {value!r}")
    return value


def parse_params(values: dict) -> BalanceParams:
    """Validate every key of the ``balance`` section; reads no file, so it works with no data present."""
    p = Section(values, "balance", known=KEYS)
    source = p.str("source", allow_empty=False)
    select = p.choice("select", SELECT_RULES)
    n = p.int("num_classes", minimum=2) if select == "fewest" or p.raw("num_classes", None) is not None else None
    names = p.str_list("class_names", default=[])
    if select == "names":
        if len(names) < 2:
            raise ParamError("balance.class_names", "list at least 2 class names when select is 'names'")
        if len(set(names)) != len(names):
            raise ParamError("balance.class_names", "lists a class more than once")
    return BalanceParams(
        source=source,
        select=select,
        images_per_class=parse_images_per_class(p.raw("images_per_class"), select),
        seed=p.int("seed"),
        num_classes=n,
        class_names=tuple(names),
        class_name_pattern=parse_pattern(p.raw("class_name_pattern", None)),
        labels=parse_labels(p.raw("labels", None)),
    )


# --- candidates: image files per class, from folders or from a labels CSV ---------------------

@dataclass
class Candidates:
    """Image files per class (paths relative to source) and what the listing skipped."""

    files: dict[str, list[str]]
    ignored: list[dict] = field(default_factory=list)  # folders: hidden files, other extensions, loose images
    missing: list[dict] = field(default_factory=list)  # CSV: listed but not on disk
    rejected: list[dict] = field(default_factory=list)  # CSV: rows that cannot be used
    conflicting: int = 0  # CSV: files listed with different classes, all their rows rejected
    unlisted: int = 0  # CSV: images under image_dir that the CSV does not list
    renamed_from: dict[str, str] = field(default_factory=dict)  # class name -> folder / label it came from


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
        found.files[name], skipped = list_class_files(root, folder_of[name])
        found.ignored += [{"path": path, "reason": reason} for path, reason in skipped]
        if folder_of[name] != name:
            found.renamed_from[name] = folder_of[name]
    found.ignored += [
        {"path": e.name, "reason": "outside any class folder"}
        for e in sorted(root.iterdir(), key=lambda e: e.name)
        if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
    ]
    return found


def read_label_csv(root: Path, p: BalanceParams) -> Candidates:
    """The CSV form: stages.lib.labels reads the table; naming classes and the rule stay here."""
    listing = read_labels(root, p.labels, lambda labels: map_class_names(labels, p.class_name_pattern, "labels"))
    found = Candidates(files={}, missing=listing.missing, rejected=listing.rejected,
                       conflicting=listing.conflicting, unlisted=listing.unlisted)
    for name in restrict(list(listing.files), p, f"{p.labels.csv} at level {p.labels.level}"):
        found.files[name] = listing.files[name]
        if name in listing.renamed_from:
            found.renamed_from[name] = listing.renamed_from[name]
    return found


# --- verification and selection ---------------------------------------------------------------

def _check(path: str) -> tuple[str, object]:
    """(path, ImageInfo) or (path, reason) — module level so worker processes can run it."""
    try:
        return path, inspect_image(path)
    except (ValueError, OSError) as err:
        return path, str(err)


def verify(root: Path, files: dict[str, list[str]]) -> tuple[dict[str, dict], list[dict]]:
    """Decode every candidate; returns (ImageInfo by path per class, undecodable files)."""
    classes = list(files)
    jobs = [str(root / p) for name in classes for p in files[name]]
    checked = dict(imap_progress(_check, jobs, total=len(jobs), desc="balance: verifying images"))
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


def choose_classes(counts: dict[str, int], select: str, k: int, n: int, names: list[str]) -> list[str]:
    """Apply the class-selection rule to per-class counts of decodable images."""
    eligible = {c: v for c, v in counts.items() if v >= k}
    largest = max(counts.values(), default=0)
    if select == "names":
        short = [f"{c} ({counts[c]})" for c in names if counts[c] < k]
        if short:
            raise ParamError(
                "balance.images_per_class",
                f"{k} is more than these classes have decodable images: {', '.join(short)}",
            )
        return sorted(names)
    if not eligible:
        raise ParamError(
            "balance.images_per_class",
            f"{k} is larger than every class (the largest has {largest} decodable images)",
        )
    if select == "all":
        chosen = sorted(eligible)
    else:  # fewest: ascending count, ties broken by name so the rule is deterministic
        if n > len(eligible):
            raise ParamError(
                "balance.num_classes",
                f"{n} classes requested but only {len(eligible)} of {len(counts)} classes "
                f"have at least {k} decodable images",
            )
        chosen = sorted(sorted(eligible, key=lambda c: (eligible[c], c))[:n])
    if len(chosen) < 2:
        raise ParamError("balance.images_per_class", f"only {len(chosen)} class has at least {k} images; need 2")
    return chosen


def resolve_min(counts: dict[str, int], select: str, names: list[str]) -> int:
    """K for ``images_per_class: min``: the smallest decodable count among the classes the
    rule keeps (``all``: those with any decodable image; ``names``: the named ones)."""
    key = "balance.images_per_class"
    kept = {c: counts[c] for c in names} if select == "names" else {c: v for c, v in counts.items() if v}
    if len(kept) < 2:
        have = ", ".join(f"{c} ({v})" for c, v in kept.items()) or "none"
        raise ParamError(key, f"{MIN!r} needs 2 classes with a decodable image; only {len(kept)} of "
                              f"{len(counts)} classes has one ({have})")
    smallest = min(kept, key=lambda c: (kept[c], c))
    if kept[smallest] < MIN_K:
        raise ParamError(
            key,
            f"{MIN!r} resolves to {kept[smallest]}, set by {smallest} ({kept[smallest]} decodable images); "
            f"need at least {MIN_K} so that train, val and test each get an image of every class "
            f"(leave the class out with select 'names')",
        )
    return kept[smallest]


def choose_images(paths: list[str], k: int, seed: int) -> list[str]:
    """K paths ranked by a seeded hash of the path.

    Independent of listing order and stable: adding an image to a class changes
    at most one selected image.
    """
    rank = lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(paths, key=rank)[:k])


def balance(values: dict) -> tuple[pd.DataFrame, dict]:
    """Build (manifest, report) from the ``balance`` params section."""
    p = parse_params(values)
    root = Path(p.source).expanduser()
    if not root.is_dir():
        raise ParamError("balance.source", f"folder not found: {p.source}")
    found = read_label_csv(root, p) if p.labels else read_folders(root, p)

    largest = max((len(f) for f in found.files.values()), default=0)
    if p.images_per_class != MIN and p.images_per_class > largest:  # fail before spending minutes decoding
        raise ParamError(
            "balance.images_per_class",
            f"{p.images_per_class} is larger than every class (the largest has {largest} image files)",
        )
    valid, undecodable = verify(root, found.files)
    counts = {c: len(valid[c]) for c in found.files}
    k = resolve_min(counts, p.select, list(p.class_names)) if p.images_per_class == MIN else p.images_per_class
    chosen = choose_classes(counts, p.select, k, p.num_classes or 0, list(p.class_names))

    rows = []
    for label, name in enumerate(chosen):
        for rel in choose_images(list(valid[name]), k, p.seed):
            info = valid[name][rel]
            rows.append([rel, name, label, info.sha256, info.width, info.height])
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    groups = manifest.groupby("sha256")
    dup = groups.filter(lambda g: len(g) > 1)
    classes = {}
    for i, c in enumerate(chosen):
        classes[c] = {"label": i, "decodable": counts[c]}
        if c in found.renamed_from:
            classes[c]["renamed_from"] = found.renamed_from[c]
    report = {
        "source": p.source,
        "labels_csv": p.labels.csv if p.labels else None,
        "select": p.select,
        "images_per_class": k,
        "images_per_class_rule": p.images_per_class,  # "min" or the number from params
        "num_classes": len(chosen),
        "num_images": len(manifest),
        "classes": classes,
        "files_checked": sum(len(v) for v in valid.values()) + len(undecodable),
        "undecodable": len(undecodable),
        "ignored": len(found.ignored),
        "missing": len(found.missing),
        "rejected": len(found.rejected),
        "conflicting_files": found.conflicting,
        "unlisted": found.unlisted,
        "duplicate_groups": int((groups.size() > 1).sum()),
        "duplicate_files": len(dup),
        "cross_class_duplicate_groups": int((dup.groupby("sha256")["label"].nunique() > 1).sum()),
        "undecodable_files": undecodable,
        "ignored_files": found.ignored,
        "missing_files": found.missing,
        "rejected_rows": found.rejected,
    }
    return manifest, report


def main() -> None:
    manifest, report = balance(stage_params("balance")["balance"])
    write_csv(MANIFEST, manifest)
    write_json(REPORT, report)
    if report["missing"] or report["rejected"]:
        print(
            f"warning: balance: {report['labels_csv']}: {report['missing']} listed files missing, "
            f"{report['rejected']} rows unusable (see {REPORT}: missing_files, rejected_rows)",
            file=sys.stderr,
        )
    rule = " (images_per_class: min)" if report["images_per_class_rule"] == MIN else ""
    print(
        f"balance: {report['num_classes']} classes x {report['images_per_class']} images{rule} "
        f"= {report['num_images']} -> {MANIFEST}; {report['undecodable']} undecodable, "
        f"{report['ignored']} ignored, {report['duplicate_groups']} duplicate groups (see {REPORT})"
    )


if __name__ == "__main__":
    run_stage(main)
