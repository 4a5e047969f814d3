"""The data-size curve figure: draws for several sizes and for a single run at a single size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.lib.figures import data_size_curve, model_colors


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
    fig = data_size_curve(path, curve_table(models, sizes, runs), "macro_f1", "macro-F1", model_colors(models))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 500
        image.verify()
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert left.get_xscale() == "log" and right.get_xscale() == "log"
    assert [len(ax.get_lines()) for ax in fig.axes] == [len(models)] * 2
    assert [line.get_label() for line in left.get_lines()] == models
    assert list(left.get_xticks()) == sorted(sizes)  # ticks at the sizes trained
    assert [t.get_text() for t in left.get_xticklabels()] == [str(s) for s in sorted(sizes)]
    assert np.all(np.diff(left.get_lines()[0].get_xdata()) > 0)  # drawn in ascending x
    bands = len(left.collections)
    assert bands == (len(models) if runs > 1 else 0)  # no band from NaN intervals
    assert all(np.isfinite(left.get_xlim())) and left.get_xlim()[0] > 0
