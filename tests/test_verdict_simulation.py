"""The shipped verdicts on synthetic studies of known truth (benchmarks/verdict_simulation.py, small):
A/A studies rarely read "better", a real 5-point difference usually does. A few seconds."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _simulation():
    """benchmarks/verdict_simulation.py as a module (its sibling common.py on the path)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("verdict_simulation_benchmark", BENCH / "verdict_simulation.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclass looks its module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_shipped_verdicts_keep_the_family_wise_false_better_rate_and_find_a_real_difference():
    sim, alpha, studies = _simulation(), 0.05, 300
    # Three equal models, 180 test images (the default test set), 10 runs each: the test images' sampling
    # error dominates, which a t-test over seeds ignores. Today's over_runs.compare_models reads a false
    # "better" in ~0.24 of these studies (benchmarks/verdict_simulation.csv: 0.239); the bound is ~0.088.
    null = sim.simulate(sim.World(), 180, 0.0, studies, runs=(10,), seed=1)
    rate = null["shipped", 10]["family"].mean()
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / studies), rate
    # A 5-point difference, 1000 test images, 5 runs: found in ~0.9 of these studies (today's t-test: ~0.9 too).
    real = sim.simulate(sim.World(), 1000, 0.05, 100, runs=(5,), seed=1)["shipped", 5]
    assert (real["sign"] > 0).mean() > 0.5 and not (real["sign"] < 0).any()


def test_with_redrawn_splits_nadeau_bengio_holds_the_rate_where_one_fixed_split_does_not():
    # A world where the training set matters as much as the seed: 10 runs on one fixed split read a false
    # "better" in ~0.25 of studies (benchmarks/verdict_simulation.csv), Nadeau-Bengio over re-drawn
    # splits in ~0.06.
    sim, alpha, studies = _simulation(), 0.05, 300
    null = sim.simulate_resampled(sim.World(sigma_train=0.3), 180, 0.0, studies, runs=(10,), seed=1)
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / studies)
    nb, fixed = null["nadeau-bengio", 10]["family"].mean(), null["shipped fixed split", 10]["family"].mean()
    assert nb <= bound < fixed, (nb, fixed)


def expected_table(csv_path: Path) -> str:
    """The docs' table of the simulation, built here from the committed CSV (one row per method x N x n)."""
    import csv

    with csv_path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["design"] == "fixed"]
    at = {(r["method"], r["N"], r["n"], float(r["delta"])): r for r in rows}
    lines = ['| method | test images | runs | false "better", 3 equal models | "equivalent" when equal | '
             '95 % CI covers the truth | power at 1 / 2 / 5 points |', "|---|---|---|---|---|---|---|"]
    for method, label in (("shipped", "three verdicts (shipped)"), ("t-test", "paired t over seeds (before)")):
        for size in ("180", "1000"):
            for n in ("3", "5", "10"):
                null = at[method, size, n, 0.0]
                power = " / ".join(f"{float(at[method, size, n, d]['better_right']):.2f}" for d in (0.01, 0.02, 0.05))
                equivalent = f"{float(null['equivalent']):.3f}" if null["equivalent"] else "n/a"
                lines.append(f"| {label} | {int(size):,} | {n} | {float(null['false_better_family']):.3f} | "
                             f"{equivalent} | {float(null['coverage']):.3f} | {power} |")
    return "\n".join(lines)


def test_the_docs_table_is_generated_from_the_committed_csv():
    """docs/report.md shows the simulation's table through a marker that docs/generate.py fills in from
    benchmarks/verdict_simulation.csv at build time: the table is the CSV, never typed."""
    import importlib.util

    repo = Path(__file__).parents[1]
    assert "<!-- gen:verdict_simulation -->" in (repo / "docs" / "report.md").read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("docs_generate", repo / "docs" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    table = generate.verdict_simulation_table().split("\n\n", 1)[0]
    assert table == expected_table(repo / "benchmarks" / "verdict_simulation.csv")
