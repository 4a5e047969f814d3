"""Stage `report`: compare every model on the same test images, with tables, paired tests and figures.

Usage: ``python -m stages.report``. Reads every run -- each model of the ``models``
section (in params order) trained at each size of ``study.train_percent`` with each seed of
``study.seeds`` --: ``metrics/eval/<model>/<p>pct/s<seed>.json`` and
``metrics/train/<model>/<p>pct/s<seed>.json``; for the runs at the largest size also
``data/predictions/<model>/<p>pct/s<seed>.csv`` and the dvclive curves in
``plots/train/<model>/<p>pct/s<seed>/``; plus sample test images from ``data/prepared/``. Writes

- ``metrics/comparison.csv``: one row per run, every training-set size (model, seed, size, quality, cost);
- ``metrics/data_size.csv``: the data-size curve, one row per model and size (main metric and fit
  time: mean, sd, 95 % CI over seeds);
- ``metrics/comparison.md``: one row per model, mean +/- sd [95 % CI] over its runs;
- ``metrics/comparison.json``: per model and metric the statistics over the runs at the largest
  size; per pair the paired t-test and Wilcoxon test over seeds (Holm-corrected across pairs), the per-run
  McNemar tests (Holm-corrected within each run) and a one-sentence verdict; ``data_size``: the
  curve, the paired tests at every size (Holm over pairs x sizes) and where one model overtakes another;
- ``plots/report/``: every figure (PNG), built as one folder atomically;
- ``plots/report.md``: the Markdown report linking them.

Params: ``report`` (primary_metric, alpha, worst_classes, confused_per_class),
``models`` (names and families), ``study`` (seeds, train_percent) and ``evaluate.ece_bins``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib import figures, layout, over_runs, predictions
from stages.lib.compare import mcnemar_exact
from stages.lib.errors import DataError, ParamError, run_stage
from stages.lib.files import atomic_output, write_csv, write_json
from stages.lib.metrics import mean_probability_matrix, reliability_bins, worst_classes
from stages.lib.params import Section, stage_params, study_percents, study_seeds
from stages.lib.prepared import PREPARED, open_split, read_meta

PRIMARY_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}  # key -> how the report names it
REPORT_KEYS = ("primary_metric", "alpha", "worst_classes", "confused_per_class")
EVAL_COLUMNS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "eval_time_s",
                "infer_img_per_s", "latency_ms_b1", "model_size_mb", "params_total", "params_trainable")
TRAIN_COLUMNS = ("fit_time_s", "epochs_run", "time_per_trainable_param")
SIZE_COLUMNS = ("train_percent", "train_images", "train_images_per_class")
COLUMNS = ("model", "family", "seed", *SIZE_COLUMNS, *EVAL_COLUMNS, *TRAIN_COLUMNS)
SPREAD = ("mean", "std", "ci_low", "ci_high")  # over_runs.summarize's fields, as data_size.csv columns
# Summarised over runs (mean, sd, 95 % CI) in comparison.json and the Markdown tables.
QUALITY = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece")
COST = ("eval_time_s", "infer_img_per_s", "latency_ms_b1", "fit_time_s", "epochs_run")
CONFIDENCE = 0.95
# Markdown number formats; the CSV keeps full precision.
FORMATS = {"infer_img_per_s": ",.1f", "eval_time_s": ".2f", "latency_ms_b1": ".2f", "model_size_mb": ".2f",
           "params_total": ",.0f", "params_trainable": ",.0f", "fit_time_s": ".1f", "epochs_run": ".0f",
           "time_per_trainable_param": ".2e"}
HISTORY_SPLITS = {"train": "train", "eval": "val"}  # dvclive folder -> column prefix
MAIN_FIGURES = {"study_curves": "Training curves (train solid, validation dashed, test x) and time cost",
                "learning_curves": "Learning curves: loss and macro-F1 per model",
                "cost_frontier": "Quality against cost"}
MODEL_FIGURES = {"confusion": "confusion matrix (row-normalised)",
                 "mean_probability": "mean predicted probability per true class",
                 "worst_classes": "worst classes and what they are confused with",
                 "reliability": "reliability diagram"}


@dataclass(frozen=True)
class Inputs:
    predictions: Path = layout.PREDICTIONS
    eval: Path = layout.EVAL_METRICS
    train: Path = layout.TRAIN_METRICS
    curves: Path = layout.TRAIN_CURVES
    prepared: Path = Path(PREPARED)


@dataclass(frozen=True)
class Outputs:
    table_csv: Path = Path("metrics/comparison.csv")
    table_md: Path = Path("metrics/comparison.md")
    comparison: Path = Path("metrics/comparison.json")
    figures: Path = Path("plots/report")
    report_md: Path = Path("plots/report.md")
    data_size_csv: Path = Path("metrics/data_size.csv")


# --- params ---------------------------------------------------------------------------------

def parse_params(params: dict) -> dict:
    """Validate the `report` section, the model names/families, study.seeds and evaluate.ece_bins."""
    p = Section(params.get("report"), "report", known=REPORT_KEYS)
    alpha = p.raw("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ParamError(p.key("alpha"), f"must be a number in (0, 1), got {alpha!r}")
    models = params.get("models")
    if not isinstance(models, dict) or not models:
        raise ParamError("models", "expected at least one model")
    families = {name: Section(values, f"models.{name}").str("family", allow_empty=False)
                for name, values in models.items()}
    evaluate = Section(params.get("evaluate"), "evaluate")
    return {
        "primary_metric": p.choice("primary_metric", PRIMARY_METRICS, default="accuracy"),
        "seeds": study_seeds(params.get("study")),
        "percents": study_percents(params.get("study")),
        "alpha": float(alpha),
        "worst_classes": p.int("worst_classes", minimum=1),
        "confused_per_class": p.int("confused_per_class", minimum=1),
        "families": families,
        "ece_bins": evaluate.int("ece_bins", minimum=1),
    }


# --- inputs ---------------------------------------------------------------------------------

def _read_json(path: Path, stage: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro {stage}` first")
    return json.loads(path.read_text(encoding="utf-8"))


def _require(values: dict, keys, path: Path, stage: str) -> None:
    missing = [k for k in keys if k not in values]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}: re-run `dvc repro {stage}`")


def read_history(folder: Path, name: str) -> pd.DataFrame:
    """dvclive's per-epoch TSVs merged into one frame: epoch (1-based), train_<metric>, val_<metric>."""
    root = folder / "plots" / "metrics"
    if not root.is_dir():
        raise DataError(f"{root} not found: run `dvc repro train@{name}` first")
    history = None
    for sub, prefix in HISTORY_SPLITS.items():
        for metric in figures.CURVE_METRICS:
            tsv = root / sub / f"{metric}.tsv"
            if tsv.is_file():
                part = pd.read_csv(tsv, sep="\t")[["step", metric]].rename(columns={metric: f"{prefix}_{metric}"})
                history = part if history is None else history.merge(part, on="step", how="outer")
    if history is None:
        raise DataError(f"{root}: no training curves: re-run `dvc repro train@{name}`")
    history.insert(0, "epoch", history.pop("step") + 1)
    return history.sort_values("epoch", ignore_index=True)


