"""Check that two report summaries agree: does a fresh run reproduce the committed results?

Usage: ``python -m stages.compare_reports A.json B.json [--metrics accuracy macro_f1]``, with
A and B two ``metrics/comparison.json`` summaries (say, the committed one and a fresh run's copy).
Timings are in ``metrics/cost/comparison.json``, whose ``models`` read the same way: compare two of
those with ``--metrics fit_time_s eval_time_s ...``.

Training is not bit-for-bit reproducible across machines, so equal numbers are too strict a test;
reproduction means no contradiction. Each model's mean over runs must agree within the two
reports' confidence intervals. Each pair's verdict (stages/analysis/verdicts.py) reads as one of
"<name> better", "equivalent" (within the report's margin, by TOST) or "undecided", on the pair's
metric, and the two reports' verdicts are compared three ways:

- the same verdict (and the same better model) in both: they agree;
- both decided, differently (one model better in A, the other in B; better in one, equivalent
  in the other), or on different metrics: a contradiction, printed ``DISAGREE``;
- one undecided, the other decided: a soft difference, printed ``SOFT``. It is listed, but it is
  no failure: "undecided" claims nothing that a decision could contradict (a verdict near its
  threshold can land on either side with other runs).

A summary written before the three verdicts (pairs and curve points with ``better`` and
``significant``, ``verdict`` holding a sentence) reads as "<better> better" where it names a
better model, else as "undecided": "no significant difference" was never a decision.
The same for the data-size curve: each point's main-metric mean (model x training-set size) must
agree as above, each pair's supported crossing (who overtakes whom, or none) must be the same, and
each pair's verdict at each training size is compared by the three-way rule, the sizes matched by
``x`` (training images per class), or by position where neither point has ``x``. A model, metric,
pair or curve point (a model's or a pair's) found in only one report is a disagreement that says
which report has it.
Prints one line per check (``agree``, ``SOFT`` or ``DISAGREE``) and a summary counting the three;
exits 0 when nothing disagrees (soft differences do not count), 1 on any disagreement and 2 on a
file it cannot read.
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
# The verdict labels of stages.analysis.verdicts.VERDICTS (not imported: that module loads scipy,
# and this check only reads JSON; a test keeps the two the same).
VERDICTS = ("better", "equivalent", "undecided")
# A check's status besides True (agree) and False (disagree): one report undecided where the other
# decided. Truthy, as it is no contradiction.
SOFT = "soft"
Check = tuple[bool | str, str]  # (status: True, False or SOFT; the line that describes it)


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
        _check_verdict(path, f"pairs.{pair}", p)
    size = data.get("data_size")
    if size is not None:
        metric = size.get("metric") if isinstance(size, dict) else None
        rows = size.get("curve") if isinstance(size, dict) else None
        if not (isinstance(metric, str) and isinstance(rows, list) and isinstance(size.get("pairs", {}), dict)
                and all(isinstance(r, dict) and "model" in r and "train_percent" in r and _number(r.get(f"{metric}_mean"))
                        for r in rows)):
            raise DataError(f"{path}: data_size needs 'metric', a 'curve' list of points with model, "
                            f"train_percent and <metric>_mean, and 'pairs'")
        for pair, c in size.get("pairs", {}).items():
            if not (isinstance(c, dict) and isinstance(c.get("points", []), list)):
                raise DataError(f"{path}: data_size.pairs.{pair} needs a 'points' list")
            for i, point in enumerate(c.get("points", [])):
                _check_verdict(path, f"data_size.pairs.{pair}.points[{i}]", point)
    return data


def _check_verdict(path: str, where: str, p) -> None:
    """A pair (or curve point) object whose ``better`` is a name or null, and agrees with a verdict label."""
    if not (isinstance(p, dict) and (p.get("better") is None or isinstance(p["better"], str))):
        raise DataError(f"{path}: {where} needs 'better' (a model name or null)")
    if p.get("verdict") in VERDICTS and (p["verdict"] == "better") != (p.get("better") is not None):
        raise DataError(f"{path}: {where}: verdict '{p['verdict']}' needs 'better' to be "
                        f"{'a model name' if p['verdict'] == 'better' else 'null'}")


def _half_width(s: dict) -> float | None:
    return None if s.get("ci_high") is None else s["ci_high"] - s["mean"]


# Metrics that count test images (a share of them, or F1 built from such counts): an interval of zero
# width -- every run the same value, as at the 1.000 ceiling -- is widened to one test image, the
# finest difference the metric can show, so a ceiling is not read as a certainty.
PER_IMAGE = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1")


def _test_images(report: dict) -> int | None:
    """The test images behind a report's means: its own record, else any pair's (older reports)."""
    if _number(report.get("test_images")):
        return int(report["test_images"])
    return next((int(p["n_images"]) for p in report.get("pairs", {}).values()
                 if isinstance(p, dict) and _number(p.get("n_images"))), None)


def means_agree(a: dict, b: dict, resolution: float = 0.0) -> bool:
    """Whether two summaries of one model's metric are consistent with one true mean.

    The runs behind A and B are independent, so the standard error of mean_A - mean_B is
    sqrt(se_A^2 + se_B^2), and with (nearly) equal t multipliers the half-width of the interval
    of the difference is sqrt(h_A^2 + h_B^2). Asking |mean_A - mean_B| to fall within it is a
    test of equal means at about the reports' confidence level; merely overlapping intervals
    (|diff| <= h_A + h_B) would be far more lenient. Schenker & Gentleman (2001), "On judging the
    significance of differences by examining the overlap between confidence intervals",
    The American Statistician 55(3), 182-186. ``resolution``: the smallest step the metric takes (one
    test image); a zero-width interval of several runs is widened to it.
    """
    ha, hb = _half_width(a), _half_width(b)
    if ha is None or hb is None:
        return abs(a["mean"] - b["mean"]) <= EXACT
    ha, hb = (h if h > 0 else resolution for h in (ha, hb))
    return abs(a["mean"] - b["mean"]) <= math.hypot(ha, hb)


def _show(s: dict) -> str:
    if s.get("ci_high") is None:
        return f"{s['mean']:.4f} (no CI)"
    low = s["ci_low"] if _number(s.get("ci_low")) else s["mean"] - _half_width(s)
    return f"{s['mean']:.4f} [{low:.4f}, {s['ci_high']:.4f}]"


def _verdict(p: dict) -> str:
    """"<name> better", "equivalent" or "undecided"; a summary from before the labels by its ``better``."""
    label = p.get("verdict") if p.get("verdict") in VERDICTS else ("better" if p.get("better") else "undecided")
    return f"{p['better']} better" if label == "better" else label


def _outcome(p: dict, metric: str | None) -> str:
    return f"{_verdict(p)} on {metric}" if metric else _verdict(p)


def _verdict_check(label: str, pa: dict, pb: dict, metric_a: str | None, metric_b: str | None) -> Check:
    """Agree (True), a contradiction (False) or a soft difference (SOFT): one undecided, the other decided."""
    va, vb = _verdict(pa), _verdict(pb)
    if metric_a != metric_b or (va != vb and "undecided" not in (va, vb)):
        ok = False
    else:
        ok = True if va == vb else SOFT
    return ok, f"{label}: A {_outcome(pa, metric_a)}  B {_outcome(pb, metric_b)}"


def _only_in(kind: str, name: str, in_a: bool) -> tuple[bool, str]:
    return False, f"{kind} {name}: only in {'A' if in_a else 'B'}"


def checks(a: dict, b: dict, metrics: list[str] | None = None) -> list[Check]:
    """(status, description) for every model metric, every pairwise verdict and the data-size curve.

    status: True agrees, False disagrees (a contradiction), SOFT (truthy) one report's verdict is
    undecided where the other's decided.
    """
    out = []
    models_a, models_b = a["models"], b["models"]
    sizes = [n for n in (_test_images(a), _test_images(b)) if n]
    resolution = 1 / min(sizes) if sizes else 0.0
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
            ok = means_agree(ma[metric], mb[metric], resolution if metric in PER_IMAGE else 0.0)
            out.append((ok, f"{model} {metric}: A {_show(ma[metric])}  B {_show(mb[metric])}"))
    out += _pair_checks(a.get("pairs", {}), b.get("pairs", {}), "pair", lambda key, pa, pb: [
        _verdict_check(key, pa, pb, pa.get("metric"), pb.get("metric"))])
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


def _size_label(point: dict, i: int) -> str:
    return f"at {point['x']:g} images per class" if _number(point.get("x")) else f"at point {i + 1}"


def _curve_pair(metric: str):
    """A curve pair's checks: its crossing, then its verdict at every training size of either report."""
    def check(key: str, pa: dict, pb: dict) -> list[Check]:
        oa, ob = _crossing(pa), _crossing(pb)
        out = [(oa == ob, f"curve {key}: A {oa}  B {ob}")]
        sizes_a, sizes_b = ({_size_label(p, i): p for i, p in enumerate(c.get("points", []))} for c in (pa, pb))
        for size in dict.fromkeys([*sizes_a, *sizes_b]):
            if size not in sizes_a or size not in sizes_b:
                out.append(_only_in("curve point", f"{key} {size}", size in sizes_a))
                continue
            out.append(_verdict_check(f"curve {key} {size}", sizes_a[size], sizes_b[size], metric, metric))
        return out
    return check


def curve_checks(a: dict | None, b: dict | None) -> list[Check]:
    """The data-size curve: every point's mean (model x size), every pair's crossing and its verdict at each size."""
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
    return out + _pair_checks(a.get("pairs", {}), b.get("pairs", {}), "curve pair", _curve_pair(a["metric"]))


def _pair_checks(pairs_a: dict, pairs_b: dict, kind: str, check) -> list[Check]:
    """``check(key, pair_a, pair_b)`` for every pair in both reports; one in only one is a disagreement."""
    out = []
    for pair in dict.fromkeys([*pairs_a, *pairs_b]):
        if pair not in pairs_a or pair not in pairs_b:
            out.append(_only_in(kind, pair, pair in pairs_a))
            continue
        out += check(pair, pairs_a[pair], pairs_b[pair])
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
        print(f"{'SOFT' if ok == SOFT else 'agree' if ok else 'DISAGREE':<8}  {text}")
    bad, soft = sum(not ok for ok, _ in results), sum(ok == SOFT for ok, _ in results)
    print(f"{len(results)} checks: {len(results) - bad - soft} agree, {soft} soft, {bad} disagree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
