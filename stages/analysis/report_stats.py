"""The report's statistics over runs: per-model summaries, verdicts per pair, the data-size curve.

The methods are stages/analysis/verdicts.py (better / equivalent / undecided), data_size.py (the
curve), over_runs.py (per-model intervals) and compare.py (McNemar); this module applies them to the
report's runs and their test predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.analysis import data_size, over_runs, verdicts
from stages.analysis.compare import mcnemar_exact

PRIMARY_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}  # key -> how the report names it
CONFIDENCE = 0.95
SPREAD = ("mean", "std", "ci_low", "ci_high")  # over_runs.summarize's fields, as data_size.csv columns


def model_statistics(runs: pd.DataFrame, metrics) -> dict:
    """model -> metric -> over_runs.summarize of that metric's values over the model's runs."""
    return {name: {m: over_runs.summarize(group[m].astype(float).tolist(), CONFIDENCE) for m in metrics}
            for name, group in runs.groupby("model", sort=False)}


def mcnemar_runs(names: list[str], seeds: list[int], loaded: dict) -> dict:
    """Per pair, McNemar's exact test in every run; Holm across the pairs of each run (one family per run).
    A seed's runs share their test images (with re-drawn splits, that seed's)."""
    keys = [f"{a}_vs_{b}" for i, a in enumerate(names) for b in names[i + 1:]]
    result = {key: {"b": [], "c": [], "p": [], "p_holm": []} for key in keys}
    for seed in seeds:
        y_true = loaded[(names[0], seed)]["predictions"]["label"].to_numpy()
        correct = {n: loaded[(n, seed)]["predictions"]["pred_label"].to_numpy() == y_true for n in names}
        tests = {key: mcnemar_exact(correct[key.split("_vs_")[0]], correct[key.split("_vs_")[1]]) for key in keys}
        for key, p_holm in zip(keys, over_runs.holm([tests[k]["p_value"] for k in keys])):
            for field, value in (("b", tests[key]["b"]), ("c", tests[key]["c"]), ("p", tests[key]["p_value"]),
                                 ("p_holm", p_holm)):
                result[key][field].append(value)
    return result


def image_variance(metric: str, y_true: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray],
                   num_classes: int) -> float:
    """The test-sampling variance of the seed-averaged difference in ``metric`` (verdicts.py)."""
    if metric == "accuracy":
        return verdicts.accuracy_image_variance(np.array([p == y_true for p in preds_a]),
                                                np.array([p == y_true for p in preds_b]))
    return verdicts.bootstrap_image_variance(lambda p, idx: verdicts.macro_f1_rows(y_true, p, num_classes, idx),
                                             preds_a, preds_b, len(y_true))


def _pred_labels(loaded: dict, name: str, seeds: list[int]) -> list[np.ndarray]:
    return [loaded[(name, seed)]["predictions"]["pred_label"].to_numpy() for seed in seeds]


def overlap_at(runs: pd.DataFrame, n_test: int) -> float:
    """Nadeau-Bengio's n_test / n_train for runs that re-drew their split (train images of these runs)."""
    return n_test / float(runs["train_images"].mean())


def pair_statistics(names: list[str], runs: pd.DataFrame, seeds: list[int], mcnemar: dict, cfg: dict,
                    loaded: dict, y_true: np.ndarray, num_classes: int, varied: bool = False) -> dict:
    """Per pair: the verdict over seeds on the main metric (training and test-image variance, Holm across
    pairs; with re-drawn splits, ``varied``, Nadeau-Bengio's corrected variance), its sentence, and the
    per-run McNemar tests."""
    metric = cfg["primary_metric"]
    values = {n: [float(runs.loc[(runs["model"] == n) & (runs["seed"] == s), metric].iloc[0]) for s in seeds]
              for n in names}
    image_var = None if varied else (lambda a, b: image_variance(
        metric, y_true, _pred_labels(loaded, a, seeds), _pred_labels(loaded, b, seeds), num_classes))
    pairs = verdicts.compare_pairs(
        values, margin=cfg["margin"], alpha=cfg["alpha"], looks=cfg["looks"], n_images=len(y_true),
        confidence=CONFIDENCE, image_var=image_var, overlap=overlap_at(runs, len(y_true)) if varied else 0.0)
    for key, pair in pairs.items():
        significant_runs = sum(p < cfg["alpha"] for p in mcnemar[key]["p_holm"])
        pair.update(metric=metric, sentence=verdicts.sentence(pair, PRIMARY_METRICS[metric], CONFIDENCE),
                    mcnemar={**mcnemar[key], "significant_runs": significant_runs, "runs": len(seeds)})
    return pairs


