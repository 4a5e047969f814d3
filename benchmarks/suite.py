"""Benchmark: how long the test suite takes, as `make test` and `make test-fast` run it.

    python benchmarks/suite.py [--runs all fast]

Times `python -m pytest` (all) and `python -m pytest -m "not slow"` (fast) in this checkout, one
after the other, and writes one row per run to benchmarks/suite.csv: the command, the tests that
ran, the seconds, the machine, its cores and the date (a run not repeated keeps its row). The
documentation's run times of `make test` and `make test-fast` (README, Development page) are read
from that file, never typed. Both run with pytest.ini's addopts, two test processes (pytest-xdist),
recorded in the ``processes`` column.
"""

from __future__ import annotations

import argparse
import configparser
import csv
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, child_env, machine, write_csv

OUT = Path(__file__).with_name("suite.csv")
RUNS = {"all": ("make test", []), "fast": ("make test-fast", ["-m", "not slow"])}
FIELDS = ["run", "command", "tests", "processes", "seconds", "machine", "cores", "date"]


def processes() -> str:
    """The test processes pytest.ini asks for (``--numprocesses=N`` in addopts), or 1."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "pytest.ini")
    found = re.search(r"--numprocesses[= ](\S+)", parser.get("pytest", "addopts", fallback=""))
    return found.group(1) if found else "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=RUNS)
    args = parser.parse_args()
    kept = {}
    if OUT.is_file():
        with OUT.open(newline="") as f:
            kept = {r["run"]: r for r in csv.DictReader(f)}
    for run in args.runs:
        command, extra = RUNS[run]
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                              cwd=ROOT, env=child_env(), capture_output=True, text=True)
        seconds = time.perf_counter() - began
        tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"{command}: {tail} ({seconds / 60:.1f} min)")
        if proc.returncode != 0:
            # The failures, so a failed half-hour run is not a second half hour to find out why.
            print("\n".join((proc.stdout + proc.stderr).strip().splitlines()[-80:]), file=sys.stderr)
            sys.exit(f"{command} failed: not recorded")
        ran = sum(int(n) for n in re.findall(r"(\d+) (?:passed|skipped|xfailed|xpassed)", tail))
        kept[run] = {"run": run, "command": command, "tests": ran, "processes": processes(), "seconds": round(seconds, 1),
                     "machine": machine(), "cores": os.cpu_count(),
                     "date": datetime.now(timezone.utc).date().isoformat()}
    write_csv(OUT, [kept[r] for r in RUNS if r in kept], FIELDS, lineterminator="\n")


if __name__ == "__main__":
    main()
