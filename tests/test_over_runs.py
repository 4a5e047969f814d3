"""Statistics over repeated runs: summaries, paired tests by seed, Holm correction and verdicts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stages.analysis.over_runs import (compare_models, crossing_sentence, curve_comparisons, holm, paired_runs,
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
    from stages.analysis.over_runs import crossing_sentence, curve_comparisons

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


def test_bad_values_are_refused_with_a_message_naming_them():
    # The message names the argument and shows what came in, so a broken runs table is easy to find.
    with pytest.raises(ValueError, match=r"^values must be a non-empty 1-D sequence, got shape \(0,\)$"):
        summarize([])
    with pytest.raises(ValueError, match=r"^values must be a non-empty 1-D sequence, got shape \(1, 2\)$"):
        summarize([[0.9, 0.8]])
    with pytest.raises(ValueError, match=r"^values must be finite, got \[0.1, nan\]$"):
        summarize([0.1, float("nan")])
    # A run with no value (None, e.g. a metric missing from its JSON) is a non-finite value, not a TypeError.
    with pytest.raises(ValueError, match=r"^values must be finite, got \[0.9, nan\]$"):
        summarize([0.9, None])
    with pytest.raises(ValueError, match=r"^a must be finite, got \[0.9, inf\]$"):
        paired_runs([0.9, float("inf")], [0.8, 0.7])
    with pytest.raises(ValueError, match=r"^b must be finite, got \[0.8, nan\]$"):
        paired_runs([0.9, 0.8], [0.8, None])
    with pytest.raises(ValueError, match=r"^b must be a non-empty 1-D sequence"):
        paired_runs([0.9], [])


def test_two_runs_are_enough_for_the_paired_tests():
    # Two seeds give one degree of freedom: a (wide) t interval and a t-test, as scipy computes them.
    a, b = [0.91, 0.95], [0.90, 0.92]
    r = paired_runs(a, b)
    low, high = stats.t.interval(0.95, 1, loc=0.02, scale=stats.sem([0.01, 0.03]))
    assert r["n"] == 2 and r["diff_mean"] == pytest.approx(0.02)
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((low, high))
    assert r["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon([0.01, 0.03]).pvalue)  # 0.5: the exact minimum, 2 / 2**2
    assert verdict("vit", "cnn", "accuracy", r, alpha=0.05) == (
        f"no significant difference between vit and cnn on accuracy: vit - cnn = +0.020 (95% CI {low:+.3f} to "
        f"{high:+.3f}; paired t-test over 2 runs, p = {r['t_p']:.2g})")


def test_differences_that_are_float_rounding_count_as_none():
    # 0.1 + 0.2 is 0.30000000000000004: the same accuracy computed two ways is no difference at all.
    same = paired_runs([0.1 + 0.2, 0.7, 0.8], [0.3, 0.7, 0.8])
    assert same == {"n": 3, "diff_mean": 0.0, "diff_ci_low": 0.0, "diff_ci_high": 0.0, "t_p": 1.0, "wilcoxon_p": 1.0}
    assert type(same["diff_mean"]) is float


def test_rounding_tolerance_scales_with_the_values():
    # Values in the hundreds (seconds, say): a constant offset of 1.7 picks up rounding of ~6e-14 across the
    # seeds, far above 1e-12 of 1, well within 1e-12 of the values' size: still a constant difference.
    b = [512.3, 498.7, 530.2]
    a = [x + 1.7 for x in b]
    assert np.ptp(np.array(a) - np.array(b)) > 1e-12 / max(a)  # the offset really did pick up rounding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = paired_runs(a, b)
    assert r["t_p"] == 0.0 and r["diff_mean"] == pytest.approx(1.7)
    assert r["diff_ci_low"] == r["diff_ci_high"] == r["diff_mean"]


def test_rounding_tolerance_boundary_on_unit_scale_values():
    # On values of at most 1 the tolerance (over_runs._TOL) is 1e-12, inclusive: a difference of exactly
    # 1e-12 is rounding, 1.5e-12 is a real (constant) one, and a spread of exactly 1e-12 is still constant.
    at = paired_runs([1e-12] * 3, [0.0] * 3)
    assert (at["diff_mean"], at["t_p"], at["wilcoxon_p"]) == (0.0, 1.0, 1.0)
    above = paired_runs([1.5e-12] * 3, [0.0] * 3)
    assert above["diff_mean"] == pytest.approx(1.5e-12) and above["t_p"] == 0.0
    assert 2.1e-12 - 1.1e-12 == 1e-12  # exact in floats, so the spread below sits on the boundary
    spread = paired_runs([1.1e-12, 2.1e-12], [0.0, 0.0])
    assert spread["t_p"] == 0.0 and spread["diff_ci_low"] == spread["diff_ci_high"] == pytest.approx(1.6e-12)


def test_compare_models_with_two_models_needs_no_correction():
    # One pair is one test: Holm leaves its p-values as they are, and the default alpha is 0.05.
    values = planted()
    null = compare_models({k: values[k] for k in ("resnet50", "cnn")})["resnet50_vs_cnn"]
    assert null["t_p_holm"] == null["t_p"] and null["wilcoxon_p_holm"] == null["wilcoxon_p"]
    assert 0.05 < null["t_p"] and not null["significant"] and null["better"] is None
    real = compare_models({k: values[k] for k in ("vit", "cnn")})["vit_vs_cnn"]
    assert real["t_p_holm"] == real["t_p"] < 0.05 and real["significant"] and real["better"] == "vit"
    assert holm([0.03]) == [0.03]


def test_compare_models_significance_is_strictly_below_alpha():
    values = planted()
    p = compare_models(values)["resnet50_vs_vit"]["t_p_holm"]
    assert not compare_models(values, alpha=p)["resnet50_vs_vit"]["significant"]
    assert compare_models(values, alpha=np.nextafter(p, 1))["resnet50_vs_vit"]["significant"]


def test_compare_models_and_curves_honour_the_confidence_level():
    values = planted()
    d = np.array(values["vit"]) - np.array(values["cnn"])
    low, high = stats.t.interval(0.99, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    r = compare_models(values, confidence=0.99)["vit_vs_cnn"]
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((low, high))
    point = curve_comparisons({"vit": {10: values["vit"]}, "cnn": {10: values["cnn"]}}, confidence=0.99)
    assert (point["vit_vs_cnn"]["points"][0]["diff_ci_low"], point["vit_vs_cnn"]["points"][0]["diff_ci_high"]) == (
        pytest.approx((low, high)))


def test_verdict_when_the_first_model_wins():
    r = compare_models(planted())["vit_vs_cnn"]
    assert r["significant"] and r["diff_mean"] > 0
    p = r["t_p_holm"]
    p_text = f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
    assert verdict("vit", "cnn", "accuracy", r, alpha=0.05) == (
        f"vit better than cnn on accuracy by {r['diff_mean']:+.3f} (95% CI {r['diff_ci_low']:+.3f} to "
        f"{r['diff_ci_high']:+.3f}; paired t-test over 5 runs, Holm-corrected p = {p_text})")
    assert r["diff_ci_low"] < 0.05 < r["diff_ci_high"]  # the planted margin


def test_verdict_p_value_format_and_alpha_boundary():
    r = {"n": 3, "diff_mean": 0.004, "diff_ci_low": -0.010, "diff_ci_high": 0.018, "t_p": 0.02}
    # p exactly at alpha is not significant.
    assert verdict("vit", "cnn", "accuracy", {**r, "t_p_holm": 0.05}, alpha=0.05) == (
        "no significant difference between vit and cnn on accuracy: vit - cnn = +0.004 "
        "(95% CI -0.010 to +0.018; paired t-test over 3 runs, Holm-corrected p = 0.05)")
    # 0.001 itself still reads as a decimal; below it, scientific.
    assert verdict("vit", "cnn", "accuracy", {**r, "t_p_holm": 0.001}, alpha=0.0001).endswith("p = 0.001)")
    assert verdict("vit", "cnn", "accuracy", {**r, "t_p_holm": 0.00099}, alpha=0.0001).endswith("p = 9.9e-04)")
    # A seed that changes nothing but a constant offset: t_p is exactly 0, written as 0.
    shifted = paired_runs([0.92, 0.94, 0.93], [0.91, 0.93, 0.92])
    assert verdict("vit", "cnn", "accuracy", shifted, alpha=0.05) == (
        "vit better than cnn on accuracy by +0.010 (95% CI +0.010 to +0.010; paired t-test over 3 runs, p = 0)")


# Per-seed noise patterns (mean 0) for curves built by hand: a gap of 0.05 over TIGHT noise is
# significant even after Holm; a gap of 0.02 or less over LOOSE noise is not.
TIGHT = np.array([0.002, -0.001, 0.001, -0.002, 0.0])
LOOSE = np.array([0.04, -0.03, 0.03, -0.04, 0.0])
SEEDS = np.array([0.01, -0.02, 0.0, 0.02, -0.01])  # seed-level variation every model shares


def two_curves(diff: dict[float, np.ndarray]) -> dict[str, dict[float, list[float]]]:
    """Models a and b whose per-seed differences a - b at each size are ``diff[x]``."""
    b = {x: 0.5 + x / 1000 + SEEDS for x in diff}
    return {"a": {x: list(b[x] + d) for x, d in diff.items()}, "b": {x: list(v) for x, v in b.items()}}


def three_curves(names=("a", "b", "c"), sizes=(10, 100)) -> dict[str, dict[float, list[float]]]:
    """low < mid < high in mean at every size; only low vs high is significant (mid is noisy)."""
    low, mid, high = names
    base = {x: 0.5 + x / 1000 + SEEDS for x in sizes}
    return {low: {x: list(base[x]) for x in sizes},
            mid: {x: list(base[x] + 0.02 + LOOSE) for x in sizes},
            high: {x: list(base[x] + 0.05 + TIGHT) for x in sizes}}


def test_a_crossing_may_skip_a_size_where_neither_is_significant():
    # b leads at 10, nothing at 30, a leads at 100: the reversal spans 10 to 100.
    r = curve_comparisons(two_curves({10: -0.05 + TIGHT, 30: 0.005 + LOOSE, 100: 0.10 + TIGHT}))["a_vs_b"]
    assert [p["better"] for p in r["points"]] == ["b", None, "a"]
    c = r["crossing"]
    assert (c["winner"], c["loser"], c["x_below"], c["x_above"]) == ("a", "b", 10, 100)
    assert c["diff_below"] == pytest.approx(-0.05) and c["diff_above"] == pytest.approx(0.10)
    assert r["mean_crossing"] == {"x_below": 10, "x_above": 30, "winner": "a"}


def test_crossing_sentence_lists_every_supported_crossing():
    # a overtakes both b and c (c a little above b everywhere): two crossings, one clause each.
    values = two_curves({10: -0.05 + TIGHT, 100: 0.10 + TIGHT})
    values["c"] = {x: list(np.array(v) + 0.003 + TIGHT[::-1]) for x, v in values["b"].items()}
    result = curve_comparisons(values)
    assert [k for k, c in result.items() if c["crossing"]] == ["a_vs_b", "a_vs_c"]

    def holm_p(key, i):
        p = result[key]["points"][i]["t_p_holm"]
        return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"

    assert crossing_sentence(result, "accuracy") == (
        "a overtakes b on accuracy between 10 and 100 training images per class "
        f"(b better by +0.050 at 10, Holm p = {holm_p('a_vs_b', 0)}; a better by +0.100 at 100, "
        f"Holm p = {holm_p('a_vs_b', 1)}); "
        "a overtakes c on accuracy between 10 and 100 training images per class "
        f"(c better by +0.053 at 10, Holm p = {holm_p('a_vs_c', 0)}; a better by +0.097 at 100, "
        f"Holm p = {holm_p('a_vs_c', 1)}).")


def test_crossing_sentence_with_nothing_to_compare():
    assert crossing_sentence({}, "accuracy") == (
        "No crossing is supported by the runs: there is no pair of models to compare.")
    assert crossing_sentence(curve_comparisons({"a": {10: [0.5, 0.6]}}), "accuracy") == (
        "No crossing is supported by the runs: there is no pair of models to compare.")


def test_crossing_sentence_for_one_pair_that_never_differs():
    # A single pair gets its own clause naming both models, not the all-pairs summary.
    r = curve_comparisons(two_curves({10: -0.005 + LOOSE, 100: -0.005 + LOOSE}))
    assert not any(p["significant"] for p in r["a_vs_b"]["points"]) and r["a_vs_b"]["mean_crossing"] is None
    assert crossing_sentence(r, "accuracy") == (
        "No crossing is supported by the runs: no significant difference between a and b on accuracy at any size.")


def test_crossing_sentence_groups_two_null_pairs_beside_a_real_difference():
    result = curve_comparisons(three_curves())
    assert [k for k, c in result.items() if any(p["significant"] for p in c["points"])] == ["a_vs_c"]
    assert crossing_sentence(result, "accuracy") == (
        "No crossing is supported by the runs: c is significantly better than a on accuracy at every size; "
        "no significant difference on accuracy at any size for the pairs (a, b) and (b, c).")
    # Any set of pairs none of which differs reads as the all-pairs clause, counting their tests.
    nulls = {k: result[k] for k in ("a_vs_b", "b_vs_c")}
    assert crossing_sentence(nulls, "accuracy") == (
        "No crossing is supported by the runs: no pair of models differs significantly on accuracy at any size "
        "(4 paired t-tests, Holm-corrected together).")


def test_crossing_sentence_keeps_a_model_name_containing_vs_whole():
    # Pairs are keyed "<a>_vs_<b>": a name with "_vs_" in it, last in order, is still named whole.
    result = curve_comparisons(three_curves(names=("resnet50", "cnn", "vit_vs_teacher")))
    assert list(result) == ["resnet50_vs_cnn", "resnet50_vs_vit_vs_teacher", "cnn_vs_vit_vs_teacher"]
    assert crossing_sentence(result, "accuracy") == (
        "No crossing is supported by the runs: vit_vs_teacher is significantly better than resnet50 on accuracy "
        "at every size; no significant difference on accuracy at any size for the pairs (resnet50, cnn) and "
        "(cnn, vit_vs_teacher).")
    one = curve_comparisons({k: v for k, v in three_curves(names=("resnet50", "cnn", "vit_vs_teacher")).items()
                             if k != "cnn"})
    assert crossing_sentence(one, "macro-F1") == (
        "No crossing is supported by the runs: vit_vs_teacher is significantly better than resnet50 on macro-F1 "
        "at every size.")


def test_crossing_sentence_names_the_sizes_where_one_model_leads():
    # One shared size: "at <x> ...", not "at every size", and no "only".
    single = curve_comparisons(two_curves({10: 0.05 + TIGHT}))
    assert crossing_sentence(single, "accuracy") == (
        "No crossing is supported by the runs: a is significantly better than b on accuracy at 10 training "
        "images per class.")
    # Two sizes, significant at one: "only".
    one_of_two = curve_comparisons(two_curves({10: 0.005 + LOOSE, 100: 0.05 + TIGHT}))
    assert crossing_sentence(one_of_two, "accuracy") == (
        "No crossing is supported by the runs: a is significantly better than b on accuracy at 100 training "
        "images per class only.")
    # A lead at one size, and the mean curves crossing after it within noise: both said.
    crossed = curve_comparisons(two_curves({10: 0.05 + TIGHT, 30: -0.005 + LOOSE}))
    assert crossed["a_vs_b"]["crossing"] is None
    assert crossed["a_vs_b"]["mean_crossing"] == {"x_below": 10, "x_above": 30, "winner": "b"}
    assert crossing_sentence(crossed, "accuracy") == (
        "No crossing is supported by the runs: a is significantly better than b on accuracy at 10 training images "
        "per class only (the mean curves cross between 10 and 30, not significantly).")


def test_crossing_sentence_single_runs_per_size():
    crossing = curve_comparisons({"a": {10: [0.5], 100: [0.9]}, "b": {10: [0.7], 100: [0.75]}})
    assert crossing_sentence(crossing, "accuracy") == (
        "No crossing is supported by the runs: a vs b is not testable with a single run per size "
        "(the single runs of a and b cross between 10 and 100 training images per class).")
    parallel = curve_comparisons({"a": {10: [0.5], 100: [0.9]}, "b": {10: [0.4], 100: [0.8]}})
    assert crossing_sentence(parallel, "accuracy") == (
        "No crossing is supported by the runs: a vs b is not testable with a single run per size.")


def test_curve_significance_is_strictly_below_alpha():
    values = two_curves({10: 0.05 + TIGHT})
    p = curve_comparisons(values)["a_vs_b"]["points"][0]["t_p_holm"]
    assert not curve_comparisons(values, alpha=p)["a_vs_b"]["points"][0]["significant"]
    assert curve_comparisons(values, alpha=np.nextafter(p, 1))["a_vs_b"]["points"][0]["better"] == "a"
