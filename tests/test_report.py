"""Stage `report`: every figure renders, and the stage's core end to end on synthetic inputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from stages.analysis import figures
from stages.analysis.run_columns import COLUMNS, TIMINGS
from stages.core import layout
from stages.core.errors import DataError, ParamError
from stages.core.metrics import mean_probability_matrix, reliability_bins, worst_classes
from stages.report import Inputs, Outputs, build_report, parse_params

CLASSES = ["cat", "dog", "007", "red fox"]  # "007" must stay a string
FAMILIES = {"vit": "vit", "mobilenet_v2": "mobilenet_v2"}
EVAL_KEYS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece")
# Each quality metric of a run sits at its own offset from the run's planted score: a report that reads,
# writes or draws one metric in another's place (a swapped column or panel) shows different numbers.
METRIC_OFFSETS = {"accuracy": 0.0, "top3_accuracy": 0.06, "macro_f1": -0.03, "weighted_f1": -0.015,
                  "log_loss": 0.25, "ece": -0.55}


def fake_probs(y: np.ndarray, k: int, skill: float, seed: int) -> np.ndarray:
    """Probabilities that favour the true class by ``skill`` (noisy, so some rows are wrong)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), k)) + skill * np.eye(k)[y]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def fake_history(epochs: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    cols = {"epoch": t}
    for split, shift in (("train", 0.0), ("val", 0.1)):
        cols[f"{split}_loss"] = 2 / t + shift + rng.uniform(0, 0.05, epochs)
        for m in ("accuracy", "top3_accuracy", "macro_f1"):
            cols[f"{split}_{m}"] = np.clip(1 - 1 / t - shift + rng.uniform(0, 0.05, epochs), 0, 1)
    return pd.DataFrame(cols)


# --- figures --------------------------------------------------------------------------------

@pytest.fixture
def model_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(CLASSES), 60)
    probs = {name: fake_probs(y, len(CLASSES), skill, i) for i, (name, skill) in enumerate((("vit", 2.0),
                                                                                           ("mobilenet_v2", 1.0)))}
    return y, probs


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_curves_draw_every_curve_and_the_test_crosses(tmp_path):
    hist = {"vit": fake_history(6, 0), "mobilenet_v2": fake_history(4, 1), "resnet50": fake_history(5, 2)}
    test = {m: {"loss": 0.5 + i, "accuracy": 0.8 - 0.1 * i, "top3_accuracy": 0.95 - 0.01 * i}
            for i, m in enumerate(hist)}
    fig = figures.study_curves(hist, test, {"vit": 2.0, "mobilenet_v2": 0.5, "resnet50": 1.0},
                               {"vit": 60.0, "mobilenet_v2": 20.0, "resnet50": 40.0}, tmp_path / "s.png")
    assert_png(tmp_path / "s.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "top-3 accuracy",
                                                   "test evaluation time vs training time"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss (log scale)", "accuracy", "top-3 accuracy",
                                                    "test evaluation time (s)"]
    assert [ax.get_xlabel() for ax in fig.axes[:3]] == ["epoch"] * 3 and fig.axes[0].get_yscale() == "log"
    for ax, metric in zip(fig.axes[:3], ("loss", "accuracy", "top3_accuracy")):
        curves = [ln for ln in ax.lines if ln.get_marker() != "x"]
        crosses = [ln for ln in ax.lines if ln.get_marker() == "x"]
        assert [(ln.get_label(), ln.get_linestyle()) for ln in curves] == [("train", "-"), ("validation", "--")] * 3
        for line, (name, split) in zip(curves, [(m, s) for m in hist for s in ("train", "val")]):
            np.testing.assert_allclose(line.get_xdata(), hist[name]["epoch"])
            np.testing.assert_allclose(line.get_ydata(), hist[name][f"{split}_{metric}"])
        # Without evaluated epochs, each model's cross sits at its last epoch, at its test value.
        assert [(c.get_xdata()[0], c.get_ydata()[0]) for c in crosses] == [
            (6, test["vit"][metric]), (4, test["mobilenet_v2"][metric]), (5, test["resnet50"][metric])]
    # Time panel: training time relative to the fastest (mobilenet_v2's 20 s), eval time as given.
    points = [tuple(c.get_offsets()[0]) for c in fig.axes[3].collections]
    assert points == [(3.0, 2.0), (1.0, 0.5), (2.0, 1.0)]
    assert [t.get_text() for t in fig.axes[3].texts] == list(hist)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [*hist, "train", "validation", "test"]


def test_learning_curves_one_row_per_model(tmp_path):
    hist = {"vit": fake_history(6, 0), "mobilenet_v2": fake_history(4, 1), "resnet50": fake_history(5, 2)}
    fig = figures.learning_curves(hist, tmp_path / "l.png")
    assert_png(tmp_path / "l.png")
    assert [ax.get_title() for ax in fig.axes] == [f"{m}: {t}" for m in hist for t in ("loss", "macro-F1")]
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss (log scale)", "macro-F1"] * 3
    for ax, (name, metric) in zip(fig.axes, [(m, t) for m in hist for t in ("loss", "macro_f1")]):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
        train, val = ax.lines
        np.testing.assert_allclose(train.get_xdata(), hist[name]["epoch"])
        np.testing.assert_allclose(train.get_ydata(), hist[name][f"train_{metric}"])
        np.testing.assert_allclose(val.get_ydata(), hist[name][f"val_{metric}"])
    assert fig.axes[1].get_ylim() == fig.axes[5].get_ylim()  # one y scale per metric column


