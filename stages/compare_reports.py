"""Check that two report summaries agree: does a fresh run reproduce the committed results?

Usage: ``python -m stages.compare_reports A.json B.json [--metrics accuracy macro_f1]``, with
A and B two ``metrics/comparison.json`` summaries (say, the committed one and a fresh run's copy).
Timings are in ``metrics/cost/comparison.json``, whose ``models`` read the same way: compare two of
those with ``--metrics fit_time_s eval_time_s ...``.

Training is not bit-for-bit reproducible across machines, so equal numbers are too strict a test;
instead each model's mean over runs must agree within the two reports' confidence intervals, and
each pairwise verdict (who is better, or no significant difference) must be the same. The same
for the data-size curve: each point's main-metric mean (model x training-set size) and each
pair's supported crossing (who overtakes whom, or none). A model, metric, pair or curve point
found in only one report is a disagreement that says which report has it.
Prints one line per check and a summary; exits 0 when everything agrees, 1 on any disagreement
and 2 on a file it cannot read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from stages.analysis.run_columns import TIMINGS
from stages.core.errors import DataError

EXACT = 1e-9  # with no interval (a single run) only equal means agree
# Seconds and throughputs measure the machine, not the models: another machine differs by design,
# so they are compared only when named with --metrics. The report keeps them out of comparison.json
# (they are in metrics/cost/comparison.json); a summary written before that split still has them.
MACHINE_DEPENDENT = TIMINGS


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load(path: str) -> dict:
    """The summary at ``path``, checked for the fields this command reads; DataError names the file."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise DataError(f"{path}: no 'models' object")
    if not isinstance(data.get("pairs", {}), dict):
        raise DataError(f"{path}: 'pairs' is not an object")
    for model, metrics in data["models"].items():
        if not isinstance(metrics, dict):
            raise DataError(f"{path}: models.{model} is not an object")
        for metric, s in metrics.items():
            if not (isinstance(s, dict) and _number(s.get("mean"))
                    and (s.get("ci_high") is None or _number(s["ci_high"]))):
                raise DataError(f"{path}: models.{model}.{metric} needs a finite 'mean' and 'ci_high'")
    for pair, p in data.get("pairs", {}).items():
        if not (isinstance(p, dict) and (p.get("better") is None or isinstance(p["better"], str))):
            raise DataError(f"{path}: pairs.{pair} needs 'better' (a model name or null)")
    size = data.get("data_size")
    if size is not None:
        metric = size.get("metric") if isinstance(size, dict) else None
        rows = size.get("curve") if isinstance(size, dict) else None
        if not (isinstance(metric, str) and isinstance(rows, list) and isinstance(size.get("pairs", {}), dict)
                and all(isinstance(r, dict) and "model" in r and "train_percent" in r and _number(r.get(f"{metric}_mean"))
                        for r in rows)):
            raise DataError(f"{path}: data_size needs 'metric', a 'curve' list of points with model, "
                            f"train_percent and <metric>_mean, and 'pairs'")
    return data


def _half_width(s: dict) -> float | None:
    return None if s.get("ci_high") is None else s["ci_high"] - s["mean"]


def means_agree(a: dict, b: dict) -> bool:
    """Whether two summaries of one model's metric are consistent with one true mean.

    The runs behind A and B are independent, so the standard error of mean_A - mean_B is
    sqrt(se_A^2 + se_B^2), and with (nearly) equal t multipliers the half-width of the interval
    of the difference is sqrt(h_A^2 + h_B^2). Asking |mean_A - mean_B| to fall within it is a
    test of equal means at about the reports' confidence level; merely overlapping intervals
    (|diff| <= h_A + h_B) would be far more lenient. Schenker & Gentleman (2001), "On judging the
    significance of differences by examining the overlap between confidence intervals",
    The American Statistician 55(3), 182-186.
    """
    ha, hb = _half_width(a), _half_width(b)
    if ha is None or hb is None:
        return abs(a["mean"] - b["mean"]) <= EXACT
    return abs(a["mean"] - b["mean"]) <= math.hypot(ha, hb)


def _show(s: dict) -> str:
    if s.get("ci_high") is None:
        return f"{s['mean']:.4f} (no CI)"
    low = s["ci_low"] if _number(s.get("ci_low")) else s["mean"] - _half_width(s)
    return f"{s['mean']:.4f} [{low:.4f}, {s['ci_high']:.4f}]"


def _outcome(p: dict) -> str:
    verdict = f"{p['better']} better" if p.get("better") else "no significant difference"
    return f"{verdict} on {p['metric']}" if p.get("metric") else verdict


