"""Benchmark: do the fast tests fail when the pure-Python logic breaks? A mutation score per module.

mutmut (requirements-dev.txt) plants one small fault at a time -- a flipped comparison, an
off-by-one, a swapped argument, a dropped keyword, a changed message -- into the modules of
:data:`GROUPS`, and runs the fast tests (`pytest -m "not slow"`) of the group's test files that
reach the mutated function. A mutant the tests fail on is *killed*; one they pass is a *survivor*:
a behaviour no test pins down, unless the mutant is equivalent (behaves exactly as the original),
which `benchmarks/mutation_equivalent.csv` lists with the reason.

    pip install -r requirements-dev.txt
    python benchmarks/mutation.py                       # every group
    python benchmarks/mutation.py --modules stages/training/subsets.py --tests tests/test_subsets.py

Each group runs in a scratch copy of the repository (as benchmarks/pipeline.py makes it), so this
checkout is never touched. Writes benchmarks/mutation.csv (one row per module: mutants, killed,
survived, timeout, other -- no test reaches it --, equivalent, score = (killed + timeout) /
(mutants - equivalent), the tests run, the group's seconds, machine, date) and
benchmarks/mutation_survivors.md (every survivor's diff, equivalent ones with their reason).
Target: score >= 0.80 in every module (tests/test_suite.py checks the committed CSV). Not run in CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from common import ROOT, copy_repo, machine, write_csv

HERE = Path(__file__).parent
OUT = HERE / "mutation.csv"
SURVIVORS = HERE / "mutation_survivors.md"
EQUIVALENT = HERE / "mutation_equivalent.csv"

# The pure-Python modules whose logic decides what a reader concludes -- statistics, the report's
# tables and figure data, the comparison of two reports, training subsets, label and class selection,
# params and the output layout -- each group with the fast test files that exercise it. A group runs
# only its own tests: a mutant killed there is killed by the suite, so the score is a lower bound,
# and the report modules skip the end-to-end report tests (5-20 s each, hours over ~750 mutants).
GROUPS = [
    (["stages/analysis/over_runs.py", "stages/analysis/compare.py"], ["tests/test_over_runs.py", "tests/test_compare.py"]),
    (["stages/analysis/report_stats.py", "stages/analysis/report_tables.py", "stages/analysis/report_figures.py"],
     ["tests/test_report_units.py"]),
    (["stages/compare_reports.py"], ["tests/test_compare_reports.py"]),
    (["stages/training/subsets.py"], ["tests/test_subsets.py"]),
    (["stages/data/labels.py", "stages/data/selection.py"], ["tests/test_balance.py", "tests/test_selection_and_labels.py"]),
    (["stages/core/params.py", "stages/core/layout.py"], ["tests/test_params.py", "tests/test_layout.py"]),
]
# mutmut's exit-code classes, as its `results` command names them.
KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"


def config(modules: list[str], tests: list[str]) -> str:
    """mutmut's [mutmut] section: mutate only `modules`, run the fast tests among `tests` from the copy's root."""
    lines = ["[mutmut]", "source_paths = stages", "only_mutate ="]
    lines += [f"    {m}" for m in modules]
    # `-n 0`: pytest.ini asks pytest-xdist for two processes; mutmut reads each test's outcome in its own process.
    lines += ["pytest_add_cli_args =", "    -n", "    0", "    -m", "    not slow", "    -p", "    no:cacheprovider",
              "pytest_add_cli_args_test_selection ="]
    lines += [f"    {t}" for t in tests]
    lines += ["also_copy ="]
    # Files the tests read beside tests/ and stages/.
    lines += [f"    {p}" for p in ("pytest.ini", "sitecustomize.py", "conf", "params.yaml", "dvc.yaml", "README.md", "Makefile",
                                   "docs", "mkdocs.yml",
                                   "requirements.txt", "benchmarks", "vendor", ".dvc", ".ci", ".github",
                                   ".gitignore", ".dvcignore", "data", "metrics", "plots")]
    return "\n".join(lines) + "\n"


# A mutated module calls into mutmut, which reads its setup.cfg from the current folder. Some fast
# tests start Python in a scratch folder (a stage run in a subprocess, PYTHONPATH set to the
# repository): Python imports this file from PYTHONPATH at start-up, and it loads mutmut's config
# from the scratch copy first, so those tests run their mutants instead of failing on a missing
# setup.cfg.
SITECUSTOMIZE = """\
import os
from pathlib import Path

work = Path(__file__).resolve().parent.parent  # mutants/ -> the scratch copy holding setup.cfg
if os.environ.get("MUTANT_UNDER_TEST") and (work / "setup.cfg").is_file():
    here = os.getcwd()
    os.chdir(work)
    try:
        from mutmut.configuration import config
        config()
    finally:
        os.chdir(here)
