"""Statistics over repeated runs: summaries, paired tests by seed, Holm correction and verdicts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stages.lib.over_runs import (compare_models, crossing_sentence, curve_comparisons, holm, paired_runs,
                                  summarize, verdict)


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
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # plain floats
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
    for result in (same, shifted):
        assert json.loads(json.dumps(result, allow_nan=False)) == result


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


@pytest.mark.slow
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
    # Winner first with a positive margin: the difference and its interval restated as vit - resnet50.
    low, high = -r["diff_ci_high"], -r["diff_ci_low"]
    p = r["t_p_holm"]
    p_text = f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
    assert r["diff_mean"] < 0 < low
    assert text == (f"vit better than resnet50 on accuracy by {-r['diff_mean']:+.3f} (95% CI {low:+.3f} to "
                    f"{high:+.3f}; paired t-test over 3 runs, Holm-corrected p = {p_text})")


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
    assert verdict("vit", "resnet50", "macro-F1", one, alpha=0.05) == (
        "vit vs resnet50 on macro-F1 not testable: only 1 run (vit - resnet50 = +0.050)")


def curves(means: dict[str, dict[float, float]], n: int = 5, noise: float = 0.005, seed: int = 0):
    """Per-seed values around the given mean curves: a seed-level offset shared by every model, plus noise."""
    rng = np.random.default_rng(seed)
    sizes = sorted({x for m in means.values() for x in m})
    base = {x: rng.normal(0, 0.02, n) for x in sizes}
    return {name: {x: list(mu + base[x] + rng.normal(0, noise, n)) for x, mu in m.items()}
            for name, m in means.items()}


def test_curve_comparisons_reports_the_planted_crossing():
    # Sizes given in descending order: the result must sort them. b leads at 10 and 30, a wins at 100.
    values = curves({"a": {100: 0.90, 30: 0.60, 10: 0.50, 5: 0.4}, "b": {100: 0.75, 30: 0.72, 10: 0.70}})
    values["a"][10] = list(np.array([0.5, 0.52, 0.49, 0.51, 0.50]) + np.array(values["a"][10]) - 0.5)
    result = curve_comparisons(values)
    assert list(result) == ["a_vs_b"]
    r = result["a_vs_b"]
    assert [p["x"] for p in r["points"]] == [10, 30, 100]  # ascending, and x=5 (a only) left out
    assert [p["better"] for p in r["points"]] == ["b", "b", "a"]
    c = r["crossing"]
    assert (c["winner"], c["loser"], c["x_below"], c["x_above"]) == ("a", "b", 30, 100)  # last size b led at
    assert c["diff_below"] == pytest.approx(r["points"][1]["diff_mean"]) and c["diff_below"] < 0  # a - b
    assert c["diff_above"] == pytest.approx(r["points"][2]["diff_mean"]) and c["diff_above"] > 0.1
    assert c["p_below"] == r["points"][1]["t_p_holm"] and c["p_above"] == r["points"][2]["t_p_holm"] < 0.05
    assert r["mean_crossing"] == {"x_below": 30, "x_above": 100, "winner": "a"}
    text = crossing_sentence(result, "accuracy")
    assert text.startswith("a overtakes b on accuracy between 30 and 100 training images per class (b better by +0.")
    assert f"at 30, Holm p = {c['p_below']:.2g}" in text or f"Holm p = {c['p_below']:.1e}" in text
    assert f"a better by {c['diff_above']:+.3f} at 100" in text and text.endswith(").")
    assert "No crossing" not in text
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    # The other pair order: diff_mean is now b - a, but the crossing still reads winner minus loser.
    swapped = curve_comparisons({"b": values["b"], "a": values["a"]})["b_vs_a"]
    assert swapped["crossing"] == pytest.approx(c) and swapped["crossing"]["winner"] == "a"
    assert crossing_sentence({"b_vs_a": swapped}, "accuracy") == text


def test_parallel_curves_do_not_cross():
    values = curves({"a": {10: 0.6, 30: 0.7, 100: 0.8}, "b": {10: 0.5, 30: 0.6, 100: 0.7}})
    r = curve_comparisons(values)["a_vs_b"]
    assert r["crossing"] is None and r["mean_crossing"] is None
    assert all(p["better"] == "a" for p in r["points"])
    text = crossing_sentence({"a_vs_b": r}, "accuracy")
    assert text == ("No crossing is supported by the runs: a is significantly better than b on accuracy "
                    "at every size.")
    # Drop the significance at one size: "at ... only", listing the sizes that remain.
    values["b"][30] = list(np.array(values["a"][30]) + np.array([0.01, -0.01, 0.02, -0.02, 0.0]))
    text = crossing_sentence(curve_comparisons(values), "accuracy")
    assert text == ("No crossing is supported by the runs: a is significantly better than b on accuracy "
                    "at 10 and 100 training images per class only.")


def test_means_crossing_within_noise_is_not_a_supported_crossing():
    rng = np.random.default_rng(1)
    b = {10: rng.normal(0.7, 0.02, 5), 100: rng.normal(0.8, 0.02, 5)}
    d = {10: np.array([-0.03, 0.02, -0.02, 0.01, 0.01]), 100: np.array([0.03, -0.02, 0.02, -0.01, 0.0])}
    values = {"a": {x: list(b[x] + d[x]) for x in b}, "b": {x: list(v) for x, v in b.items()}}
    r = curve_comparisons(values)["a_vs_b"]
    assert not any(p["significant"] for p in r["points"]) and r["crossing"] is None
    assert r["mean_crossing"] == {"x_below": 10, "x_above": 100, "winner": "a"}
    assert crossing_sentence({"a_vs_b": r}, "macro-F1") == (
        "No crossing is supported by the runs: the mean curves of a and b cross between 10 and 100 "
        "training images per class but neither side is significant.")
    # A zero difference in between has no sign: skipped, the crossing still spans 10 to 100.
    values["a"][30] = values["b"][30] = [0.75] * 5
    assert curve_comparisons(values)["a_vs_b"]["mean_crossing"] == {"x_below": 10, "x_above": 100, "winner": "a"}


def test_curve_comparisons_holm_is_one_family_over_pairs_and_sizes():
    values = curves({"a": {10: 0.50, 30: 0.60, 100: 0.80}, "b": {10: 0.51, 30: 0.62, 100: 0.75},
                     "c": {10: 0.50, 30: 0.605, 100: 0.78}}, noise=0.01, seed=2)
    result = curve_comparisons(values, alpha=0.05)
    assert list(result) == ["a_vs_b", "a_vs_c", "b_vs_c"]
    points = [p for r in result.values() for p in r["points"]]
    assert len(points) == 9
    raw = [p["t_p"] for p in points]
    assert [p["t_p_holm"] for p in points] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert min(p["t_p_holm"] for p in points) == pytest.approx(9 * min(raw))  # nine tests, not three per pair
    assert all(p["significant"] == (p["t_p_holm"] < 0.05) for p in points)
    assert any(p["t_p"] < 0.05 <= p["t_p_holm"] for p in points)  # the correction changed a verdict


def test_curve_comparisons_single_seed_is_untestable_and_does_not_raise():
    values = {"a": {10: [0.5], 100: [0.9]}, "b": {10: [0.7], 100: [0.75]}}
    r = curve_comparisons(values)["a_vs_b"]
    assert all(p["t_p"] is None and p["t_p_holm"] is None and p["significant"] is False for p in r["points"])
    assert r["crossing"] is None and r["mean_crossing"]["winner"] == "a"
    text = crossing_sentence({"a_vs_b": r}, "accuracy")
    assert text.startswith("No crossing is supported by the runs: a vs b is not testable with a single run per size")
    assert curve_comparisons({"a": {10: [0.5]}}) == {}
    assert "no pair" in crossing_sentence({}, "accuracy")


def test_crossing_sentence_groups_the_pairs_that_never_differ():
    """Pairs with no significant difference at any size read as one clause, not one clause each."""
    from stages.lib.over_runs import crossing_sentence, curve_comparisons

    rng = np.random.default_rng(5)
    noise = lambda: (0.5 + rng.normal(0, 0.05, 5)).tolist()  # noqa: E731
    same = {m: {10.0: noise(), 100.0: noise()} for m in ("a", "b", "c")}
    # The noise can make the means of some pair cross; keep only the seeds' draws where none do.
    comparisons = curve_comparisons(same)
    while any(c["mean_crossing"] or any(p["significant"] for p in c["points"]) for c in comparisons.values()):
        same = {m: {10.0: noise(), 100.0: noise()} for m in ("a", "b", "c")}
        comparisons = curve_comparisons(same)
    sentence = crossing_sentence(comparisons, "accuracy")
    assert sentence == ("No crossing is supported by the runs: no pair of models differs significantly on accuracy "
                        "at any size (6 paired t-tests, Holm-corrected together).")
    # One model far ahead everywhere: its pairs are named, the remaining null pair gets the grouped clause.
    ahead = {**same, "d": {x: [v + 0.4 for v in vals] for x, vals in same["a"].items()}}
    sentence = crossing_sentence(curve_comparisons(ahead), "accuracy")
    assert "d is significantly better than a on accuracy at every size" in sentence
    assert "no significant difference on accuracy at any size for the pairs (a, b), (a, c) and (b, c)" in sentence