def test_heatmaps_show_the_matrices_with_class_names(tmp_path, model_data):
    y, probs = model_data
    pred = probs["vit"].argmax(1)
    fig = figures.confusion_counts(y, pred, CLASSES, "vit: confusion", tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    ax = fig.axes[0]  # the other one is the colour bar
    assert len(fig.axes) == 2 and (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        "vit: confusion", "predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    counts = np.array([[np.sum((y == i) & (pred == j)) for j in range(len(CLASSES))] for i in range(len(CLASSES))])
    expected = counts / counts.sum(axis=1, keepdims=True)  # each row: where that class's images went
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).reshape(expected.shape), expected)
    assert sorted(t.get_text() for t in ax.texts if t.get_text()) == sorted(
        f"{v:.2f}" for v in expected.ravel() if v >= 0.005)  # blank cells below 0.005
    matrix = mean_probability_matrix(y, probs["vit"], len(CLASSES))
    fig = figures.mean_probability_heatmap(matrix, CLASSES, "vit: mean probability", tmp_path / "m.png")
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel()) == ("vit: mean probability", "mean predicted probability of class")
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).reshape(matrix.shape), matrix)
    assert ax.collections[0].get_clim() == (0, 1)


def test_worst_classes_figure_has_one_column_per_class(tmp_path, model_data):
    y, probs = model_data
    worst = worst_classes(y, probs["mobilenet_v2"], k=3, n_confused=2)
    thumbs = {label: np.full((8, 8, 3), 40 * label, np.uint8) for label in range(len(CLASSES))}
    fig = figures.worst_classes_figure(worst, CLASSES, thumbs, tmp_path / "w.png")
    assert_png(tmp_path / "w.png")
    grid = np.array(fig.axes).reshape(3, 3)  # rows: worst class, confused #1, #2; one column per worst class
    for col, w in enumerate(worst):
        assert grid[0, col].get_title() == f"{CLASSES[w['label']]}\nrecall {w['recall']:.2f}"
        np.testing.assert_array_equal(grid[0, col].images[0].get_array(), thumbs[w["label"]])
        for row, c in enumerate(w["confused"], start=1):
            assert grid[row, col].get_title() == f"{CLASSES[c['label']]}\nmean p {c['mean_prob']:.2f}"
            np.testing.assert_array_equal(grid[row, col].images[0].get_array(), thumbs[c["label"]])
    assert [grid[r, 0].get_ylabel() for r in range(3)] == ["worst class", "confused #1", "confused #2"]


def test_reliability_diagram_bars_are_the_bins(tmp_path, model_data):
    y, probs = model_data
    bins = reliability_bins(y, probs["vit"], bins=10)
    fig = figures.reliability_diagram(bins, 0.0421, "vit: reliability", tmp_path / "r.png")
    assert_png(tmp_path / "r.png")
    top, bottom = fig.axes
    assert top.get_title() == "vit: reliability\nECE = 0.042"
    filled = bins[bins["count"] > 0]
    np.testing.assert_allclose([bar.get_height() for bar in top.patches], filled["accuracy"])
    np.testing.assert_allclose([bar.get_x() for bar in top.patches], filled["bin_lower"])
    gap = next(ln for ln in top.lines if ln.get_label() == "mean confidence (gap)")
    np.testing.assert_allclose(gap.get_ydata(), filled["confidence"])
    assert [bar.get_height() for bar in bottom.patches] == bins["count"].tolist()  # every bin, empty ones too
    assert [t.get_text() for t in bottom.texts] == [f"{c:,}" if c else "" for c in bins["count"]]
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == [
        "accuracy", "mean confidence (gap)", "perfect calibration"]


def test_cost_frontier_places_each_model(tmp_path):
    table = pd.DataFrame({"model": ["vit", "mobilenet_v2"], "accuracy": [0.8, 0.7], "macro_f1": [0.78, 0.69],
                          "latency_ms_b1": [12.0, 4.0], "params_total": [5_000_000, 300_000],
                          "fit_time_s": [60.0, 20.0]})
    fig = figures.cost_frontier(table, tmp_path / "f.png")
    assert_png(tmp_path / "f.png")
    costs = {"latency_ms_b1": "latency, batch 1", "params_total": "parameters", "fit_time_s": "training time"}
    quality = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
    cells = [(q, c) for q in quality for c in costs]
    assert [ax.get_title() for ax in fig.axes] == [f"{quality[q]} vs {costs[c]}" for q, c in cells]
    assert [ax.get_ylabel() for ax in fig.axes] == [f"test {quality[q]}" for q, _ in cells]
    assert [ax.get_xscale() for ax in fig.axes] == ["linear", "log", "linear"] * 2
    for ax, (q, c) in zip(fig.axes, cells):
        assert [tuple(col.get_offsets()[0]) for col in ax.collections] == list(zip(table[c], table[q]))
        assert [t.get_text() for t in ax.texts] == ["vit", "mobilenet_v2"]
    assert fig.get_suptitle() == "Quality against cost: up and to the left is better"


