"""Stage `report`: compare every model on the same test images, with tables, paired tests and figures.

Usage: ``python -m stages.report``. Reads, for each model of the ``models`` section
(in params order), ``metrics/eval/<model>.json``, ``data/predictions/<model>.csv``,
``metrics/train/<model>.json`` and the dvclive curves in ``plots/train/<model>/``,
plus sample test images from ``data/prepared/``. Writes

- ``metrics/comparison.csv`` / ``.md``: one row per model (quality, cost, training time);
- ``metrics/comparison.json``: per pair, McNemar's exact test, paired-bootstrap CIs of the
  accuracy and macro-F1 differences and a verdict; the best model by each metric;
- ``plots/report/``: every figure (PNG), built as one folder atomically;
- ``plots/report.md``: the Markdown report linking them.

Params: ``report`` (bootstrap_resamples, seed, alpha, worst_classes,
confused_per_class), ``models`` (names and families) and ``evaluate.ece_bins``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib import figures, layout
from stages.lib.compare import compare_all
from stages.lib.errors import DataError, ParamError, run_stage
from stages.lib.files import atomic_output, read_csv, write_csv, write_json
from stages.lib.metrics import mean_probability_matrix, reliability_bins, worst_classes
from stages.lib.params import Section, stage_params
from stages.lib.prepared import PREPARED, open_split, read_meta

PRIMARY_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}  # key -> how the report names it
REPORT_KEYS = ("primary_metric", "bootstrap_resamples", "seed", "alpha", "worst_classes", "confused_per_class")
EVAL_COLUMNS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "eval_time_s",
                "infer_img_per_s", "latency_ms_b1", "model_size_mb", "params_total", "params_trainable")
TRAIN_COLUMNS = ("fit_time_s", "epochs_run", "time_per_trainable_param")
COLUMNS = ("model", "family", *EVAL_COLUMNS, *TRAIN_COLUMNS)
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


# --- params ---------------------------------------------------------------------------------

def parse_params(params: dict) -> dict:
    """Validate the `report` section, the model names/families and evaluate.ece_bins."""
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
        "resamples": p.int("bootstrap_resamples", minimum=1000),
        "seed": p.int("seed", minimum=0),
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


def read_predictions(path: Path, name: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro evaluate@{name}` first")
    frame = read_csv(path)
    probs = [c for c in frame.columns if c.startswith("prob:")]
    _require(frame.columns, ("path", "label", "pred_label"), path, f"evaluate@{name}")
    if len(probs) < 2 or frame.empty:
        raise DataError(f"{path}: expected test rows and a prob:<class> column per class (>= 2)")
    frame["pred_label"] = frame["pred_label"].astype(int)
    frame[probs] = frame[probs].astype(float)
    if not (frame[["label", "pred_label"]].isin(range(len(probs)))).all(axis=None):
        raise DataError(f"{path}: labels outside 0..{len(probs) - 1}: re-run `dvc repro evaluate@{name}`")
    return frame


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


def load_model_inputs(name: str, inputs: Inputs) -> dict:
    eval_path, train_path = inputs.eval / f"{name}.json", inputs.train / f"{name}.json"
    evaluation, training = _read_json(eval_path, f"evaluate@{name}"), _read_json(train_path, f"train@{name}")
    _require(evaluation, EVAL_COLUMNS, eval_path, f"evaluate@{name}")
    _require(training, TRAIN_COLUMNS, train_path, f"train@{name}")
    return {"eval": evaluation, "train": training,
            "predictions": read_predictions(inputs.predictions / f"{name}.csv", name),
            "history": read_history(inputs.curves / name, name)}


def check_same_test_set(loaded: dict, inputs: Inputs) -> None:
    """Paired statistics need every model's rows to be the same images, classes and labels, in order."""
    first, ref = next(iter(loaded.items()))
    ref = ref["predictions"]
    for name, data in loaded.items():
        frame = data["predictions"]
        same = (list(frame.columns) == list(ref.columns) and len(frame) == len(ref)
                and (frame["path"].to_numpy() == ref["path"].to_numpy()).all()
                and (frame["label"].to_numpy() == ref["label"].to_numpy()).all())
        if not same:
            raise DataError(
                f"{inputs.predictions / f'{name}.csv'} and {inputs.predictions / f'{first}.csv'} are not the "
                f"same test images and classes: re-run `dvc repro evaluate@{name} evaluate@{first}`"
            )


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

