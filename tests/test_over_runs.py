"""Statistics over repeated runs: summaries, paired tests by seed, Holm correction and verdicts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stages.lib.over_runs import compare_models, holm, paired_runs, summarize, verdict


def test_summarize_matches_a_hand_t_interval():
    values = [0.91, 0.94, 0.92, 0.95]
    mean = sum(values) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    half = stats.t.ppf(0.975, df=3) * std / math.sqrt(4)
    s = summarize(values)
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(0.93) and s["std"] == pytest.approx(std)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert summarize(values, confidence=0.99)["ci_high"] > s["ci_high"]  # the level is honoured
    json.dumps(s)  # plain floats
    assert all(type(s[k]) is float for k in ("mean", "std", "ci_low", "ci_high"))


def test_summarize_edge_cases():
    assert summarize([0.8]) == {"n": 1, "mean": 0.8, "std": None, "ci_low": None, "ci_high": None}
    assert summarize([0.5, 0.5, 0.5]) == {"n": 3, "mean": 0.5, "std": 0.0, "ci_low": 0.5, "ci_high": 0.5}
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([0.1, float("nan")])


def test_holm_equals_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    expected = multipletests(p, method="holm")[1]
    assert holm(p) == pytest.approx(list(expected))
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2, 0.005])  # by hand: sorted p * (5, 4, 3, 2, 1), running max
    assert holm([]) == []


def test_paired_runs_matches_scipy():
    rng = np.random.default_rng(3)
    b = rng.normal(0.90, 0.01, 5)
    a = b + 0.02 + rng.normal(0, 0.005, 5)
    r = paired_runs(a, b)
    d = a - b
    low, high = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert r["n"] == 5 and r["diff_mean"] == pytest.approx(d.mean())
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((low, high))
    assert r["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(2 / 2**5)  # all 5 differences positive: the exact minimum
    flipped = paired_runs(b, a)
    assert flipped["diff_mean"] == pytest.approx(-r["diff_mean"]) and flipped["t_p"] == pytest.approx(r["t_p"])


def test_paired_runs_zero_and_constant_differences_give_no_nan():
    a = [0.91, 0.93, 0.92]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's precision-loss warnings mean the edge case leaked through
        same = paired_runs(a, list(a))
        # 0.1 + x is not exactly x + 0.1 apart in floats: the tolerance must still see a constant difference.
        shifted = paired_runs([x + 0.01 for x in a], a)
    assert same == {"n": 3, "diff_mean": 0.0, "diff_ci_low": 0.0, "diff_ci_high": 0.0,
                    "t_p": 1.0, "wilcoxon_p": 1.0}
    assert shifted["t_p"] == 0.0 and shifted["diff_mean"] == pytest.approx(0.01)
    assert shifted["diff_ci_low"] == shifted["diff_ci_high"] == pytest.approx(0.01)
    assert shifted["wilcoxon_p"] == pytest.approx(0.25)  # exact: 2 / 2**3
    json.dumps(same, allow_nan=False), json.dumps(shifted, allow_nan=False)


def test_paired_runs_single_run_and_bad_input():
    assert paired_runs([0.9], [0.8]) == {"n": 1, "diff_mean": pytest.approx(0.1), "diff_ci_low": None,
                                         "diff_ci_high": None, "t_p": None, "wilcoxon_p": None}
    with pytest.raises(ValueError, match="one value per seed"):
        paired_runs([0.9, 0.8], [0.8])


def planted(n: int = 5, seed: int = 0) -> dict[str, list[float]]:
    """vit beats resnet50 by 0.05 (noise 0.005); resnet50 and cnn come from one distribution."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.85, 0.02, n)  # seed-level variation shared by every model (same splits)
    return {"resnet50": list(base + rng.normal(0, 0.005, n)),
            "vit": list(base + 0.05 + rng.normal(0, 0.005, n)),
            "cnn": list(base + rng.normal(0, 0.005, n))}


