"""Statistics over repeated training runs: one value per training seed and model.

Every model is trained once per seed on the same data splits, so run ``i`` of
model A and run ``i`` of model B share everything but the architecture: the
comparison is paired by seed. Per model we report the mean and a Student t
interval over runs; per pair the paired t-test (the headline, with its interval
of the mean difference) and the Wilcoxon signed-rank test (a check that needs
no normality), both Holm-corrected across all pairs because every pair is one
more chance of a false positive.

With a handful of seeds the t-test is the only one of the two that can reach
significance at all: the exact Wilcoxon p-value cannot go below 2 / 2**n
(0.25 for 3 runs).
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

# Differences within this (relative) tolerance count as equal: two metrics computed the same way
# can differ by float rounding (~1e-16), which would otherwise make a "constant" difference look
# barely variable and give a t statistic of 1e15 instead of a clean, documented edge case.
_TOL = 1e-12


def _values(values: Sequence[float], name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {x.tolist()}")
    return x


def _t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    if std == 0:  # scipy answers nan for scale 0; the interval of a constant is that constant
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / np.sqrt(n))
    return float(low), float(high)


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict:
    """n, mean, sample std (ddof=1) and the t interval of the mean; no spread from a single run."""
    x = _values(values)
    n, mean = int(x.size), float(np.mean(x))
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(np.std(x, ddof=1))
    low, high = _t_interval(mean, std, n, confidence)
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order."""
    if len(p_values) == 0:
        return []
    return [float(p) for p in multipletests(list(p_values), method="holm")[1]]


