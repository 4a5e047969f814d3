"""Statistics over repeated training runs: one value per training seed and model.

``summarize`` gives a model's mean and Student t interval over its runs (the report's tables).
``paired_runs`` / ``compare_models`` are the paired t-test over seeds (with Wilcoxon, Holm across
pairs) that the report's verdicts used before stages/analysis/verdicts.py: kept as the baseline
benchmarks/verdict_simulation.py measures the shipped verdicts against. It counts training
randomness only (the test images are fixed), and has no "equivalent": a pair it cannot separate
reads "no significant difference", which says nothing about equality.

With a handful of seeds the t-test is the only one of the two that can reach significance at
all: the exact Wilcoxon p-value cannot go below 2 / 2**n (0.25 for 3 runs).
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


def holm_keeping_none(p_values: list) -> list:
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
        for r, p in zip(results, holm_keeping_none([r[test] for r in results])):
            r[f"{test}_holm"] = p
    for a, b, r in pairs.values():
        r["significant"] = r["t_p_holm"] is not None and r["t_p_holm"] < alpha
        r["better"] = (a if r["diff_mean"] > 0 else b) if r["significant"] else None
    return {key: r for key, (_, _, r) in pairs.items()}
