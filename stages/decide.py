"""Runs until decided: add seeds, one cached `dvc exp run` per look, until every pair is decided.

Usage: ``python -m stages.decide [--set KEY=VALUE ...] [--dry-run]`` (``make decide ARGS=...``).
A group-sequential study: with ``n0`` the seeds of ``study.seeds`` (conf/ composed with the
``--set`` overrides), the looks are at ``n0, n0 + study.seed_step, ...`` runs per model, capped at
``study.max_seeds``; K looks in all. Look k runs ``dvc exp run -S study.seeds=[...] -S report.looks=K``
(the user's ``--set`` overrides first, passed through as ``-S``), the seeds extended with the
next unused non-negative integers: the runs already trained are in dvc.lock (or DVC's run cache)
and are not trained again. Every look's report tests at ``report.alpha / K`` (Bonferroni over the
planned looks, stages/analysis/verdicts.py), so stopping at the first look where every pair reads
"better" or "equivalent" keeps the error rates. Prints each pair's sentence after every look and
a summary at the end; ``--dry-run`` prints the schedule and the commands only.

Not a DVC stage. Exit 0 when it ran to a stop (all decided, or the cap); 2 on bad params; 1 when
a ``dvc exp run`` fails (the command and its exit code are named; the runs done stay cached).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from stages.core.errors import DataError, ParamError, PipelineError
from stages.core.params import Study, parse_section

COMPARISON = Path("metrics/comparison.json")
DECIDED = ("better", "equivalent")
Runner = Callable[[list[str]], int]  # DVC's arguments (after `dvc`) -> exit code


class DvcRunFailed(PipelineError):
    exit_code = 1


def schedule(n0: int, step: int, cap: int) -> list[int]:
    """Runs per model at each look: n0, n0 + step, ..., the last one ``cap``."""
    sizes = [n0]
    while sizes[-1] < cap:
        sizes.append(min(sizes[-1] + step, cap))
    return sizes


def extend(seeds: list[int], n: int) -> list[int]:
    """``seeds`` followed by the smallest non-negative integers not in it, ``n`` in all."""
    out, candidate = list(seeds), 0
    while len(out) < n:
        if candidate not in out:
            out.append(candidate)
        candidate += 1
    return out


def study_params(overrides: list[str]) -> Study:
    """``study`` of conf/ composed with ``overrides`` (as `dvc exp run -S` composes it), validated."""
    from stages.preflight import compose, read_params

    with tempfile.TemporaryDirectory() as tmp:
        compose(overrides, Path(tmp) / "params.yaml")
        params = read_params(Path(tmp) / "params.yaml")
    study = parse_section(Study, params.get("study"), "study")
    if study.max_seeds < len(study.seeds):
        raise ParamError("study.max_seeds", f"must be >= the number of seeds in study.seeds ({len(study.seeds)}: "
                                            f"{study.seeds}), got {study.max_seeds}")
    return study


def look_args(overrides: list[str], seeds: list[int], looks: int) -> list[str]:
    sets = [*overrides, f"study.seeds=[{','.join(map(str, seeds))}]", f"report.looks={looks}"]
    return ["exp", "run", *(arg for value in sets for arg in ("-S", value))]


def read_pairs(path: Path, n: int) -> dict[str, dict]:
    """The report's pairs (verdict, n, runs_needed, sentence), checked to hold ``n`` runs per model."""
    try:
        pairs = json.loads(path.read_text(encoding="utf-8"))["pairs"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: cannot read the report's pairs: {err}") from None
    for key, pair in pairs.items():
        if pair.get("verdict") not in (*DECIDED, "undecided") or "sentence" not in pair:
            raise DataError(f"{path}: pairs.{key} has no better/equivalent/undecided verdict: a report from "
                            "before the three verdicts?")
        if pair.get("n") != n:
            raise DataError(f"{path}: pairs.{key} has n = {pair.get('n')} runs per model, expected {n}")
    return pairs


def advice(pair: dict, cap: int) -> str:
    needed = pair.get("runs_needed")
    if isinstance(needed, int):
        return (f"about {needed} runs per model would likely decide it (raise the cap: "
                f"--set study.max_seeds={max(needed, cap + 1)})")
    if pair.get("n", 0) < 2:
        return "1 run per model measures no training randomness: at least 2 are needed"
    from stages.analysis.verdicts import runs_advice  # scipy: only for this line

    try:
        return runs_advice(pair)  # why more runs will not do: the report's own words
    except (KeyError, TypeError, ValueError):
        return "more runs alone would likely not decide it (see its sentence)"


def dvc_runner(args: list[str]) -> int:
    """Run DVC with this interpreter, its folder first on PATH (the stages' `python`); output streams."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([sys.executable, "-m", "dvc", *args], env=env).returncode


def decide(overrides: list[str], dry_run: bool = False, runner: Runner = dvc_runner,
           comparison: Path | None = None) -> int:
    comparison = comparison or COMPARISON
    study = study_params(overrides)
    sizes = schedule(len(study.seeds), study.seed_step, study.max_seeds)
    looks = len(sizes)
    print(f"decide: {looks} planned look(s) at {', '.join(map(str, sizes))} runs per model "
          f"(study.seeds {study.seeds}, seed_step {study.seed_step}, max_seeds {study.max_seeds}); "
          f"each look tests at report.alpha / {looks}", flush=True)
    if not study.vary_split and study.max_seeds > 5:
        # benchmarks/verdict_simulation.csv: where the training set matters, one fixed split read a false
        # "better" in 0.14 of studies at 5 runs and 0.25 at 10; Nadeau-Bengio over re-drawn splits ~0.06.
        print("decide: note: study.vary_split is false, so every run shares one split; where the training set "
              "matters, more runs on one split make a false 'better' likelier (docs/report.md, Varying the split): "
              "add --set study.vary_split=true", flush=True)
    if dry_run:
        for k, n in enumerate(sizes, 1):
            print(f"look {k}/{looks}: dvc {shlex.join(look_args(overrides, extend(study.seeds, n), looks))}")
        print("dry run: nothing was run")
        return 0
    start, history = time.perf_counter(), []
    for k, n in enumerate(sizes, 1):
        seeds = extend(study.seeds, n)
        args = look_args(overrides, seeds, looks)
        command = f"dvc {shlex.join(args)}"
        print(f"\n=== look {k}/{looks}: {n} seeds per model {seeds}, elapsed {time.perf_counter() - start:.0f} s\n"
              f"$ {command}", flush=True)
        code = runner(args)
        if code != 0:
            raise DvcRunFailed(f"look {k}/{looks}: `{command}` failed with exit code {code}; the runs it "
                               "finished are cached: run decide again to go on")
        pairs = read_pairs(comparison, n)
        history.append(pairs)
        for pair in pairs.values():
            print(f"  {pair['sentence']}")
        undecided = [key for key, pair in pairs.items() if pair["verdict"] not in DECIDED]
        print(f"=== look {k}/{looks} done, elapsed {time.perf_counter() - start:.0f} s: "
              f"{len(pairs) - len(undecided)}/{len(pairs)} pair(s) decided", flush=True)
        if not undecided:
            break
    summary(history, sizes, study.max_seeds, time.perf_counter() - start)
    return 0


def summary(history: list[dict], sizes: list[int], cap: int, elapsed: float) -> None:
    """Each pair's verdict at the last look and since how many runs per model it has held."""
    final, n = history[-1], sizes[len(history) - 1]
    capped = any(pair["verdict"] not in DECIDED for pair in final.values())
    print(f"\ndecide: stopped after {len(history)} of {len(sizes)} look(s) at {n} runs per model "
          f"({'the cap, study.max_seeds' if capped else 'every pair decided'}), {elapsed:.0f} s")
    if not final:
        print("  no pair of models: nothing to decide")
    for key, pair in final.items():
        if pair["verdict"] in DECIDED:
            held = [look[key]["verdict"] == pair["verdict"] for look in history]
            since = sizes[len(held) - held[::-1].index(False)] if False in held else sizes[0]
            winner = f" ({pair['better']})" if pair["verdict"] == "better" and pair.get("better") else ""
            print(f"  {key}: {pair['verdict']}{winner}, decided at {since} runs per model")
        else:
            print(f"  {key}: undecided at the cap ({n} runs per model): {advice(pair, cap)}")


def main(argv: list[str] | None = None, runner: Runner = dvc_runner) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.decide", description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override passed to every `dvc exp run -S` (repeatable), "
                             "e.g. --set +experiment=dogs13")
    parser.add_argument("--dry-run", action="store_true", help="print the schedule and the commands, run nothing")
    args = parser.parse_args(argv)
    try:
        return decide(args.overrides, args.dry_run, runner)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("decide: interrupted; the runs finished so far are cached", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