def load_run_metrics(name: str, seed: int, percent: int, inputs: Inputs) -> dict:
    """One run's evaluation and training metrics."""
    run = layout.run_label(name, seed, percent)
    eval_path = layout.eval_metrics_path(name, seed, inputs.eval, percent=percent)
    train_path = layout.train_metrics_path(name, seed, inputs.train, percent=percent)
    evaluation, training = _read_json(eval_path, f"evaluate@{run}"), _read_json(train_path, f"train@{run}")
    _require(evaluation, (*EVAL_COLUMNS, "num_test_images"), eval_path, f"evaluate@{run}")
    _require(training, (*TRAIN_COLUMNS, *SIZE_COLUMNS), train_path, f"train@{run}")
    return {"eval": evaluation, "train": training}


def load_run_inputs(name: str, seed: int, percent: int, inputs: Inputs) -> dict:
    """One run's evaluation, training metrics, predictions and curves."""
    run = layout.run_label(name, seed, percent)
    return {**load_run_metrics(name, seed, percent, inputs),
            "predictions": predictions.read_predictions(
                layout.predictions_path(name, seed, inputs.predictions, percent=percent), run),
            "history": read_history(layout.curves_dir(name, seed, inputs.curves, percent=percent), run)}


def check_same_runs(loaded: dict, inputs: Inputs, percent: int) -> None:
    """Every run of the largest size was tested on the same images, in the same order."""
    runs = {layout.run_label(name, seed, percent): (name, seed) for name, seed in loaded}
    predictions.check_same_test_set(
        {run: loaded[key]["predictions"] for run, key in runs.items()},
        {run: layout.predictions_path(*key, inputs.predictions, percent=percent) for run, key in runs.items()})


