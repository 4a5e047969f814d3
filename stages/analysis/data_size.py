"""The data-size curve's verdicts: at which training-set size does one model pay off over another?

Every (pair, size) point is decided by stages/analysis/verdicts.py -- better, equivalent or
undecided -- with all points of all pairs one Holm family: "the curves cross" or "pays off from
here" is read off several of them at once, and each is one more chance of a false claim.
Runs at one size used the same nested subset per seed, so the pairing by seed holds per size.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable

from stages.analysis import verdicts

MAX_NEEDED = verdicts.MAX_RUNS + 1  # orders "not by runs" after every count


def curve_verdicts(values: dict[str, dict[float, list[float]]], *, margin: float, alpha: float, looks: int = 1,
                   image_var: Callable[[str, str, float], float] | None = None, n_images: int | None = None,
                   confidence: float = 0.95, overlap: Callable[[float], float] | None = None) -> dict[str, dict]:
    """Per pair ``"<a>_vs_<b>"``: ``points`` (one decided point per shared size, ascending ``x``),
    ``crossing`` (the first supported reversal, else None) and ``pays_off`` (the smallest size from
    which one model is better at every larger size, else None).

    ``values[model][x]``: per-seed metric values at training size ``x`` (images per class);
    ``image_var(a, b, x)``: that point's test-sampling variance (None: zero); ``overlap(x)``: with
    re-drawn splits, Nadeau-Bengio's n_test / n_train at size ``x`` (None: one fixed split).
    """
    pairs, family = {}, []
    for a, b in combinations(list(values), 2):
        points = [{"x": x, "a": a, "b": b, "n_images": n_images,
                   **verdicts.paired_difference(values[a][x], values[b][x], margin=margin, confidence=confidence,
                                                image_var=image_var(a, b, x) if image_var else 0.0,
                                                n_images=n_images, overlap=overlap(x) if overlap else 0.0)}
                  for x in sorted(set(values[a]) & set(values[b]))]
        pairs[f"{a}_vs_{b}"] = points
        family += points
    verdicts.decide(family, alpha, looks)
    return {key: {"points": points, "crossing": crossing(points), "pays_off": pays_off(points)}
            for key, points in pairs.items()}


def crossing(points: list[dict]) -> dict | None:
    """One model better at a size, the other better at a larger one (both decided); diffs winner - loser."""
    last = {}  # model -> its last point where it was better
    for p in points:
        if p["verdict"] != "better":
            continue
        winner = p["better"]
        loser = next((m for m in last if m != winner), None)
        if loser is not None:
            below, sign = last[loser], 1 if winner == p["a"] else -1  # diff_mean is a - b
            return {"winner": winner, "loser": loser, "x_below": below["x"], "x_above": p["x"],
                    "diff_below": sign * below["diff_mean"], "diff_above": sign * p["diff_mean"]}
        last[winner] = p
    return None


def pays_off(points: list[dict]) -> dict | None:
    """The smallest size from which one model is better at every size up to the largest."""
    if not points or points[-1]["verdict"] != "better":
        return None
    winner, start = points[-1]["better"], points[-1]
    for p in reversed(points[:-1]):
        if p["verdict"] != "better" or p["better"] != winner:
            break
        start = p
    return {"winner": winner, "x": start["x"], "from_smallest": start is points[0]}


def _sizes(xs: list[float]) -> str:
    text = [f"{x:g}" for x in xs]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def pair_clause(key: str, curve: dict, metric_label: str, x_label: str) -> str:
    """What one pair's curve says, size by size, in one clause."""
    points = curve["points"]
    a, b = key.split("_vs_", 1)
    if not points:
        return f"{a} and {b} share no training size"
    if (c := curve["crossing"]) is not None:
        return (f"{c['winner']} overtakes {c['loser']} on {metric_label} between {c['x_below']:g} and "
                f"{c['x_above']:g} {x_label} ({c['loser']} better by {-c['diff_below']:+.3f} at {c['x_below']:g}, "
                f"{c['winner']} by {c['diff_above']:+.3f} at {c['x_above']:g})")
    parts = []
    if (paid := curve["pays_off"]) is not None:
        loser = b if paid["winner"] == a else a
        where = "at every size" if paid["from_smallest"] else f"from {paid['x']:g} {x_label} on"
        parts.append(f"{paid['winner']} better than {loser} on {metric_label} {where}")
        points = [p for p in points if p["x"] < paid["x"]]
    better = {}
    for p in points:
        if p["verdict"] == "better":
            better.setdefault(p["better"], []).append(p["x"])
    for winner, xs in better.items():
        parts.append(f"{winner} better at {_sizes(xs)}")
    if equal := [p["x"] for p in points if p["verdict"] == "equivalent"]:
        parts.append(f"equivalent within ±{points[0]['margin']:g} at {_sizes(equal)}")
    if open_ := [p for p in points if p["verdict"] == "undecided"]:
        # The hardest point's advice: a count of runs, or why runs alone will not do.
        hardest = max(open_, key=lambda p: MAX_NEEDED if p["runs_needed"] is None else p["runs_needed"])
        advice = f" ({verdicts.runs_advice(hardest)})" if hardest["p_diff"] is not None else ""
        parts.append(f"undecided at {_sizes([p['x'] for p in open_])}{advice}")
    head = "" if curve["pays_off"] is not None else f"{a} vs {b}: "
    return head + "; ".join(parts)


def curve_sentence(curves: dict[str, dict], metric_label: str, x_label: str = "training images per class") -> str:
    """The data-size curve in one or two sentences: where a model overtakes or pays off, pair by pair."""
    if not curves:
        return "No pair of models to compare on the data-size curve."
    return ". ".join(pair_clause(key, curve, metric_label, x_label) for key, curve in curves.items()) + "."
