"""Remove per-run outputs that the current params no longer produce: `make prune`.

Usage: ``python -m stages.prune [--dry-run]``. After switching presets (or dropping a model, a
seed or a training-set size), the files of runs no longer in ``models`` x ``study.train_percent``
x ``study.seeds`` stay in the workspace -- ``metrics/train/vit/...`` next to the preset's real
results -- and would be committed with the next experiment. This deletes them: every entry under
the per-run roots of stages/core/layout.py (models, predictions, quality and cost metrics, dvclive
curves) whose model, size and seed is not a current run, and the features and family fingerprint
of a model no longer listed. The report and explain folders are rewritten whole by their stages.

Not a DVC stage (a stage writes only its own outputs): a clean step, run before committing.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from stages.core import layout
from stages.core.compared_models import model_families
from stages.core.errors import run_stage
from stages.core.params import study_percents, study_seeds

RUN_ROOTS = (layout.MODELS, layout.PREDICTIONS, layout.TRAIN_METRICS, layout.EVAL_METRICS, layout.TRAIN_COST,
             layout.EVAL_COST, layout.TRAIN_CURVES)
MODEL_ROOTS = (layout.FEATURES,)  # one folder per model


def current_runs(params: dict) -> tuple[set[str], set[tuple[str, int, int]]]:
    models = set(model_families(params.get("models")))
    runs = {(m, p, s) for m in models for p in study_percents(params.get("study"))
            for s in study_seeds(params.get("study"))}
    return models, runs


def stale_paths(params: dict, root: Path = Path(".")) -> list[Path]:
    """Entries under the per-run and per-model roots that no current run or model owns."""
    models, runs = current_runs(params)
    keep = set()
    for model, percent, seed in runs:
        name = layout.run_name(seed, percent)  # <p>pct/s<seed>
        for run_root in RUN_ROOTS:
            keep.add(root / run_root / model / name)
    stale = []
    for run_root in RUN_ROOTS:
        base = root / run_root
        if not base.is_dir():
            continue
        for model_dir in sorted(p for p in base.iterdir() if not p.name.startswith(".")):
            if model_dir.name not in models or not model_dir.is_dir():
                stale.append(model_dir)
                continue
            for percent_dir in sorted(model_dir.iterdir()):
                entries = sorted(percent_dir.iterdir()) if percent_dir.is_dir() else [percent_dir]
                # Dot files: DVC's .gitignore, and killed runs' temporaries (the next run removes those).
                for entry in (e for e in entries if not e.name.startswith(".")):
                    stem = entry.parent / entry.name.split(".")[0]  # s0.keras, s0.json, s0/ -> s0
                    if stem not in keep:
                        stale.append(entry)
    for model_root in MODEL_ROOTS:
        base = root / model_root
        stale += sorted(p for p in base.iterdir() if p.name not in models and not p.name.startswith(".")) \
            if base.is_dir() else []
    families = root / layout.FAMILIES
    if families.is_dir():
        stale += sorted(p for p in families.glob("*.json") if p.stem not in models)
    return stale


def prune(params: dict, root: Path = Path("."), dry_run: bool = False) -> list[Path]:
    stale = stale_paths(params, root)
    for path in stale:
        if not dry_run:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return stale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.prune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    args = parser.parse_args(argv)
    import dvc.api

    params = dvc.api.params_show()
    removed = prune(params, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"prune: {verb} {path}")
    print(f"prune: {verb} {len(removed)} entries of runs or models no longer in params.yaml")


if __name__ == "__main__":
    run_stage(main)
