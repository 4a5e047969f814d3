"""The report's Markdown documents: ``plots/report.md`` and ``metrics/comparison.md``."""

from __future__ import annotations

import pandas as pd

from stages.analysis import verdicts
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
            "images as always. Every pair at every size gets a verdict as above, all of them one Holm "
            "family: a stricter correction than the verdicts' (the pairs at the largest size alone), so a "
            "pair decided above can stay undecided at the same size on the curve.\n",
            f"**{statement}**\n",
            f"![{label} and fit time vs training images per class]({figure_dir}/data_size.png)\n",
            markdown_table(data_size_table(curve, primary))]


def _best(stats: dict, pairs: dict, primary: str) -> str:
    """Who is best, and whether the verdicts say so: better than every other model, or only by mean."""
    best = max(stats, key=lambda n: stats[n][primary]["mean"])
    mine = [p for p in pairs.values() if best in (p["a"], p["b"])]
    if mine and all(p["verdict"] == "better" and p["better"] == best for p in mine):
        return f"**{best}** is best (better than every other model)"
    open_ = [p["b"] if p["a"] == best else p["a"] for p in mine if p["verdict"] != "better"]
    return f"**{best}** has the highest mean" + (f", not decided against {', '.join(open_)}" if open_ else "")


def decision_summary(stats: dict, pairs: dict, summary: dict, n_test: int, cfg: dict) -> list[str]:
    """The report's opening lines: what a reviewer can paste into a decision."""
    primary = summary["primary_metric"]
    label = PRIMARY_METRICS[primary]
    runs = len(cfg["seeds"])
    lines = [f"On these images ({n_test} test images, {label}, {runs} run{'s' if runs != 1 else ''} per model): "
             f"{_best(stats, pairs, primary)}."]
    for p in pairs.values():
        if p["verdict"] == "better":
            loser = p["b"] if p["better"] == p["a"] else p["a"]
            sign = 1 if p["better"] == p["a"] else -1
            low, high = sorted((sign * p["ci_low"], sign * p["ci_high"]))
            lines.append(f"{p['better']} is better than {loser} by {sign * p['diff_mean']:+.3f} "
                         f"(95% CI {low:+.3f} to {high:+.3f}).")
        elif p["verdict"] == "equivalent":
            lines.append(f"{p['a']} and {p['b']} are equivalent within ±{p['margin']:g}.")
        else:
            lines.append(f"{p['a']} vs {p['b']} is undecided: {verdicts.runs_advice(p)}.")
    lines.append(f"Data size: {summary['data_size']['statement']}")
    platforms = summary.get("platforms") or {}
    if len(platforms) == 1:
        lines.append(f"Runs trained on: {next(iter(platforms))}.")
    elif platforms:
        lines.append(f"Runs trained on {len(platforms)} platforms (listed under Platform): numbers can differ "
                     "between them.")
    return ["## Summary\n", " ".join(lines) + "\n"]


def variance_note(varied: bool) -> str:
    """What the intervals count: with one fixed split, seeds and test-image sampling; with re-drawn ones,
    Nadeau-Bengio's corrected variance over splits."""
    if varied:
        return ("Every seed re-drew the train/val/test split (`study.vary_split`), the same split for every "
                "model at that seed: the spread over seeds holds training randomness, which images were tested "
                "and which were trained on, and Nadeau and Bengio's corrected resampled t-test widens it by "
                "n_test/n_train for the splits' shared images (runs on overlapping data are not independent)")
    return ("Intervals and tests count training randomness (the spread over seeds) and test-set sampling "
            "(the test images resampled); the split is the split stage's for every run (`study.vary_split: "
            "true` re-draws it per seed)")


