"""Stage `split`: one stratified, seeded train/val/test split shared by every model.

Sizes are all fractions (0.7, or "2/3" for exact thirds) or all absolute counts
(700/175/175). Each class is split in the same proportions, and files with
identical bytes (same sha256) always land in the same split, so a duplicate can
never leak from train into test. The allocation (stages/core/splitting.py) is shared
with the runs that re-draw their own split (``study.vary_split``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator

from stages.core.errors import DataError, ParamError, run_stage
from stages.core.files import read_csv, write_csv, write_json
from stages.core.params import Schema, parse_section, stage_params
from stages.core.splitting import SPLITS, allocate, assign
from stages.data.split_sizes import split_totals

MANIFEST = "data/manifest.csv"
SPLITS_CSV = "data/splits.csv"
REPORT = "metrics/split.json"
CLASSES = "metrics/split_classes.json"  # per class, apart: a DVC metrics file's every value is a column


def split_size(value: object) -> Fraction | int:
    """A split size: an integer count (>= 1) or a fraction in (0, 1) given as 0.15 or "2/3"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"a count must be >= 1, got {value}")
        return value
    try:
        frac = Fraction(str(value).strip()) if isinstance(value, (str, float)) else None
    except (ValueError, ZeroDivisionError):
        frac = None
    if frac is None or not 0 < frac < 1:
        raise ValueError(f"expected a count (integer >= 1) or a fraction in (0, 1) such as 0.15 or '2/3', "
                         f"got {value!r}")
    return frac


Size = Annotated[Any, AfterValidator(split_size)]


class Split(Schema):
    train: Size
    val: Size
    test: Size
    seed: int


def parse_params(values: dict) -> dict:
    """Validate the `split` section without data: {"sizes": {split: count or fraction}, "seed"}."""
    p = parse_section(Split, values, "split")
    sizes = {s: getattr(p, s) for s in SPLITS}
    if all(isinstance(v, Fraction) for v in sizes.values()):
        split_totals(sizes, 1000)  # the fractions must add up to 1
    elif len({type(v) for v in sizes.values()}) > 1:
        split_totals(sizes, 0)  # raises: counts mixed with fractions
    return {"sizes": sizes, "seed": p.seed}


def make_splits(manifest: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, dict]:
    cfg = parse_params(params)
    sizes, seed = cfg["sizes"], cfg["seed"]
    totals = split_totals(sizes, len(manifest))
    class_sizes = manifest.groupby("label").size().to_dict()
    names = manifest.groupby("label")["class_name"].first().to_dict()
    alloc = allocate(class_sizes, totals, np.random.default_rng(seed))
    for c, counts in alloc.items():
        empty = [s for s in SPLITS if counts[s] == 0]
        if empty:
            raise ParamError(
                f"split.{empty[0]}",
                f"class {names[c]!r} has {class_sizes[c]} images, too few to put one in every split "
                f"(it would get {counts}); use larger split sizes or more images per class",
            )
    out = manifest.copy()
    out["split"] = assign(manifest, alloc, seed)
    out = out[out["split"] != ""].reset_index(drop=True)

    per_class = out.groupby(["class_name", "split"]).size().unstack(fill_value=0).reindex(columns=SPLITS, fill_value=0)
    missing = [(c, s) for c in per_class.index for s in SPLITS if per_class.loc[c, s] == 0]
    if missing:
        c, s = missing[0]
        raise DataError(
            f"class {c!r} has no {s} image: its duplicate files (identical sha256) form groups too "
            "large to spread over train/val/test; remove duplicates or use larger split sizes"
        )
    dup_groups = int((out.groupby("sha256").size() > 1).sum())
    report = {
        "seed": seed,
        "sizes": {s: int((out["split"] == s).sum()) for s in SPLITS},
        "unused_images": len(manifest) - len(out),
        "duplicate_groups": dup_groups,
        "per_class": {c: {s: int(per_class.loc[c, s]) for s in SPLITS} for c in per_class.index},
    }
    return out, report


def main() -> None:
    manifest = read_csv(MANIFEST)
    splits, report = make_splits(manifest, stage_params("split")["split"])
    write_csv(SPLITS_CSV, splits)
    write_json(REPORT, {k: v for k, v in report.items() if k != "per_class"})
    write_json(CLASSES, {"per_class": report["per_class"]})
    sizes = ", ".join(f"{s} {n}" for s, n in report["sizes"].items())
    print(f"split: {sizes}; {report['duplicate_groups']} duplicate groups kept within one split -> {SPLITS_CSV}")


if __name__ == "__main__":
    run_stage(main)