def test_compare_models_finds_the_planted_difference_and_not_the_null():
    values = planted()
    pairs = compare_models(values, alpha=0.05)
    assert list(pairs) == ["resnet50_vs_vit", "resnet50_vs_cnn", "vit_vs_cnn"]
    assert pairs["resnet50_vs_vit"]["significant"] and pairs["resnet50_vs_vit"]["better"] == "vit"
    assert pairs["vit_vs_cnn"]["significant"] and pairs["vit_vs_cnn"]["better"] == "vit"
    null = pairs["resnet50_vs_cnn"]
    assert not null["significant"] and null["better"] is None and null["t_p_holm"] > 0.05
    raw = [pairs[k]["t_p"] for k in pairs]
    assert [pairs[k]["t_p_holm"] for k in pairs] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    raw_w = [pairs[k]["wilcoxon_p"] for k in pairs]
    assert [pairs[k]["wilcoxon_p_holm"] for k in pairs] == pytest.approx(list(multipletests(raw_w, method="holm")[1]))
    assert pairs["resnet50_vs_vit"]["t_p_holm"] > pairs["resnet50_vs_vit"]["t_p"]  # the correction did something


def test_compare_models_null_is_rarely_significant():
    # Two models from the same distribution, 20 independent seeds-of-seeds: a 5 % test should
    # fire about once; more than 4 times would be a broken test, not bad luck (P < 0.02).
    fired = sum(compare_models({k: planted(seed=s)[k] for k in ("resnet50", "cnn")})["resnet50_vs_cnn"]["significant"]
                for s in range(20))
    assert fired <= 4


def test_compare_models_single_run_is_untestable():
    pairs = compare_models({"vit": [0.9], "cnn": [0.8]})
    r = pairs["vit_vs_cnn"]
    assert r["t_p_holm"] is None and r["wilcoxon_p_holm"] is None
    assert r["significant"] is False and r["better"] is None
    assert compare_models({"vit": [0.9, 0.91]}) == {}


def test_verdict_significant_names_winner_runs_and_corrected_p():
    pairs = compare_models(planted(n=3, seed=1))
    r = pairs["resnet50_vs_vit"]
    assert r["significant"]
    text = verdict("resnet50", "vit", "accuracy", r, alpha=0.05)
    assert text.startswith("vit better than resnet50 on accuracy by +0.0")  # winner first, positive margin
    assert "over 3 runs" in text and "Holm-corrected p = " in text
    p = float(text.split("Holm-corrected p = ")[1].rstrip(")"))
    assert p == pytest.approx(r["t_p_holm"], rel=0.05)
    low, high = -r["diff_ci_high"], -r["diff_ci_low"]  # restated as vit - resnet50
    assert f"95% CI {low:+.3f} to {high:+.3f}" in text


def test_verdict_not_significant_and_untestable():
    r = {"n": 3, "diff_mean": 0.004, "diff_ci_low": -0.010, "diff_ci_high": 0.018, "t_p": 0.2, "t_p_holm": 0.41}
    assert verdict("vit", "resnet50", "accuracy", r, alpha=0.05) == (
        "no significant difference between vit and resnet50 on accuracy: vit - resnet50 = +0.004 "
        "(95% CI -0.010 to +0.018; paired t-test over 3 runs, Holm-corrected p = 0.41)")
    assert "p = 0.031)" in verdict("vit", "resnet50", "accuracy", {**r, "t_p_holm": 0.031}, alpha=0.05)
    assert "p = 2.0e-04" in verdict("vit", "resnet50", "accuracy", {**r, "t_p_holm": 0.0002}, alpha=0.05)
    raw = {k: v for k, v in r.items() if k != "t_p_holm"}
    assert verdict("vit", "resnet50", "accuracy", raw, 0.05).endswith("over 3 runs, p = 0.2)")
    one = paired_runs([0.9], [0.85])
    text = verdict("vit", "resnet50", "macro-F1", one, alpha=0.05)
    assert "not testable: only 1 run" in text and "vit" in text and "resnet50" in text and "macro-F1" in text