def method_note(cfg: dict, n_pairs: int, varied: bool = False) -> str:
    """How the verdicts are reached, in one paragraph."""
    looks = cfg["looks"]
    sequential = (f" A sequential study of {looks} planned looks (`make decide`): each look tests at "
                  f"alpha / {looks} (Bonferroni), so looking after every added run keeps the error rates."
                  if looks > 1 else "")
    return (f"Three verdicts per pair, on the per-seed differences (paired by seed): **better** (the two-sided "
            f"test of no difference rejects), **equivalent** (two one-sided tests put the difference within "
            f"±{cfg['margin']:g}, `report.margin`) or **undecided**, with the runs per model that would likely "
            f"decide it (power 0.8 at the observed mean and spread). {variance_note(varied)}, so a verdict "
            f"speaks of images like these, not of these images alone. Each kind of claim is Holm-corrected across "
            f"the {n_pairs} pair(s) at {cfg['alpha']:g}: the rates of a false 'better' and of a false 'equivalent' "
            f"each stay at or below it (measured on synthetic studies of known truth: "
            f"benchmarks/verdict_simulation.csv).{sequential}\n")


def platform_markdown(platforms: dict) -> list[str]:
    """Where the runs trained: one line per platform, with its runs when there are several."""
    if len(platforms) <= 1:
        return ["## Platform\n", f"Every run trained on {next(iter(platforms), 'an unrecorded platform')}. "
                "Training repeats bit for bit on one platform only: another CPU (or oneDNN on instead of off) "
                "runs other kernels and gives other numbers.\n"]
    return ["## Platform\n", "The runs trained on several platforms; their numbers can differ between them.\n",
            *[f"- {label}: {', '.join(runs)}" for label, runs in platforms.items()], ""]


def report_markdown(runs: pd.DataFrame, stats: dict, pairs: dict, summary: dict, class_names: list[str],
                    n_test: int, cfg: dict, figure_dir: str, curve: pd.DataFrame) -> str:
    """``plots/report.md``: verdicts, the data-size curve, the tables, the pairwise tests and the figures."""
    names = list(stats)
    seeds = cfg["seeds"]
    primary = PRIMARY_METRICS[summary["primary_metric"]]
    listed = f" ({', '.join(class_names)})" if len(class_names) <= 30 else ""
    varied = summary.get("split") == "re-drawn per seed"
    same = ("each seed's re-drawn test split, the same images for every model of that seed" if varied
            else "the same images for every run")
    parts = [
        "# Model comparison\n",
        *decision_summary(stats, pairs, summary, n_test, cfg),
        f"Test set: {len(class_names)} classes{listed}, {n_test} test images, {same}. "
        f"Every model was trained {len(seeds)} {'time' if len(seeds) == 1 else 'times'}, once per seed of `study.seeds` ({seeds}), on the same "
        f"data; figures are mean ± standard deviation [95% confidence interval of the mean] over those runs.\n",
        "## Verdicts\n",
        method_note(cfg, len(pairs), varied),
    ]
    parts += [f"- {p['sentence']}." for p in pairs.values()] or ["- Only one model: no pairwise comparison."]
    parts += [
        "",
        f"Best by mean {primary}: **{summary['best']}** ({summary['best_score']:.4f}).\n",
        *data_size_markdown(curve, summary["data_size"]["statement"], summary["primary_metric"], figure_dir),
        "## Quality over runs\n",
        markdown_table(summary_table(stats, cfg["families"], runs, QUALITY)),
        "## Cost over runs\n",
        "Times are in seconds on the machine that ran the pipeline: compare them as ratios within this report.\n",
        markdown_table(summary_table(stats, cfg["families"], runs, COST_TABLE, ".2f")),
        *platform_markdown(summary.get("platforms") or {}),
    ]
    if pairs:
        parts += [
            "## Pairwise tests\n",
            f"Differences first minus second in {primary}, paired by seed: "
            + (f"the interval and both tests use the spread over re-drawn splits, Nadeau-Bengio-corrected. "
               if varied else f"the interval and both tests count the spread over seeds and the test images' "
                              f"sampling error (its standard error is listed). ") +
            f"'p differ' tests no difference, 'p equivalent' the difference within the margin (TOST); both "
            f"Holm-corrected across pairs. McNemar's exact test compares the two models on the test images "
            f"within each run (Holm-corrected across pairs within the run).\n",
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