"""


def mutmut(args: list[str], cwd: Path, capture: bool = True) -> subprocess.CompletedProcess:
    """Run mutmut in the scratch copy; uncaptured, its progress line shows on the terminal."""
    exe = Path(sys.executable).with_name("mutmut")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=capture, text=True)
    if proc.returncode:
        detail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}" if capture else "(its output is above)"
        sys.exit(f"mutmut {' '.join(args)} failed ({proc.returncode}) in {cwd}: {detail}")
    return proc


def statuses(work: Path, module: str) -> dict[str, str]:
    """Mutant name -> mutmut's status, from the .meta file mutmut writes beside each mutated module."""
    from mutmut.stats import status_by_exit_code  # mutmut's own mapping of a test run's exit code

    meta = json.loads((work / "mutants" / f"{module}.meta").read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}


def equivalents() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    with EQUIVALENT.open(newline="") as f:
        return {row["mutant"]: row["why"] for row in csv.DictReader(f)}


def run_group(modules: list[str], tests: list[str], work: Path, known: dict[str, str]) -> tuple[list, list]:
    """mutmut over `modules` with `tests` in the scratch copy `work`: CSV rows and the survivors' report."""
    print(f"\n== {', '.join(modules)}: tests {' '.join(tests)} (copy in {work})", flush=True)
    copy_repo(work)
    (work / "setup.cfg").write_text(config(modules, tests))
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)  # mutmut copies it into mutants/ (also_copy)
    start = time.monotonic()
    mutmut(["run"], work, capture=False)
    seconds = round(time.monotonic() - start)
    rows, report = [], []
    for module in modules:
        status = statuses(work, module)
        counts = Counter(status.values())
        survivors = sorted((n for n, s in status.items() if s == SURVIVED), key=lambda n: (len(n), n))
        equivalent = [n for n in survivors if n in known]
        other = len(status) - counts[KILLED] - counts[SURVIVED] - counts[TIMEOUT]  # e.g. no test reaches it
        judged = len(status) - len(equivalent)
        rows.append({"module": module, "mutants": len(status), "killed": counts[KILLED],
                     "survived": counts[SURVIVED], "timeout": counts[TIMEOUT], "other": other,
                     "equivalent": len(equivalent),
                     # A timeout is a detected fault too (the mutant hung where the original did not).
                     "score": round((counts[KILLED] + counts[TIMEOUT]) / judged, 3) if judged else 1.0,
                     "tests": " ".join(tests), "seconds": seconds})
        if survivors:
            report += [f"## {module}: {len(survivors)} survived, {len(equivalent)} of them equivalent", ""]
            for name in survivors:
                diff = mutmut(["show", name], work).stdout.strip()
                why = f"Equivalent: {known[name]}" if name in known else "**Not killed by any test.**"
                report += [f"### `{name}`", "", why, "", "```diff", diff, "```", ""]
    return rows, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", help="mutate only these modules (default: every group's)")
    parser.add_argument("--tests", nargs="+", help="with --modules: the test files to run (default: tests/)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--survivors", type=Path, default=SURVIVORS)
    args = parser.parse_args()
    groups = [(args.modules, args.tests or ["tests"])] if args.modules else GROUPS
    if args.tests and not args.modules:
        parser.error("--tests needs --modules")
    for modules, tests in groups:
        for path in modules + tests:
            if not (ROOT / path).exists():
                sys.exit(f"{path} is not a file of this repository")

    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="mutation-")
    work = args.workdir or Path(tmp.name)
    known = equivalents()
    rows, report = [], ["# Surviving mutants", "",
                        "Written by `benchmarks/mutation.py`; equivalent mutants are listed in "
                        "`benchmarks/mutation_equivalent.csv` with the reason.", ""]
    for i, (modules, tests) in enumerate(groups):
        group_rows, group_report = run_group(modules, tests, work / f"group{i}", known)
        rows += group_rows
        report += group_report

    today, where = date.today().isoformat(), machine()
    write_csv(args.out, [{**row, "machine": where, "date": today} for row in rows])
    args.survivors.write_text("\n".join(report))

    width = max(len(r["module"]) for r in rows)
    print(f"\n{'module':<{width}}  mutants  killed  survived  other  equivalent  score")
    for r in rows:
        flag = "" if r["score"] >= 0.8 else "  < 0.80"
        print(f"{r['module']:<{width}}  {r['mutants']:7}  {r['killed']:6}  {r['survived']:8}  {r['other']:5}"
              f"  {r['equivalent']:10}  {r['score']:.3f}{flag}")
    print(f"\n{sum(r['seconds'] for r in {r['tests']: r for r in rows}.values())} s on {where}; "
          f"wrote {args.out} and {args.survivors}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