def thumbnails(frame: pd.DataFrame, num_classes: int, prepared: Path) -> dict[int, np.ndarray]:
    """label -> the first test image of that class, at the largest prepared size."""
    split = open_split("test", max(read_meta(prepared)["image_sizes"]), prepared)
    index = {p: i for i, p in enumerate(split.paths)}
    first = frame.drop_duplicates("label")
    missing = [p for p in first["path"] if p not in index]
    if missing:
        raise DataError(f"{prepared}: test image {missing[0]} of the predictions is not in the prepared "
                        f"test split: re-run `dvc repro` (predictions are stale)")
    return {int(lab): np.asarray(split.images[index[p]]) for lab, p in zip(first["label"], first["path"])
            if 0 <= lab < num_classes}


# --- tables ---------------------------------------------------------------------------------

def runs_table(loaded: dict, families: dict) -> pd.DataFrame:
    """One row per run: model, family, seed, then its evaluation and training metrics."""
    rows = [{"model": name, "family": families[name], "seed": seed, **{k: data["train"][k] for k in SIZE_COLUMNS},
             **{k: data["eval"][k] for k in EVAL_COLUMNS}, **{k: data["train"][k] for k in TRAIN_COLUMNS}}
            for (name, seed, *_), data in loaded.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def model_statistics(runs: pd.DataFrame) -> dict:
    """model -> metric -> over_runs.summarize of that metric's values over the model's runs."""
    return {name: {m: over_runs.summarize(group[m].astype(float).tolist(), CONFIDENCE) for m in (*QUALITY, *COST)}
            for name, group in runs.groupby("model", sort=False)}


def mean_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the mean of every numeric column over its runs (for cost figures)."""
    numeric = runs.drop(columns=["family", "seed", *SIZE_COLUMNS]).groupby("model", sort=False).mean(numeric_only=True)
    return numeric.reset_index()


def _spread_text(s: dict, fmt: str) -> str:
    if s["std"] is None:
        return format(s["mean"], fmt)
    return f"{s['mean']:{fmt}} ± {s['std']:{fmt}} [{s['ci_low']:{fmt}}, {s['ci_high']:{fmt}}]"


def summary_table(stats: dict, families: dict, runs: pd.DataFrame, columns, fmt_default: str = ".4f") -> pd.DataFrame:
    counts = runs.groupby("model", sort=False).size()
    rows = [{"model": name, "family": families[name], "runs": int(counts[name]),
             **{c: _spread_text(stats[name][c], FORMATS.get(c, fmt_default).lstrip(",")) for c in columns}}
            for name in stats]
    return pd.DataFrame(rows)


def mcnemar_runs(names: list[str], seeds: list[int], y_true: np.ndarray, loaded: dict) -> dict:
    """Per pair, McNemar's exact test in every run; Holm across the pairs of each run (one family per run)."""
    keys = [f"{a}_vs_{b}" for i, a in enumerate(names) for b in names[i + 1:]]
    result = {key: {"b": [], "c": [], "p": [], "p_holm": []} for key in keys}
    for seed in seeds:
        correct = {n: loaded[(n, seed)]["predictions"]["pred_label"].to_numpy() == y_true for n in names}
        tests = {key: mcnemar_exact(correct[key.split("_vs_")[0]], correct[key.split("_vs_")[1]]) for key in keys}
        for key, p_holm in zip(keys, over_runs.holm([tests[k]["p_value"] for k in keys])):
            for field, value in (("b", tests[key]["b"]), ("c", tests[key]["c"]), ("p", tests[key]["p_value"]),
                                 ("p_holm", p_holm)):
                result[key][field].append(value)
    return result


def pair_statistics(names: list[str], runs: pd.DataFrame, seeds: list[int], mcnemar: dict, cfg: dict) -> dict:
    """Per pair: the paired tests over seeds of the main metric, a verdict, and the per-run McNemar tests."""
    metric = cfg["primary_metric"]
    values = {n: [float(runs.loc[(runs["model"] == n) & (runs["seed"] == s), metric].iloc[0]) for s in seeds]
              for n in names}
    pairs = over_runs.compare_models(values, cfg["alpha"], CONFIDENCE)
    for key, pair in pairs.items():
        a, b = key.split("_vs_")
        significant_runs = sum(p < cfg["alpha"] for p in mcnemar[key]["p_holm"])
        pair.update(metric=metric,
                    verdict=over_runs.verdict(a, b, PRIMARY_METRICS[metric], pair, cfg["alpha"], confidence=CONFIDENCE),
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


def data_size_statistics(all_runs: pd.DataFrame, names: list[str], seeds: list[int], cfg: dict) -> dict:
    """The curve's paired comparisons at every size (Holm over pairs x sizes) and its one-sentence reading."""
    primary = cfg["primary_metric"]
    values: dict[str, dict[float, list[float]]] = {}
    for name in names:
        mine = all_runs[all_runs["model"] == name]
        values[name] = {float(g["train_images_per_class"].iloc[0]):
                        [float(g.loc[g["seed"] == s, primary].iloc[0]) for s in seeds]
                        for _, g in mine.groupby("train_percent", sort=True)}
    pairs = over_runs.curve_comparisons(values, cfg["alpha"], CONFIDENCE)
    if len(cfg["percents"]) == 1:
        statement = (f"One training-set size only ({cfg['percents'][0]} % of each class's training images): "
                     "list more in `study.train_percent` for a data-size curve.")
    else:
        statement = over_runs.crossing_sentence(pairs, PRIMARY_METRICS[primary])
    return {"metric": primary, "x": "training images per class", "percents": cfg["percents"], "pairs": pairs,
            "statement": statement}


def _spread_of(row: pd.Series, column: str) -> dict:
    values = {k: row[f"{column}_{k}"] for k in SPREAD}
    return {k: None if pd.isna(v) else v for k, v in values.items()}


def data_size_markdown(curve: pd.DataFrame, statement: str, primary: str, figure_dir: str) -> list[str]:
    label = PRIMARY_METRICS[primary]
    table = pd.DataFrame({
        "model": curve["model"], "training %": curve["train_percent"],
        "images per class": curve["x"].map(lambda x: f"{x:g}"), "runs": curve["runs"],
        label: [_spread_text(_spread_of(r, primary), ".4f") for _, r in curve.iterrows()],
        "fit time (s)": [_spread_text(_spread_of(r, "fit_time_s"), ".1f") for _, r in curve.iterrows()]})
    return ["## Data size: where does a model pay off?\n",
            "Each model trained on nested subsets of the training images (`study.train_percent`; a smaller "
            "subset of a seed lies inside every larger one, per class), validated and tested on the same "
            "images as always. Paired t-tests by seed at every size, Holm-corrected across all pairs and sizes "
            "together: a stricter correction than the verdicts' (the pairs at the largest size alone), so a "
            "verdict above can be significant where the same comparison on the curve is not.\n",
            f"**{statement}**\n",
            f"![{label} and fit time vs training images per class]({figure_dir}/data_size.png)\n",
            markdown_table(table)]


def _cell(value, fmt: str | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return format(value, fmt or ",d")
    if isinstance(value, (float, np.floating)):
        return format(value, fmt or ".4f")
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, formats: dict | None = None) -> str:
    # Hand-written: DataFrame.to_markdown needs the optional `tabulate` package.
    formats = formats or {}
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], formats.get(c)) for c in frame.columns) + " |")
    return "\n".join(lines) + "\n"


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def pairs_table(pairs: dict) -> pd.DataFrame:
    rows = [{"pair": key.replace("_vs_", " vs "), "runs": p["n"],
             "mean diff [95% CI]": "n/a" if p["diff_ci_low"] is None else
             f"{p['diff_mean']:+.4f} [{p['diff_ci_low']:+.4f}, {p['diff_ci_high']:+.4f}]",
             "paired t p (Holm)": f"{_p(p['t_p'])} ({_p(p['t_p_holm'])})",
             "Wilcoxon p (Holm)": f"{_p(p['wilcoxon_p'])} ({_p(p['wilcoxon_p_holm'])})",
             "McNemar significant runs (Holm)": f"{p['mcnemar']['significant_runs']} of {p['mcnemar']['runs']}",
             "McNemar p per run (Holm)": ", ".join(_p(x) for x in p["mcnemar"]["p_holm"])}
            for key, p in pairs.items()]
    return pd.DataFrame(rows)


