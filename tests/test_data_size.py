"""The data-size curve's verdicts (stages/analysis/data_size.py): one Holm family, crossings, pay-off sizes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from stages.analysis.data_size import crossing, curve_sentence, curve_verdicts, pays_off

MARGIN = 0.02


def curves(values, **kw):
    return curve_verdicts(values, margin=MARGIN, alpha=0.05, **kw)


def test_every_point_of_every_pair_is_one_holm_family():
    values = {"a": {1.0: [0.5, 0.52, 0.55], 2.0: [0.8, 0.83, 0.81]},
              "b": {1.0: [0.6, 0.61, 0.66], 2.0: [0.7, 0.71, 0.72]},
              "c": {1.0: [0.4, 0.45, 0.41], 2.0: [0.9, 0.91, 0.95]}}
    out = curves(values)
    points = [p for c in out.values() for p in c["points"]]
    raw = [stats.ttest_rel(values[p["a"]][p["x"]], values[p["b"]][p["x"]]).pvalue for p in points]
    assert [p["p_diff"] for p in points] == pytest.approx(raw)  # no image variance given: the paired t-test
    assert [p["p_diff_holm"] for p in points] == pytest.approx(list(multipletests(raw, method="holm")[1]))


def test_a_planted_crossing_is_found_with_its_sizes_and_margins():
    values = {"vit": {2.0: [0.40, 0.42, 0.44], 5.0: [0.60, 0.61, 0.63], 20.0: [0.94, 0.90, 0.92]},
              "cnn": {2.0: [0.60, 0.61, 0.65], 5.0: [0.60, 0.62, 0.62], 20.0: [0.80, 0.79, 0.81]}}
    out = curves(values)["vit_vs_cnn"]
    assert [p["verdict"] for p in out["points"]] == ["better", "undecided", "better"]
    c = out["crossing"]
    assert (c["winner"], c["loser"], c["x_below"], c["x_above"]) == ("vit", "cnn", 2.0, 20.0)  # skips the open 5
    assert c["diff_below"] == pytest.approx(-np.mean([0.20, 0.19, 0.21]))
    assert out["pays_off"] == {"winner": "vit", "x": 20.0, "from_smallest": False}
    assert curve_sentence({"vit_vs_cnn": out}, "accuracy") == (
        "vit overtakes cnn on accuracy between 2 and 20 training images per class (cnn better by +0.200 at 2, "
        "vit by +0.120 at 20).")


def test_pays_off_from_the_first_size_of_an_unbroken_run_of_wins_to_the_largest():
    def point(x, verdict, better=None):
        return {"x": x, "verdict": verdict, "better": better, "a": "vit", "b": "cnn", "diff_mean": 0.1}
    assert pays_off([point(1, "undecided"), point(2, "better", "vit"), point(4, "better", "vit")]) == {
        "winner": "vit", "x": 2, "from_smallest": False}
    assert pays_off([point(1, "better", "vit"), point(2, "better", "vit")])["from_smallest"]
    assert pays_off([point(1, "better", "vit"), point(2, "undecided")]) is None  # not at the largest size
    assert pays_off([point(1, "better", "cnn"), point(2, "better", "vit")])["x"] == 2
    assert pays_off([]) is None and crossing([]) is None


def test_the_sentence_says_where_a_model_pays_off_and_what_stays_open():
    values = {"vit": {2.0: [0.60, 0.70, 0.50], 20.0: [0.90, 0.91, 0.92], 40.0: [0.95, 0.96, 0.97]},
              "cnn": {2.0: [0.65, 0.60, 0.61], 20.0: [0.80, 0.79, 0.81], 40.0: [0.85, 0.84, 0.86]}}
    out = curves(values)
    assert [p["verdict"] for p in out["vit_vs_cnn"]["points"]] == ["undecided", "better", "better"]
    # At 2 the mean difference (+0.010) is half the margin and the spread 0.08: out of reach of 100 runs.
    assert out["vit_vs_cnn"]["points"][0]["runs_needed"] is None
    assert curve_sentence(out, "accuracy") == (
        "vit better than cnn on accuracy from 20 training images per class on; undecided at 2 (even 100 runs "
        "per model would likely not decide it: the runs spread by 0.108 (sd over seeds), against a margin of ±0.02).")
    values["vit"][2.0] = [0.70, 0.72, 0.64]  # +0.067 at 2, spread 0.05: a count of runs would decide it
    out = curves(values)
    needed = out["vit_vs_cnn"]["points"][0]["runs_needed"]
    assert 3 < needed < 100 and curve_sentence(out, "accuracy").endswith(
        f"undecided at 2 (about {needed} runs per model would likely decide it).")


def test_equivalent_points_are_named_with_the_margin():
    values = {"a": {1.0: [0.800, 0.801, 0.802, 0.800], 2.0: [0.70, 0.75, 0.72, 0.71]},
              "b": {1.0: [0.801, 0.800, 0.801, 0.801], 2.0: [0.60, 0.62, 0.61, 0.60]}}
    out = curves(values)
    assert [p["verdict"] for p in out["a_vs_b"]["points"]] == ["equivalent", "better"]
    assert curve_sentence(out, "accuracy") == (
        "a better than b on accuracy from 2 training images per class on; equivalent within ±0.02 at 1.")


def test_test_image_variance_enters_each_point():
    values = {"a": {1.0: [0.80, 0.81, 0.82]}, "b": {1.0: [0.70, 0.71, 0.72]}}
    exact = curves(values)["a_vs_b"]["points"][0]
    noisy = curves(values, image_var=lambda a, b, x: 0.06 ** 2, n_images=100)["a_vs_b"]["points"][0]
    assert exact["verdict"] == "better" and exact["image_se"] == 0
    # Every seed's difference is 0.1: the seeds add no variance, the images all of it (df = images - 1).
    assert noisy["image_se"] == pytest.approx(0.06) and noisy["se"] == pytest.approx(0.06)
    assert noisy["verdict"] == "undecided" and noisy["p_diff"] == pytest.approx(2 * stats.t.sf(0.1 / 0.06, 99))


def test_no_pairs_and_no_shared_sizes():
    assert curve_sentence({}, "accuracy") == "No pair of models to compare on the data-size curve."
    out = curves({"a": {1.0: [0.5, 0.6]}, "b": {2.0: [0.5, 0.6]}})
    assert out["a_vs_b"]["points"] == [] and curve_sentence(out, "accuracy") == "a and b share no training size."
