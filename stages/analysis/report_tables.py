"""The report's Markdown tables: cells formatted here, the table drawn by pandas (``to_markdown``).

Numbers are formatted to text first (:data:`FORMATS`, mean +/- sd [95 % CI]) and handed to
``DataFrame.to_markdown`` (tabulate) as strings, with number parsing and alignment off, so
the cells read exactly as formatted. The CSV outputs keep full precision.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stages.analysis import verdicts
from stages.analysis.report_stats import PRIMARY_METRICS, SPREAD

FORMATS = {"infer_img_per_s": ",.1f", "eval_time_s": ".2f", "latency_ms_b1": ".2f", "model_size_mb": ".2f",
           "params_total": ",.0f", "params_trainable": ",.0f", "fit_time_s": ".1f", "epochs_run": ".0f",
           "time_per_trainable_param": ".2e"}


def cell(value, fmt: str | None = None) -> str:
    """One cell's text: ``fmt`` (default thousands for ints, 4 decimals for floats), n/a for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return format(value, fmt or ",d")
    if isinstance(value, (float, np.floating)):
        return format(value, fmt or ".4f")
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, formats: dict | None = None) -> str:
    """``frame`` as a Markdown (pipe) table, every cell through :func:`cell` with its column's format."""
    formats = formats or {}
    text = pd.DataFrame({c: [cell(v, formats.get(c)) for v in frame[c]] for c in frame.columns}, dtype=object)
    # Strings as given: no number parsing (it would reformat "0.9000"), no padding to column width.
    return text.to_markdown(index=False, disable_numparse=True, stralign=None, numalign=None) + "\n"


def spread_text(s: dict, fmt: str) -> str:
    """An over_runs.summarize result as ``mean ± sd [ci_low, ci_high]`` (the mean alone for one run)."""
    if s["std"] is None:
        return format(s["mean"], fmt)
    return f"{s['mean']:{fmt}} ± {s['std']:{fmt}} [{s['ci_low']:{fmt}}, {s['ci_high']:{fmt}}]"


def summary_table(stats: dict, families: dict, runs: pd.DataFrame, columns, fmt_default: str = ".4f") -> pd.DataFrame:
    """One row per model: family, number of runs and each column's spread over them."""
    counts = runs.groupby("model", sort=False).size()
    rows = [{"model": name, "family": families[name], "runs": int(counts[name]),
             **{c: spread_text(stats[name][c], FORMATS.get(c, fmt_default).lstrip(",")) for c in columns}}
            for name in stats]
    return pd.DataFrame(rows)


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def pairs_table(pairs: dict) -> pd.DataFrame:
    """One row per pair: the verdict, the mean difference with its interval, its two variance sources,
    both tests' Holm p-values and the per-run McNemar tests."""
    rows = [{"pair": key.replace("_vs_", " vs "), "runs": p["n"], "verdict": verdicts.short(p),
             "mean diff [95% CI]": "n/a" if p["ci_low"] is None else
             f"{p['diff_mean']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]",
             "sd over seeds": "n/a" if p["seed_sd"] is None else f"{p['seed_sd']:.4f}",
             "test-image SE": f"{p['image_se']:.4f}",
             "p differ (Holm)": _p(p["p_diff_holm"]), "p equivalent (TOST, Holm)": _p(p["p_equiv_holm"]),
             "McNemar significant runs (Holm)": f"{p['mcnemar']['significant_runs']} of {p['mcnemar']['runs']}"}
            for key, p in pairs.items()]
    return pd.DataFrame(rows)


def _spread_of(row: pd.Series, column: str) -> dict:
    values = {k: row[f"{column}_{k}"] for k in SPREAD}
    return {k: None if pd.isna(v) else v for k, v in values.items()}


def data_size_table(curve: pd.DataFrame, primary: str) -> pd.DataFrame:
    """The data-size curve (report_stats.data_size_table) as the report shows it."""
    return pd.DataFrame({
        "model": curve["model"], "training %": curve["train_percent"],
        "images per class": curve["x"].map(lambda x: f"{x:g}"), "runs": curve["runs"],
        PRIMARY_METRICS[primary]: [spread_text(_spread_of(r, primary), ".4f") for _, r in curve.iterrows()],
        "fit time (s)": [spread_text(_spread_of(r, "fit_time_s"), ".1f") for _, r in curve.iterrows()]})