def _rounded(value):
    """Floats to 6 significant digits (not decimals: p-values can be 1e-8) for a stable, readable JSON."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value


# --- figures --------------------------------------------------------------------------------

def mean_history(histories: list[pd.DataFrame]) -> pd.DataFrame:
    """Per epoch, the mean and sd (``<column>_sd``) of each curve over the runs that reached it."""
    stacked = pd.concat(histories, ignore_index=True)
    grouped = stacked.groupby("epoch", sort=True)
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    return pd.concat([mean, sd.add_suffix("_sd")], axis=1).reset_index()


def draw_figures(folder: Path, loaded: dict, runs: pd.DataFrame, stats: dict, class_names: list[str],
                 thumbs: dict, cfg: dict) -> None:
    names = list(stats)
    histories = {n: mean_history([d["history"] for (m, _), d in loaded.items() if m == n]) for n in names}
    test = {n: {"loss": stats[n]["log_loss"]["mean"], "accuracy": stats[n]["accuracy"]["mean"],
                "top3_accuracy": stats[n]["top3_accuracy"]["mean"]} for n in names}
    figures.study_curves(histories, test, {n: stats[n]["eval_time_s"]["mean"] for n in names},
                         {n: stats[n]["fit_time_s"]["mean"] for n in names}, folder / "study_curves.png")
    figures.learning_curves(histories, folder / "learning_curves.png")
    figures.cost_frontier(mean_table(runs), folder / "cost_frontier.png")
    primary = cfg["primary_metric"]
    figures.runs_strip(runs, primary, PRIMARY_METRICS[primary], {n: stats[n][primary] for n in names},
                       folder / "runs.png")
    k = len(class_names)
    prob_columns = [f"prob:{c}" for c in class_names]
    for name in names:
        # Every run's test predictions pooled: the per-class picture of the model, not of one seed.
        frame = pd.concat([d["predictions"] for (m, _), d in loaded.items() if m == name], ignore_index=True)
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


# --- report ---------------------------------------------------------------------------------

def report_markdown(runs: pd.DataFrame, stats: dict, pairs: dict, summary: dict, class_names: list[str],
                    n_test: int, cfg: dict, figure_dir: str, curve: pd.DataFrame) -> str:
    names = list(stats)
    seeds = cfg["seeds"]
    primary = PRIMARY_METRICS[summary["primary_metric"]]
    listed = f" ({', '.join(class_names)})" if len(class_names) <= 30 else ""
    parts = [
        "# Model comparison\n",
        f"Test set: {len(class_names)} classes{listed}, {n_test} test images, the same images for every run. "
        f"Every model was trained {len(seeds)} {'time' if len(seeds) == 1 else 'times'}, once per seed of `study.seeds` ({seeds}), on the same "
        f"data; figures are mean ± standard deviation [95% confidence interval of the mean] over those runs.\n",
        "## Verdicts\n",
        f"Main metric: {primary}. Paired t-test over seeds, Holm-corrected across the {len(pairs)} pair(s); "
        f"significance level {cfg['alpha']:g}. The intervals are per pair, not adjusted for multiplicity: "
        f"one can exclude 0 while the Holm-corrected p is above {cfg['alpha']:g}. With few runs a large "
        f"difference can still miss significance; adding seeds (`study.seeds`) narrows the intervals.\n",
    ]
    parts += [f"- {p['verdict']}." for p in pairs.values()] or ["- Only one model: no pairwise comparison."]
    parts += [
        "",
        f"Best by mean {primary}: **{summary['best']}** ({summary['best_score']:.4f}).\n",
        *data_size_markdown(curve, summary["data_size"]["statement"], summary["primary_metric"], figure_dir),
        "## Quality over runs\n",
        markdown_table(summary_table(stats, cfg["families"], runs, QUALITY)),
        "## Cost over runs\n",
        "Times are in seconds on the machine that ran the pipeline: compare them as ratios within this report.\n",
        markdown_table(summary_table(stats, cfg["families"], runs, COST, ".2f")),
    ]
    if pairs:
        parts += [
            "## Pairwise tests\n",
            f"Differences first minus second in {primary}, paired by seed. The paired t-test is the verdict; "
            f"the Wilcoxon signed-rank test needs no normality but cannot go below p = 2/2^n "
            f"({2 / 2 ** len(seeds):.2g} for {len(seeds)} runs). McNemar's exact test compares the two models "
            f"on the test images within each run (Holm-corrected across pairs within the run): it measures "
            f"test-set sampling, the seeds measure training randomness.\n",
            markdown_table(pairs_table(pairs)),
        ]
    parts += ["## Runs\n", f"![{primary} of every run]({figure_dir}/runs.png)\n", "## Figures\n",
              "Curves are the mean over runs with a ±1 sd band; per-model matrices pool every run's test "
              "predictions.\n"]
    for stem, caption in MAIN_FIGURES.items():
        parts.append(f"### {caption}\n\n![{caption}]({figure_dir}/{stem}.png)\n")
    for name in names:
        parts.append(f"### {name}\n")
        parts += [f"![{name}: {caption}]({figure_dir}/{stem}_{name}.png)\n" for stem, caption in MODEL_FIGURES.items()]
    parts.append("## Every run\n")
    parts.append(markdown_table(runs[["model", "seed", *QUALITY, "fit_time_s", "epochs_run"]], FORMATS))
    return "\n".join(parts)


def check_same_test_size(sized: dict, n_test: int, inputs: Inputs) -> None:
    """Every size's runs were evaluated on the test split the main runs were (evaluate uses all of it)."""
    for (name, seed, percent), data in sized.items():
        if data["eval"]["num_test_images"] != n_test:
            raise DataError(f"{layout.eval_metrics_path(name, seed, inputs.eval, percent=percent)}: "
                            f"{data['eval']['num_test_images']} test images, the other runs {n_test}: re-run "
                            f"`dvc repro evaluate@{layout.run_label(name, seed, percent)}`")


