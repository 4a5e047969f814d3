"""What ``balance`` writes: the manifest (no image copies, paths relative to ``source``) and
the data report, which lists every file that was skipped and why.

The report is written as two files: its counts, ``metrics/data.json`` (a DVC ``metrics`` file, so
in ``dvc exp show`` and ``dvc metrics diff``), and the per-class figures and file lists,
``metrics/data_files.json`` (a plain output: hundreds of classes or files would drown those views)."""

from __future__ import annotations

import pandas as pd

from stages.data.balance_params import BalanceParams, unused_keys
from stages.data.candidates import Candidates
from stages.data.images import ImageInfo

MANIFEST_COLUMNS = ["path", "class_name", "label", "sha256", "width", "height"]


def build_manifest(selected: dict[str, list[str]], valid: dict[str, dict[str, ImageInfo]]) -> pd.DataFrame:
    """One row per selected image; labels number the classes in ``selected``'s order."""
    rows = []
    for label, (name, paths) in enumerate(selected.items()):
        for rel in paths:
            info = valid[name][rel]
            rows.append([rel, name, label, info.sha256, info.width, info.height])
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def build_report(p: BalanceParams, found: Candidates, valid: dict[str, dict[str, ImageInfo]],
                 undecodable: list[dict], chosen: list[str], k: int, manifest: pd.DataFrame,
                 cross_class: list[dict] = ()) -> dict:
    """The data report (metrics/data.json): ``chosen`` classes (label order), K and ``manifest``."""
    groups = manifest.groupby("sha256")
    dup = groups.filter(lambda g: len(g) > 1)
    classes = {}
    for i, c in enumerate(chosen):
        classes[c] = {"label": i, "decodable": len(valid[c])}
        if c in found.renamed_from:
            classes[c]["renamed_from"] = found.renamed_from[c]
    return {
        "source": p.source,
        "labels_csv": p.labels.csv if p.labels else None,
        "select": p.select,
        "images_per_class": k,
        "images_per_class_rule": p.images_per_class,  # "min" or the number from params
        "num_classes": len(chosen),
        "num_images": len(manifest),
        "classes": classes,
        "files_checked": sum(len(v) for v in valid.values()) + len(undecodable) + len(cross_class),
        "undecodable": len(undecodable),
        "ignored": len(found.ignored),
        "missing": len(found.missing),
        "rejected": len(found.rejected),
        "conflicting_files": found.conflicting,
        "unlisted": len(found.unlisted),
        "duplicate_groups": int((groups.size() > 1).sum()),
        "duplicate_files": len(dup),
        "cross_class_duplicate_groups": int((dup.groupby("sha256")["label"].nunique() > 1).sum()),
        "undecodable_files": undecodable,
        "ignored_files": found.ignored,
        "missing_files": found.missing,
        "rejected_rows": found.rejected,
        # File symlinks followed (each inside its own class folder); every link not followed is in
        # ignored_files with its reason (stages/data/image_files.py).
        "unlisted_files": found.unlisted,  # named, not only counted
        "cross_class_duplicates": p.cross_class_duplicates,
        "cross_class_rejected": len(cross_class),
        "cross_class_rejected_files": list(cross_class),
        "links_followed": found.links_followed,
        "unused_params": unused_keys(p),
    }


def counts_and_files(report: dict) -> tuple[dict, dict]:
    """The report split into its single values (counts and settings) and the rest (per class, file lists)."""
    single = {k: v for k, v in report.items() if not isinstance(v, (dict, list))}
    return single, {k: v for k, v in report.items() if k not in single}