# --- the stage ------------------------------------------------------------------------------

SEEDS = [0, 1, 2]
PERCENTS = [50, 100]
PARAMS = {
    "report": {"alpha": 0.05, "margin": 0.02, "looks": 1, "worst_classes": 5, "confused_per_class": 2},
    "models": {name: {"family": fam, "image_size": 16} for name, fam in FAMILIES.items()},
    "study": {"seeds": SEEDS, "train_percent": PERCENTS},
    "evaluate": {"ece_bins": 10},
}


def write_inputs(root, families=FAMILIES, classes=CLASSES, n=40, seeds=SEEDS, percents=PERCENTS) -> Inputs:
    """Everything `report` reads, as the evaluate/train/prepare stages would have written it, for every run.

    At the largest size model i's accuracy in run (seed) s is 0.9 - 0.1 i + 0.01 s: a planted, consistent
    difference. At a smaller size it is 0.6 + 0.1 i + 0.01 s: the order is reversed, a planted crossing.
    Every other quality metric is that score plus its own METRIC_OFFSETS value.
    Run (i, s) trains 4 + s epochs and is evaluated with the weights of epoch 2 + s (early stopping)."""
    inputs = Inputs(**{field: root / field for field in Inputs.__dataclass_fields__})
    rng = np.random.default_rng(1)
    y = np.arange(n) % len(classes)
    paths = [f"{classes[label]}/img_{i:03d}.png" for i, label in enumerate(y)]
    (inputs.prepared / "16px").mkdir(parents=True)
    (inputs.prepared / "meta.json").write_text(json.dumps(
        {"classes": classes, "image_sizes": [16], "resize": "squash", "rows": {"test": n}}))
    pd.DataFrame({"path": paths, "label": y, "class_name": np.array(classes)[y]}).to_csv(
        inputs.prepared / "test.csv", index=False)
    np.save(inputs.prepared / "16px" / "test.npy", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
    for i, name, seed, percent in [(i, name, seed, p) for i, name in enumerate(families) for p in percents
                                   for seed in seeds]:
        full = percent == max(percents)
        score = 0.9 - 0.1 * i + 0.01 * seed if full else 0.6 + 0.1 * i + 0.01 * seed
        metrics = {k: float(score + METRIC_OFFSETS[k]) for k in EVAL_KEYS}
        metrics.update(num_test_images=n, per_class={})
        eval_cost = {"eval_time_s": 1.0 + i, "infer_img_per_s": 100.0, "latency_ms_b1": 5.0 * (i + 1)}
        train = {"epochs_run": 4 + seed, "best_epoch": 2 + seed, "evaluated_epoch": 2 + seed,
                 "params_total": 10_000 * (i + 1), "params_trainable": 10_000 * (i + 1), "train_percent": percent,
                 "model_size_mb": 0.04 * (i + 1), "model_file_mb": 0.05 * (i + 1),
                 "train_images": 3 * percent, "train_images_per_class": 3 * percent / len(classes)}
        train_cost = {"fit_time_s": (30.0 * (i + 1) + seed) * percent / 100, "time_per_trainable_param": 0.003,
                      "train_img_per_s": 50.0, "train_cpu_cores": 1.0}
        for path, values in ((layout.eval_metrics_path(name, seed, inputs.eval, percent=percent), metrics),
                             (layout.eval_cost_path(name, seed, inputs.eval_cost, percent=percent), eval_cost),
                             (layout.train_metrics_path(name, seed, inputs.train, percent=percent), train),
                             (layout.train_cost_path(name, seed, inputs.train_cost, percent=percent), train_cost)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        # Predictions (the test-image variance reads them) and curves, at every size.
        probs = fake_probs(y, len(classes), 2.5 - i, seed=10 * i + seed)
        pred = probs.argmax(1)
        frame = pd.DataFrame({"path": paths, "label": y, "class_name": np.array(classes)[y], "pred_label": pred,
                              "pred_class": np.array(classes)[pred]})
        frame[[f"prob:{c}" for c in classes]] = probs
        out = layout.predictions_path(name, seed, inputs.predictions, percent=percent)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        hist = fake_history(4 + seed, i + seed)  # runs of different lengths (early stopping)
        for sub, prefix in (("train", "train"), ("eval", "val")):
            folder = layout.curves_dir(name, seed, inputs.curves, percent=percent) / "plots" / "metrics" / sub
            folder.mkdir(parents=True)
            for metric in ("loss", "accuracy", "top3_accuracy", "macro_f1"):
                pd.DataFrame({"step": hist["epoch"] - 1, metric: hist[f"{prefix}_{metric}"]}).to_csv(
                    folder / f"{metric}.tsv", sep="\t", index=False)
    return inputs


def outputs_in(root) -> Outputs:
    return Outputs(root / "metrics" / "comparison.csv", root / "metrics" / "comparison.md",
                   root / "metrics" / "comparison.json", root / "plots" / "report", root / "plots" / "report.md",
                   root / "metrics" / "data_size.csv", root / "metrics" / "cost" / "comparison.json",
                   root / "plots" / "review", root / "metrics" / "summary.json")


def test_report_end_to_end(tmp_path):
    # 160 test images: the test-image sampling error of a difference is small enough (~0.02) for
    # the planted 0.1 to be decided at both sizes.
    inputs, outputs = write_inputs(tmp_path / "in", n=160), outputs_in(tmp_path / "out")
    build_report(parse_params(PARAMS), inputs, outputs)

    table = pd.read_csv(outputs.table_csv)  # one row per run, every size
    assert list(table["model"]) == [m for m in FAMILIES for _ in PERCENTS for _ in SEEDS]
    assert list(table["seed"]) == SEEDS * 4 and list(table["train_percent"]) == [50] * 3 + [100] * 3 + [50] * 3 + [100] * 3
    assert list(table.columns) == list(COLUMNS)  # quality and cost merged into one row, as before the split
    at_full = table[table["train_percent"] == 100]
    for key, offset in METRIC_OFFSETS.items():  # each column holds its own metric, as planted
        assert at_full[key].tolist() == pytest.approx(
            [0.9 + 0.01 * s + offset for s in SEEDS] + [0.8 + 0.01 * s + offset for s in SEEDS])
    assert at_full["fit_time_s"].tolist() == [30.0, 31.0, 32.0, 60.0, 61.0, 62.0]  # from the cost files
    assert at_full["latency_ms_b1"].tolist() == [5.0] * 3 + [10.0] * 3
    assert at_full["epochs_run"].tolist() == [4, 5, 6] * 2
    summary = json.loads(outputs.comparison.read_text())
    assert summary["seeds"] == SEEDS and summary["best"] == "vit" and summary["train_percent"] == 100
    acc = summary["models"]["vit"]["accuracy"]  # the largest size's runs only
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(0.91) and acc["ci_low"] < 0.91 < acc["ci_high"]
    assert {k: summary["models"]["vit"][k]["mean"] for k in EVAL_KEYS} == pytest.approx(
        {k: 0.91 + offset for k, offset in METRIC_OFFSETS.items()})
    pair = summary["pairs"]["vit_vs_mobilenet_v2"]
    # The planted difference is exactly 0.1 in every run: no spread over seeds, so the interval is the
    # test images' sampling error alone, computed from the runs' predictions (df = images - 1).
    right = {m: np.array([pd.read_csv(layout.predictions_path(m, s, inputs.predictions)).eval("label == pred_label")
                          for s in SEEDS]) for m in FAMILIES}
    # The images' share of the variance: var of the per-image differences / N, less the per-(seed, image)
    # residual the seeds' spread already holds (the two-way ANOVA's residual mean square / (n N)).
    table = right["vit"].astype(float) - right["mobilenet_v2"]
    residual = table - table.mean(1, keepdims=True) - table.mean(0) + table.mean()
    ms_residual = (residual ** 2).sum() / (2 * 159)
    image_se = np.sqrt(np.var(table.mean(0), ddof=1) / 160 - ms_residual / (3 * 160))
    assert (pair["diff_mean"], pair["seed_sd"], pair["df"]) == (pytest.approx(0.1), 0.0, 159.0)
    assert pair["image_se"] == pair["se"] == pytest.approx(image_se, rel=1e-5)
    half = stats.t.ppf(0.975, 159) * image_se
    assert (pair["ci_low"], pair["ci_high"]) == (pytest.approx(0.1 - half, rel=1e-5), pytest.approx(0.1 + half, rel=1e-5))
    assert pair["p_diff_holm"] == pair["p_diff"] == pytest.approx(2 * stats.t.sf(0.1 / image_se, 159), rel=1e-4)
    assert pair["verdict"] == "better" and pair["better"] == "vit" and pair["n"] == 3
    for s, (b, c) in enumerate(zip(pair["mcnemar"]["b"], pair["mcnemar"]["c"])):  # per run, from its predictions
        right = {m: pd.read_csv(layout.predictions_path(m, s, inputs.predictions)).eval("label == pred_label")
                 for m in FAMILIES}
        assert (b, c) == ((right["vit"] & ~right["mobilenet_v2"]).sum(), (~right["vit"] & right["mobilenet_v2"]).sum())
    assert pair["mcnemar"]["p_holm"] == pair["mcnemar"]["p"] and pair["mcnemar"]["runs"] == 3
    assert pair["mcnemar"]["significant_runs"] == sum(p < 0.05 for p in pair["mcnemar"]["p_holm"])
    assert pair["sentence"] == (f"vit better than mobilenet_v2 on accuracy by +0.100 (95% CI {0.1 - half:+.3f} to "
                                f"{0.1 + half:+.3f}; 3 runs per model, Holm p = {pair['p_diff_holm']:.1e})")
    # vit's accuracy: mean 0.91, sd 0.01, t(0.975, 2) * 0.01 / sqrt(3) = 0.0248: "0.9100 ± 0.0100 [0.8852, 0.9348]";
    # every other metric the same spread around its own mean, in its own column.
    means = [0.91 + offset for offset in METRIC_OFFSETS.values()]
    spread = [f"{m:.4f} ± 0.0100 [{m - 0.0248:.4f}, {m + 0.0248:.4f}]" for m in means]
    header, rule, vit_row = outputs.table_md.read_text().splitlines()[2:5]
    assert header == "| model | family | runs | accuracy | top3_accuracy | macro_f1 | weighted_f1 | log_loss | ece |"
    assert re.fullmatch(r"\|(-+\|){9}", rule)  # a pipe table's rule, one per column
    assert spread[0] == "0.9100 ± 0.0100 [0.8852, 0.9348]"
    assert vit_row == "| vit | vit | 3 | " + " | ".join(spread) + " |"  # the cells as formatted, unpadded

    # The study summary, what DVC shows: the main metric at the largest size, fit time, verdicts, best.
    assert json.loads(outputs.summary.read_text()) == {
        "vit": {"accuracy": {k: acc[k] for k in ("mean", "ci_low", "ci_high")}, "fit_time_s": 31.0},
        "mobilenet_v2": {"accuracy": {k: summary["models"]["mobilenet_v2"]["accuracy"][k]
                                      for k in ("mean", "ci_low", "ci_high")}, "fit_time_s": 61.0},
        "verdict": {"vit_vs_mobilenet_v2": "vit better"}, "best": "vit"}

    # Quality only in comparison.json; the timings' statistics in the cost summary, from the same runs.
    assert not [k for k in keys_of(summary) if any(t in k for t in ("time", "img_per_s", "latency"))]
    assert set(summary["models"]["vit"]) == {*EVAL_KEYS, "epochs_run"}
    cost = json.loads(outputs.cost.read_text())
    assert (cost["seeds"], cost["train_percent"], cost["confidence"]) == (SEEDS, 100, 0.95)
    assert {m: set(v) for m, v in cost["models"].items()} == {m: set(TIMINGS) for m in FAMILIES}
    assert cost["models"]["vit"]["fit_time_s"] == {"n": 3, "mean": 31.0, "std": 1.0, "ci_low": pytest.approx(28.5159),
                                                   "ci_high": pytest.approx(33.4841)}
    assert [cost["models"][m]["latency_ms_b1"]["mean"] for m in FAMILIES] == [5.0, 10.0]
    assert [p["fit_time_s_mean"] for p in cost["data_size_curve"]] == [15.5, 31.0, 30.5, 61.0]
    assert [(p["model"], p["train_percent"]) for p in cost["data_size_curve"]] == [
        (p["model"], p["train_percent"]) for p in summary["data_size"]["curve"]]

    # dvc.yaml's top-level plots' data: every model's mean train/val curve and test point, every prediction.
    loss = pd.read_csv(outputs.review_plots / "curves" / "loss.csv")
    assert list(loss.columns) == ["model", "split", "epoch", "loss"]
    assert sorted({p.name for p in (outputs.review_plots / "curves").iterdir()}) == [
        "accuracy.csv", "loss.csv", "macro_f1.csv", "top3_accuracy.csv"]
    for model in FAMILIES:
        rows = loss[loss["model"] == model]
        assert set(rows["split"]) == {"train", "val", "test"}
        test = rows[rows["split"] == "test"]
        assert len(test) == 1 and test["loss"].item() == pytest.approx(summary["models"][model]["log_loss"]["mean"])
        assert rows[rows["split"] == "train"]["epoch"].tolist() == list(range(1, 7))  # the longest run's epochs
    confusion = pd.read_csv(outputs.review_plots / "confusion.csv")
    assert list(confusion.columns) == ["model", "actual", "predicted"]
    for model in FAMILIES:  # the three seeds' predictions, pooled
        pooled = pd.concat(pd.read_csv(layout.predictions_path(model, s, inputs.predictions)) for s in SEEDS)
        mine = confusion[confusion["model"] == model]
        assert mine["actual"].tolist() == pooled["class_name"].tolist()
        assert mine["predicted"].tolist() == pooled["pred_class"].tolist()

    pngs = {p.name for p in outputs.figures.iterdir()}
    expected = {"study_curves.png", "learning_curves.png", "cost_frontier.png", "runs.png", "data_size.png"} | {
        f"{stem}_{m}.png" for m in FAMILIES for stem in ("confusion", "mean_probability", "worst_classes",
                                                         "reliability")}
    assert pngs == expected  # nothing else, no temporary leftovers
    assert not [p for p in outputs.figures.parent.iterdir() if p.name.startswith(".")]
    md = outputs.report_md.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"report/study_curves.png", "report/learning_curves.png", "report/runs.png"} <= set(links)
    assert all((outputs.report_md.parent / link).is_file() for link in links)
    assert "4 classes" in md and "160 test images" in md and "vit vs mobilenet_v2" in md
    assert f"- {pair['sentence']}." in md
    # The summary opens the report, in words a reviewer can paste.
    assert md.split("\n## ")[1].startswith("Summary\n\nOn these images (160 test images, accuracy, 3 runs per "
                                           "model): **vit** is best (better than every other model). vit is "
                                           "better than mobilenet_v2 by +0.100")
    assert "no significant difference" not in md
    assert str(tmp_path) not in md

    # The data-size curve: mobilenet_v2 leads by 0.1 at 50 %, vit by 0.1 at 100 %, in every run.
    curve = pd.read_csv(outputs.data_size_csv)
    assert list(zip(curve["model"], curve["train_percent"], curve["x"])) == [
        ("vit", 50, 37.5), ("vit", 100, 75.0), ("mobilenet_v2", 50, 37.5), ("mobilenet_v2", 100, 75.0)]
    assert curve["accuracy_mean"].tolist() == pytest.approx([0.61, 0.91, 0.71, 0.81])
    assert (curve["runs"] == 3).all() and (curve["accuracy_ci_low"] < curve["accuracy_mean"]).all()
    assert curve["fit_time_s_mean"].tolist() == pytest.approx([15.5, 31.0, 30.5, 61.0])
    size = summary["data_size"]
    crossing = size["pairs"]["vit_vs_mobilenet_v2"]["crossing"]
    assert (crossing["winner"], crossing["loser"], crossing["x_below"], crossing["x_above"]) == (
        "vit", "mobilenet_v2", 37.5, 75.0)
    assert size["statement"].startswith("vit overtakes mobilenet_v2 on accuracy between 37.5 and 75")
    assert f"**{size['statement']}**" in md and "report/data_size.png" in links
    assert "data_size.png" in pngs


def keys_of(value) -> list[str]:
    """Every key of a JSON value, nested ones too."""
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in (key, *keys_of(v))]
    return [k for v in value for k in keys_of(v)] if isinstance(value, list) else []


