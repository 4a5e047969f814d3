"""McNemar's exact test (within one run; statistics over runs are tested in test_over_runs.py)."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy import stats

from stages.analysis.compare import mcnemar_exact


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


def test_mcnemar_exact_equals_scipys_binomial_test():
    # The exact McNemar test is the two-sided binomial test of b successes in b + c trials at p = 1/2;
    # the images both models get right (or both wrong) carry no information.
    for both, only_a, only_b, neither in [(50, 0, 7, 3), (10, 12, 5, 40), (0, 4, 4, 0), (200, 31, 17, 9)]:
        result = mcnemar_exact(*correctness(both, only_a, only_b, neither))
        assert (result["b"], result["c"]) == (only_a, only_b)
        assert result["p_value"] == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-12)


def test_mcnemar_reads_any_truthy_correctness():
    # Correctness arrives as bools (pred == label) but also as 0/1 floats (a tensor's .float()):
    # both read the same, as right / wrong per image.
    a, b = correctness(30, 1, 9, 5)
    assert mcnemar_exact(a.astype(float), b.astype(float)) == mcnemar_exact(a, b)
    assert mcnemar_exact(a, b.astype(float)) == mcnemar_exact(a.astype(float), b) == mcnemar_exact(a, b)


def test_mcnemar_refuses_models_scored_on_different_images():
    with pytest.raises(ValueError, match=r"^correct_a and correct_b differ in shape: \(3,\) vs \(2,\)$"):
        mcnemar_exact(np.ones(3, bool), np.ones(2, bool))
