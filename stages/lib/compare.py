"""Paired statistics for comparing two models on the same test images.

Both models are scored on the same images, so the comparisons are paired:
McNemar's exact test on the images where exactly one of them is right, and a
paired bootstrap (the same resampled images for both models) of the difference
in a metric, with a percentile confidence interval.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterator, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar

Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # A class absent from a resample (neither true nor predicted) is left out, as sklearn does by default.
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test; ``b`` = images only A gets right, ``c`` = images only B gets right."""
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b_.shape:
        raise ValueError(f"correct_a and correct_b differ in shape: {a.shape} vs {b_.shape}")
    table = np.array([[np.sum(a & b_), np.sum(a & ~b_)], [np.sum(~a & b_), np.sum(~a & ~b_)]])
    result = mcnemar(table, exact=True)
    return {"b": int(table[0, 1]), "c": int(table[1, 0]), "p_value": float(result.pvalue)}


def resamples_of(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` index vectors drawn with replacement from ``range(n)``; the same for the same seed."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, n, n)


def bootstrap_metric(y_true, y_pred, metric: Metric, resamples: int, seed: int) -> np.ndarray:
    """``metric`` on each bootstrap resample; resamples depend only on (len, resamples, seed)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.array([metric(y_true[i], y_pred[i]) for i in resamples_of(len(y_true), resamples, seed)])


def percentile_ci(diff: float, diffs: np.ndarray, alpha: float) -> dict:
    low, high = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return {"diff": float(diff), "low": float(low), "high": float(high)}


def paired_bootstrap_ci(y_true, pred_a, pred_b, metric: Metric, resamples: int, seed: int,
                        alpha: float) -> dict:
    """metric(A) - metric(B) and its percentile CI from resampling the same test images for both."""
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    diffs = bootstrap_metric(y_true, pred_a, metric, resamples, seed) - bootstrap_metric(
        y_true, pred_b, metric, resamples, seed
    )
    return percentile_ci(metric(y_true, pred_a) - metric(y_true, pred_b), diffs, alpha)


def _num(x: float) -> str:
    return f"{x:.2g}" if abs(x) >= 0.001 or x == 0 else f"{x:.1e}"


def verdict(name_a: str, name_b: str, test: dict, acc_ci: dict, alpha: float) -> str:
    """One plain sentence: who is better at level ``alpha``, with the evidence."""
    level = f"{100 * (1 - alpha):g}%"
    covers = "includes" if acc_ci["low"] <= 0 <= acc_ci["high"] else "excludes"
    evidence = (
        f"McNemar p = {_num(test['p_value'])}; accuracy difference ({name_a} - {name_b}) {level} CI "
        f"[{acc_ci['low']:.3f}, {acc_ci['high']:.3f}] {covers} 0"
    )
    if test["p_value"] >= alpha:
        return f"not significant at {alpha:g} ({evidence})"
    better, worse = (name_a, name_b) if test["b"] > test["c"] else (name_b, name_a)
    return f"{better} better than {worse} at {alpha:g} ({evidence})"


def _pair_result(name_a, name_b, correct_a, correct_b, acc_ci, f1_ci, alpha) -> dict:
    test = mcnemar_exact(correct_a, correct_b)
    return {"mcnemar": test, "accuracy_diff_ci": acc_ci, "macro_f1_diff_ci": f1_ci,
            "verdict": verdict(name_a, name_b, test, acc_ci, alpha)}


def compare_pair(name_a: str, name_b: str, y_true, pred_a, pred_b, resamples: int, seed: int,
                 alpha: float) -> dict:
    """McNemar test, accuracy and macro-F1 difference CIs (A - B) and a verdict for one pair."""
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    cis = [paired_bootstrap_ci(y_true, pred_a, pred_b, m, resamples, seed, alpha) for m in (accuracy, macro_f1)]
    return _pair_result(name_a, name_b, pred_a == y_true, pred_b == y_true, *cis, alpha)


def compare_all(names: Sequence[str], y_true, preds: dict, resamples: int, seed: int, alpha: float) -> dict:
    """:func:`compare_pair` for every pair of ``names`` (in order), keyed ``"<a>_vs_<b>"``.

    Each model's bootstrap distribution is computed once and shared by its pairs:
    the resampled indices depend only on the seed, so the results equal compare_pair's.
    """
    y_true = np.asarray(y_true)
    metrics = {"accuracy": accuracy, "macro_f1": macro_f1}
    point = {n: {k: m(y_true, np.asarray(preds[n])) for k, m in metrics.items()} for n in names}
    dist = {n: {k: bootstrap_metric(y_true, preds[n], m, resamples, seed) for k, m in metrics.items()}
            for n in (names if len(names) > 1 else [])}
    pairs = {}
    for a, b in combinations(names, 2):
        acc_ci, f1_ci = (
            percentile_ci(point[a][k] - point[b][k], dist[a][k] - dist[b][k], alpha) for k in metrics
        )
        pairs[f"{a}_vs_{b}"] = _pair_result(
            a, b, np.asarray(preds[a]) == y_true, np.asarray(preds[b]) == y_true, acc_ci, f1_ci, alpha
        )
    return pairs