def paired_runs(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Paired comparison of two models' runs (same seed order): mean of a - b, its t interval, t and Wilcoxon p.

    Edge cases, where scipy would answer nan or raise:
    - fewer than 2 runs: nothing is testable, so the interval and both p-values are None;
    - every difference zero: no evidence of a difference, so both p-values are 1.0;
    - every difference equal but nonzero (n >= 2): the t statistic is infinite and t_p is 0.0,
      the limit of the test as the spread shrinks (and what scipy returns when the differences are
      bit-identical); the interval collapses to the difference. With a single run there is no
      spread to speak of, hence None above. The Wilcoxon p stays finite (the exact 2 / 2**n), so a
      seed that changes nothing (every run identical) is visible as t_p = 0 next to a modest wilcoxon_p.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b need one value per seed each: {x.size} vs {y.size}")
    d = x - y
    n, diff = int(d.size), float(np.mean(d))
    out = {"n": n, "diff_mean": diff, "diff_ci_low": None, "diff_ci_high": None, "t_p": None, "wilcoxon_p": None}
    if n < 2:
        return out
    tol = _TOL * max(1.0, float(np.max(np.abs(np.concatenate([x, y])))))
    d = np.where(np.abs(d) <= tol, 0.0, d)
    constant = float(np.ptp(d)) <= tol
    if constant:
        diff = float(np.mean(d))
        out.update(diff_mean=diff, diff_ci_low=diff, diff_ci_high=diff, t_p=1.0 if diff == 0 else 0.0)
    else:
        low, high = _t_interval(diff, float(np.std(d, ddof=1)), n, confidence)
        out.update(diff_ci_low=low, diff_ci_high=high, t_p=float(stats.ttest_rel(x, y).pvalue))
    out["wilcoxon_p"] = 1.0 if not np.any(d) else float(stats.wilcoxon(d, alternative="two-sided").pvalue)
    return out


def _holm_keeping_none(p_values: list) -> list:
    """Holm over the p-values that exist; a None (untestable pair) stays None and does not count."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted = dict(zip(present, holm([p_values[i] for i in present])))
    return [adjusted.get(i) for i in range(len(p_values))]


def compare_models(values: dict[str, list[float]], alpha: float = 0.05, confidence: float = 0.95) -> dict[str, dict]:
    """:func:`paired_runs` for every pair of models (insertion order), keyed ``"<a>_vs_<b>"``, Holm-corrected.

    ``significant`` is the Holm-corrected t-test at ``alpha``; ``better`` names the model with the
    higher mean when significant (higher is better), else None.
    """
    names = list(values)
    pairs = {f"{a}_vs_{b}": (a, b, paired_runs(values[a], values[b], confidence)) for a, b in combinations(names, 2)}
    results = [r for _, _, r in pairs.values()]
    for test in ("t_p", "wilcoxon_p"):
        for r, p in zip(results, _holm_keeping_none([r[test] for r in results])):
            r[f"{test}_holm"] = p
    for a, b, r in pairs.values():
        r["significant"] = r["t_p_holm"] is not None and r["t_p_holm"] < alpha
        r["better"] = (a if r["diff_mean"] > 0 else b) if r["significant"] else None
    return {key: r for key, (_, _, r) in pairs.items()}


def _num(x: float) -> str:
    # Same p-value format as stages.analysis.compare: 2 significant digits, scientific below 0.001.
    return f"{x:.2g}" if abs(x) >= 0.001 or x == 0 else f"{x:.1e}"


def verdict(name_a: str, name_b: str, metric_label: str, pair: dict, alpha: float, *,
            confidence: float = 0.95) -> str:
    """One plain sentence on a :func:`paired_runs` / :func:`compare_models` result.

    Uses the Holm-corrected t-test p-value when the pair has one, else the raw one.
    """
    n, diff = pair["n"], pair["diff_mean"]
    runs = f"{n} run" if n == 1 else f"{n} runs"
    if n < 2 or pair["t_p"] is None:
        return (f"{name_a} vs {name_b} on {metric_label} not testable: only {runs} "
                f"({name_a} - {name_b} = {diff:+.3f})")
    corrected = "t_p_holm" in pair and pair["t_p_holm"] is not None
    p = pair["t_p_holm"] if corrected else pair["t_p"]
    p_text = f"{'Holm-corrected ' if corrected else ''}p = {_num(p)}"
    level = f"{100 * confidence:g}% CI"
    if p < alpha:
        # State the difference as winner - loser, so it reads as a positive margin.
        sign = 1 if diff > 0 else -1
        better, worse = (name_a, name_b) if sign > 0 else (name_b, name_a)
        low, high = sorted((sign * pair["diff_ci_low"], sign * pair["diff_ci_high"]))
        return (f"{better} better than {worse} on {metric_label} by {sign * diff:+.3f} "
                f"({level} {low:+.3f} to {high:+.3f}; paired t-test over {runs}, {p_text})")
    return (f"no significant difference between {name_a} and {name_b} on {metric_label}: "
            f"{name_a} - {name_b} = {diff:+.3f} ({level} {pair['diff_ci_low']:+.3f} to "
            f"{pair['diff_ci_high']:+.3f}; paired t-test over {runs}, {p_text})")


def curve_comparisons(values: dict[str, dict[float, list[float]]], alpha: float = 0.05,
                      confidence: float = 0.95) -> dict[str, dict]:
    """:func:`paired_runs` for every pair of models at every training size both have, and where they cross.

    ``values[model][x]``: the per-seed values at training size ``x`` (same seed order for every
    model at a given x; runs at one size used the same images, so the pairing holds per size).
    The t-test p-values of all pairs and sizes are Holm-corrected together, as one family: every
    (pair, size) test is one more chance of a false positive, and "the curves cross" is read off
    several of them at once. Pairs are keyed ``"<a>_vs_<b>"`` (insertion order), each with:

    - ``points``: one per shared size, ascending x: ``{"x", **paired_runs, "t_p_holm", "significant",
      "better"}`` (``better`` names the model with the higher mean when significant, else None);
    - ``crossing``: the first *supported* reversal, None if none: one model significantly better at
      a size, the other significantly better at a larger one. ``x_below`` is the last size before
      ``x_above`` where the loser was significantly better; diffs are winner minus loser;
    - ``mean_crossing``: the first sign change of the mean difference between consecutive sizes
      (zero differences skipped), significant or not, None if none: a crossing the runs may not support.
    """
    names = list(values)
    pairs = {f"{a}_vs_{b}": (a, b, [{"x": x, **paired_runs(values[a][x], values[b][x], confidence)}
                                    for x in sorted(set(values[a]) & set(values[b]))])
             for a, b in combinations(names, 2)}
    points = [p for _, _, pts in pairs.values() for p in pts]
    for point, p in zip(points, _holm_keeping_none([p["t_p"] for p in points])):
        point["t_p_holm"] = p
    out = {}
    for key, (a, b, pts) in pairs.items():
        for p in pts:
            p["significant"] = p["t_p_holm"] is not None and p["t_p_holm"] < alpha
            p["better"] = (a if p["diff_mean"] > 0 else b) if p["significant"] else None
        out[key] = {"points": pts, "crossing": _crossing(a, pts), "mean_crossing": _mean_crossing(a, b, pts)}
    return out


def _crossing(a: str, points: list[dict]) -> dict | None:
    last = {}  # model -> its last point where it was significantly better
    for p in points:
        if not p["significant"]:
            continue
        winner = p["better"]
        loser = next((m for m in last if m != winner), None)
        if loser is not None:
            below, sign = last[loser], 1 if winner == a else -1  # diff_mean is a - b
            return {"winner": winner, "loser": loser, "x_below": below["x"], "x_above": p["x"],
                    "diff_below": sign * below["diff_mean"], "diff_above": sign * p["diff_mean"],
                    "p_below": below["t_p_holm"], "p_above": p["t_p_holm"]}
        last[winner] = p
    return None


def _mean_crossing(a: str, b: str, points: list[dict]) -> dict | None:
    signed = [p for p in points if p["diff_mean"] != 0]
    for below, above in zip(signed, signed[1:]):
        if (below["diff_mean"] > 0) != (above["diff_mean"] > 0):
            return {"x_below": below["x"], "x_above": above["x"], "winner": a if above["diff_mean"] > 0 else b}
    return None


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def crossing_sentence(comparisons: dict, metric_label: str, x_label: str = "training images per class") -> str:
    """One sentence on :func:`curve_comparisons`: which model overtakes which, and where, if the runs support it.

    A reversal counts only when both sides are significant (Holm-corrected); otherwise the sentence
    says why there is none, so a crossing of the mean curves within noise is not read as a finding.
    """
    crossings = [c["crossing"] for c in comparisons.values() if c["crossing"] is not None]
    if crossings:
        return "; ".join(
            f"{c['winner']} overtakes {c['loser']} on {metric_label} between {c['x_below']:g} and {c['x_above']:g} "
            f"{x_label} ({c['loser']} better by {-c['diff_below']:+.3f} at {c['x_below']:g}, "
            f"Holm p = {_num(c['p_below'])}; {c['winner']} better by {c['diff_above']:+.3f} at {c['x_above']:g}, "
            f"Holm p = {_num(c['p_above'])})" for c in crossings) + "."
    if not comparisons:
        return "No crossing is supported by the runs: there is no pair of models to compare."
    # Pairs with no significant difference anywhere read as one clause, not one each.
    null = [key for key, c in comparisons.items() if _null_everywhere(c)]
    clauses = [_no_crossing_clause(key, c, metric_label, x_label) for key, c in comparisons.items() if key not in null]
    if null and len(null) == len(comparisons) > 1:
        tests = sum(len(c["points"]) for c in comparisons.values())
        clauses.append(f"no pair of models differs significantly on {metric_label} at any size "
                       f"({tests} paired t-tests, Holm-corrected together)")
    elif len(null) > 1:
        pairs = _and_list(["(" + key.replace("_vs_", ", ", 1) + ")" for key in null])
        clauses.append(f"no significant difference on {metric_label} at any size for the pairs {pairs}")
    elif null:
        clauses.append(_no_crossing_clause(null[0], comparisons[null[0]], metric_label, x_label))
    return "No crossing is supported by the runs: " + "; ".join(clauses) + "."


def _null_everywhere(comparison: dict) -> bool:
    """Testable at every shared size, significant at none, mean curves never crossing."""
    points = comparison["points"]
    return (bool(points) and comparison["mean_crossing"] is None and not any(p["significant"] for p in points)
            and not all(p["t_p"] is None for p in points))


def _no_crossing_clause(key: str, comparison: dict, metric_label: str, x_label: str) -> str:
    points, mean = comparison["points"], comparison["mean_crossing"]
    a, b = key.split("_vs_", 1)  # the names as curve_comparisons keyed them
    if not points:
        return f"{a} and {b} share no training size"
    crossed = (f"the mean curves of {a} and {b} cross between {mean['x_below']:g} and {mean['x_above']:g} "
               f"{x_label}") if mean else None
    significant = [p for p in points if p["significant"]]
    if significant:  # without a crossing, every significant point favours the same model
        better = significant[0]["better"]
        worse = b if better == a else a
        if len(significant) == len(points) > 1:
            where = "at every size"
        else:
            sizes = _and_list([f"{p['x']:g}" for p in significant])
            where = f"at {sizes} {x_label}" + (" only" if len(points) > 1 else "")
        return (f"{better} is significantly better than {worse} on {metric_label} {where}"
                + (f" (the mean curves cross between {mean['x_below']:g} and {mean['x_above']:g}, not significantly)"
                   if mean else ""))
    if all(p["t_p"] is None for p in points):
        return f"{a} vs {b} is not testable with a single run per size" + (
            f" ({crossed.replace('mean curves', 'single runs')})" if crossed else "")
    if crossed:
        return f"{crossed} but neither side is significant"
    return f"no significant difference between {a} and {b} on {metric_label} at any size"
