"""stages/core/metrics.py against values worked out by hand on small arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from stages.core.metrics import (
                                 classification_metrics,
                                 expected_calibration_error,
                                 mean_probability_matrix,
                                 reliability_bins,
                                 to_probabilities,
                                 worst_classes,
                                 )

# 4 classes, one image each. Arg-max predictions: 3, 3, 0, 3.
TOP3_Y = np.array([0, 1, 2, 3])
TOP3_P = np.array([
    [0.10, 0.20, 0.30, 0.40],  # true 0: ranking 3,2,1,0 -> 0 not in top 3 (miss)
    [0.10, 0.20, 0.30, 0.40],  # true 1: top 3 = {3,2,1} (hit)
    [0.50, 0.30, 0.15, 0.05],  # true 2: top 3 = {0,1,2} (hit)
    [0.05, 0.15, 0.30, 0.50],  # true 3: arg-max 3 (hit)
])

# 3 classes, 6 images, for a 3-bin ECE: edges 0, 1/3, 2/3, 1; bin i is (lower, upper].
ECE_Y = np.array([0, 1, 1, 0, 2, 1])
ECE_P = np.array([
    [0.90, 0.05, 0.05],  # conf .9, pred 0, true 0: correct  -> bin 2
    [0.80, 0.10, 0.10],  # conf .8, pred 0, true 1: wrong    -> bin 2
    [0.10, 0.70, 0.20],  # conf .7, pred 1, true 1: correct  -> bin 2
    [0.50, 0.30, 0.20],  # conf .5, pred 0, true 0: correct  -> bin 1
    [0.30, 0.60, 0.10],  # conf .6, pred 1, true 2: wrong    -> bin 1
    [0.40, 0.35, 0.25],  # conf .4, pred 0, true 1: wrong    -> bin 1
])


def test_classification_metrics_by_hand():
    m = classification_metrics(TOP3_Y, TOP3_P, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(1 / 4)  # only the last row's arg-max is right
    assert m["top3_accuracy"] == pytest.approx(3 / 4)  # every row but the first
    # Class d: predicted 3 times, right once -> P 1/3, R 1/1, F1 2*(1/3*1)/(1/3+1) = 0.5.
    assert m["per_class"]["d"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    # Class a: predicted once (row 3, wrong), its one image missed -> all 0; b and c never predicted -> 0.
    for name in "abc":
        assert m["per_class"][name] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((0 + 0 + 0 + 0.5) / 4)
    assert m["weighted_f1"] == pytest.approx(0.125)  # every support is 1: same as macro
    # Mean of -ln p(true class): p = .1, .2, .15, .5
    assert m["log_loss"] == pytest.approx(-(math.log(0.1) + math.log(0.2) + math.log(0.15) + math.log(0.5)) / 4)
    assert set(m) == {"accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "per_class"}
    assert json.loads(json.dumps(m)) == m  # plain Python types


def test_top3_with_two_or_three_classes_is_trivially_one():
    y = np.array([0, 1, 1])
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert classification_metrics(y, p, ["x", "y"])["top3_accuracy"] == 1.0  # k = min(3, 2): every label
    assert classification_metrics(ECE_Y, ECE_P, ["x", "y", "z"])["top3_accuracy"] == 1.0


def test_ece_three_bins_by_hand():
    # bin 0 (0, 1/3]: empty.
    # bin 1 (1/3, 2/3]: conf .5 .6 .4 -> mean .5; correct 1 of 3 -> acc 1/3; gap 1/6.
    # bin 2 (2/3, 1]:   conf .9 .8 .7 -> mean .8; correct 2 of 3 -> acc 2/3; gap 2/15.
    # ECE = 3/6 * 1/6 + 3/6 * 2/15 = 1/12 + 1/15 = 9/60 = 0.15
    assert expected_calibration_error(ECE_Y, ECE_P, bins=3) == pytest.approx(0.15)
    assert classification_metrics(ECE_Y, ECE_P, ["x", "y", "z"], ece_bins=3)["ece"] == pytest.approx(0.15)
    # One bin: mean conf (.9+.8+.7+.5+.6+.4)/6 = .65, accuracy 3/6 = .5 -> ECE .15 too.
    assert expected_calibration_error(ECE_Y, ECE_P, bins=1) == pytest.approx(0.15)
    # Confident and right everywhere: perfectly calibrated.
    assert expected_calibration_error(np.array([0, 1]), np.eye(2), bins=15) == pytest.approx(0.0)


def test_reliability_bins_counts_and_empty_bins():
    y = np.array([0, 1, 1])
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])  # confidences .5, 1, .75; arg-max 0, 0, 1
    # 4 bins (0,.25] (.25,.5] (.5,.75] (.75,1]: .5 -> bin 1, .75 -> bin 2, 1 -> bin 3.
    table = reliability_bins(y, p, bins=4)
    assert list(table.columns) == ["bin_lower", "bin_upper", "count", "confidence", "accuracy"]
    assert table["count"].tolist() == [0, 1, 1, 1]
    np.testing.assert_allclose(table["bin_lower"], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(table["bin_upper"], [0.25, 0.5, 0.75, 1.0])
    assert np.isnan(table.loc[0, "confidence"]) and np.isnan(table.loc[0, "accuracy"])
    np.testing.assert_allclose(table["confidence"][1:], [0.5, 0.75, 1.0])
    np.testing.assert_allclose(table["accuracy"][1:], [1.0, 1.0, 0.0])  # the conf-1 image (true 1, pred 0) is wrong
    # 2 bins (0,.5] (.5,1]: .5 sits on the edge and belongs to the lower bin.
    assert reliability_bins(y, p, bins=2)["count"].tolist() == [1, 2]
    with pytest.raises(ValueError):
        reliability_bins(y, p, bins=0)


def test_reliability_bins_are_sklearns_calibration_curve_of_the_top_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + 2 * np.eye(5)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    table = reliability_bins(y, p, bins=12)
    filled = table[table["count"] > 0]
    accuracy, confidence = calibration_curve(p.argmax(1) == y, p.max(1), n_bins=12, strategy="uniform")
    np.testing.assert_array_equal(filled["accuracy"], accuracy)
    np.testing.assert_array_equal(filled["confidence"], confidence)
    # The counts by hand: equal-width bins (lower, upper].
    edges = np.linspace(0, 1, 13)
    assert table["count"].tolist() == [int(((p.max(1) > lo) & (p.max(1) <= hi)).sum()) for lo, hi in
                                       zip(edges[:-1], edges[1:])]
    assert table["count"].sum() == 300 and len(filled) < 12  # some bins are empty (no max below 1/5)


def test_reliability_bins_edge_cases():
    # A max probability a rounding error above 1 (a row summing to 1 within the tolerance) is the top bin.
    y, p = np.array([0, 1]), np.array([[1.0004, 0.0], [0.3, 0.7]])
    table = reliability_bins(y, p, bins=2)
    assert table["count"].tolist() == [0, 2]
    assert table.loc[1, "confidence"] == pytest.approx((1.0 + 0.7) / 2) and table.loc[1, "accuracy"] == 1.0
    # Nothing to bin: every bin empty, no ECE.
    empty = reliability_bins(np.array([], int), np.zeros((0, 3)), bins=3)
    assert empty["count"].tolist() == [0, 0, 0] and empty["accuracy"].isna().all()
    assert math.isnan(expected_calibration_error(np.array([], int), np.zeros((0, 3)), bins=3))


def test_mean_probability_matrix_by_hand():
    y = np.array([0, 0, 1])
    p = np.array([[0.6, 0.3, 0.1], [0.4, 0.5, 0.1], [0.2, 0.2, 0.6]])
    m = mean_probability_matrix(y, p, num_classes=3)
    np.testing.assert_allclose(m[0], [0.5, 0.4, 0.1])  # ((.6+.4)/2, (.3+.5)/2, (.1+.1)/2)
    np.testing.assert_allclose(m[1], [0.2, 0.2, 0.6])  # its only image
    assert np.isnan(m[2]).all()  # class 2 has no images
    np.testing.assert_allclose(m[:2].sum(axis=1), 1.0)


# Planted confusion, 4 classes x 3 images:
#   class 0: always right (recall 1)
#   class 1: 2 of 3 right, the miss goes to 3  (recall 2/3, mean p(1) = (.7+.7+.3)/3 = .5667)
#   class 2: mostly predicted as class 0       (recall 1/3)
#   class 3: 2 of 3 right, the miss goes to 2  (recall 2/3, mean p(3) = (.8+.8+.35)/3 = .65)
PLANTED_Y = np.repeat([0, 1, 2, 3], 3)
PLANTED_P = np.array([
    [0.80, 0.10, 0.05, 0.05], [0.80, 0.10, 0.05, 0.05], [0.80, 0.10, 0.05, 0.05],
    [0.10, 0.70, 0.10, 0.10], [0.10, 0.70, 0.10, 0.10], [0.10, 0.30, 0.10, 0.50],
    [0.70, 0.05, 0.20, 0.05], [0.70, 0.05, 0.20, 0.05], [0.20, 0.10, 0.60, 0.10],
    [0.05, 0.05, 0.10, 0.80], [0.05, 0.05, 0.10, 0.80], [0.10, 0.10, 0.45, 0.35],
])


def test_worst_classes_on_planted_confusion():
    worst = worst_classes(PLANTED_Y, PLANTED_P, k=3, n_confused=2)
    # Recall order: 2 (1/3), then the 2/3 tie broken by the lower mean p(true): 1 (.5667) before 3 (.65).
    assert [w["label"] for w in worst] == [2, 1, 3]
    assert [w["recall"] for w in worst] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    # Row 2 of the mean-probability matrix: ((.7+.7+.2)/3, (.05+.05+.1)/3, (.2+.2+.6)/3, (.05+.05+.1)/3)
    #   = (.5333, .0667, .3333, .0667): class 0, then the .0667 tie 1 vs 3 -> lower label 1.
    assert [c["label"] for c in worst[0]["confused"]] == [0, 1]
    assert [c["mean_prob"] for c in worst[0]["confused"]] == pytest.approx([1.6 / 3, 0.2 / 3])
    # Row 1: (.1, .5667, .1, (.1+.1+.5)/3 = .2333): class 3, then the .1 tie 0 vs 2 -> 0.
    assert [(c["label"], c["mean_prob"]) for c in worst[1]["confused"]] == [(3, pytest.approx(0.7 / 3)), (0, pytest.approx(0.1))]
    # Row 3: ((.05+.05+.1)/3, same, (.1+.1+.45)/3 = .2167, .65): class 2, then 0 (tie with 1).
    assert [c["label"] for c in worst[2]["confused"]] == [2, 0]
    assert worst[2]["confused"][0]["mean_prob"] == pytest.approx(0.65 / 3)


def test_worst_classes_ties_fall_back_to_label_and_skip_absent_classes():
    # Classes 1 and 2 are mirror images (same recall, same mean p(true)); class 3 has no images.
    y = np.array([0, 1, 2])
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.6, 0.1, 0.2, 0.1]])
    worst = worst_classes(y, p, k=10, n_confused=1)
    assert [w["label"] for w in worst] == [1, 2, 0]
    assert worst[0]["confused"] == [{"label": 0, "mean_prob": pytest.approx(0.6)}]
    assert json.loads(json.dumps(worst, allow_nan=False)) == worst  # plain types, written as is


def test_to_probabilities_softmaxes_logits_only():
    probs = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], dtype=np.float32)
    assert to_probabilities(probs) is probs  # already probabilities: untouched
    nearly = probs + np.float32(2e-4)  # rows sum to 1.0006: float rounding, still within 1e-3
    assert to_probabilities(nearly) is nearly
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # Row 0: e^2, e^1, e^0 = 7.389, 2.718, 1 -> / 11.107 = .6652, .2447, .0900; row 1 uniform.
    np.testing.assert_allclose(to_probabilities(logits), [[0.6652, 0.2447, 0.0900], [1 / 3, 1 / 3, 1 / 3]], atol=1e-4)
    # Non-negative but not summing to 1 (e.g. ReLU scores) are not probabilities either.
    np.testing.assert_allclose(to_probabilities(np.array([[0.5, 0.5, 0.5]])), [[1 / 3] * 3])
    # Summing to 1 with a negative entry: logits, not probabilities.
    out = to_probabilities(np.array([[1.5, -0.5, 0.0]]))
    assert (out > 0).all() and out.sum() == pytest.approx(1.0)
