"""The report's statistics, tables and figure data, unit by unit on small hand-made inputs (no stage run).

tests/test_report.py runs the report end to end; these pin each piece down in well under a second:
the statistics against scipy/statsmodels computed here, the table cells against their exact text,
and the data each figure is drawn from against values worked out by hand.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from stages.analysis import figures, report_figures, report_stats, verdicts
from stages.analysis.report_figures import (evaluated_epoch, mean_curves, mean_history, mean_table, pooled_predictions,
                                            runs_by_model)
from stages.analysis.report_stats import (curve_records, data_size_statistics, mcnemar_runs, model_statistics,
                                          pair_statistics, rounded)
from stages.analysis.report_tables import cell, markdown_table, pairs_table, spread_text, summary_table
from stages.analysis.report_tables import data_size_table as table_of_curve
from stages.analysis.run_columns import COLUMNS


@pytest.fixture(autouse=True, scope="module")
def quick_holm():
    """statsmodels' Holm correction runs a full gc.collect() on every call (~0.1-0.4 s with pandas, scipy and
    matplotlib loaded); objects alive before these tests are frozen out of it, so each test stays well under 1 s."""
    gc.freeze()
    yield
    gc.unfreeze()


def t_interval(values, confidence=0.95):
    """mean, sd and the Student t interval of the mean, straight from numpy/scipy."""
    x = np.asarray(values, float)
    mean, sd = x.mean(), x.std(ddof=1)
    low, high = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sd / math.sqrt(len(x)))
    return mean, sd, low, high


Y_TRUE = np.arange(12) % 3  # the test labels the unit tests' runs predict


def same_predictions(runs: pd.DataFrame, by_percent: bool = False) -> dict:
    """Every run predicts the same labels on the test images: the test-image variance of every difference is
    0, so a verdict's interval is the paired t interval over seeds and its p the paired t-test's."""
    frame = pd.DataFrame({"pred_label": (Y_TRUE + np.arange(12) // 9) % 3})
    keys = zip(runs["model"], runs["seed"], runs["train_percent"])
    return {((m, s, p) if by_percent else (m, s)): {"predictions": frame} for m, s, p in keys}


CFG = {"primary_metric": "accuracy", "alpha": 0.05, "margin": 0.02, "looks": 1}


def run_rows(rows: list[dict]) -> pd.DataFrame:
    """A runs table (report_runs.runs_table's columns); unspecified numbers are 0."""
    return pd.DataFrame([{c: 0 for c in COLUMNS} | row for row in rows], columns=list(COLUMNS))


# --- report_stats: per-model summaries ------------------------------------------------------

def test_model_statistics_summarise_each_metric_per_model_in_order_of_appearance():
    runs = run_rows([{"model": "vit", "seed": 0, "accuracy": 0.80, "fit_time_s": 10},
                     {"model": "cnn", "seed": 0, "accuracy": 0.60, "fit_time_s": 4},
                     {"model": "vit", "seed": 1, "accuracy": 0.90, "fit_time_s": 14},
                     {"model": "cnn", "seed": 1, "accuracy": 0.70, "fit_time_s": 5},
                     {"model": "vit", "seed": 2, "accuracy": 0.86, "fit_time_s": 12}])
    s = model_statistics(runs, ["accuracy", "fit_time_s"])
    assert list(s) == ["vit", "cnn"]  # as the runs list them, not sorted
    assert all(list(s[m]) == ["accuracy", "fit_time_s"] for m in s)
    for model, metric, values in (("vit", "accuracy", [0.80, 0.90, 0.86]), ("cnn", "accuracy", [0.60, 0.70]),
                                  ("vit", "fit_time_s", [10, 14, 12]), ("cnn", "fit_time_s", [4, 5])):
        mean, sd, low, high = t_interval(values)
        got = s[model][metric]
        assert got["n"] == len(values)
        assert (got["mean"], got["std"], got["ci_low"], got["ci_high"]) == pytest.approx((mean, sd, low, high))
        assert type(got["mean"]) is float  # integer columns (seconds) summarised as floats


def test_every_interval_and_verdict_uses_the_reports_confidence_level(monkeypatch):
    # CONFIDENCE is the report's one level: changing it changes every interval and the verdict's wording.
    monkeypatch.setattr(report_stats, "CONFIDENCE", 0.80)
    runs = run_rows([{"model": m, "seed": s, "accuracy": a, "train_percent": p, "train_images_per_class": p // 10,
                      "fit_time_s": f}
                     for m, s, a, p, f in (("vit", 0, 0.80, 100, 10.0), ("vit", 1, 0.90, 100, 14.0),
                                           ("vit", 2, 0.86, 100, 11.0), ("cnn", 0, 0.60, 100, 4.0),
                                           ("cnn", 1, 0.75, 100, 5.0), ("cnn", 2, 0.70, 100, 3.0))])
    _, _, low, high = t_interval([0.80, 0.90, 0.86], 0.80)
    assert model_statistics(runs, ["accuracy"])["vit"]["accuracy"]["ci_low"] == pytest.approx(low)
    curve = report_stats.data_size_table(runs, "accuracy")
    assert (curve.loc[0, "accuracy_ci_low"], curve.loc[0, "accuracy_ci_high"]) == pytest.approx((low, high))
    _, _, low, high = t_interval([10.0, 14.0, 11.0], 0.80)
    assert (curve.loc[0, "fit_time_s_ci_low"], curve.loc[0, "fit_time_s_ci_high"]) == pytest.approx((low, high))

    d = np.array([0.80, 0.90, 0.86]) - np.array([0.60, 0.75, 0.70])
    _, _, low, high = t_interval(d, 0.80)
    mcn = {"vit_vs_cnn": {"b": [0] * 3, "c": [0] * 3, "p": [1.0] * 3, "p_holm": [1.0] * 3}}
    pair = pair_statistics(["vit", "cnn"], runs, [0, 1, 2], mcn, CFG, same_predictions(runs), Y_TRUE, 3)
    assert (pair["vit_vs_cnn"]["ci_low"], pair["vit_vs_cnn"]["ci_high"]) == pytest.approx((low, high))
    assert "(80% CI " in pair["vit_vs_cnn"]["sentence"]

    cfg = {**CFG, "percents": [100]}
    point = data_size_statistics(same_predictions(runs, True), runs, ["vit", "cnn"], [0, 1, 2], cfg, Y_TRUE,
                                 3)["pairs"]["vit_vs_cnn"]["points"][0]
    assert (point["ci_low"], point["ci_high"]) == pytest.approx((low, high))


# --- report_stats: McNemar per run ----------------------------------------------------------

def predictions_frame(pred, y) -> pd.DataFrame:
    return pd.DataFrame({"label": np.asarray(y), "pred_label": np.asarray(pred)})


def test_mcnemar_runs_test_every_pair_in_every_run_with_holm_within_the_run():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 60)
    names, seeds = ["vit", "res_net", "cnn"], [11, 3]  # an underscore in a name: keys split on "_vs_" only
    skill = {"vit": 0.85, "res_net": 0.7, "cnn": 0.55}
    loaded = {(n, s): {"predictions": predictions_frame(np.where(rng.random(60) < skill[n], y, (y + 1) % 3), y)}
              for s in seeds for n in names}
    result = mcnemar_runs(names, seeds, loaded)

    keys = ["vit_vs_res_net", "vit_vs_cnn", "res_net_vs_cnn"]
    assert list(result) == keys
    for i, seed in enumerate(seeds):
        correct = {n: loaded[(n, seed)]["predictions"]["pred_label"].to_numpy() == y for n in names}
        expected = {}
        for key in keys:
            a, b = key.split("_vs_")
            only_a, only_b = int(np.sum(correct[a] & ~correct[b])), int(np.sum(~correct[a] & correct[b]))
            both, neither = int(np.sum(correct[a] & correct[b])), int(np.sum(~correct[a] & ~correct[b]))
            expected[key] = (only_a, only_b, mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
        holm = multipletests([expected[k][2] for k in keys], method="holm")[1]  # one family per run
        for key, p_holm in zip(keys, holm):
            r = result[key]
            assert (r["b"][i], r["c"][i]) == expected[key][:2]
            assert r["p"][i] == pytest.approx(expected[key][2]) and r["p_holm"][i] == pytest.approx(p_holm)
    assert all(len(result[k][f]) == 2 for k in keys for f in ("b", "c", "p", "p_holm"))
    # The fixture is informative: counts differ between the two sides, and Holm moves some p-value.
    assert any(result[k]["b"][i] != result[k]["c"][i] for k in keys for i in range(2))
    assert any(result[k]["p_holm"][i] > result[k]["p"][i] for k in keys for i in range(2))


def test_mcnemar_runs_with_two_models_and_no_runs():
    y = np.array([0, 1, 1, 0])
    assert mcnemar_runs(["a", "b"], [], {}) == {"a_vs_b": {"b": [], "c": [], "p": [], "p_holm": []}}
    loaded = {("a", 0): {"predictions": predictions_frame([0, 1, 1, 0], y)},
              ("b", 0): {"predictions": predictions_frame([1, 1, 0, 0], y)}}
    r = mcnemar_runs(["a", "b"], [0], loaded)["a_vs_b"]
    assert r == {"b": [2], "c": [0], "p": [pytest.approx(0.5)], "p_holm": [pytest.approx(0.5)]}


# --- report_stats: paired tests over seeds --------------------------------------------------

def test_pair_statistics_pair_runs_by_seed_and_count_significant_mcnemar_runs():
    # Rows in no particular seed order: the pairing must go by seed, not by row.
    vit = {0: 0.80, 1: 0.91, 2: 0.85}
    cnn = {0: 0.70, 1: 0.86, 2: 0.78}
    res = {0: 0.72, 1: 0.80, 2: 0.90}
    rows = [{"model": "vit", "seed": s, "macro_f1": vit[s], "accuracy": 0.0} for s in (2, 0, 1)]
    rows += [{"model": "cnn", "seed": s, "macro_f1": cnn[s], "accuracy": 0.5} for s in (1, 2, 0)]
    rows += [{"model": "res", "seed": s, "macro_f1": res[s], "accuracy": 0.9} for s in (0, 1, 2)]
    seeds = [0, 1, 2]
    mcn = {key: {"b": [1, 2, 3], "c": [4, 5, 6], "p": [0.01, 0.02, 0.3], "p_holm": p_holm}
           for key, p_holm in (("vit_vs_cnn", [0.01, 0.05, 0.3]), ("vit_vs_res", [0.049, 0.0, 0.04]),
                               ("cnn_vs_res", [1.0, 1.0, 1.0]))}
    runs = run_rows(rows)
    pairs = pair_statistics(["vit", "cnn", "res"], runs, seeds, mcn, {**CFG, "primary_metric": "macro_f1"},
                            same_predictions(runs), Y_TRUE, 3)

    assert list(pairs) == ["vit_vs_cnn", "vit_vs_res", "cnn_vs_res"]
    series = {"vit": vit, "cnn": cnn, "res": res}
    t_p = {}
    for key, pair in pairs.items():
        a, b = (np.array([series[m][s] for s in seeds]) for m in key.split("_vs_"))
        t_p[key] = stats.ttest_rel(a, b).pvalue
        assert pair["n"] == 3 and pair["metric"] == "macro_f1"
        assert pair["diff_mean"] == pytest.approx(np.mean(a - b))
        # No test-image variance here (every run predicts alike): the paired t-test over seeds.
        assert pair["image_se"] == 0 and pair["p_diff"] == pytest.approx(t_p[key])
    holm = multipletests(list(t_p.values()), method="holm")[1]
    assert [p["p_diff_holm"] for p in pairs.values()] == pytest.approx(list(holm))

    # McNemar: the per-run tests carried over, and how many runs are significant at alpha (strictly below).
    assert pairs["vit_vs_cnn"]["mcnemar"] == {**mcn["vit_vs_cnn"], "significant_runs": 1, "runs": 3}
    assert pairs["vit_vs_res"]["mcnemar"]["significant_runs"] == 3
    assert pairs["cnn_vs_res"]["mcnemar"]["significant_runs"] == 0
    # The sentence names the metric as the report does; undecided says what would decide it.
    d = np.array([0.10, 0.05, 0.07])
    _, _, low, high = t_interval(d)
    pair = pairs["vit_vs_cnn"]
    assert pair["verdict"] == "undecided" and pair["runs_needed"] > 3
    assert pair["sentence"] == (
        f"vit vs cnn on macro-F1: undecided, vit - cnn = +0.073 (95% CI {low:+.3f} to {high:+.3f}; 3 runs per "
        f"model); about {pair['runs_needed']} runs per model would likely decide it")


def test_pair_statistics_verdict_is_significant_below_alpha():
    rows = [{"model": m, "seed": s, "accuracy": v}
            for m, base in (("big", 0.9), ("small", 0.7)) for s, v in zip((0, 1, 2), (base, base + 0.01, base - 0.01))]
    mcn = {"big_vs_small": {"b": [5, 5, 5], "c": [0, 0, 0], "p": [0.06] * 3, "p_holm": [0.06] * 3}}
    runs = run_rows(rows)
    pair = pair_statistics(["big", "small"], runs, [0, 1, 2], mcn, CFG, same_predictions(runs), Y_TRUE,
                           3)["big_vs_small"]
    # Every difference is exactly 0.2 (up to float rounding) and no test-image variance: p is 0, "better".
    assert pair["verdict"] == "better" and pair["better"] == "big"
    assert pair["sentence"] == ("big better than small on accuracy by +0.200 (95% CI +0.200 to +0.200; "
                                "3 runs per model, Holm p = 0)")
    assert pair["mcnemar"]["significant_runs"] == 0  # 0.06 is not below 0.05
    # With alpha above the McNemar p-values every run counts, and the verdict does not change.
    pair = pair_statistics(["big", "small"], runs, [0, 1, 2], mcn, {**CFG, "alpha": 0.1}, same_predictions(runs),
                           Y_TRUE, 3)["big_vs_small"]
    assert pair["mcnemar"]["significant_runs"] == 3 and pair["verdict"] == "better"


# --- report_stats: the data-size curve ------------------------------------------------------

def size_runs() -> pd.DataFrame:
    """vit and cnn at 10 % (2 images per class) and 100 % (20), three seeds; one cnn run at 50 %."""
    rows = []
    for model, seed, percent, per_class, acc, fit in (
            ("vit", 1, 100, 20, 0.90, 30.0), ("vit", 0, 100, 20, 0.94, 34.0), ("vit", 2, 100, 20, 0.92, 35.0),
            ("vit", 0, 10, 2, 0.40, 3.0), ("vit", 1, 10, 2, 0.42, 4.0), ("vit", 2, 10, 2, 0.44, 8.0),
            ("cnn", 0, 10, 2, 0.60, 1.0), ("cnn", 1, 10, 2, 0.61, 2.0), ("cnn", 2, 10, 2, 0.65, 3.0),
            ("cnn", 0, 50, 10, 0.70, 6.0),
            ("cnn", 2, 100, 20, 0.81, 9.0), ("cnn", 0, 100, 20, 0.80, 10.0), ("cnn", 1, 100, 20, 0.79, 11.0)):
        rows.append({"model": model, "seed": seed, "train_percent": percent, "train_images_per_class": per_class,
                     "train_images": per_class * 4, "accuracy": acc, "fit_time_s": fit})
    return run_rows(rows)


def test_data_size_table_has_one_row_per_model_and_size_ascending():
    curve = report_stats.data_size_table(size_runs(), "accuracy")
    assert list(curve.columns) == ["model", "train_percent", "x", "runs",
                                   "accuracy_mean", "accuracy_std", "accuracy_ci_low", "accuracy_ci_high",
                                   "fit_time_s_mean", "fit_time_s_std", "fit_time_s_ci_low", "fit_time_s_ci_high"]
    # Models as the runs list them; sizes ascending within each model.
    assert list(zip(curve["model"], curve["train_percent"], curve["x"], curve["runs"])) == [
        ("vit", 10, 2.0, 3), ("vit", 100, 20.0, 3), ("cnn", 10, 2.0, 3), ("cnn", 50, 10.0, 1), ("cnn", 100, 20.0, 3)]
    expected = {0: ([0.40, 0.42, 0.44], [3.0, 4.0, 8.0]), 1: ([0.90, 0.94, 0.92], [30.0, 34.0, 35.0]),
                2: ([0.60, 0.61, 0.65], [1.0, 2.0, 3.0]), 4: ([0.81, 0.80, 0.79], [9.0, 10.0, 11.0])}
    for row, (acc, fit) in expected.items():
        assert tuple(curve.loc[row, [f"accuracy_{k}" for k in ("mean", "std", "ci_low", "ci_high")]]) == \
            pytest.approx(t_interval(acc))
        assert tuple(curve.loc[row, [f"fit_time_s_{k}" for k in ("mean", "std", "ci_low", "ci_high")]]) == \
            pytest.approx(t_interval(fit))
    # A single run has a mean and no spread: NaN in a float column (the CSV's empty cell), not None.
    single = curve.loc[3]
    assert single["accuracy_mean"] == 0.70 and single["fit_time_s_mean"] == 6.0
    assert all(math.isnan(single[f"{m}_{k}"]) for m in ("accuracy", "fit_time_s") for k in ("std", "ci_low", "ci_high"))
    assert all(curve[c].dtype == float for c in curve.columns if c.startswith(("accuracy_", "fit_time_s_")))
    assert curve["train_percent"].dtype.kind == "i" and curve["x"].dtype == float


def test_curve_records_keep_one_metric_with_missing_spread_as_none():
    curve = report_stats.data_size_table(size_runs(), "accuracy")
    records = curve_records(curve, "fit_time_s")
    assert len(records) == 5
    assert records[3] == {"model": "cnn", "train_percent": 50, "x": 10.0, "runs": 1, "fit_time_s_mean": 6.0,
                          "fit_time_s_std": None, "fit_time_s_ci_low": None, "fit_time_s_ci_high": None}
    mean, sd, low, high = t_interval([3.0, 4.0, 8.0])
    assert records[0] == {"model": "vit", "train_percent": 10, "x": 2.0, "runs": 3,
                          "fit_time_s_mean": pytest.approx(mean), "fit_time_s_std": pytest.approx(sd),
                          "fit_time_s_ci_low": pytest.approx(low), "fit_time_s_ci_high": pytest.approx(high)}
    assert list(curve_records(curve, "accuracy")[0]) == ["model", "train_percent", "x", "runs", "accuracy_mean",
                                                          "accuracy_std", "accuracy_ci_low", "accuracy_ci_high"]


def size_statistics(runs: pd.DataFrame, seeds: list[int], **cfg) -> dict:
    return data_size_statistics(same_predictions(runs, True), runs, ["vit", "cnn"], seeds, {**CFG, **cfg}, Y_TRUE, 3)


def test_data_size_statistics_compare_pairs_at_every_size_and_read_the_crossing():
    runs = size_runs()
    runs = runs[runs["train_percent"] != 50]  # every model at every size
    out = size_statistics(runs, [0, 1, 2], percents=[10, 100])
    assert list(out) == ["metric", "x", "percents", "pairs", "statement"]
    assert (out["metric"], out["x"], out["percents"]) == ("accuracy", "training images per class", [10, 100])
    points = out["pairs"]["vit_vs_cnn"]["points"]
    assert [(p["x"], p["train_percent"]) for p in points] == [(2.0, 10), (20.0, 100)]
    # Paired by seed, whatever the rows' order: seed 0, 1, 2.
    small = np.array([0.40, 0.42, 0.44]) - np.array([0.60, 0.61, 0.65])
    large = np.array([0.94, 0.90, 0.92]) - np.array([0.80, 0.79, 0.81])
    t_p = [stats.ttest_rel(small, np.zeros(3)).pvalue, stats.ttest_rel(large, np.zeros(3)).pvalue]
    holm = multipletests(t_p, method="holm")[1]
    for point, d, p, ph in zip(points, (small, large), t_p, holm):
        assert point["diff_mean"] == pytest.approx(d.mean()) and point["n"] == 3
        assert point["p_diff"] == pytest.approx(p) and point["p_diff_holm"] == pytest.approx(ph)
    assert [(p["verdict"], p["better"]) for p in points] == [("better", "cnn"), ("better", "vit")]
    assert out["pairs"]["vit_vs_cnn"]["crossing"]["winner"] == "vit"
    assert out["statement"] == (
        f"vit overtakes cnn on accuracy between 2 and 20 training images per class (cnn better by "
        f"{-small.mean():+.3f} at 2, vit by {large.mean():+.3f} at 20).")


def test_data_size_statistics_with_macro_f1_name_the_metric_as_the_report_does():
    runs = size_runs().assign(macro_f1=lambda f: f["accuracy"])
    runs = runs[runs["train_percent"] == 100]
    statement = size_statistics(runs, [0, 1, 2], primary_metric="macro_f1", percents=[10, 100])["statement"]
    assert statement == "vit better than cnn on macro-F1 at every size."


def test_data_size_statistics_with_one_size_say_so():
    runs = size_runs()
    runs = runs[runs["train_percent"] == 100]
    out = size_statistics(runs, [0, 1, 2], percents=[100])
    assert out["statement"] == ("One training-set size only (100 % of each class's training images): "
                                "list more in `study.train_percent` for a data-size curve.")
    assert [p["x"] for p in out["pairs"]["vit_vs_cnn"]["points"]] == [20.0]


def test_data_size_statistics_with_a_single_seed_leave_every_point_undecided():
    runs = size_runs()
    runs = runs[runs["seed"] == 0]  # one run per size; cnn alone also has 10 images per class
    out = size_statistics(runs, [0], percents=[10, 50, 100])
    points = out["pairs"]["vit_vs_cnn"]["points"]
    assert [(p["x"], p["n"], p["p_diff"], p["verdict"]) for p in points] == [
        (2.0, 1, None, "undecided"), (20.0, 1, None, "undecided")]  # the sizes both have
    assert [p["diff_mean"] for p in points] == pytest.approx([0.40 - 0.60, 0.94 - 0.80])
    assert out["statement"] == "vit vs cnn: undecided at 2 and 20."


def test_rounded_keeps_six_significant_digits_through_dicts_and_lists():
    value = {"p": 1.234567891e-8, "n": 7, "flag": True, "name": "vit", "none": None,
             "nested": {"list": [0.123456789, 123456.789, np.float64(2.0000001), [1 / 3]]}}
    assert rounded(value) == {"p": 1.23457e-8, "n": 7, "flag": True, "name": "vit", "none": None,
                              "nested": {"list": [0.123457, 123457.0, 2.0, [0.333333]]}}
    assert type(rounded(np.float64(0.5))) is float and rounded(3) == 3


# --- report_tables ---------------------------------------------------------------------------

def test_cell_formats_each_kind_of_value():
    assert cell(None) == "n/a" and cell(float("nan")) == "n/a" and cell(np.nan, ".2f") == "n/a"
    assert cell(1234567) == "1,234,567" and cell(np.int64(1234)) == "1,234" and cell(12, ".1f") == "12.0"
    assert cell(0.123456) == "0.1235" and cell(np.float32(0.5)) == "0.5000" and cell(1234.5, ",.1f") == "1,234.5"
    assert cell(True) == "True"  # a flag reads as itself, not as 1
    assert cell(math.inf) == "inf" and cell(-math.inf, ".2e") == "-inf"  # e.g. the log-loss of a zero probability
    assert cell("a|b") == "a\\|b" and cell("vit") == "vit"  # a pipe would end the Markdown cell


def test_markdown_table_prints_each_cell_exactly_as_formatted():
    frame = pd.DataFrame({"model": ["vit", "a|b"], "accuracy": [0.91234, float("nan")],
                          "params_total": [1234567, 89], "time": [1.5, 20.25]})
    assert markdown_table(frame, {"params_total": ",.0f", "time": ".1f"}) == (
        "| model | accuracy | params_total | time |\n"
        "|---------|------------|----------------|--------|\n"
        "| vit | 0.9123 | 1,234,567 | 1.5 |\n"
        "| a\\|b | n/a | 89 | 20.2 |\n")
    # No formats: ints with thousands, floats to 4 decimals; "0.9000" stays as written, not re-parsed to 0.9.
    assert markdown_table(pd.DataFrame({"n": [1000], "x": [0.9]})) == (
        "| n | x |\n|-------|--------|\n| 1,000 | 0.9000 |\n")


def test_spread_text_reads_mean_sd_and_interval_or_the_mean_alone():
    s = {"n": 3, "mean": 0.91234, "std": 0.01, "ci_low": 0.88, "ci_high": 0.94}
    assert spread_text(s, ".4f") == "0.9123 ± 0.0100 [0.8800, 0.9400]"
    assert spread_text(s, ".1f") == "0.9 ± 0.0 [0.9, 0.9]"
    assert spread_text({"n": 1, "mean": 0.91234, "std": None, "ci_low": None, "ci_high": None}, ".2f") == "0.91"


def summary(mean, std=None, low=None, high=None):
    return {"n": 2, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def test_summary_table_one_row_per_model_with_each_columns_format():
    runs = run_rows([{"model": "vit", "seed": 0}, {"model": "cnn", "seed": 0}, {"model": "vit", "seed": 1}])
    stats_ = {"vit": {"accuracy": summary(0.9, 0.01, 0.8, 1.0), "infer_img_per_s": summary(12345.67, 10.0, 1.0, 2.0),
                      "params_total": summary(1234567.0, 0.0, 1234567.0, 1234567.0)},
              "cnn": {"accuracy": summary(0.75), "infer_img_per_s": summary(1000.0), "params_total": summary(10.0)}}
    table = summary_table(stats_, {"vit": "vit", "cnn": "resnet"}, runs,
                          ["accuracy", "infer_img_per_s", "params_total"])
    assert table.to_dict(orient="records") == [
        # FORMATS' thousands separators are dropped inside a spread (",.1f" -> ".1f").
        {"model": "vit", "family": "vit", "runs": 2, "accuracy": "0.9000 ± 0.0100 [0.8000, 1.0000]",
         "infer_img_per_s": "12345.7 ± 10.0 [1.0, 2.0]", "params_total": "1234567 ± 0 [1234567, 1234567]"},
        {"model": "cnn", "family": "resnet", "runs": 1, "accuracy": "0.7500", "infer_img_per_s": "1000.0",
         "params_total": "10"}]
    cost = summary_table(stats_, {"vit": "vit", "cnn": "resnet"}, runs, ["accuracy"], ".2f")
    assert list(cost["accuracy"]) == ["0.90 ± 0.01 [0.80, 1.00]", "0.75"]  # the default format for the rest


def pair_result(**over):
    base = {"a": "vit", "b": "res_net", "n": 3, "diff_mean": 0.0123, "ci_low": -0.004, "ci_high": 0.02871,
            "seed_sd": 0.00661, "image_se": 0.01, "p_diff": 0.01234, "p_diff_holm": 0.0456, "p_equiv": 0.25,
            "p_equiv_holm": 0.5, "margin": 0.02, "verdict": "better", "better": "vit", "runs_needed": None,
            "mcnemar": {"significant_runs": 2, "runs": 3, "p_holm": [0.001234, 0.04, 0.5]}}
    return base | over


def test_pairs_table_cells():
    table = pairs_table({"vit_vs_res_net": pair_result(),
                         "a_vs_b": pair_result(n=1, diff_mean=0.1, ci_low=None, ci_high=None, seed_sd=None,
                                               p_diff=None, p_diff_holm=None, p_equiv=None, p_equiv_holm=None,
                                               verdict="undecided", better=None, runs_needed=None,
                                               mcnemar={"significant_runs": 0, "runs": 1, "p_holm": [1.0]}),
                         "c_vs_d": pair_result(verdict="equivalent", better=None),
                         "e_vs_f": pair_result(verdict="undecided", better=None, runs_needed=7)})
    assert table.to_dict(orient="records") == [
        {"pair": "vit vs res_net", "runs": 3, "verdict": "vit better", "mean diff [95% CI]": "+0.0123 [-0.0040, +0.0287]",
         "sd over seeds": "0.0066", "test-image SE": "0.0100", "p differ (Holm)": "0.046",
         "p equivalent (TOST, Holm)": "0.5", "McNemar significant runs (Holm)": "2 of 3"},
        {"pair": "a vs b", "runs": 1, "verdict": "undecided", "mean diff [95% CI]": "n/a", "sd over seeds": "n/a",
         "test-image SE": "0.0100", "p differ (Holm)": "n/a", "p equivalent (TOST, Holm)": "n/a",
         "McNemar significant runs (Holm)": "0 of 1"},
        {"pair": "c vs d", "runs": 3, "verdict": "equivalent within 0.02", "mean diff [95% CI]": "+0.0123 [-0.0040, +0.0287]",
         "sd over seeds": "0.0066", "test-image SE": "0.0100", "p differ (Holm)": "0.046",
         "p equivalent (TOST, Holm)": "0.5", "McNemar significant runs (Holm)": "2 of 3"},
        {"pair": "e vs f", "runs": 3, "verdict": "undecided (~7 runs)", "mean diff [95% CI]": "+0.0123 [-0.0040, +0.0287]",
         "sd over seeds": "0.0066", "test-image SE": "0.0100", "p differ (Holm)": "0.046",
         "p equivalent (TOST, Holm)": "0.5", "McNemar significant runs (Holm)": "2 of 3"}]


def test_data_size_table_shows_the_curve_with_spreads():
    curve = report_stats.data_size_table(size_runs(), "accuracy")
    table = table_of_curve(curve, "accuracy")
    assert list(table.columns) == ["model", "training %", "images per class", "runs", "accuracy", "fit time (s)"]
    m, sd, lo, hi = t_interval([0.40, 0.42, 0.44])
    fm, fsd, flo, fhi = t_interval([3.0, 4.0, 8.0])
    assert table.loc[0].to_dict() == {"model": "vit", "training %": 10, "images per class": "2", "runs": 3,
                                      "accuracy": f"{m:.4f} ± {sd:.4f} [{lo:.4f}, {hi:.4f}]",
                                      "fit time (s)": f"{fm:.1f} ± {fsd:.1f} [{flo:.1f}, {fhi:.1f}]"}
    assert table.loc[3].to_dict() == {"model": "cnn", "training %": 50, "images per class": "10", "runs": 1,
                                      "accuracy": "0.7000", "fit time (s)": "6.0"}
    table = table_of_curve(curve.rename(columns=lambda c: c.replace("accuracy", "macro_f1")).assign(x=2.5), "macro_f1")
    assert list(table.columns)[4] == "macro-F1" and table.loc[0, "images per class"] == "2.5"


# --- report_figures: the data each figure is drawn from ------------------------------------

def history(epochs: int, offset: float) -> pd.DataFrame:
    t = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": t, "train_loss": 1.0 / t + offset, "val_accuracy": 0.1 * t + offset})


def test_mean_history_averages_each_epoch_over_the_runs_that_reached_it():
    out = mean_history([history(3, 0.0), history(2, 0.2)])
    assert list(out.columns) == ["epoch", "train_loss", "val_accuracy", "train_loss_sd", "val_accuracy_sd"]
    assert list(out["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(out["train_loss"], [1.1, 0.6, 1 / 3])
    np.testing.assert_allclose(out["val_accuracy"], [0.2, 0.3, 0.3])
    sd = math.sqrt(2 * 0.1 ** 2)  # sample sd (ddof=1) of two values 0.2 apart
    np.testing.assert_allclose(out["train_loss_sd"], [sd, sd, np.nan])
    np.testing.assert_allclose(out["val_accuracy_sd"], [sd, sd, np.nan])
    # Epochs come out ascending whatever order the runs list them in.
    assert list(mean_history([history(2, 0.0).iloc[::-1], history(1, 0.0)])["epoch"]) == [1, 2]


def test_evaluated_epoch_is_trains_epoch_else_the_last():
    assert evaluated_epoch({"train": {"evaluated_epoch": 2}, "history": history(5, 0)}) == 2
    assert evaluated_epoch({"train": {"evaluated_epoch": np.int64(4)}, "history": history(5, 0)}) == 4
    last = evaluated_epoch({"train": {}, "history": history(5, 0).iloc[::-1]})
    assert last == 5 and type(last) is int
    assert evaluated_epoch({"train": {"evaluated_epoch": None}, "history": history(3, 0)}) == 3


def test_mean_table_averages_each_numeric_column_per_model():
    runs = run_rows([{"model": "vit", "family": "vit", "seed": 0, "train_percent": 100, "accuracy": 0.8,
                      "fit_time_s": 10.0, "params_total": 100},
                     {"model": "cnn", "family": "resnet", "seed": 1, "train_percent": 100, "accuracy": 0.5,
                      "fit_time_s": 3.0, "params_total": 50},
                     {"model": "vit", "family": "vit", "seed": 1, "train_percent": 100, "accuracy": 0.9,
                      "fit_time_s": 14.0, "params_total": 100}])
    table = mean_table(runs)
    assert list(table.columns) == ["model", *[c for c in COLUMNS if c not in (
        "model", "family", "seed", "train_percent", "train_images", "train_images_per_class")]]
    assert list(table["model"]) == ["vit", "cnn"]
    assert table.loc[0, "accuracy"] == pytest.approx(0.85) and table.loc[0, "fit_time_s"] == 12.0
    assert table.loc[1, "accuracy"] == 0.5 and table.loc[0, "params_total"] == 100
    # A column with no number at all (no trainable parameters: no time per parameter) is not averaged.
    no_params = mean_table(runs.assign(time_per_trainable_param=None))
    assert "time_per_trainable_param" not in no_params and list(no_params["fit_time_s"]) == [12.0, 3.0]


def loaded_runs() -> dict:
    """Two models x two seeds: histories, evaluated epochs and test predictions (3 classes, 3 images)."""
    def preds(pred, label, p0):
        return pd.DataFrame({"label": label, "pred_label": pred, "prob:cat": p0,
                             "prob:dog": [1 - p - 0.1 for p in p0], "prob:fox": [0.1] * len(p0)})
    return {("vit", 0): {"train": {"evaluated_epoch": 2}, "history": history(3, 0.0),
                         "predictions": preds([0, 1, 1], [0, 1, 2], [0.8, 0.1, 0.2])},
            ("cnn", 0): {"train": {}, "history": history(2, 0.4),
                         "predictions": preds([0, 0, 2], [0, 1, 2], [0.6, 0.7, 0.1])},
            ("vit", 1): {"train": {"evaluated_epoch": 1}, "history": history(2, 0.2),
                         "predictions": preds([1, 1, 2], [0, 1, 2], [0.3, 0.2, 0.0])},
            ("cnn", 1): {"train": {"evaluated_epoch": 2}, "history": history(4, 0.0),
                         "predictions": preds([0, 1, 2], [0, 1, 2], [0.9, 0.0, 0.0])}}


def test_mean_curves_average_histories_and_evaluated_epochs_per_model():
    loaded = loaded_runs()
    by_model = runs_by_model(loaded, ["cnn", "vit"])
    assert list(by_model) == ["cnn", "vit"]
    assert all(len(by_model[n]) == 2 and all(d is loaded[(n, s)] for s, d in enumerate(by_model[n])) for n in by_model)
    histories, epochs = mean_curves(loaded, ["vit", "cnn"])
    assert list(histories) == ["vit", "cnn"] and list(epochs) == ["vit", "cnn"]
    assert epochs == {"vit": 1.5, "cnn": 2.0}  # vit: 2 and 1; cnn: its last epoch (2) and 2
    np.testing.assert_allclose(histories["vit"]["train_loss"], [1.1, 0.6, 1 / 3])
    np.testing.assert_allclose(histories["cnn"]["val_accuracy"], [0.3, 0.4, 0.3, 0.4])
    assert list(histories["cnn"]["epoch"]) == [1, 2, 3, 4]


def test_pooled_predictions_concatenate_every_run_of_a_model():
    loaded = loaded_runs()
    pooled = pooled_predictions(loaded, ["cnn", "vit"])
    assert list(pooled) == ["cnn", "vit"]
    assert list(pooled["vit"]["pred_label"]) == [0, 1, 1, 1, 1, 2]  # seed 0's then seed 1's
    assert list(pooled["cnn"]["prob:cat"]) == [0.6, 0.7, 0.1, 0.9, 0.0, 0.0]
    assert list(pooled["cnn"].index) == list(range(6))


class Recorder:
    """Stands in for stages.analysis.figures' drawing functions: records what each figure is given."""

    def __init__(self, monkeypatch):
        self.calls: dict[str, list] = {}
        for name in ("study_curves", "learning_curves", "cost_frontier", "runs_strip", "data_size_curve",
                     "confusion_counts", "mean_probability_heatmap", "worst_classes_figure", "reliability_diagram"):
            monkeypatch.setattr(figures, name, self.recording(name))
        for name in ("worst_classes", "reliability_bins"):
            monkeypatch.setattr(report_figures, name, self.recording(name, returns=f"<{name}>"))

    def recording(self, name, returns=None):
        def record(*args, **kwargs):
            self.calls.setdefault(name, []).append((args, kwargs))
            return returns
        return record


def test_draw_figures_hands_each_figure_its_data(monkeypatch, tmp_path):
    drawn = Recorder(monkeypatch)
    loaded = loaded_runs()
    runs = run_rows([{"model": m, "family": m, "seed": s, "accuracy": 0.5 + 0.1 * s, "fit_time_s": 10.0 * s}
                     for (m, s) in loaded])
    stats_ = {n: {"log_loss": summary(1.0 + i), "accuracy": summary(0.8 + i / 10),
                  "top3_accuracy": summary(0.95 - i / 10), "eval_time_s": summary(2.0 + i),
                  "fit_time_s": summary(60.0 + i), "macro_f1": summary(0.7 + i / 10), "ece": summary(0.05 + i / 100)}
              for i, n in enumerate(("vit", "cnn"))}
    curve = pd.DataFrame({"model": ["vit"], "x": [1.0]})
    thumbs = {0: np.zeros((2, 2, 3))}
    cfg = {"primary_metric": "macro_f1", "worst_classes": 5, "confused_per_class": 4, "ece_bins": 7}
    report_figures.draw_figures(tmp_path, loaded, runs, stats_, ["cat", "dog", "fox"], thumbs, curve, cfg)

    (args, kwargs), = drawn.calls["study_curves"]
    histories, test, eval_time, fit_time, path = args
    assert list(histories) == ["vit", "cnn"]
    np.testing.assert_allclose(histories["vit"]["train_loss"], [1.1, 0.6, 1 / 3])  # the mean curves
    assert test == {"vit": {"loss": 1.0, "accuracy": 0.8, "top3_accuracy": 0.95},
                    "cnn": {"loss": 2.0, "accuracy": 0.9, "top3_accuracy": 0.85}}
    assert eval_time == {"vit": 2.0, "cnn": 3.0} and fit_time == {"vit": 60.0, "cnn": 61.0}
    assert path == tmp_path / "study_curves.png" and kwargs == {"test_epochs": {"vit": 1.5, "cnn": 2.0}}

    (args, kwargs), = drawn.calls["learning_curves"]
    assert list(args[0]) == ["vit", "cnn"] and args[0]["cnn"].equals(histories["cnn"])
    assert args[1] == tmp_path / "learning_curves.png" and kwargs == {}
    (args, kwargs), = drawn.calls["cost_frontier"]
    assert args[0].equals(mean_table(runs)) and args[1] == tmp_path / "cost_frontier.png" and kwargs == {}
    (args, kwargs), = drawn.calls["runs_strip"]
    assert args[0] is runs and args[1:4] == ("macro_f1", "macro-F1", {n: stats_[n]["macro_f1"] for n in stats_})
    assert args[4] == tmp_path / "runs.png" and kwargs == {}
    (args, kwargs), = drawn.calls["data_size_curve"]
    assert args[0] == tmp_path / "data_size.png" and args[1] is curve and args[2:4] == ("macro_f1", "macro-F1")
    assert args[4] == figures.model_colors(["vit", "cnn"]) and kwargs == {}

    # Per model, from every run's predictions pooled: vit's seeds 0 and 1, then cnn's.
    labels = [0, 1, 2, 0, 1, 2]
    pooled = {"vit": ([0, 1, 1, 1, 1, 2], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1],
                                           [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.0, 0.9, 0.1]]),
              "cnn": ([0, 0, 2, 0, 1, 2], [[0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1],
                                           [0.9, 0.0, 0.1], [0.0, 0.9, 0.1], [0.0, 0.9, 0.1]])}
    classes = ["cat", "dog", "fox"]
    for i, name in enumerate(("vit", "cnn")):
        pred, probs = pooled[name]
        title = f"{name}: confusion matrix (row-normalised)"
        (args, kwargs), = [c for c in drawn.calls["confusion_counts"] if c[0][3] == title]
        assert list(args[0]) == labels and list(args[1]) == pred and args[2] == classes
        assert args[4] == tmp_path / f"confusion_{name}.png" and kwargs == {}

        args, kwargs = drawn.calls["mean_probability_heatmap"][i]
        # Row c: the mean predicted probability of each class over the images of true class c.
        expected = np.array([np.mean([p for p, y in zip(probs, labels) if y == c], axis=0) for c in range(3)])
        np.testing.assert_allclose(args[0], expected)
        assert args[1:] == (classes, f"{name}: mean predicted probability per true class",
                            tmp_path / f"mean_probability_{name}.png") and kwargs == {}

        args, kwargs = drawn.calls["worst_classes"][i]
        assert list(args[0]) == labels and np.allclose(args[1], probs)
        assert kwargs == {"k": 3, "n_confused": 2}  # capped at the 3 classes and the 2 others
        assert drawn.calls["worst_classes_figure"][i] == (
            ("<worst_classes>", classes, thumbs, tmp_path / f"worst_classes_{name}.png"), {})

        args, kwargs = drawn.calls["reliability_bins"][i]
        assert list(args[0]) == labels and np.allclose(args[1], probs) and kwargs == {"bins": 7}
        assert drawn.calls["reliability_diagram"][i] == (
            ("<reliability_bins>", stats_[name]["ece"]["mean"], f"{name}: reliability diagram",
             tmp_path / f"reliability_{name}.png"), {})


def test_draw_figures_keeps_the_configured_worst_classes_below_the_class_count(monkeypatch, tmp_path):
    drawn = Recorder(monkeypatch)
    loaded = {k: v for k, v in loaded_runs().items() if k[0] == "vit"}
    runs = run_rows([{"model": "vit", "family": "vit", "seed": s} for s in (0, 1)])
    stats_ = {"vit": {m: summary(0.5) for m in ("log_loss", "accuracy", "top3_accuracy", "eval_time_s",
                                                 "fit_time_s", "ece")}}
    cfg = {"primary_metric": "accuracy", "worst_classes": 2, "confused_per_class": 1, "ece_bins": 15}
    report_figures.draw_figures(tmp_path, loaded, runs, stats_, ["cat", "dog", "fox"], {}, pd.DataFrame(), cfg)
    assert drawn.calls["worst_classes"][0][1] == {"k": 2, "n_confused": 1}
    assert drawn.calls["runs_strip"][0][0][1:3] == ("accuracy", "accuracy")
    assert len(drawn.calls["confusion_counts"]) == 1


# --- report_stats: what the verdicts are given ---------------------------------------------------
# The verdict arithmetic is tested in test_verdicts.py / test_data_size.py; these pin what report_stats hands
# it: the pair's test-image variance from the right runs' predictions, the number of test images, and the
# Nadeau-Bengio overlap when the split was re-drawn.

def differing_predictions(runs: pd.DataFrame, by_percent: bool = False) -> dict:
    """Each model misses its own images in every run (and one more that changes with the seed and size):
    the test-image variance of a difference is above 0."""
    loaded = {}
    for m, s, p in zip(runs["model"], runs["seed"], runs["train_percent"]):
        pred = Y_TRUE.copy()
        wrong = [*({"vit": [0, 1], "cnn": [5]}[m]), (3 * s + 7 + p // 10) % len(Y_TRUE)]
        pred[wrong] = (pred[wrong] + 1) % 3
        loaded[(m, s, p) if by_percent else (m, s)] = {"predictions": pd.DataFrame({"pred_label": pred})}
    return loaded


def pair_runs() -> pd.DataFrame:
    return run_rows([{"model": m, "seed": s, "train_percent": 100, "train_images": 40 + 8 * s,
                      "accuracy": acc, "macro_f1": acc - 0.01}
                     for m, accs in (("vit", (0.91, 0.93, 0.92)), ("cnn", (0.90, 0.905, 0.89)))
                     for s, acc in enumerate(accs)])


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_pair_statistics_hand_the_verdict_the_pairs_image_variance_and_test_size(metric):
    runs, seeds = pair_runs(), [0, 1, 2]
    loaded = differing_predictions(runs)
    mcn = mcnemar_runs(["vit", "cnn"], seeds, {k: {"predictions": v["predictions"].assign(label=Y_TRUE)}
                                               for k, v in loaded.items()})
    pair = pair_statistics(["vit", "cnn"], runs, seeds, mcn, {**CFG, "primary_metric": metric}, loaded, Y_TRUE, 3)
    values = {n: runs.loc[runs["model"] == n, metric].tolist() for n in ("vit", "cnn")}
    preds = {n: [loaded[(n, s)]["predictions"]["pred_label"].to_numpy() for s in seeds] for n in values}
    variance = report_stats.image_variance(metric, Y_TRUE, preds["vit"], preds["cnn"], 3)
    assert variance > 0
    if metric == "accuracy":
        assert variance == pytest.approx(verdicts.accuracy_image_variance(
            np.array([p == Y_TRUE for p in preds["vit"]]), np.array([p == Y_TRUE for p in preds["cnn"]])))
    else:
        assert variance == pytest.approx(verdicts.bootstrap_image_variance(
            lambda p, idx: verdicts.macro_f1_rows(Y_TRUE, p, 3, idx), preds["vit"], preds["cnn"], len(Y_TRUE)))
    expected = verdicts.compare_pairs(values, margin=CFG["margin"], alpha=CFG["alpha"], n_images=len(Y_TRUE),
                                      image_var=lambda a, b: variance)["vit_vs_cnn"]
    got = pair["vit_vs_cnn"]
    for key in ("diff_mean", "image_se", "se", "df", "ci_low", "ci_high", "p_diff", "overlap", "n_images"):
        assert got[key] == pytest.approx(expected[key]), key
    assert got["verdict"] == expected["verdict"]
    # ... and the test data is such that a verdict without the image variance, or without the test size, differs.
    seeds_only = verdicts.compare_pairs(values, margin=CFG["margin"], n_images=len(Y_TRUE))["vit_vs_cnn"]
    no_size = verdicts.compare_pairs(values, margin=CFG["margin"], image_var=lambda a, b: variance)["vit_vs_cnn"]
    assert got["ci_low"] < seeds_only["ci_low"] and got["ci_low"] != pytest.approx(no_size["ci_low"])


def test_pair_statistics_with_a_redrawn_split_use_nadeau_bengios_overlap_and_no_image_variance():
    runs, seeds = pair_runs(), [0, 1, 2]
    loaded = differing_predictions(runs)
    mcn = mcnemar_runs(["vit", "cnn"], seeds, {k: {"predictions": v["predictions"].assign(label=Y_TRUE)}
                                               for k, v in loaded.items()})
    got = pair_statistics(["vit", "cnn"], runs, seeds, mcn, CFG, loaded, Y_TRUE, 3, varied=True)["vit_vs_cnn"]
    overlap = len(Y_TRUE) / np.mean([40, 48, 56])
    assert report_stats.overlap_at(runs, len(Y_TRUE)) == pytest.approx(overlap)
    values = {n: runs.loc[runs["model"] == n, "accuracy"].tolist() for n in ("vit", "cnn")}
    expected = verdicts.compare_pairs(values, margin=CFG["margin"], n_images=len(Y_TRUE), overlap=overlap)["vit_vs_cnn"]
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((expected["ci_low"], expected["ci_high"]))
    fixed = verdicts.compare_pairs(values, margin=CFG["margin"], n_images=len(Y_TRUE))["vit_vs_cnn"]
    assert got["ci_low"] < fixed["ci_low"]  # the overlap widens the interval


@pytest.mark.parametrize("varied", [False, True])
def test_data_size_statistics_hand_each_size_its_own_runs_variance_and_overlap(varied):
    runs = size_runs()
    runs = runs[runs["train_percent"] != 50].assign(train_images=lambda f: 30 * f["train_percent"] // 10 + f["seed"])
    runs = runs.iloc[::-1]  # rows in any order: the sizes come out ascending
    seeds = [0, 1, 2]
    sized = differing_predictions(runs, True)
    out = data_size_statistics(sized, runs, ["vit", "cnn"], seeds, {**CFG, "percents": [10, 100]}, Y_TRUE, 3,
                               varied=varied)
    points = out["pairs"]["vit_vs_cnn"]["points"]
    assert [p["train_percent"] for p in points] == [10, 100]
    for point, percent in zip(points, (10, 100)):
        at = runs[runs["train_percent"] == percent]
        values = {n: [float(at.loc[(at["model"] == n) & (at["seed"] == s), "accuracy"].iloc[0]) for s in seeds]
                  for n in ("vit", "cnn")}
        if varied:
            kwargs = {"overlap": len(Y_TRUE) / at["train_images"].mean()}
        else:
            preds = {n: [sized[(n, s, percent)]["predictions"]["pred_label"].to_numpy() for s in seeds] for n in values}
            variance = report_stats.image_variance("accuracy", Y_TRUE, preds["vit"], preds["cnn"], 3)
            kwargs = {"image_var": lambda a, b, v=variance: v}
        expected = verdicts.compare_pairs(values, margin=CFG["margin"], n_images=len(Y_TRUE), **kwargs)["vit_vs_cnn"]
        assert (point["ci_low"], point["ci_high"]) == pytest.approx(
            (expected["ci_low"], expected["ci_high"])), percent
        bare = verdicts.compare_pairs(values, margin=CFG["margin"], n_images=len(Y_TRUE))["vit_vs_cnn"]
        assert point["ci_low"] < bare["ci_low"], percent  # the variance / overlap reached this size


def test_the_verdicts_use_the_reports_alpha_split_over_its_planned_looks():
    runs, seeds = pair_runs(), [0, 1, 2]
    loaded = differing_predictions(runs)
    mcn = mcnemar_runs(["vit", "cnn"], seeds, {k: {"predictions": v["predictions"].assign(label=Y_TRUE)}
                                               for k, v in loaded.items()})
    cfg = {**CFG, "alpha": 0.1, "looks": 4}
    pair = pair_statistics(["vit", "cnn"], runs, seeds, mcn, cfg, loaded, Y_TRUE, 3)["vit_vs_cnn"]
    assert pair["alpha_used"] == pytest.approx(0.1 / 4)
    sized = size_runs()
    sized = sized[sized["train_percent"] != 50]
    out = data_size_statistics(differing_predictions(sized, True), sized, ["vit", "cnn"], seeds,
                               {**cfg, "percents": [10, 100]}, Y_TRUE, 3)
    assert [p["alpha_used"] for p in out["pairs"]["vit_vs_cnn"]["points"]] == pytest.approx([0.1 / 4] * 2)