def build_report(cfg: dict, inputs: Inputs = Inputs(), outputs: Outputs = Outputs()) -> dict:
    """Read every run's results, write all the report's outputs; returns the comparison summary.

    Verdicts, tables and per-model figures use the runs at the largest training-set size; the
    data-size curve uses every size."""
    names, seeds, full = list(cfg["families"]), cfg["seeds"], cfg["percents"][-1]
    loaded = {(name, seed): load_run_inputs(name, seed, full, inputs) for name in names for seed in seeds}
    check_same_runs(loaded, inputs, full)
    frame = next(iter(loaded.values()))["predictions"]
    class_names = [c[len("prob:"):] for c in frame.columns if c.startswith("prob:")]
    sized = {(name, seed, percent): (loaded[(name, seed)] if percent == full else
                                     load_run_metrics(name, seed, percent, inputs))
             for name in names for percent in cfg["percents"] for seed in seeds}
    check_same_test_size(sized, len(frame), inputs)
    all_runs = runs_table(sized, cfg["families"])
    curve = data_size_table(all_runs, cfg["primary_metric"])
    runs = runs_table(loaded, cfg["families"])
    stats = model_statistics(runs)
    pairs = pair_statistics(names, runs, seeds, mcnemar_runs(names, seeds, frame["label"].to_numpy(), loaded), cfg)
    primary = cfg["primary_metric"]
    best = max(names, key=lambda n: stats[n][primary]["mean"])
    data_size = {**data_size_statistics(all_runs, names, seeds, cfg),
                 "curve": curve.astype(object).where(curve.notna(), None).to_dict(orient="records")}
    summary = _rounded({"primary_metric": primary, "alpha": cfg["alpha"], "confidence": CONFIDENCE, "seeds": seeds,
                        "train_percent": full, "best": best, "best_score": stats[best][primary]["mean"],
                        "models": stats, "pairs": pairs, "data_size": data_size})
    thumbs = thumbnails(frame, len(class_names), inputs.prepared)

    with atomic_output(outputs.figures) as tmp:
        tmp.mkdir()
        draw_figures(tmp, loaded, runs, stats, class_names, thumbs, cfg)
        figures.data_size_curve(tmp / "data_size.png", curve, primary, PRIMARY_METRICS[primary],
                                figures.model_colors(names))
    figure_dir = Path(os.path.relpath(outputs.figures, outputs.report_md.parent)).as_posix()
    write_csv(outputs.table_csv, all_runs)
    write_csv(outputs.data_size_csv, curve)
    with atomic_output(outputs.table_md) as tmp:
        tmp.write_text("# Model comparison over runs\n\n" + markdown_table(summary_table(stats, cfg["families"], runs,
                                                                                           QUALITY)), encoding="utf-8")
    write_json(outputs.comparison, summary)
    with atomic_output(outputs.report_md) as tmp:
        tmp.write_text(report_markdown(runs, stats, pairs, summary, class_names, len(frame), cfg, figure_dir, curve),
                       encoding="utf-8")
    return summary


def main() -> None:
    cfg = parse_params(stage_params("report"))
    summary = build_report(cfg)
    print(f"report: {len(cfg['families'])} model(s) x {len(cfg['seeds'])} seed(s), {len(summary['pairs'])} pair(s); "
          f"best by mean {cfg['primary_metric']}: {summary['best']} -> {Outputs().report_md}")
    for pair in summary["pairs"].values():
        print(f"  {pair['verdict']}")
    print(f"  data size: {summary['data_size']['statement']}")


if __name__ == "__main__":
    run_stage(main)