def comparison_table(loaded: dict, families: dict) -> pd.DataFrame:
    rows = [{"model": name, "family": families[name], **{k: data["eval"][k] for k in EVAL_COLUMNS},
             **{k: data["train"][k] for k in TRAIN_COLUMNS}} for name, data in loaded.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


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


def _ci_text(ci: dict) -> str:
    return f"{ci['diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def pairs_table(pairs: dict) -> pd.DataFrame:
    rows = [{"pair": key.replace("_vs_", " vs "), "only first right (b)": p["mcnemar"]["b"],
             "only second right (c)": p["mcnemar"]["c"], "McNemar p": f"{p['mcnemar']['p_value']:.2g}",
             "accuracy diff [CI]": _ci_text(p["accuracy_diff_ci"]),
             "macro-F1 diff [CI]": _ci_text(p["macro_f1_diff_ci"]),
             "verdict": p["verdict"].split(" (")[0]}  # its evidence is in the columns before it
            for key, p in pairs.items()]
    return pd.DataFrame(rows)


def _rounded(value):
    """Floats to 6 significant digits (not decimals: p-values can be 1e-8) for a stable, readable JSON."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return float(f"{value:.6g}") if isinstance(value, float) else value


# --- figures --------------------------------------------------------------------------------

def draw_figures(folder: Path, loaded: dict, table: pd.DataFrame, class_names: list[str], thumbs: dict,
                 cfg: dict) -> None:
    histories = {name: data["history"] for name, data in loaded.items()}
    test = {name: {"loss": d["eval"]["log_loss"], "accuracy": d["eval"]["accuracy"],
                   "top3_accuracy": d["eval"]["top3_accuracy"]} for name, d in loaded.items()}
    figures.study_curves(histories, test, {n: d["eval"]["eval_time_s"] for n, d in loaded.items()},
                         {n: d["train"]["fit_time_s"] for n, d in loaded.items()}, folder / "study_curves.png")
    figures.learning_curves(histories, folder / "learning_curves.png")
    figures.cost_frontier(table, folder / "cost_frontier.png")
    k = len(class_names)
    for name, data in loaded.items():
        frame = data["predictions"]
        y_true, y_pred = frame["label"].to_numpy(), frame["pred_label"].to_numpy()
        probs = frame[[f"prob:{c}" for c in class_names]].to_numpy()
        figures.confusion_counts(y_true, y_pred, class_names, f"{name}: {MODEL_FIGURES['confusion']}",
                                 folder / f"confusion_{name}.png")
        figures.mean_probability_heatmap(mean_probability_matrix(y_true, probs, k), class_names,
                                         f"{name}: {MODEL_FIGURES['mean_probability']}",
                                         folder / f"mean_probability_{name}.png")
        worst = worst_classes(y_true, probs, k=min(cfg["worst_classes"], k),
                              n_confused=min(cfg["confused_per_class"], k - 1))
        figures.worst_classes_figure(worst, class_names, thumbs, folder / f"worst_classes_{name}.png")
        figures.reliability_diagram(reliability_bins(y_true, probs, bins=cfg["ece_bins"]), data["eval"]["ece"],
                                    f"{name}: {MODEL_FIGURES['reliability']}", folder / f"reliability_{name}.png")


# --- report ---------------------------------------------------------------------------------

def report_markdown(table: pd.DataFrame, pairs: dict, summary: dict, class_names: list[str], n_test: int,
                    cfg: dict, figure_dir: str) -> str:
    models = list(table["model"])
    level = f"{100 * (1 - cfg['alpha']):g}%"
    listed = f" ({', '.join(class_names)})" if len(class_names) <= 30 else ""
    parts = [
        "# Model comparison\n",
        f"Test set: {len(class_names)} classes{listed}, {n_test} test images, the same images for every model.\n",
        "## Comparison\n",
        markdown_table(table, FORMATS),
        f"Main metric: {PRIMARY_METRICS[summary['primary_metric']]}; best: **{summary['best']}** "
        f"({summary['best_score']:.4f}).\n",
        f"Best by macro-F1: **{summary['best_by_macro_f1']}**; best by accuracy: "
        f"**{summary['best_by_accuracy']}**.\n",
        "## Pairwise significance\n",
    ]
    if pairs:
        parts += [
            f"McNemar's exact test on the images exactly one of the two models classifies correctly, and "
            f"{level} paired-bootstrap confidence intervals ({cfg['resamples']} resamples of the test images, "
            f"seed {cfg['seed']}) of the differences first minus second; significance level {cfg['alpha']:g}.\n",
            markdown_table(pairs_table(pairs)),
        ]
    else:
        parts.append("Only one model: no pairwise comparison.\n")
    parts.append("## Figures\n")
    for stem, caption in MAIN_FIGURES.items():
        parts.append(f"### {caption}\n\n![{caption}]({figure_dir}/{stem}.png)\n")
    for name in models:
        parts.append(f"### {name}\n")
        parts += [f"![{name}: {caption}]({figure_dir}/{stem}_{name}.png)\n" for stem, caption in MODEL_FIGURES.items()]
    return "\n".join(parts)


def build_report(cfg: dict, inputs: Inputs = Inputs(), outputs: Outputs = Outputs()) -> dict:
    """Read every model's results, write all the report's outputs; returns the comparison summary."""
    loaded = {name: load_model_inputs(name, inputs) for name in cfg["families"]}
    check_same_test_set(loaded, inputs)
    frame = next(iter(loaded.values()))["predictions"]
    class_names = [c[len("prob:"):] for c in frame.columns if c.startswith("prob:")]
    y_true = frame["label"].to_numpy()
    table = comparison_table(loaded, cfg["families"])
    preds = {name: data["predictions"]["pred_label"].to_numpy() for name, data in loaded.items()}
    pairs = _rounded(compare_all(list(loaded), y_true, preds, cfg["resamples"], cfg["seed"], cfg["alpha"]))
    primary = cfg["primary_metric"]
    best = table.loc[table[primary].idxmax()]
    summary = {"primary_metric": primary, "best": best["model"], "best_score": round(float(best[primary]), 6),
               "pairs": pairs, "resamples": cfg["resamples"], "alpha": cfg["alpha"],
               "best_by_macro_f1": table.loc[table["macro_f1"].idxmax(), "model"],
               "best_by_accuracy": table.loc[table["accuracy"].idxmax(), "model"]}
    thumbs = thumbnails(frame, len(class_names), inputs.prepared)

    with atomic_output(outputs.figures) as tmp:
        tmp.mkdir()
        draw_figures(tmp, loaded, table, class_names, thumbs, cfg)
    figure_dir = Path(os.path.relpath(outputs.figures, outputs.report_md.parent)).as_posix()
    write_csv(outputs.table_csv, table)
    with atomic_output(outputs.table_md) as tmp:
        tmp.write_text("# Model comparison\n\n" + markdown_table(table, FORMATS), encoding="utf-8")
    write_json(outputs.comparison, summary)
    with atomic_output(outputs.report_md) as tmp:
        tmp.write_text(report_markdown(table, pairs, summary, class_names, len(frame), cfg, figure_dir),
                       encoding="utf-8")
    return summary


def main() -> None:
    cfg = parse_params(stage_params("report"))
    summary = build_report(cfg)
    print(f"report: {len(cfg['families'])} model(s), {len(summary['pairs'])} pair(s); best by "
          f"{cfg['primary_metric']} (main metric) {summary['best']}; by macro-F1 "
          f"{summary['best_by_macro_f1']}, by accuracy {summary['best_by_accuracy']} -> {Outputs().report_md}")
    for key, pair in summary["pairs"].items():
        print(f"  {key}: {pair['verdict']}")


if __name__ == "__main__":
    run_stage(main)
