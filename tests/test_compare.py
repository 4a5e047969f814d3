"""Paired statistics: McNemar's exact test, the paired bootstrap CI and the verdict text."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from stages.lib.compare import (
    accuracy,
    compare_all,
    compare_pair,
    macro_f1,
    mcnemar_exact,
    paired_bootstrap_ci,
    verdict,
)


def correctness(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, bool)
    return a, b


def test_mcnemar_exact_matches_hand_arithmetic():
    # b = 1, c = 9: two-sided exact p = 2 * P(X <= 1 | n = 10, p = 1/2) = 2 * (1 + 10) / 1024.
    by_hand = 2 * (comb(10, 0) + comb(10, 1)) / 2**10
    assert by_hand == 0.021484375
    result = mcnemar_exact(*correctness(both=30, only_a=1, only_b=9, neither=5))
    assert result["b"] == 1 and result["c"] == 9
    assert result["p_value"] == pytest.approx(by_hand, abs=1e-12)


def test_mcnemar_is_symmetric_and_needs_discordant_pairs():
    a, b = correctness(20, 3, 8, 4)
    forward, backward = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert (forward["b"], forward["c"]) == (backward["c"], backward["b"])
    assert forward["p_value"] == pytest.approx(backward["p_value"])
    assert mcnemar_exact(a, a) == {"b": 0, "c": 0, "p_value": 1.0}  # no disagreements: no evidence


def synthetic(n: int = 400, acc_a: float = 0.8, acc_b: float = 0.7, classes: int = 4, seed: int = 1):
    """A right on a fixed 80 % of the images, B on 70 %: the true accuracy difference is 0.10."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    wrong = (y + 1) % classes
    order = rng.permutation(n)
    pred_a, pred_b = wrong.copy(), wrong.copy()
    pred_a[order[: int(acc_a * n)]] = y[order[: int(acc_a * n)]]
    pred_b[order[n - int(acc_b * n):]] = y[order[n - int(acc_b * n):]]
    return y, pred_a, pred_b


def test_bootstrap_ci_covers_the_true_difference_and_is_reproducible():
    y, pred_a, pred_b = synthetic()
    assert accuracy(y, pred_a) == pytest.approx(0.8) and accuracy(y, pred_b) == pytest.approx(0.7)
    ci = paired_bootstrap_ci(y, pred_a, pred_b, accuracy, resamples=1000, seed=0, alpha=0.05)
    assert ci["diff"] == pytest.approx(0.10)
    assert ci["low"] < 0.10 < ci["high"]
    assert 0.02 < ci["high"] - ci["low"] < 0.2  # a real interval, not a point or the whole range
    assert paired_bootstrap_ci(y, pred_a, pred_b, accuracy, 1000, 0, 0.05) == ci
    assert paired_bootstrap_ci(y, pred_a, pred_b, accuracy, 1000, 1, 0.05) != ci
    wider = paired_bootstrap_ci(y, pred_a, pred_b, accuracy, 1000, 0, 0.01)
    assert wider["low"] <= ci["low"] and wider["high"] >= ci["high"]


def test_bootstrap_of_identical_predictions_is_zero():
    y, pred_a, _ = synthetic()
    assert paired_bootstrap_ci(y, pred_a, pred_a, macro_f1, 200, 0, 0.05) == {"diff": 0.0, "low": 0.0, "high": 0.0}


def test_verdict_text_significant_and_not():
    test = {"b": 40, "c": 10, "p_value": 1.2e-5}
    ci = {"diff": 0.1, "low": 0.05, "high": 0.15}
    assert verdict("vit", "mobilenet_v2", test, ci, 0.05).startswith("vit better than mobilenet_v2 at 0.05 (")
    swapped = {"b": 10, "c": 40, "p_value": 1.2e-5}
    text = verdict("vit", "mobilenet_v2", swapped, {"diff": -0.1, "low": -0.15, "high": -0.05}, 0.05)
    assert text.startswith("mobilenet_v2 better than vit at 0.05")
    assert "95% CI [-0.150, -0.050] excludes 0" in text
    text = verdict("vit", "resnet50", {"b": 12, "c": 9, "p_value": 0.41}, {"diff": 0.01, "low": -0.03,
                                                                             "high": 0.05}, 0.05)
    assert text == ("not significant at 0.05 (McNemar p = 0.41; accuracy difference (vit - resnet50) "
                    "95% CI [-0.030, 0.050] includes 0)")
    assert verdict("a", "b", {"b": 12, "c": 9, "p_value": 0.041}, ci, 0.01).startswith("not significant at 0.01")


def test_compare_pair_and_compare_all_agree():
    y, pred_a, pred_b = synthetic(n=300)
    # Few resamples keep the test fast (sklearn's f1_score costs ~1 ms a call); the stage requires >= 1000.
    pair = compare_pair("a", "b", y, pred_a, pred_b, resamples=300, seed=3, alpha=0.05)
    assert set(pair) == {"mcnemar", "accuracy_diff_ci", "macro_f1_diff_ci", "verdict"}
    assert pair["mcnemar"]["b"] > pair["mcnemar"]["c"] and pair["mcnemar"]["p_value"] < 0.05
    assert pair["verdict"].startswith("a better than b at 0.05")
    assert pair["accuracy_diff_ci"]["low"] > 0
    every = compare_all(["a", "b", "c"], y, {"a": pred_a, "b": pred_b, "c": pred_a}, 300, 3, 0.05)
    assert list(every) == ["a_vs_b", "a_vs_c", "b_vs_c"]
    assert every["a_vs_b"] == pair
    assert every["a_vs_c"]["verdict"].startswith("not significant")
    assert compare_all(["a"], y, {"a": pred_a}, 300, 3, 0.05) == {}
