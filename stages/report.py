"""Stage `report`: compare every model on the same test images, with tables, paired tests and figures.

Usage: ``python -m stages.report``. Reads every run -- each model of the ``models`` section (in
params order) trained at each size of ``study.train_percent`` with each seed of ``study.seeds``
--: its quality metrics ``metrics/eval/<model>/<p>pct/s<seed>.json`` and
``metrics/train/<model>/<p>pct/s<seed>.json`` and its cost ``metrics/cost/eval/...`` and
``metrics/cost/train/...``; for the runs at the largest size also
``data/predictions/<model>/<p>pct/s<seed>.csv`` and the dvclive curves in
``plots/train/<model>/<p>pct/s<seed>/``; plus sample test images from ``data/prepared/``. Writes

- ``metrics/comparison.csv``: one row per run, every training-set size (model, seed, size, quality, cost);
- ``metrics/data_size.csv``: the data-size curve, one row per model and size (main metric and fit
  time: mean, sd, 95 % CI over seeds);
- ``metrics/comparison.md``: one row per model, mean +/- sd [95 % CI] over its runs;
- ``metrics/summary.json``: the study at a glance, the report's only DVC ``metrics`` file
  (stages/analysis/report_summary.py): per model the main metric's mean and 95 % CI at the largest size and
  the mean fit time, per pair the verdict in a few words, the best model;
- ``metrics/comparison.json``: quality only -- per model and metric the statistics over the runs at the
  largest size; per pair the paired t-test and Wilcoxon test over seeds (Holm-corrected across pairs), the
  per-run McNemar tests (Holm-corrected within each run) and a one-sentence verdict; ``data_size``: the
  curve, the paired tests at every size (Holm over pairs x sizes) and where one model overtakes another;
- ``metrics/cost/comparison.json``: the timings' statistics, kept apart so that ``dvc metrics diff
  metrics/comparison.json`` shows quality only: per model the eval time, throughput, latency and fit
  time over the same runs, and the fit time of every point of the data-size curve;
- ``plots/report/``: every figure (PNG), built as one folder atomically;
- ``plots/report.md``: the Markdown report linking them;
- ``plots/review/``: the data of dvc.yaml's top-level plots (stages/analysis/review_plots.py): mean
  curves per metric and every test prediction, in files that name no model.

Params: ``report`` (primary_metric, alpha, worst_classes, confused_per_class),
``models`` (names and families), ``study`` (seeds, train_percent) and ``evaluate.ece_bins``.
The work is in stages/analysis/report_*.py: reading the runs, statistics, tables, Markdown, figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from stages.analysis.report_figures import draw_figures, mean_curves, pooled_predictions
from stages.analysis.report_markdown import comparison_markdown, report_markdown
from stages.analysis.report_runs import (Inputs, check_same_runs, check_same_test_size, load_run_inputs, platforms,
                                         runs_table, thumbnails, varied_split)
from stages.analysis.report_stats import (CONFIDENCE, PRIMARY_METRICS, curve_records, data_size_statistics,
                                          data_size_table, mcnemar_runs, model_statistics, pair_statistics, rounded)
from stages.analysis.report_summary import study_summary
from stages.analysis.review_plots import confusion_frame, curve_frames, write_review_plots
from stages.analysis.run_columns import QUALITY, TIMINGS
from stages.core.compared_models import model_families
from stages.core.errors import run_stage
from stages.core.files import atomic_output, write_csv, write_json
from stages.core.params import Schema, parse_section, stage_params, study_percents, study_seeds

__all__ = ["Inputs", "Outputs", "build_report", "main", "parse_params"]

QUALITY_SUMMARY = (*QUALITY, "epochs_run")  # per model in comparison.json; TIMINGS go to the cost summary


@dataclass(frozen=True)
class Outputs:
    table_csv: Path = Path("metrics/comparison.csv")
    table_md: Path = Path("metrics/comparison.md")
    comparison: Path = Path("metrics/comparison.json")
    figures: Path = Path("plots/report")
    report_md: Path = Path("plots/report.md")
    data_size_csv: Path = Path("metrics/data_size.csv")
    cost: Path = Path("metrics/cost/comparison.json")
    review_plots: Path = Path("plots/review")
    summary: Path = Path("metrics/summary.json")


class Report(Schema):
    primary_metric: Literal[tuple(PRIMARY_METRICS)] = "accuracy"
    alpha: float = Field(gt=0, lt=1)
    margin: float = Field(gt=0, lt=1)  # equivalence margin, in the main metric's units
    looks: int = Field(ge=1)  # planned looks of a sequential study (stages/decide.py); 1 = a fixed design
    worst_classes: int = Field(ge=1)
    confused_per_class: int = Field(ge=1)


class EceBins(Schema):
    model_config = ConfigDict(extra="ignore")  # the stage declares evaluate.ece_bins only
    ece_bins: int = Field(ge=1)


def parse_params(params: dict) -> dict:
    """Validate the `report` section, the model names/families, study.seeds and evaluate.ece_bins."""
    report = parse_section(Report, params.get("report"), "report")
    families = model_families(params.get("models"))
    return {
        **report.model_dump(),
        "seeds": study_seeds(params.get("study")),
        "percents": study_percents(params.get("study")),
        "families": families,
        "ece_bins": parse_section(EceBins, params.get("evaluate"), "evaluate").ece_bins,
    }


def build_report(cfg: dict, inputs: Inputs = Inputs(), outputs: Outputs = Outputs()) -> dict:
    """Read every run's results, write all the report's outputs; returns the (quality) comparison summary.

    Verdicts, tables and per-model figures use the runs at the largest training-set size; the
    data-size curve uses every size."""
    names, seeds, full, primary = list(cfg["families"]), cfg["seeds"], cfg["percents"][-1], cfg["primary_metric"]
    loaded = {(name, seed): load_run_inputs(name, seed, full, inputs) for name in names for seed in seeds}
    sized = {(name, seed, percent): (loaded[(name, seed)] if percent == full else
                                     load_run_inputs(name, seed, percent, inputs))
             for name in names for percent in cfg["percents"] for seed in seeds}
    varied = varied_split(sized)
    check_same_runs(loaded, inputs, full, varied)
    frame = next(iter(loaded.values()))["predictions"]
    class_names = [c[len("prob:"):] for c in frame.columns if c.startswith("prob:")]
    check_same_test_size(sized, len(frame), inputs)
    y_true, num_classes = frame["label"].to_numpy(), len(class_names)
    all_runs, runs = runs_table(sized, cfg["families"]), runs_table(loaded, cfg["families"])
    curve = data_size_table(all_runs, primary)
    stats = model_statistics(runs, (*QUALITY_SUMMARY, *TIMINGS))
    pairs = pair_statistics(names, runs, seeds, mcnemar_runs(names, seeds, loaded), cfg, loaded, y_true,
                            num_classes, varied)
    best = max(names, key=lambda n: stats[n][primary]["mean"])
    runs_of = {"confidence": CONFIDENCE, "seeds": seeds, "train_percent": full,
               "split": "re-drawn per seed" if varied else "fixed"}
    summary = rounded({
        "primary_metric": primary, "alpha": cfg["alpha"], **runs_of, "test_images": len(frame), "best": best,
        "best_score": stats[best][primary]["mean"],
        "models": {n: {m: stats[n][m] for m in QUALITY_SUMMARY} for n in names}, "pairs": pairs,
        "platforms": platforms(sized),
        "data_size": {**data_size_statistics(sized, all_runs, names, seeds, cfg, y_true, num_classes, varied),
                      "curve": curve_records(curve, primary)}})
    cost = rounded({**runs_of, "models": {n: {m: stats[n][m] for m in TIMINGS} for n in names},
                    "data_size_curve": curve_records(curve, "fit_time_s")})
    thumbs = thumbnails(frame, len(class_names), inputs.prepared)

    with atomic_output(outputs.figures) as tmp:
        tmp.mkdir()
        draw_figures(tmp, loaded, runs, stats, class_names, thumbs, curve, cfg)
    histories, test_epochs = mean_curves(loaded, names)
    with atomic_output(outputs.review_plots) as tmp:
        write_review_plots(tmp, curve_frames(histories, stats, test_epochs),
                           confusion_frame(pooled_predictions(loaded, names)))
    figure_dir = Path(os.path.relpath(outputs.figures, outputs.report_md.parent)).as_posix()
    write_csv(outputs.table_csv, all_runs)
    write_csv(outputs.data_size_csv, curve)
    with atomic_output(outputs.table_md) as tmp:
        tmp.write_text(comparison_markdown(stats, cfg["families"], runs), encoding="utf-8")
    write_json(outputs.comparison, summary)
    write_json(outputs.cost, cost)
    write_json(outputs.summary, study_summary(stats, pairs, primary))
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
        print(f"  {pair['sentence']}")
    print(f"  data size: {summary['data_size']['statement']}")


if __name__ == "__main__":
    run_stage(main)