def _only_in(kind: str, name: str, in_a: bool) -> tuple[bool, str]:
    return False, f"{kind} {name}: only in {'A' if in_a else 'B'}"


def checks(a: dict, b: dict, metrics: list[str] | None = None) -> list[tuple[bool, str]]:
    """(agrees, description) for every model metric and every pairwise verdict."""
    out = []
    models_a, models_b = a["models"], b["models"]
    for model in dict.fromkeys([*models_a, *models_b]):
        if model not in models_a or model not in models_b:
            out.append(_only_in("model", model, model in models_a))
            continue
        ma, mb = models_a[model], models_b[model]
        # Every metric of either report: one a fresh run lost (or gained) is a disagreement, not skipped.
        names = metrics if metrics is not None else [m for m in dict.fromkeys([*ma, *mb])
                                                     if m not in MACHINE_DEPENDENT]
        for metric in names:
            if metric not in ma or metric not in mb:
                where = "neither" if metric not in ma and metric not in mb else ("A" if metric in ma else "B")
                out.append((False, f"{model} {metric}: only in {where}"))
                continue
            ok = means_agree(ma[metric], mb[metric])
            out.append((ok, f"{model} {metric}: A {_show(ma[metric])}  B {_show(mb[metric])}"))
    out += _pair_checks(a.get("pairs", {}), b.get("pairs", {}), _outcome, "pair", "")
    if "data_size" in a or "data_size" in b:
        out += curve_checks(a.get("data_size"), b.get("data_size"))
    return out


def _curve_points(size: dict) -> dict[tuple[str, int], dict]:
    metric = size["metric"]
    return {(r["model"], int(r["train_percent"])): {"mean": r[f"{metric}_mean"], "ci_low": r.get(f"{metric}_ci_low"),
                                                   "ci_high": r.get(f"{metric}_ci_high")} for r in size["curve"]}


def _crossing(c: dict) -> str:
    x = c.get("crossing")
    return f"{x['winner']} overtakes {x['loser']}" if x else "no supported crossing"


def curve_checks(a: dict | None, b: dict | None) -> list[tuple[bool, str]]:
    """The data-size curve: every point's mean (model x size) and every pair's crossing."""
    if a is None or b is None:
        return [(False, f"data-size curve: only in {'A' if a is not None else 'B'}")]
    if a["metric"] != b["metric"]:
        return [(False, f"data-size curve: A on {a['metric']}  B on {b['metric']}")]
    out = []
    points_a, points_b = _curve_points(a), _curve_points(b)
    for key in dict.fromkeys([*points_a, *points_b]):
        label = f"curve {key[0]} at {key[1]} %"
        if key not in points_a or key not in points_b:
            out.append(_only_in("curve point", f"{key[0]} at {key[1]} %", key in points_a))
            continue
        pa, pb = points_a[key], points_b[key]
        out.append((means_agree(pa, pb), f"{label} {a['metric']}: A {_show(pa)}  B {_show(pb)}"))
    return out + _pair_checks(a.get("pairs", {}), b.get("pairs", {}), _crossing, "curve pair", "curve ")


def _pair_checks(pairs_a: dict, pairs_b: dict, outcome, kind: str, prefix: str) -> list[tuple[bool, str]]:
    """Every pair's ``outcome`` (a verdict, a crossing) must read the same in both reports."""
    out = []
    for pair in dict.fromkeys([*pairs_a, *pairs_b]):
        if pair not in pairs_a or pair not in pairs_b:
            out.append(_only_in(kind, pair, pair in pairs_a))
            continue
        oa, ob = outcome(pairs_a[pair]), outcome(pairs_b[pair])
        out.append((oa == ob, f"{prefix}{pair}: A {oa}  B {ob}"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.compare_reports", description=__doc__.splitlines()[0])
    parser.add_argument("a", metavar="A.json", help="a report summary (metrics/comparison.json)")
    parser.add_argument("b", metavar="B.json", help="the summary to check it against")
    parser.add_argument("--metrics", nargs="+",
                        help="only these metrics (default: every metric in either but times and throughputs)")
    args = parser.parse_args(argv)
    try:
        a, b = load(args.a), load(args.b)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = checks(a, b, args.metrics)
    for ok, text in results:
        print(f"{'agree' if ok else 'DISAGREE':<8}  {text}")
    bad = sum(not ok for ok, _ in results)
    print(f"{len(results)} checks: {len(results) - bad} agree, {bad} disagree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
