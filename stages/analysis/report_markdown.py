"""The report's Markdown documents: ``plots/report.md`` and ``metrics/comparison.md``."""

from __future__ import annotations

import pandas as pd

from stages.analysis.report_figures import MAIN_FIGURES, MODEL_FIGURES
from stages.analysis.report_stats import PRIMARY_METRICS
from stages.analysis.report_tables import FORMATS, data_size_table, markdown_table, pairs_table, summary_table
from stages.analysis.run_columns import QUALITY, TIMINGS

COST_TABLE = (*TIMINGS, "epochs_run")  # the report's "Cost over runs" table


def comparison_markdown(stats: dict, families: dict, runs: pd.DataFrame) -> str:
    """``metrics/comparison.md``: one row per model, each quality metric's mean ± sd [95% CI]."""
    return "# Model comparison over runs\n\n" + markdown_table(summary_table(stats, families, runs, QUALITY))


def data_size_markdown(curve: pd.DataFrame, statement: str, primary: str, figure_dir: str) -> list[str]:
    label = PRIMARY_METRICS[primary]
    return ["## Data size: where does a model pay off?\n",
            "Each model trained on nested subsets of the training images (`study.train_percent`; a smaller "
            "subset of a seed lies inside every larger one, per class), validated and tested on the same "
            "images as always. Paired t-tests by seed at every size, Holm-corrected across all pairs and sizes "
            "together: a stricter correction than the verdicts' (the pairs at the largest size alone), so a "
            "verdict above can be significant where the same comparison on the curve is not.\n",
            f"**{statement}**\n",
            f"![{label} and fit time vs training images per class]({figure_dir}/data_size.png)\n",
            markdown_table(data_size_table(curve, primary))]


def report_markdown(runs: pd.DataFrame, stats: dict, pairs: dict, summary: dict, class_names: list[str],
                    n_test: int, cfg: dict, figure_dir: str, curve: pd.DataFrame) -> str:
    """``plots/report.md``: verdicts, the data-size curve, the tables, the pairwise tests and the figures."""
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
        markdown_table(summary_table(stats, cfg["families"], runs, COST_TABLE, ".2f")),
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
