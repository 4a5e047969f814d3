"""stages/core/predictions.py: the one reader of predictions files and the same-test-set check."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.core.errors import DataError
from stages.core.predictions import check_same_test_set, read_predictions


def frame(n: int = 4, classes=("a", "b")) -> pd.DataFrame:
    data = {"path": [f"x/{i}.png" for i in range(n)], "label": [i % 2 for i in range(n)],
            "pred_label": [0] * n}
    data.update({f"prob:{c}": [0.5] * n for c in classes})
    return pd.DataFrame(data)


def test_reads_types_and_names_the_run_in_every_error(tmp_path):
    path = tmp_path / "s0.csv"
    with pytest.raises(DataError, match=r"s0\.csv not found: run `dvc repro train@vit-100-0` first"):
        read_predictions(path, "vit-100-0")
    frame().to_csv(path, index=False)
    read = read_predictions(path, "vit-100-0")
    assert read["pred_label"].dtype.kind == "i" and read["prob:a"].dtype.kind == "f" and len(read) == 4
    frame().drop(columns="pred_label").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing \['pred_label'\].*train@vit-100-0"):
        read_predictions(path, "vit-100-0")
    frame(classes=("a",)).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"prob:<class> column per class \(>= 2\)"):
        read_predictions(path, "vit-100-0")
    frame().assign(label=[0, 1, 2, 0]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"labels outside 0\.\.1"):
        read_predictions(path, "vit-100-0")


def test_same_test_set_names_both_files_and_both_runs(tmp_path):
    same = {"vit-100-0": frame(), "cnn-100-0": frame()}
    paths = {run: tmp_path / f"{run}.csv" for run in same}
    check_same_test_set(same, paths)  # no error
    shuffled = {"vit-100-0": frame(), "cnn-100-0": frame().iloc[::-1].reset_index(drop=True)}
    with pytest.raises(DataError, match=r"cnn-100-0\.csv and .*vit-100-0\.csv are not the same test images.*"
                                        r"train@cnn-100-0 train@vit-100-0"):
        check_same_test_set(shuffled, paths)
