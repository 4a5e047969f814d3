"""Statistics over repeated runs: summaries, paired tests by seed, Holm correction and verdicts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stages.analysis.over_runs import compare_models, holm, paired_runs, summarize


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


def curves(means: dict[str, dict[float, float]], n: int = 5, noise: float = 0.005, seed: int = 0):
    """Per-seed values around the given mean curves: a seed-level offset shared by every model, plus noise."""
    rng = np.random.default_rng(seed)
    sizes = sorted({x for m in means.values() for x in m})
    base = {x: rng.normal(0, 0.02, n) for x in sizes}
    return {name: {x: list(mu + base[x] + rng.normal(0, noise, n)) for x, mu in m.items()}
            for name, m in means.items()}


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


def test_compare_models_passes_its_confidence_to_every_pair():
    values = planted()
    narrow = compare_models({k: values[k] for k in ("vit", "cnn")}, confidence=0.5)["vit_vs_cnn"]
    wide = compare_models({k: values[k] for k in ("vit", "cnn")})["vit_vs_cnn"]
    assert narrow["diff_ci_low"] == pytest.approx(paired_runs(values["vit"], values["cnn"], 0.5)["diff_ci_low"])
    assert wide["diff_ci_low"] < narrow["diff_ci_low"] < narrow["diff_ci_high"] < wide["diff_ci_high"]


def test_compare_models_significance_is_strictly_below_alpha():
    values = planted()
    p = compare_models(values)["resnet50_vs_vit"]["t_p_holm"]
    assert not compare_models(values, alpha=p)["resnet50_vs_vit"]["significant"]
    assert compare_models(values, alpha=np.nextafter(p, 1))["resnet50_vs_vit"]["significant"]


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


