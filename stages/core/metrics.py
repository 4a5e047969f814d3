"""Classification metrics over predicted probabilities, shared by `evaluate` and `report`.

Pure functions: numpy arrays in (``y_true`` int labels [N], ``probs`` [N, K]),
plain Python / numpy / pandas out. Labels are the indices 0..K-1 of the
prepared store's sorted class names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

# A row "is already a probability vector" if it sums to 1 within this (float32 rounding, fp16 heads).
SUM_TOLERANCE = 1e-3


def to_probabilities(outputs: np.ndarray) -> np.ndarray:
    """``outputs`` unchanged if every row is a probability vector, else their softmax over classes.

    A head without softmax (e.g. a ViT classifier emitting logits) gives values < 0
    and > 1; treating those as probabilities skews every metric below.
    """
    outputs = np.asarray(outputs)
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1.0, rtol=0, atol=SUM_TOLERANCE):
        return outputs
    return softmax(outputs.astype(np.float64), axis=1)


def _labels(y_true: np.ndarray) -> np.ndarray:
    return np.asarray(y_true).astype(np.int64).ravel()


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: list[str], ece_bins: int = 15
) -> dict:
    """Accuracy, top-3, macro/weighted F1, log loss, ECE and per-class P/R/F1 (JSON-serialisable)."""
    y_true, probs = _labels(y_true), np.asarray(probs, dtype=np.float64)
    num_classes = probs.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} probability columns")
    labels = list(range(num_classes))
    y_pred = probs.argmax(axis=1)
    k = min(3, num_classes)
    # With k == K every label is in the top k; sklearn rejects that case for K == 2 instead of returning 1.
    top3 = 1.0 if k >= num_classes else top_k_accuracy_score(y_true, probs, k=k, labels=labels)
    # Renormalised: sklearn warns on rows off from 1 by float32 rounding.
    loss = log_loss(y_true, probs / probs.sum(axis=1, keepdims=True), labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top3_accuracy": float(top3),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "log_loss": float(loss),
        "ece": expected_calibration_error(y_true, probs, ece_bins),
        "per_class": per_class,
    }


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Top-label reliability table: equal-width bins (lower, upper] of the max probability.

    Columns bin_lower, bin_upper, count, confidence (mean max probability) and
    accuracy (fraction of correct arg-max predictions); both NaN for an empty bin.
    The multi-class problem becomes sklearn's binary one: was the arg-max right, with the max
    probability as the predicted probability (``calibration_curve``, ``strategy="uniform"``).
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    y_true, probs = _labels(y_true), np.asarray(probs, dtype=np.float64)
    # to_probabilities accepts rows summing to 1 within SUM_TOLERANCE, so a max can exceed 1 by
    # rounding; calibration_curve refuses anything outside [0, 1], and such a row is top-bin anyway.
    confidence = np.clip(probs.max(axis=1), 0.0, 1.0)
    correct = (probs.argmax(axis=1) == y_true).astype(np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # calibration_curve returns the non-empty bins only, without their counts: the counts come
    # from its own binning (bin i holds edges[i] < conf <= edges[i+1]; a confidence of 0 joins bin 0).
    count = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)
    accuracy, mean_conf = np.full(bins, np.nan), np.full(bins, np.nan)
    if len(confidence):  # calibration_curve has nothing to bin in an empty set
        filled = count > 0
        accuracy[filled], mean_conf[filled] = calibration_curve(correct, confidence, pos_label=1, n_bins=bins,
                                                                strategy="uniform")
    return pd.DataFrame(
        {"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": count,
         "confidence": mean_conf, "accuracy": accuracy}
    )


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over bins of (n_bin / N) * |accuracy_bin - confidence_bin|.

    The weighted sum over :func:`reliability_bins` is hand-written: scikit-learn has no ECE."""
    table = reliability_bins(y_true, probs, bins)
    filled = table[table["count"] > 0]
    total = table["count"].sum()
    if total == 0:
        return float("nan")
    gaps = (filled["accuracy"] - filled["confidence"]).abs()
    return float((filled["count"] / total * gaps).sum())


def mean_probability_matrix(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """[K, K]: row i is the mean predicted probability vector over the images of true class i.

    A class with no images gives a row of NaN. Unlike a confusion matrix of arg-max
    counts, it also shows how much probability a near-miss class received.
    """
    y_true, probs = _labels(y_true), np.asarray(probs, dtype=np.float64)
    matrix = np.full((num_classes, num_classes), np.nan)
    for label in range(num_classes):
        rows = probs[y_true == label]
        if len(rows):
            matrix[label] = rows.mean(axis=0)
    return matrix


def worst_classes(y_true: np.ndarray, probs: np.ndarray, k: int = 5, n_confused: int = 2) -> list[dict]:
    """The ``k`` classes with the lowest recall and the classes they are most confused with.

    Ties in recall go to the lower mean probability on the true class, then the lower
    label. Classes without test images have no recall and are skipped.
    """
    y_true, probs = _labels(y_true), np.asarray(probs, dtype=np.float64)
    num_classes = probs.shape[1]
    labels = list(range(num_classes))
    _, recall, _, support = precision_recall_fscore_support(
        y_true, probs.argmax(axis=1), labels=labels, zero_division=0
    )
    matrix = mean_probability_matrix(y_true, probs, num_classes)
    present = [c for c in labels if support[c] > 0]
    ranked = sorted(present, key=lambda c: (recall[c], matrix[c, c], c))[:k]
    result = []
    for c in ranked:
        others = sorted((j for j in labels if j != c), key=lambda j: (-matrix[c, j], j))[:n_confused]
        result.append({
            "label": int(c),
            "recall": float(recall[c]),
            "confused": [{"label": int(j), "mean_prob": float(matrix[c, j])} for j in others],
        })
    return result
