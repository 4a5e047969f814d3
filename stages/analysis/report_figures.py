"""The report's figures: what each is drawn from (stages/analysis/figures.py draws them).

Curves are the mean over a model's runs with a +/- 1 sd band; per-model matrices pool every
run's test predictions; the test cross of the training curves sits at the epoch the evaluated
weights come from (:func:`evaluated_epoch`), averaged over the runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.analysis import figures
from stages.analysis.report_stats import PRIMARY_METRICS
from stages.analysis.run_columns import SIZE_COLUMNS
from stages.core.metrics import mean_probability_matrix, reliability_bins, worst_classes

MAIN_FIGURES = {"study_curves": "Training curves (train solid, validation dashed, test x) and time cost",
                "learning_curves": "Learning curves: loss and macro-F1 per model",
                "cost_frontier": "Quality against cost"}
MODEL_FIGURES = {"confusion": "confusion matrix (row-normalised)",
                 "mean_probability": "mean predicted probability per true class",
                 "worst_classes": "worst classes and what they are confused with",
                 "reliability": "reliability diagram"}


def mean_history(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Per epoch, the mean and sd (``<column>_sd``) of each curve over the runs that reached it."""
    stacked = pd.concat(histories, ignore_index=True)
    grouped = stacked.groupby("epoch", sort=True)
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    return pd.concat([mean, sd.add_suffix("_sd")], axis=1).reset_index()


def evaluated_epoch(run: dict) -> int:
    """The epoch (1-based) whose weights the run's evaluated model carries: train's ``evaluated_epoch``
    (the best epoch when early stopping restored it), else -- metrics from before that key -- the last one."""
    epoch = run["train"].get("evaluated_epoch")
    return int(run["history"]["epoch"].max() if epoch is None else epoch)


def mean_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the mean of every numeric column over its runs (for cost figures)."""
    numeric = runs.drop(columns=["family", "seed", *SIZE_COLUMNS]).groupby("model", sort=False).mean(numeric_only=True)
    return numeric.reset_index()


def runs_by_model(loaded: dict, names: list[str]) -> dict[str, list[dict]]:
    return {n: [d for (m, _), d in loaded.items() if m == n] for n in names}


def mean_curves(loaded: dict, names: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Per model the mean history over its runs and the mean evaluated epoch (the test cross's x)."""
    by_model = runs_by_model(loaded, names)
    histories = {n: mean_history([d["history"] for d in by_model[n]]) for n in names}
    test_epochs = {n: sum(map(evaluated_epoch, by_model[n])) / len(by_model[n]) for n in names}
    return histories, test_epochs


def pooled_predictions(loaded: dict, names: list[str]) -> dict[str, pd.DataFrame]:
    """Per model every run's test predictions, one frame."""
    return {n: pd.concat([d["predictions"] for d in runs], ignore_index=True)
            for n, runs in runs_by_model(loaded, names).items()}


def draw_figures(folder: Path, loaded: dict, runs: pd.DataFrame, stats: dict, class_names: list[str],
                 thumbs: dict, curve: pd.DataFrame, cfg: dict) -> None:
    """Every figure of the report into ``folder``: ``loaded`` and ``runs`` are the largest size's runs,
    ``stats`` their summaries per model, ``curve`` the data-size curve over every size."""
    names = list(stats)
    histories, test_epochs = mean_curves(loaded, names)
    test = {n: {"loss": stats[n]["log_loss"]["mean"], "accuracy": stats[n]["accuracy"]["mean"],
                "top3_accuracy": stats[n]["top3_accuracy"]["mean"]} for n in names}
    figures.study_curves(histories, test, {n: stats[n]["eval_time_s"]["mean"] for n in names},
                         {n: stats[n]["fit_time_s"]["mean"] for n in names}, folder / "study_curves.png",
                         test_epochs=test_epochs)
    figures.learning_curves(histories, folder / "learning_curves.png")
    figures.cost_frontier(mean_table(runs), folder / "cost_frontier.png")
    primary = cfg["primary_metric"]
    figures.runs_strip(runs, primary, PRIMARY_METRICS[primary], {n: stats[n][primary] for n in names},
                       folder / "runs.png")
    figures.data_size_curve(folder / "data_size.png", curve, primary, PRIMARY_METRICS[primary],
                            figures.model_colors(names))
    k = len(class_names)
    prob_columns = [f"prob:{c}" for c in class_names]
    for name, frame in pooled_predictions(loaded, names).items():
        y_true, y_pred = frame["label"].to_numpy(), frame["pred_label"].to_numpy()
        probs = frame[prob_columns].to_numpy()
        figures.confusion_counts(y_true, y_pred, class_names, f"{name}: {MODEL_FIGURES['confusion']}",
                                 folder / f"confusion_{name}.png")
        figures.mean_probability_heatmap(mean_probability_matrix(y_true, probs, k), class_names,
                                         f"{name}: {MODEL_FIGURES['mean_probability']}",
                                         folder / f"mean_probability_{name}.png")
        worst = worst_classes(y_true, probs, k=min(cfg["worst_classes"], k),
                              n_confused=min(cfg["confused_per_class"], k - 1))
        figures.worst_classes_figure(worst, class_names, thumbs, folder / f"worst_classes_{name}.png")
        figures.reliability_diagram(reliability_bins(y_true, probs, bins=cfg["ece_bins"]), stats[name]["ece"]["mean"],
                                    f"{name}: {MODEL_FIGURES['reliability']}", folder / f"reliability_{name}.png")
