"""stages/analysis/figures.py: what the figures show (the report's other figures: tests/test_report.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.analysis.figures import data_size_curve, model_colors, study_curves


def curve_table(models, sizes, runs: int) -> pd.DataFrame:
    rows = []
    for i, model in enumerate(models):
        for j, x in enumerate(sizes):
            mean, time = 0.5 + 0.1 * j + 0.05 * i, 10.0 * x
            half = 0.02 if runs > 1 else np.nan  # a single run has no interval
            rows.append({"model": model, "x": x, "runs": runs, "macro_f1_mean": mean,
                         "macro_f1_ci_low": mean - half, "macro_f1_ci_high": mean + half,
                         "fit_time_s_mean": time, "fit_time_s_ci_low": time - 10 * half,
                         "fit_time_s_ci_high": time + 10 * half})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("models, sizes, runs", [(["vit", "resnet50"], [50, 12, 25], 3), (["vit"], [100], 1)])
def test_data_size_curve_draws(tmp_path, models, sizes, runs):
    path = tmp_path / "size.png"
    table = curve_table(models, sizes, runs)
    fig = data_size_curve(path, table, "macro_f1", "macro-F1", model_colors(models))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left, right = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["macro-F1 vs training-set size", "What each point costs: fit time"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["macro-F1", "fit time (s)"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["training images per class (log scale)"] * 2
    assert fig.get_suptitle() == "macro-F1 and cost vs training-set size (mean, 95% CI over seeds)"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == models
    for name, quality, cost in zip(models, left.get_lines(), right.get_lines()):
        rows = table[table["model"] == name].sort_values("x")
        np.testing.assert_allclose(quality.get_xdata(), rows["x"])
        np.testing.assert_allclose(quality.get_ydata(), rows["macro_f1_mean"])
        np.testing.assert_allclose(cost.get_ydata(), rows["fit_time_s_mean"])
    assert left.get_xscale() == "log" and right.get_xscale() == "log"
    assert [len(ax.get_lines()) for ax in fig.axes] == [len(models)] * 2
    assert [line.get_label() for line in left.get_lines()] == models
    assert list(left.get_xticks()) == sorted(sizes)  # ticks at the sizes trained
    assert [t.get_text() for t in left.get_xticklabels()] == [str(s) for s in sorted(sizes)]
    assert np.all(np.diff(left.get_lines()[0].get_xdata()) > 0)  # drawn in ascending x
    bands = len(left.collections)
    assert bands == (len(models) if runs > 1 else 0)  # no band from NaN intervals
    assert all(np.isfinite(left.get_xlim())) and left.get_xlim()[0] > 0


def history(epochs: int) -> pd.DataFrame:
    t = np.arange(1, epochs + 1)
    curves = {f"{split}_{metric}": 1 / t + shift for split, shift in (("train", 0), ("val", 0.1))
              for metric in ("loss", "accuracy", "top3_accuracy")}
    return pd.DataFrame({"epoch": t, **curves})


def test_study_curves_put_the_test_cross_at_the_evaluated_epoch(tmp_path):
    """The evaluated model carries the weights of its evaluated epoch (the best one, restored by early
    stopping), not of the last epoch trained: its test score is drawn there, at the last epoch without one."""
    hist = {"vit": history(8), "resnet50": history(5)}
    test = {"vit": {"loss": 0.4, "accuracy": 0.9, "top3_accuracy": 0.99},
            "resnet50": {"loss": 0.6, "accuracy": 0.8, "top3_accuracy": 0.97}}
    fig = study_curves(hist, test, {"vit": 2.0, "resnet50": 1.0}, {"vit": 50.0, "resnet50": 25.0},
                       tmp_path / "s.png", test_epochs={"vit": 3.5})
    for ax, metric in zip(fig.axes[:3], ("loss", "accuracy", "top3_accuracy")):
        crosses = [line for line in ax.lines if line.get_marker() == "x"]
        assert [(c.get_xdata().tolist(), c.get_ydata().tolist()) for c in crosses] == [
            ([3.5], [test["vit"][metric]]), ([5], [test["resnet50"][metric]])]
        assert max(ax.lines[0].get_xdata()) == 8  # the curves still run to the last epoch
