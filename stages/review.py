"""A review of the workspace against a git revision, as Markdown: `make review BASE=<rev>`.

Usage: ``python -m stages.review [BASE]`` (default ``HEAD``). Prints, for a pull-request
comment or a terminal:

- the params that changed (``dvc params diff BASE --md``);
- the quality metrics that changed (``dvc metrics diff BASE --md`` over the quality files only:
  data, split, train, eval, comparison, explain, DVC metrics or not) -- timings are machine noise, so they get a
  separate, collapsed section over ``metrics/cost/``;
- the comparison table (``metrics/comparison.md``), the verdicts and the data-size statement of
  ``metrics/comparison.json``, and links to the main figures.

Not a DVC stage: it reads committed metrics through DVC's own diff commands and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Quality only; cost (metrics/cost/) is reported apart.
# Named as targets, a file is read whether or not dvc.yaml declares it `metrics` (most are plain outputs,
# kept out of `dvc exp show`); metrics/summary.json is left out: its quality is in comparison.json.
QUALITY_TARGETS = ("metrics/data.json", "metrics/data_files.json", "metrics/split.json", "metrics/split_classes.json",
                   "metrics/train", "metrics/eval", "metrics/comparison.json", "metrics/explain.json")
COST_TARGETS = ("metrics/cost",)
FIGURES = {"plots/report/study_curves.png": "Training curves and time cost",
           "plots/report/data_size.png": "Data-size curve", "plots/report/runs.png": "Every run"}


def dvc(*args: str) -> str:
    """A DVC command's stdout; its stderr and exit code make a readable failure."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: dvc {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def rows_or_empty(markdown: str) -> str:
    """A diff table, or "" when it has no rows (DVC prints the bare header then)."""
    return markdown if len(markdown.splitlines()) > 2 else ""


def metrics_diff(base: str, targets: tuple[str, ...]) -> str:
    present = [t for t in targets if Path(t).exists()]
    if not present:
        return ""
    return rows_or_empty(dvc("metrics", "diff", base, "--md", "--precision", "4", "--targets", *present))


def section(title: str, body: str, empty: str) -> str:
    return f"## {title}\n\n{body if body else empty}\n"


def review(base: str) -> str:
    parts = [f"# Review: workspace vs `{base}`\n",
             section("Params changed", rows_or_empty(dvc("params", "diff", base, "--md")), "No params changed."),
             section("Quality metrics changed", metrics_diff(base, QUALITY_TARGETS), "No quality metric changed.")]
    cost = metrics_diff(base, COST_TARGETS)
    if cost:
        parts.append(section("Cost metrics changed", "Timings measure the machine: compare ratios, not values.\n\n"
                             f"<details><summary>{cost.count(chr(10)) - 1} rows</summary>\n\n{cost}\n\n</details>",
                             ""))
    comparison = Path("metrics/comparison.md")
    parts.append(section("Comparison", comparison.read_text(encoding="utf-8").strip() if comparison.is_file() else "",
                         "No `metrics/comparison.md`: run `dvc repro` first."))
    summary = Path("metrics/comparison.json")
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        verdicts = [f"- {pair['sentence']}" for pair in data.get("pairs", {}).values()]
        statement = data.get("data_size", {}).get("statement")
        parts.append(section("Verdicts", "\n".join(verdicts + ([f"- Data size: {statement}"] if statement else [])),
                             "No pair of models."))
    figures = [f"- [{title}]({path})" for path, title in FIGURES.items() if Path(path).is_file()]
    parts.append(section("Figures", "\n".join(figures), "No figures."))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.review", description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", default="HEAD", help="the git revision to compare with (default HEAD)")
    print(review(parser.parse_args(argv).base))


if __name__ == "__main__":
    main()
