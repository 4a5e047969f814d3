"""Three-way verdicts on paired runs (stages/analysis/verdicts.py): TOST, Holm per test kind, the
test-image variance, power and runs needed, and the sentences. Fast: no TensorFlow, no pipeline."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from stages.analysis import verdicts
from stages.analysis.verdicts import (accuracy_image_variance, bootstrap_image_variance, compare_pairs, decide,
                                      decision_power, macro_f1_rows, paired_difference, runs_needed, sentence)

# d = a - b = 0.01, 0.02, 0.03: mean 0.02, sd 0.01, se 0.01 / sqrt(3); Student's t with 2 df has the
# closed-form cdf F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so every p-value below is exact by hand.
A3, B3 = [0.81, 0.82, 0.83], [0.80, 0.80, 0.80]


def test_tost_and_the_interval_on_a_hand_computable_case():
    p = paired_difference(A3, B3, margin=0.05)
    se = 0.01 / math.sqrt(3)
    assert (p["n"], p["diff_mean"], p["seed_sd"], p["se"], p["df"]) == pytest.approx((3, 0.02, 0.01, se, 2))
    # |d| >= 0.05 rejected by the upper one-sided test: t = (0.02 - 0.05) / se = -3 sqrt(3), t^2 = 27.
    assert p["p_equiv"] == pytest.approx(0.5 - 3 * math.sqrt(3) / (2 * math.sqrt(29)), rel=1e-7)
    assert p["p_equiv"] == pytest.approx(ttost_paired(np.array(A3), np.array(B3), -0.05, 0.05)[0], rel=1e-7)
    # d = 0: t = 2 sqrt(3), t^2 = 12; the 97.5 % quantile of t(2) is 0.95 / sqrt(2 * 0.975 * 0.025).
    assert p["p_diff"] == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14), rel=1e-7)
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * se
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((0.02 - half, 0.02 + half), rel=1e-7)
    [pair] = compare_pairs({"a": A3, "b": B3}, margin=0.05).values()
    assert pair["verdict"] == "equivalent" and pair["better"] is None  # p_equiv 0.018, p_diff 0.074
    assert compare_pairs({"a": A3, "b": B3}, margin=0.03)["a_vs_b"]["verdict"] == "undecided"  # p_equiv 0.14


def test_the_image_variance_adds_to_the_seed_variance_at_satterthwaite_df():
    p = paired_difference(A3, B3, margin=0.05, image_var=1e-4, n_images=100)
    seed_part = 1e-4 / 3
    se2 = seed_part + 1e-4
    # The df take the seed term at its upper 85 % bound (2 df: chi2's 15 % point is 0.3250).
    seed_up = seed_part * 2 / stats.chi2.ppf(0.15, 2)
    assert seed_up == pytest.approx(seed_part * 2 / 0.325038, rel=1e-5)
    df = (seed_up + 1e-4) ** 2 / (seed_up ** 2 / 2 + 1e-4 ** 2 / 99)
    assert (p["se"], p["df"], p["image_se"]) == pytest.approx((math.sqrt(se2), df, 0.01))
    assert p["p_diff"] == pytest.approx(2 * stats.t.sf(0.02 / math.sqrt(se2), df))
    assert p["p_diff"] > paired_difference(A3, B3, margin=0.05)["p_diff"]  # the test images cost evidence


def _point(name: str, p_diff: float | None, p_equiv: float | None, diff: float = 0.03) -> dict:
    return {"a": name, "b": "ref", "n": 5, "diff_mean": diff, "seed_sd": 0.01, "image_se": 0.0, "n_images": 100,
            "margin": 0.02, "p_diff": p_diff, "p_equiv": p_equiv}


def test_holm_is_applied_per_test_kind_and_skips_untestable_pairs():
    p_diff, p_equiv = [0.01, 0.02, 0.03], [0.9, 0.8, 0.7]
    points = decide([_point(n, d, e) for n, d, e in zip("xyz", p_diff, p_equiv)], alpha=0.05)
    assert [p["p_diff_holm"] for p in points] == pytest.approx(list(multipletests(p_diff, method="holm")[1]))
    assert [p["p_equiv_holm"] for p in points] == pytest.approx(list(multipletests(p_equiv, method="holm")[1]))
    # Holm over all six p-values would lift 0.01 to 0.06: no pair would read better.
    assert [p["verdict"] for p in points] == ["better"] * 3 and [p["better"] for p in points] == ["x", "y", "z"]
    points = decide([_point("x", 0.01, 0.9), _point("y", None, None), _point("z", 0.02, 0.8)], alpha=0.05)
    assert [p["p_diff_holm"] for p in points] == [pytest.approx(0.02), None, pytest.approx(0.02)]
    assert points[1]["verdict"] == "undecided" and points[1]["p_equiv_holm"] is None
    # A sequential study's looks split alpha: 0.02 < 0.05 but not < 0.05 / 4.
    assert decide([_point("x", 0.02, 0.9)], alpha=0.05, looks=4)[0]["verdict"] == "undecided"


def test_a_significant_difference_inside_the_margin_reads_equivalent():
    a = [0.8060, 0.8065, 0.8055, 0.8063, 0.8057]
    pair = compare_pairs({"a": a, "b": [0.8] * 5}, margin=0.02)["a_vs_b"]
    assert pair["p_diff_holm"] < 1e-4  # a real, steady difference of 0.006 ...
    assert pair["verdict"] == "equivalent" and pair["equivalent"] and pair["better"] is None  # ... too small to matter
    assert sentence(pair, "accuracy").startswith("a and b equivalent on accuracy within ±0.02: a - b = +0.006")


def test_fewer_than_two_runs_are_undecided_with_no_p_values():
    pair = compare_pairs({"a": [0.9], "b": [0.8]}, margin=0.02)["a_vs_b"]
    assert pair["verdict"] == "undecided" and pair["better"] is None and pair["runs_needed"] is None
    for key in ("p_diff", "p_equiv", "p_diff_holm", "p_equiv_holm", "ci_low", "ci_high", "se", "seed_sd"):
        assert pair[key] is None, key
    assert sentence(pair, "accuracy") == ("a vs b on accuracy: undecided, only 1 run per model (a - b = +0.100); "
                                          "at least 2 runs each measure training randomness")


@pytest.mark.parametrize("diff, sd, n, alpha", [(0.02, 0.02, 5, 0.05), (0.01, 0.03, 10, 0.05), (0.05, 0.02, 3, 0.01)])
def test_decision_power_without_image_variance_is_statsmodels_ttest_power(diff, sd, n, alpha):
    better, _ = decision_power(diff, sd, n, 0.0, None, 0.02, alpha)
    assert better == pytest.approx(TTestPower().power(effect_size=diff / sd, nobs=n, alpha=alpha,
                                                      alternative="two-sided"), rel=1e-6)


def test_decision_power_is_finite_for_large_effects():
    for n in range(2, 101):
        assert np.all(np.isfinite(decision_power(0.04, 0.02, n, 0.0, None, 0.02, 0.05))), n
    # runs_needed skips the nan powers: 53 runs "needed" where 50 already have power 1.
    assert runs_needed(0.04, 0.02, 0.0, None, 0.02, 0.05, start=50) == 50


def test_tost_power_matches_a_simulation_of_the_test():
    diff, sd, n, margin, alpha = 0.005, 0.02, 10, 0.02, 0.05
    _, equiv = decision_power(diff, sd, n, 0.0, None, margin, alpha)
    d = np.random.default_rng(0).normal(diff, sd, (40_000, n))
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n)
    crit = stats.t.ppf(1 - alpha, n - 1)
    rate = np.mean(((mean + margin) / se > crit) & ((mean - margin) / se < -crit))
    assert equiv == pytest.approx(rate, abs=4 * math.sqrt(rate * (1 - rate) / d.shape[0]))


def _correct(rng, seeds=3, n_images=150):
    easy = rng.random(n_images)  # shared difficulty: the two models' correctness is correlated
    return rng.random((seeds, n_images)) < easy + 0.1, rng.random((seeds, n_images)) < easy


def test_accuracy_image_variance_is_a_bootstraps_variance_less_the_residual_counted_twice():
    a, b = _correct(np.random.default_rng(1))
    n, size = a.shape
    table = a.astype(float) - b
    delta = table.mean(axis=0)  # per image, averaged over seeds
    boot = stats.bootstrap((delta,), np.mean, n_resamples=9999, method="percentile",
                           random_state=np.random.default_rng(2)).standard_error ** 2
    accuracy = lambda correct, idx: correct[idx].mean(axis=-1)  # noqa: E731
    assert bootstrap_image_variance(accuracy, a, b, size) == pytest.approx(boot, rel=0.1)
    # The two-way ANOVA of the seeds x images table (statsmodels, independently of the module).
    frame = pd.DataFrame({"d": table.ravel(), "seed": np.repeat(np.arange(n), size), "image": np.tile(np.arange(size), n)})
    anova = sm.stats.anova_lm(smf.ols("d ~ C(seed) + C(image)", frame).fit())
    ms_residual = anova.loc["Residual", "mean_sq"]
    assert accuracy_image_variance(a, b) == pytest.approx(np.var(delta, ddof=1) / size - ms_residual / (n * size))
    # Seed and image effects alone (no residual): nothing is subtracted.
    additive = np.add.outer([0.0, 1.0, 0.0], [0, 1, 1, 0, 1]).astype(float)
    assert accuracy_image_variance(additive, np.zeros_like(additive)) == pytest.approx(np.var([0, 1, 1, 0, 1], ddof=1) / 5)
    with pytest.raises(ValueError, match="same"):
        accuracy_image_variance(a, b[:2])


def test_macro_f1_rows_is_sklearns_macro_f1():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 5, 80)  # class 5 of 6 never occurs: left out, as scikit-learn does
    y_pred = np.where(rng.random(80) < 0.7, y_true, rng.integers(0, 5, 80))
    n = y_true.size
    assert macro_f1_rows(y_true, y_pred, 6, np.arange(n)) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    idx = rng.integers(0, n, (4, n))
    expected = [f1_score(y_true[i], y_pred[i], average="macro", zero_division=0) for i in idx]
    assert macro_f1_rows(y_true, y_pred, 6, idx) == pytest.approx(expected)


def test_runs_needed_grows_with_the_spread():
    needed = [runs_needed(0.04, sd, 1e-5, 1000, 0.02, 0.05, start=3) for sd in (0.01, 0.02, 0.04, 0.06)]
    assert all(isinstance(k, int) and k >= 3 for k in needed), needed
    assert needed == sorted(needed) and needed[-1] > needed[0], needed
    equivalent = [runs_needed(0.0, sd, 1e-5, 1000, 0.02, 0.05, start=2) for sd in (0.01, 0.02, 0.03)]
    assert equivalent == sorted(equivalent) and equivalent[-1] > equivalent[0], equivalent
    assert runs_needed(0.04, 0.02, 0.0, None, 0.02, 0.05, start=3) == 5
    assert runs_needed(0.04, 0.02, 0.0, None, 0.02, 0.05, start=12) == 12  # never below the runs already made


@pytest.mark.parametrize("diff", [0.0, 0.03])  # equivalence wanted, then "better"
def test_runs_needed_is_none_when_the_test_images_alone_prevent_a_decision(diff):
    assert runs_needed(diff, 0.01, 0.0, None, 0.02, 0.05, start=2) is not None  # runs alone would do
    assert runs_needed(diff, 0.01, 0.015 ** 2, 180, 0.02, 0.05, start=2) is None  # image se 0.015: no n will


RUNS = {"hi": [0.90, 0.91, 0.92, 0.90, 0.91], "lo": [0.80, 0.82, 0.81, 0.80, 0.81]}


def test_sentence_for_better_names_the_winner_whichever_comes_first():
    for values in (RUNS, dict(reversed(RUNS.items()))):
        [pair] = compare_pairs(values, margin=0.02).values()
        text = sentence(pair, "accuracy")
        assert text.startswith("hi better than lo on accuracy by +0.100 (95% CI +0.0"), text
        assert re.search(r"; 5 runs per model, Holm p = \d\.\de-\d\d\)$", text), text  # small p in scientific
        low, high = map(float, re.search(r"CI ([-+.\d]+) to ([-+.\d]+)", text).groups())
        assert 0 < low < 0.1 < high


def test_sentence_for_undecided_says_what_would_decide_it():
    noisy = {"a": [0.80, 0.84, 0.79, 0.83], "b": [0.79, 0.80, 0.81, 0.80]}
    pair = compare_pairs(noisy, margin=0.02)["a_vs_b"]
    assert pair["verdict"] == "undecided" and pair["runs_needed"] > 4
    assert sentence(pair, "accuracy").endswith(f"4 runs per model); about {pair['runs_needed']} runs per model "
                                               "would likely decide it")
    images = compare_pairs(noisy, margin=0.02, image_var=lambda a, b: 0.03 ** 2, n_images=180)["a_vs_b"]
    assert images["runs_needed"] is None
    assert sentence(images, "accuracy").endswith(
        "more runs alone will not decide it: the 180 test images carry a sampling error (SE 0.030) too large for "
        "the margin ±0.02; a larger test set would")
    spread = compare_pairs({"a": [0.70, 0.90, 0.60, 0.95], "b": [0.80, 0.75, 0.85, 0.70]}, margin=0.02)["a_vs_b"]
    assert sentence(spread, "accuracy").endswith(
        f"even {verdicts.MAX_RUNS} runs per model would likely not decide it: the runs spread by "
        f"{spread['seed_sd']:.3f} (sd over seeds), against a margin of ±0.02")
    noisy_images = compare_pairs({"a": [0.70, 0.90, 0.60, 0.95], "b": [0.80, 0.75, 0.85, 0.70]}, margin=0.02,
                                 image_var=lambda a, b: 0.01 ** 2, n_images=180)["a_vs_b"]
    assert sentence(noisy_images, "accuracy").endswith(
        f"the runs spread by {spread['seed_sd']:.3f} (sd over seeds) and the 180 test images add a sampling error "
        "of 0.010, against a margin of ±0.02")
