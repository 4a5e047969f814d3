"""Benchmark: how long does the default pipeline take a new user, stage by stage?

Copies the repository as a fresh clone has it (tracked files plus new, not-ignored ones;
no outputs: nothing generated under data/, metrics/ or plots/, no dvc.lock) into a
scratch git repository, then runs every stage once, in dvc.yaml order (topological
here), one `dvc repro --single-item <stage>` per stage name from `dvc stage list`
(foreach/matrix stages count per item: train@vit-0, ...). Each stage's time is the wall
time of its `dvc repro` call: the stage itself plus DVC's hashing, caching and lock
writing, i.e. what the user waits for. Nothing is reused from this checkout's outputs
or DVC cache.

    python benchmarks/pipeline.py [--stages embedded@digits balance split prepare] [--keep] [--workdir DIR]
                                  [--out CSV] [--rev REV] [--breakdown CSV]

Prints one line per stage as it finishes, then the total and the five slowest stages;
results are also written to benchmarks/pipeline.csv (one row per stage and a `total` row).

Where each stage's time goes: every stage process runs with benchmarks/phase_probe/ on
PYTHONPATH (its sitecustomize times interpreter start, imports, params, data, model build, graph
tracing, fit steps, validation, prediction and saving without editing a stage) and the rows go to
benchmarks/run_breakdown.csv (``--breakdown``); DVC's own share is the `dvc repro` call's wall
time minus the stage process's. ``--rev`` benchmarks a committed revision's tree instead of the
working tree (e.g. the layout before a change, side by side in one session: ``--layout`` names it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from common import ROOT, copy_repo, machine, run, write_csv

OUT = Path(__file__).with_name("pipeline.csv")
BREAKDOWN = Path(__file__).with_name("run_breakdown.csv")
PROBE = Path(__file__).resolve().with_name("phase_probe")
# Columns of the breakdown, in order; each in seconds of one stage.
PHASES = ("interpreter", "imports", "params", "data", "build", "load", "tracing", "fit_steps", "validation",
          "fit_other", "predict", "save", "other", "process", "dvc", "wall")


def stage_names(repo: Path, prefixes: list[str] | None) -> list[str]:
    proc = run(["dvc", "stage", "list", "--name-only"], repo)
    if proc.returncode:
        sys.exit(f"dvc stage list failed:\n{proc.stderr}")
    names = proc.stdout.split()
    if prefixes:
        names = [n for n in names if n.startswith(tuple(prefixes))]
        if not names:
            sys.exit(f"no stage starts with any of {prefixes}")
    return names


def breakdown_row(probe_file: Path, wall: float) -> dict:
    """One stage's seconds per phase from the probe's record (absent: a stage DVC did not run)."""
    if not probe_file.is_file():
        return {"wall": round(wall, 2), "dvc": round(wall, 2)}
    p = json.loads(probe_file.read_text())
    first = p.get("first_call", {})
    steps = p.get("fit_steps", 0.0)
    # The first train batch traces and compiles the train step; what it took beyond a steady batch is tracing.
    steady = steps / p["fit_batches"] if p.get("fit_batches") else 0.0
    tracing = max(0.0, first.get("train_batch", 0.0) - steady) + first.get("test_batch", 0.0) \
        + first.get("predict_batch", 0.0)
    fit_other = max(0.0, p.get("fit", 0.0) - steps - first.get("train_batch", 0.0) - p.get("validation", 0.0))
    row = {"interpreter": p["interpreter"], "imports": p["main"] - p["interpreter"], "params": p.get("params", 0.0),
           "data": p.get("data", 0.0), "build": p.get("build", 0.0), "load": p.get("load", 0.0),
           "tracing": tracing, "fit_steps": steps + min(steady, first.get("train_batch", 0.0)),
           "validation": max(0.0, p.get("validation", 0.0) - first.get("test_batch", 0.0)), "fit_other": fit_other,
           "predict": max(0.0, p.get("predict", 0.0) - first.get("predict_batch", 0.0)), "save": p.get("save", 0.0),
           "process": p["process_wall"], "dvc": max(0.0, wall - p["process_wall"]), "wall": wall}
    row["other"] = max(0.0, p["process_wall"] - sum(row[k] for k in PHASES if k not in ("other", "process", "dvc",
                                                                                         "wall")))
    return {k: round(v, 2) for k, v in row.items()}


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", metavar="PREFIX",
                        help="run only stages whose name starts with one of these (their upstream stages too, "
                             "or they fail for missing inputs), e.g. --stages embedded@digits balance split prepare")
    parser.add_argument("--workdir", type=Path, help="make the scratch copy here (absent or empty) instead of in "
                                                     "a temp dir; removed afterwards unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy afterwards")
    parser.add_argument("--out", type=Path, default=OUT, help=f"CSV to write (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--rev", help="benchmark this commit's tree, not the working tree")
    parser.add_argument("--layout", default="working tree", help="the name of this layout in the breakdown CSV")
    parser.add_argument("--breakdown", type=Path, default=BREAKDOWN,
                        help=f"CSV the per-phase rows are added to (default {BREAKDOWN.relative_to(ROOT)}; "
                             "rows of the same --layout are replaced)")
    args = parser.parse_args()

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if args.workdir:
        if args.workdir.exists() and any(args.workdir.iterdir()):
            sys.exit(f"--workdir {args.workdir} is not empty")
        args.workdir.mkdir(parents=True, exist_ok=True)
        repo = args.workdir.resolve()
    else:
        repo = Path(tempfile.mkdtemp(prefix="pipeline-benchmark-"))
    try:
        copy_repo(repo, args.rev)
        names = stage_names(repo, args.stages)
        print(f"scratch copy: {repo}; {len(names)} stages", flush=True)
        times: dict[str, float] = {}
        phases: dict[str, dict] = {}
        probes = Path(tempfile.mkdtemp(prefix="phase-probe-"))
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} ...", end="", flush=True)
            probe = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH")])),
                     "PHASE_PROBE_OUT": str(probes / f"{name}.json")}
            start = time.perf_counter()
            proc = run(["dvc", "repro", "--single-item", name], repo, probe)
            times[name] = time.perf_counter() - start
            phases[name] = breakdown_row(probes / f"{name}.json", times[name])
            print(f" {times[name]:.1f} s", flush=True)
            if proc.returncode:
                print(f"\n{name} failed (exit {proc.returncode}); last lines of its stderr:\n"
                      f"{tail(proc.stderr or proc.stdout)}", file=sys.stderr)
                kept = f"scratch copy kept at {repo}" if args.keep else "rerun with --keep to inspect the scratch copy"
                sys.exit(f"stopped at {name}; {kept}")
    finally:
        if not args.keep:
            shutil.rmtree(repo, ignore_errors=True)

    total = sum(times.values())
    common = {"date": date, "machine": machine(), "cores": os.cpu_count(), "python": platform.python_version(),
              "tensorflow": metadata.version("tensorflow")}
    rows = [{"stage": n, "seconds": round(s, 2), **common} for n, s in times.items()]
    rows.append({"stage": "total", "seconds": round(total, 2), **common})
    write_csv(args.out, rows)
    kept = []
    if args.breakdown.is_file():
        with args.breakdown.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["layout"] != args.layout]
    write_csv(args.breakdown, kept + [{"layout": args.layout, "stage": n, **{k: phases[n].get(k, "") for k in PHASES},
                                       **common} for n in times])
    print(f"\ntotal {total:.1f} s ({total / 60:.1f} min) for {len(times)} stages on {common['machine']}, "
          f"{common['cores']} cores, Python {common['python']}, TensorFlow {common['tensorflow']}")
    print("slowest:")
    for name, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {name:<24} {seconds:8.1f} s  {100 * seconds / total:5.1f} %")
    print(f"wrote {args.out}" + (f"; scratch copy kept at {repo}" if args.keep else ""))


if __name__ == "__main__":
    main()
