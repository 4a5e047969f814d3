"""Stage `report`: every figure renders, and the stage's core end to end on synthetic inputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from stages.lib import figures, layout
from stages.lib.errors import DataError, ParamError
from stages.lib.metrics import mean_probability_matrix, reliability_bins, worst_classes
from stages.report import Inputs, Outputs, build_report, parse_params

CLASSES = ["cat", "dog", "007", "red fox"]  # "007" must stay a string
FAMILIES = {"vit": "vit", "mobilenet_v2": "mobilenet_v2"}
EVAL_KEYS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece")


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


def rendered(fig, path) -> int:
    assert path.is_file() and path.stat().st_size > 1000
    return len(fig.axes)


def test_study_and_learning_curves_render(tmp_path):
    hist = {"vit": fake_history(6, 0), "mobilenet_v2": fake_history(4, 1), "resnet50": fake_history(5, 2)}
    test = {m: {"loss": 0.5, "accuracy": 0.8, "top3_accuracy": 0.95} for m in hist}
    fig = figures.study_curves(hist, test, {"vit": 2.0, "mobilenet_v2": 0.5, "resnet50": 1.0},
                               {"vit": 60.0, "mobilenet_v2": 20.0, "resnet50": 40.0}, tmp_path / "s.png")
    assert rendered(fig, tmp_path / "s.png") == 4
    assert sum(len(ax.lines) for ax in fig.axes[:3]) == 3 * 3 * (2 + 1)  # 3 panels x 3 models x (train, val, test)
    assert [ln.get_marker() for ln in fig.axes[0].lines].count("x") == 3
    fig = figures.learning_curves(hist, tmp_path / "l.png")
    assert rendered(fig, tmp_path / "l.png") == 2 * 3


def test_heatmaps_render_with_class_names(tmp_path, model_data):
    y, probs = model_data
    pred = probs["vit"].argmax(1)
    fig = figures.confusion_counts(y, pred, CLASSES, "vit: confusion", tmp_path / "c.png")
    assert rendered(fig, tmp_path / "c.png") == 2  # heatmap + colour bar
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == CLASSES
    matrix = mean_probability_matrix(y, probs["vit"], len(CLASSES))
    fig = figures.mean_probability_heatmap(matrix, CLASSES, "vit: mean probability", tmp_path / "m.png")
    assert rendered(fig, tmp_path / "m.png") == 2
    assert fig.axes[0].collections[0].get_clim() == (0, 1)


def test_worst_classes_figure_has_one_column_per_class(tmp_path, model_data):
    y, probs = model_data
    worst = worst_classes(y, probs["mobilenet_v2"], k=3, n_confused=2)
    thumbs = {label: np.full((8, 8, 3), 40 * label, np.uint8) for label in range(len(CLASSES))}
    fig = figures.worst_classes_figure(worst, CLASSES, thumbs, tmp_path / "w.png")
    assert rendered(fig, tmp_path / "w.png") == 3 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert any(CLASSES[worst[0]["label"]] in t and "recall" in t for t in titles)
    assert sum("mean p" in t for t in titles) == 3 * 2


def test_reliability_and_cost_frontier_render(tmp_path, model_data):
    y, probs = model_data
    bins = reliability_bins(y, probs["vit"], bins=10)
    fig = figures.reliability_diagram(bins, 0.0421, "vit: reliability", tmp_path / "r.png")
    assert rendered(fig, tmp_path / "r.png") == 2
    assert "ECE = 0.042" in fig.axes[0].get_title()
    table = pd.DataFrame({"model": ["vit", "mobilenet_v2"], "accuracy": [0.8, 0.7], "macro_f1": [0.78, 0.69],
                          "latency_ms_b1": [12.0, 4.0], "params_total": [5_000_000, 300_000],
                          "fit_time_s": [60.0, 20.0]})
    fig = figures.cost_frontier(table, tmp_path / "f.png")
    assert rendered(fig, tmp_path / "f.png") == 6
    assert fig.axes[1].get_xscale() == "log"


# --- the stage ------------------------------------------------------------------------------

SEEDS = [0, 1, 2]
PERCENTS = [50, 100]
PARAMS = {
    "report": {"alpha": 0.05, "worst_classes": 5, "confused_per_class": 2},
    "models": {name: {"family": fam, "image_size": 16} for name, fam in FAMILIES.items()},
    "study": {"seeds": SEEDS, "train_percent": PERCENTS},
    "evaluate": {"ece_bins": 10},
}


def write_inputs(root, families=FAMILIES, classes=CLASSES, n=40, seeds=SEEDS, percents=PERCENTS) -> Inputs:
    """Everything `report` reads, as the evaluate/train/prepare stages would have written it, for every run.

    At the largest size model i's accuracy in run (seed) s is 0.9 - 0.1 i + 0.01 s: a planted, consistent
    difference. At a smaller size it is 0.6 + 0.1 i + 0.01 s: the order is reversed, a planted crossing."""
    inputs = Inputs(*(root / d for d in ("predictions", "eval", "train", "curves", "prepared")))
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
        metrics = {k: float(score) for k in EVAL_KEYS}
        metrics.update(eval_time_s=1.0 + i, infer_img_per_s=100.0, latency_ms_b1=5.0 * (i + 1),
                       model_size_mb=1.5, params_total=10_000 * (i + 1), params_trainable=10_000 * (i + 1),
                       num_test_images=n, per_class={})
        train = {"fit_time_s": (30.0 * (i + 1) + seed) * percent / 100, "epochs_run": 5, "best_epoch": 5,
                 "params_total": 10_000 * (i + 1), "params_trainable": 10_000 * (i + 1),
                 "time_per_trainable_param": 0.003, "train_img_per_s": 50.0, "train_percent": percent,
                 "train_images": 3 * percent, "train_images_per_class": 3 * percent / len(classes)}
        for path, values in ((layout.eval_metrics_path(name, seed, inputs.eval, percent=percent), metrics),
                             (layout.train_metrics_path(name, seed, inputs.train, percent=percent), train)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        if full:  # predictions and curves are read for the largest size only
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
                   root / "metrics" / "data_size.csv")


def test_report_end_to_end(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    build_report(parse_params(PARAMS), inputs, outputs)

    table = pd.read_csv(outputs.table_csv)  # one row per run, every size
    assert list(table["model"]) == [m for m in FAMILIES for _ in PERCENTS for _ in SEEDS]
    assert list(table["seed"]) == SEEDS * 4 and list(table["train_percent"]) == [50] * 3 + [100] * 3 + [50] * 3 + [100] * 3
    assert {"accuracy", "latency_ms_b1", "fit_time_s", "epochs_run", "time_per_trainable_param"} <= set(table)
    summary = json.loads(outputs.comparison.read_text())
    assert summary["seeds"] == SEEDS and summary["best"] == "vit" and summary["train_percent"] == 100
    acc = summary["models"]["vit"]["accuracy"]  # the largest size's runs only
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(0.91) and acc["ci_low"] < 0.91 < acc["ci_high"]
    pair = summary["pairs"]["vit_vs_mobilenet_v2"]
    # The planted difference is exactly 0.1 in every run: found, in the right direction.
    assert pair["diff_mean"] == pytest.approx(0.1) and pair["significant"] and pair["better"] == "vit"
    assert pair["n"] == 3 and pair["t_p_holm"] == pair["t_p"]  # one pair: Holm changes nothing
    assert len(pair["mcnemar"]["p"]) == len(pair["mcnemar"]["p_holm"]) == 3
    assert pair["verdict"].startswith("vit better than mobilenet_v2 on accuracy") and "3 runs" in pair["verdict"]
    assert "| vit | vit | 3 |" in outputs.table_md.read_text()

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
    assert "4 classes" in md and "40 test images" in md and "vit vs mobilenet_v2" in md
    assert f"- {pair['verdict']}." in md
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


def test_mean_history_band_over_runs_of_different_lengths():
    from stages.report import mean_history

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
    assert rendered(fig, tmp_path / "r.png") == 1
    dots = [c for c in fig.axes[0].collections if len(c.get_offsets()) == 3]
    assert len(dots) == 2 and "3 runs per model" in fig.axes[0].get_title()


def test_report_with_one_model_and_two_classes(tmp_path):
    inputs = write_inputs(tmp_path / "in", families={"vit": "vit"}, classes=["no", "yes"], n=12)
    params = {**PARAMS, "models": {"vit": {"family": "vit"}}}
    outputs = outputs_in(tmp_path / "out")
    summary = build_report(parse_params(params), inputs, outputs)
    assert summary["pairs"] == {} and summary["best"] == "vit"
    assert (outputs.figures / "worst_classes_vit.png").is_file()
    assert "no pairwise comparison" in outputs.report_md.read_text()


@pytest.mark.parametrize("metric, title", [("macro_f1", "macro-F1"), ("accuracy", "accuracy")])
def test_primary_metric_names_the_best_model(tmp_path, metric, title):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    summary = build_report(parse_params({**PARAMS, "report": {**PARAMS["report"], "primary_metric": metric}}),
                           inputs, outputs)
    table = pd.read_csv(outputs.table_csv)
    means = table[table["train_percent"] == max(PERCENTS)].groupby("model")[metric].mean()  # the largest size
    assert summary["primary_metric"] == metric
    assert summary["best"] == means.idxmax()
    assert summary["best_score"] == pytest.approx(means.max(), abs=1e-6)
    md = outputs.report_md.read_text()
    assert f"Main metric: {title}." in md and f"Best by mean {title}: **{summary['best']}**" in md


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
    with pytest.raises(DataError, match=r"mobilenet_v2/100pct/s1\.csv not found: run `dvc repro evaluate@mobilenet_v2-100-1`"):
        build_report(parse_params(PARAMS), inputs, outputs)
    assert not (tmp_path / "out").exists()


def test_predictions_of_different_test_images_are_refused(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    path = layout.predictions_path("mobilenet_v2", 2, inputs.predictions)
    pd.read_csv(path).iloc[::-1].to_csv(path, index=False)  # same rows, other order: pairing would be wrong
    with pytest.raises(DataError, match=r"mobilenet_v2/100pct/s2\.csv and .*vit/100pct/s0\.csv are not the same test"):
        build_report(parse_params(PARAMS), inputs, outputs)


def test_every_size_must_be_tested_on_the_same_test_split(tmp_path):
    """Val and test never change across sizes: a smaller-size run evaluated on other test images is refused."""
    inputs, outputs = write_inputs(tmp_path / "in"), outputs_in(tmp_path / "out")
    path = layout.eval_metrics_path("vit", 1, inputs.eval, percent=50)
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "num_test_images": metrics["num_test_images"] - 4}))
    with pytest.raises(DataError, match=r"vit/50pct/s1\.json: 36 test images, the other runs 40.*evaluate@vit-50-1"):
        build_report(parse_params(PARAMS), inputs, outputs)
    assert not (tmp_path / "out").exists()


def test_one_size_says_how_to_get_a_curve(tmp_path):
    inputs, outputs = write_inputs(tmp_path / "in", percents=[100]), outputs_in(tmp_path / "out")
    summary = build_report(parse_params({**PARAMS, "study": {"seeds": SEEDS, "train_percent": [100]}}),
                           inputs, outputs)
    assert "One training-set size only" in summary["data_size"]["statement"]
    assert len(pd.read_csv(outputs.data_size_csv)) == 2 and (outputs.figures / "data_size.png").is_file()