def test_test_crosses_sit_at_the_mean_evaluated_epoch(tmp_path, monkeypatch):
    """vit's runs were evaluated at epochs 2, 3, 4 (early stopping); mobilenet_v2's metrics predate
    evaluated_epoch, so each of its runs falls back to its last epoch: 4, 5, 6."""
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    for seed in SEEDS:
        path = layout.train_metrics_path("mobilenet_v2", seed, inputs.train)
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "evaluated_epoch"}))
    drawn = []
    original = figures.study_curves
    monkeypatch.setattr(figures, "study_curves", lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    summary = build_report(parse_params(PARAMS), inputs, outputs)
    (fig,) = drawn
    for ax, metric in zip(fig.axes[:3], ("log_loss", "accuracy", "top3_accuracy")):
        crosses = [ln for ln in ax.lines if ln.get_marker() == "x"]
        assert [c.get_xdata()[0] for c in crosses] == [3.0, 5.0]
        assert [c.get_ydata()[0] for c in crosses] == pytest.approx(
            [summary["models"][m][metric]["mean"] for m in FAMILIES], abs=1e-6)


def test_mean_history_band_over_runs_of_different_lengths():
    from stages.analysis.report_figures import mean_history

    a = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [1.0, 0.5, 0.3]})
    b = pd.DataFrame({"epoch": [1, 2], "val_loss": [3.0, 1.5]})
    mean = mean_history([a, b])
    assert list(mean["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(mean["val_loss"], [2.0, 1.0, 0.3])
    np.testing.assert_allclose(mean["val_loss_sd"][:2], [np.std([1, 3], ddof=1), np.std([0.5, 1.5], ddof=1)])
    assert np.isnan(mean["val_loss_sd"][2])  # one run reached epoch 3: no spread


def test_runs_strip_draws_every_run(tmp_path):
    runs = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "accuracy": [0.9, 0.91, 0.92, 0.8, 0.82, 0.81]})
    summary = {"a": {"mean": 0.91, "ci_low": 0.89, "ci_high": 0.93}, "b": {"mean": 0.81, "ci_low": None,
                                                                          "ci_high": None}}
    fig = figures.runs_strip(runs, "accuracy", "accuracy", summary, tmp_path / "r.png")
    assert_png(tmp_path / "r.png")
    ax = fig.axes[0]
    assert ax.get_title() == "accuracy of every run (dots), mean and 95% CI (bars), 3 runs per model"
    assert ax.get_ylabel() == "accuracy" and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    dots = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 3]
    for i, (name, offsets) in enumerate(zip("ab", dots)):  # one dot per run, jittered around the model's tick
        assert offsets[:, 1].tolist() == runs.loc[runs["model"] == name, "accuracy"].tolist()
        assert np.all(np.abs(offsets[:, 0] - i) <= 0.12)
    (bar,) = ax.containers  # a's interval; b has a single-run summary: its mean alone
    np.testing.assert_allclose(bar.lines[2][0].get_segments()[0], [[0.3, 0.89], [0.3, 0.93]])
    means = [(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in ax.lines if ln.get_marker() == "D"]
    assert means == [(0.3, 0.91), (1.3, 0.81)]


def test_report_with_one_model_and_two_classes(tmp_path):
    inputs = write_inputs(tmp_path / "in", families={"vit": "vit"}, classes=["no", "yes"], n=12)
    params = {**PARAMS, "models": {"vit": {"family": "vit"}}}
    outputs = outputs_in(tmp_path / "out")
    summary = build_report(parse_params(params), inputs, outputs)
    assert summary["pairs"] == {} and summary["best"] == "vit"
    assert (outputs.figures / "worst_classes_vit.png").is_file()
    assert "no pairwise comparison" in outputs.report_md.read_text()


@pytest.mark.parametrize("metric, title, best, means", [
    ("macro_f1", "macro-F1", "mobilenet_v2", {"vit": 0.88, "mobilenet_v2": 0.96}),
    ("accuracy", "accuracy", "vit", {"vit": 0.91, "mobilenet_v2": 0.81})])
def test_primary_metric_names_the_best_model(tmp_path, monkeypatch, metric, title, best, means):
    """At the largest size vit leads on accuracy (0.91 vs 0.81) but mobilenet_v2 is planted ahead on
    macro-F1 (0.95 + 0.01 s, mean 0.96, vs vit's 0.88): the best model, its score, the verdicts' pair,
    the data-size curve and the runs figure must all follow ``report.primary_metric``, not accuracy."""
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    for seed in SEEDS:
        path = layout.eval_metrics_path("mobilenet_v2", seed, inputs.eval)
        path.write_text(json.dumps({**json.loads(path.read_text()), "macro_f1": 0.95 + 0.01 * seed}))
    drawn = []
    original = figures.runs_strip
    monkeypatch.setattr(figures, "runs_strip", lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    build_report(parse_params({**PARAMS, "report": {**PARAMS["report"], "primary_metric": metric}}), inputs, outputs)

    summary = json.loads(outputs.comparison.read_text())
    assert summary["primary_metric"] == metric and summary["best"] == best
    assert summary["best_score"] == pytest.approx(means[best])  # the named metric's mean, not accuracy's
    pair = summary["pairs"]["vit_vs_mobilenet_v2"]
    assert pair["metric"] == metric and pair["diff_mean"] == pytest.approx(means["vit"] - means["mobilenet_v2"])
    curve = pd.read_csv(outputs.data_size_csv)  # vit 50 %, 100 %, mobilenet_v2 50 %, 100 %
    offset = METRIC_OFFSETS[metric]
    assert curve[f"{metric}_mean"].tolist() == pytest.approx(
        [0.61 + offset, means["vit"], 0.71 + offset, means["mobilenet_v2"]])
    (ax,) = drawn[0].axes  # one dot per run, at that run's value of the main metric
    assert ax.get_ylabel() == title
    dots = [y for c in ax.collections if len(c.get_offsets()) == len(SEEDS) for y in c.get_offsets()[:, 1]]
    assert dots == pytest.approx([means[m] - 0.01 + 0.01 * s for m in FAMILIES for s in SEEDS])
    md = outputs.report_md.read_text()
    assert f"test images, {title}, 3 runs per model)" in md and f"Best by mean {title}: **{best}** ({means[best]:.4f})." in md


def test_mcnemar_is_holm_corrected_across_the_pairs_of_each_run(tmp_path):
    """Three models: three pairs per run, one Holm family per run. The report's per-run McNemar p-values,
    raw and Holm-adjusted, must be statsmodels' exact McNemar on the predictions and its Holm correction,
    both computed here independently of the report's code."""
    families = {"vit": "vit", "mobilenet_v2": "mobilenet_v2", "resnet50": "resnet50"}
    inputs, outputs = write_inputs(tmp_path / "in", families=families), outputs_in(tmp_path / "out")
    params = {**PARAMS, "models": {name: {"family": fam, "image_size": 16} for name, fam in families.items()}}
    build_report(parse_params(params), inputs, outputs)
    pairs = json.loads(outputs.comparison.read_text())["pairs"]
    assert list(pairs) == ["vit_vs_mobilenet_v2", "vit_vs_resnet50", "mobilenet_v2_vs_resnet50"]
    adjusted_any = False
    for s, seed in enumerate(SEEDS):
        right = {m: pd.read_csv(layout.predictions_path(m, seed, inputs.predictions)).eval("label == pred_label")
                 .to_numpy() for m in families}
        raw = [mcnemar([[np.sum(right[a] & right[b]), np.sum(right[a] & ~right[b])],
                        [np.sum(~right[a] & right[b]), np.sum(~right[a] & ~right[b])]], exact=True).pvalue
               for a, b in (key.split("_vs_") for key in pairs)]
        holm = multipletests(raw, method="holm")[1]
        assert [p["mcnemar"]["p"][s] for p in pairs.values()] == pytest.approx(raw, rel=1e-5)
        assert [p["mcnemar"]["p_holm"][s] for p in pairs.values()] == pytest.approx(holm.tolist(), rel=1e-5)
        adjusted_any |= bool(np.any(holm > np.array(raw) * 1.5))
    assert adjusted_any  # the data make Holm matter: raw p-values in place of adjusted ones would fail above
    for p in pairs.values():
        assert p["mcnemar"]["significant_runs"] == sum(x < PARAMS["report"]["alpha"] for x in p["mcnemar"]["p_holm"])


@pytest.mark.parametrize("key, value", [("primary_metric", "f1"), ("alpha", 1.5), ("alpha", 0),
                                        ("worst_classes", 0), ("confused_per_class", "two"), ("seed", 0)])
def test_bad_params_name_the_key(key, value):
    """Also: the bootstrap's old keys are gone, so a leftover ``seed`` is an unknown key."""
    params = {**PARAMS, "report": {**PARAMS["report"], key: value}}
    with pytest.raises(ParamError, match=f"report.{key}") as err:
        parse_params(params)
    assert err.value.key == f"report.{key}"


def test_missing_predictions_name_the_file_and_write_nothing(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    layout.predictions_path("mobilenet_v2", 1, inputs.predictions).unlink()
    with pytest.raises(DataError, match=r"mobilenet_v2/100pct/s1\.csv not found: run `dvc repro train@mobilenet_v2-100-1`"):
        build_report(parse_params(PARAMS), inputs, outputs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, stage", [("train_cost", "train@vit-50-1"), ("eval_cost", "train@vit-50-1"),
                                         ("train", "train@vit-50-1"), ("eval", "evaluate")])
def test_a_missing_metrics_or_cost_file_names_the_file_and_write_nothing(tmp_path, kind, stage):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    where = {"train_cost": layout.train_cost_path, "eval_cost": layout.eval_cost_path,
             "train": layout.train_metrics_path, "eval": layout.eval_metrics_path}[kind]
    path = where("vit", 1, getattr(inputs, kind), percent=50)
    path.unlink()
    with pytest.raises(DataError) as err:
        build_report(parse_params(PARAMS), inputs, outputs)
    assert str(err.value) == f"{path} not found: run `dvc repro {stage}` first"
    assert not (tmp_path / "out").exists()


def test_a_cost_file_without_its_keys_is_refused(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    path = layout.train_cost_path("mobilenet_v2", 2, inputs.train_cost)
    path.write_text(json.dumps({"train_img_per_s": 50.0}))
    with pytest.raises(DataError) as err:
        build_report(parse_params(PARAMS), inputs, outputs)
    assert str(err.value) == (f"{path}: missing fit_time_s, time_per_trainable_param: "
                              "re-run `dvc repro train@mobilenet_v2-100-2`")
    assert not (tmp_path / "out").exists()  # refused before any output (tables, JSON, figures) is written


def test_predictions_of_different_test_images_are_refused(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    path = layout.predictions_path("mobilenet_v2", 2, inputs.predictions)
    pd.read_csv(path).iloc[::-1].to_csv(path, index=False)  # same rows, other order: pairing would be wrong
    with pytest.raises(DataError, match=r"mobilenet_v2/100pct/s2\.csv and .*vit/100pct/s0\.csv are not the same test"):
        build_report(parse_params(PARAMS), inputs, outputs)
    assert not (tmp_path / "out").exists()  # refused before any output (tables, JSON, figures) is written


def test_every_size_must_be_tested_on_the_same_test_split(tmp_path):
    """Val and test never change across sizes: a smaller-size run evaluated on other test images is refused."""
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    path = layout.eval_metrics_path("vit", 1, inputs.eval, percent=50)
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "num_test_images": metrics["num_test_images"] - 4}))
    with pytest.raises(DataError, match=r"vit/50pct/s1\.json: 36 test images, the other runs 40.*train@vit-50-1"):
        build_report(parse_params(PARAMS), inputs, outputs)
    assert not (tmp_path / "out").exists()


def test_one_size_says_how_to_get_a_curve(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in", percents=[100]), outputs_in(tmp_path / "out")
    summary = build_report(parse_params({**PARAMS, "study": {"seeds": SEEDS, "train_percent": [100]}}),
                           inputs, outputs)
    assert "One training-set size only" in summary["data_size"]["statement"]
    assert len(pd.read_csv(outputs.data_size_csv)) == 2 and (outputs.figures / "data_size.png").is_file()


def test_the_verdict_follows_the_main_metric_when_accuracy_and_macro_f1_disagree(tmp_path):
    """vit's macro-F1 is 0.1 above mobilenet_v2's in every run, its accuracy the same within noise:
    with macro_f1 as the main metric the verdict is a win, with accuracy undecided -- each from the
    paired test of its own metric over the seeds, never the other's."""
    inputs = write_inputs(tmp_path / "in")
    for seed, noise in zip(SEEDS, (0.02, -0.03, 0.01)):
        other = json.loads(layout.eval_metrics_path("mobilenet_v2", seed, inputs.eval, percent=100).read_text())
        path = layout.eval_metrics_path("vit", seed, inputs.eval, percent=100)
        path.write_text(json.dumps({**json.loads(path.read_text()), "accuracy": other["accuracy"] + noise}))
    verdicts = {}
    for metric in ("macro_f1", "accuracy"):
        summary = build_report(parse_params({**PARAMS, "report": {**PARAMS["report"], "primary_metric": metric}}),
                               inputs, outputs_in(tmp_path / metric))
        pair = summary["pairs"]["vit_vs_mobilenet_v2"]
        assert pair["metric"] == metric
        verdicts[metric] = pair["sentence"]
    assert verdicts["macro_f1"].startswith("vit better than mobilenet_v2 on macro-F1 by +0.100")
    assert verdicts["accuracy"].startswith("vit vs mobilenet_v2 on accuracy: undecided, vit - mobilenet_v2 = +0.000")
    # The summary DVC shows names the main metric in its keys and says the verdict in a few words.
    short = {m: json.loads((tmp_path / m / "metrics" / "summary.json").read_text()) for m in verdicts}
    assert set(short["macro_f1"]["vit"]) == {"macro_f1", "fit_time_s"} and set(short["accuracy"]["vit"]) == {
        "accuracy", "fit_time_s"}
    assert (short["macro_f1"]["verdict"]["vit_vs_mobilenet_v2"],
            short["accuracy"]["verdict"]["vit_vs_mobilenet_v2"].split(" (~")[0]) == (
        "vit better", "undecided")