def data_size_table(all_runs: pd.DataFrame, primary: str) -> pd.DataFrame:
    """One row per model and training-set size: the main metric and fit time over that size's runs."""
    rows = []
    for name in dict.fromkeys(all_runs["model"]):
        for percent, group in all_runs[all_runs["model"] == name].groupby("train_percent", sort=True):
            quality = over_runs.summarize(group[primary].astype(float).tolist(), CONFIDENCE)
            cost = over_runs.summarize(group["fit_time_s"].astype(float).tolist(), CONFIDENCE)
            rows.append({"model": name, "train_percent": int(percent),
                         "x": float(group["train_images_per_class"].mean()), "runs": quality["n"],
                         **{f"{primary}_{k}": quality[k] for k in SPREAD},
                         **{f"fit_time_s_{k}": cost[k] for k in SPREAD}})
    frame = pd.DataFrame(rows)
    return frame.astype({c: float for c in frame.columns if c.endswith(SPREAD)})


def curve_records(curve: pd.DataFrame, metric: str) -> list[dict]:
    """The data-size curve's rows for a JSON summary: model, size, runs and ``metric``'s spread (NaN -> None)."""
    columns = ["model", "train_percent", "x", "runs", *(f"{metric}_{k}" for k in SPREAD)]
    part = curve[columns]
    return part.astype(object).where(part.notna(), None).to_dict(orient="records")


def data_size_statistics(sized: dict, all_runs: pd.DataFrame, names: list[str], seeds: list[int], cfg: dict,
                         y_true: np.ndarray, num_classes: int, varied: bool = False) -> dict:
    """Every (pair, size) decided as one Holm family, and the curve's one-sentence reading.

    ``sized[(model, seed, percent)]``: the run's loaded inputs, predictions included; ``varied``: the
    runs re-drew their split per seed (Nadeau-Bengio's variance at each size)."""
    primary = cfg["primary_metric"]
    values: dict[str, dict[float, list[float]]] = {}
    percent_at: dict[float, int] = {}
    for name in names:
        mine = all_runs[all_runs["model"] == name]
        for percent, g in mine.groupby("train_percent", sort=True):
            x = float(g["train_images_per_class"].iloc[0])
            percent_at[x] = int(percent)
            values.setdefault(name, {})[x] = [float(g.loc[g["seed"] == s, primary].iloc[0]) for s in seeds]

    def variance(a: str, b: str, x: float) -> float:
        preds = {n: [sized[(n, s, percent_at[x])]["predictions"]["pred_label"].to_numpy() for s in seeds]
                 for n in (a, b)}
        return image_variance(primary, y_true, preds[a], preds[b], num_classes)

    def overlap(x: float) -> float:
        return overlap_at(all_runs[all_runs["train_percent"] == percent_at[x]], len(y_true))

    pairs = data_size.curve_verdicts(values, margin=cfg["margin"], alpha=cfg["alpha"], looks=cfg["looks"],
                                     image_var=None if varied else variance, n_images=len(y_true),
                                     confidence=CONFIDENCE, overlap=overlap if varied else None)
    for curve in pairs.values():
        for point in curve["points"]:
            point["train_percent"] = percent_at[point["x"]]
    if len(cfg["percents"]) == 1:
        statement = (f"One training-set size only ({cfg['percents'][0]} % of each class's training images): "
                     "list more in `study.train_percent` for a data-size curve.")
    else:
        statement = data_size.curve_sentence(pairs, PRIMARY_METRICS[primary])
    return {"metric": primary, "x": "training images per class", "percents": cfg["percents"], "pairs": pairs,
            "statement": statement}


def rounded(value):
    """Floats to 6 significant digits (not decimals: p-values can be 1e-8) for a stable, readable JSON."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value
