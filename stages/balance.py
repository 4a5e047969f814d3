"""Stage `balance`: pick classes and exactly K decodable images per class.

Candidates come from ``<source>/<class>/<images>`` folders or from a labels CSV
(stages/data/candidates.py); every candidate is decoded before it counts
(stages/data/verify.py); classes are selected by one of three rules and K images per
class by a seeded rule (stages/data/selection.py; the params: stages/data/balance_params.py).
Writes a manifest (no image copies, paths relative to ``source``) plus a data report: its counts
in ``metrics/data.json``, every file that was skipped and why in ``metrics/data_files.json``
(stages/data/data_report.py).
"""

from __future__ import annotations

import sys

import pandas as pd

from stages.core.errors import run_stage
from stages.core.files import write_csv, write_json
from stages.core.params import stage_params
from stages.data.balance_params import MIN, parse_params  # preflight and benchmarks use them from here
from stages.data.candidates import find_candidates, source_root
from stages.data.data_report import build_manifest, build_report, counts_and_files
from stages.data.selection import check_files_suffice, choose_classes, choose_images, resolve_min
from stages.data.verify import reject_cross_class_duplicates, verify

MANIFEST = "data/manifest.csv"
REPORT = "metrics/data.json"
FILES = "metrics/data_files.json"  # the report's per-class figures and file lists


def balance(values: dict) -> tuple[pd.DataFrame, dict]:
    """Build (manifest, report) from the ``balance`` params section."""
    p = parse_params(values)
    root = source_root(p)
    found = find_candidates(root, p)
    check_files_suffice(found.files, p.images_per_class)
    valid, undecodable = verify(root, found.files)
    conflicts = []
    if p.cross_class_duplicates == "reject":
        valid, conflicts = reject_cross_class_duplicates(valid)
    counts = {c: len(valid[c]) for c in found.files}
    k = resolve_min(counts, p.select, list(p.class_names)) if p.images_per_class == MIN else p.images_per_class
    chosen = choose_classes(counts, p.select, k, p.num_classes or 0, list(p.class_names))
    manifest = build_manifest({name: choose_images(list(valid[name]), k, p.seed) for name in chosen}, valid)
    return manifest, build_report(p, found, valid, undecodable, chosen, k, manifest, conflicts)


def main() -> None:
    manifest, report = balance(stage_params("balance")["balance"])
    write_csv(MANIFEST, manifest)
    counts, files = counts_and_files(report)
    write_json(REPORT, counts)
    write_json(FILES, files)
    if report["missing"] or report["rejected"]:
        print(
            f"warning: balance: {report['labels_csv']}: {report['missing']} listed files missing, "
            f"{report['rejected']} rows unusable (see {FILES}: missing_files, rejected_rows)",
            file=sys.stderr,
        )
    for note in report["unused_params"]:
        print(f"note: {note}", file=sys.stderr)
    rule = " (images_per_class: min)" if report["images_per_class_rule"] == MIN else ""
    print(
        f"balance: {report['num_classes']} classes x {report['images_per_class']} images{rule} "
        f"= {report['num_images']} -> {MANIFEST}; {report['undecodable']} undecodable, "
        f"{report['ignored']} ignored, {report['duplicate_groups']} duplicate groups (see {FILES})"
    )


if __name__ == "__main__":
    run_stage(main)
