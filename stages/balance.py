"""Stage `balance`: pick classes and exactly K decodable images per class.

Reads an image-folder tree (``<source>/<class>/<images>``), verifies that every
candidate image decodes, selects classes by one of three rules and K images
per class by a seeded rule, and writes a manifest (no image copies) plus a
data report listing every file that was skipped and why.

Selection rules (``balance.select``):
  fewest  the ``num_classes`` classes with the fewest images that still have at
          least K (how the Stanford Dogs study built its 13- and 28-breed subsets)
  names   the classes listed in ``class_names``
  all     every class with at least K images
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from stages.lib.errors import ParamError, run_stage
from stages.lib.files import write_csv, write_json
from stages.lib.images import IMAGE_EXTENSIONS, class_folders, inspect_image, is_hidden, list_class_files
from stages.lib.params import Section, stage_params
from stages.lib.parallel import imap_progress

MANIFEST = "data/manifest.csv"
REPORT = "metrics/data.json"
MANIFEST_COLUMNS = ["path", "class_name", "label", "sha256", "width", "height"]
KEYS = ("source", "select", "num_classes", "class_names", "images_per_class", "seed")


def _check(path: str) -> tuple[str, object]:
    """(path, ImageInfo) or (path, reason) — module level so worker processes can run it."""
    try:
        return path, inspect_image(path)
    except (ValueError, OSError) as err:
        return path, str(err)


def list_files(root: Path, classes: list[str]) -> tuple[dict[str, list[str]], list[dict]]:
    """Candidate image files per class, and the files ignored (hidden, other extensions)."""
    files, ignored = {}, []
    for name in classes:
        files[name], skipped = list_class_files(root, name)
        ignored += [{"path": p, "reason": r} for p, r in skipped]
    return files, ignored


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


def choose_images(paths: list[str], k: int, seed: int) -> list[str]:
    """K paths ranked by a seeded hash of the path.

    Independent of listing order and stable: adding an image to a class changes
    at most one selected image.
    """
    rank = lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(paths, key=rank)[:k])


def balance(params: dict) -> tuple[pd.DataFrame, dict]:
    """Build (manifest, report) from the ``balance`` params section."""
    p = Section(params, "balance", known=KEYS)
    source = p.str("source", allow_empty=False)
    select = p.choice("select", ["fewest", "names", "all"])
    k = p.int("images_per_class", minimum=1)
    seed = p.int("seed")
    n = p.int("num_classes", minimum=2) if select == "fewest" else 0
    names = p.str_list("class_names", default=[]) if select == "names" else []

    root = Path(source).expanduser()
    if not root.is_dir():
        raise ParamError("balance.source", f"folder not found: {source}")
    classes = class_folders(root)
    if not classes:
        loose = [e.name for e in root.iterdir() if not is_hidden(e.name)]
        detail = f"it holds {len(loose)} loose files and" if loose else "it is empty and"
        raise ParamError(
            "balance.source",
            f"{source}: {detail} has no class sub-folders (expected <source>/<class name>/<image files>)",
        )
    if select == "names":
        if len(names) < 2:
            raise ParamError("balance.class_names", "list at least 2 class names when select is 'names'")
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ParamError(
                "balance.class_names",
                f"not found in {source}: {', '.join(unknown)} (available: {', '.join(classes[:20])}"
                + (", ..." if len(classes) > 20 else "") + ")",
            )
        if len(set(names)) != len(names):
            raise ParamError("balance.class_names", "lists a class more than once")
        classes = names
    elif select == "fewest" and n > len(classes):
        raise ParamError("balance.num_classes", f"{n} classes requested but {source} has only {len(classes)}")

    files, ignored = list_files(root, classes)
    largest = max(len(f) for f in files.values())
    if k > largest:  # fail before spending minutes decoding
        raise ParamError(
            "balance.images_per_class", f"{k} is larger than every class (the largest has {largest} image files)"
        )
    valid, undecodable = verify(root, files)
    ignored += [
        {"path": e.name, "reason": "outside any class folder"}
        for e in sorted(root.iterdir(), key=lambda e: e.name)
        if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
    ]
    counts = {c: len(valid[c]) for c in classes}
    chosen = choose_classes(counts, select, k, n, names)

    rows = []
    for label, name in enumerate(chosen):
        for rel in choose_images(list(valid[name]), k, seed):
            info = valid[name][rel]
            rows.append([rel, name, label, info.sha256, info.width, info.height])
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    groups = manifest.groupby("sha256")
    dup = groups.filter(lambda g: len(g) > 1)
    report = {
        "source": source,
        "select": select,
        "images_per_class": k,
        "num_classes": len(chosen),
        "num_images": len(manifest),
        "classes": {c: {"label": i, "decodable": counts[c]} for i, c in enumerate(chosen)},
        "files_checked": sum(len(v) for v in valid.values()) + len(undecodable),
        "undecodable": len(undecodable),
        "ignored": len(ignored),
        "duplicate_groups": int((groups.size() > 1).sum()),
        "duplicate_files": len(dup),
        "cross_class_duplicate_groups": int((dup.groupby("sha256")["label"].nunique() > 1).sum()),
        "undecodable_files": undecodable,
        "ignored_files": ignored,
    }
    return manifest, report


def main() -> None:
    manifest, report = balance(stage_params("balance")["balance"])
    write_csv(MANIFEST, manifest)
    write_json(REPORT, report)
    print(
        f"balance: {report['num_classes']} classes x {report['images_per_class']} images "
        f"= {report['num_images']} -> {MANIFEST}; {report['undecodable']} undecodable, "
        f"{report['ignored']} ignored, {report['duplicate_groups']} duplicate groups (see {REPORT})"
    )


if __name__ == "__main__":
    run_stage(main)
