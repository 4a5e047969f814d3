"""Stage `split`: sizes, stratification, determinism, the duplicate leakage guard, errors."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from stages.core.errors import DataError, ParamError
from stages.split import make_splits


def manifest_for(counts: dict[str, int], duplicates: list[list[tuple[str, int]]] = ()) -> pd.DataFrame:
    """A manifest with unique hashes, except for the planted duplicate groups.

    ``duplicates`` lists groups of (class, index) rows that share one sha256.
    """
    rows = []
    for label, (name, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            rows.append([f"{name}/{i:04d}.png", name, label, hashlib.sha256(f"{name}{i}".encode()).hexdigest(), 8, 8])
    frame = pd.DataFrame(rows, columns=["path", "class_name", "label", "sha256", "width", "height"])
    for g, group in enumerate(duplicates):
        for name, i in group:
            frame.loc[frame["path"] == f"{name}/{i:04d}.png", "sha256"] = f"dup{g}"
    return frame


def split(manifest, **params):
    base = dict(train=0.7, val=0.15, test=0.15, seed=0)
    base.update(params)
    return make_splits(manifest, base)


def table(out: pd.DataFrame) -> pd.DataFrame:
    return out.groupby(["class_name", "split"]).size().unstack(fill_value=0)[["train", "val", "test"]]


def test_product_study_fractions_give_700_175_175():
    out, report = split(manifest_for({f"c{i}": 150 for i in range(7)}), train="2/3", val="1/6", test="1/6")
    assert report["sizes"] == {"train": 700, "val": 175, "test": 175}
    assert (table(out).to_numpy() == [100, 25, 25]).all()


def test_absolute_counts():
    out, report = split(manifest_for({f"c{i}": 150 for i in range(7)}), train=700, val=175, test=175)
    assert report["sizes"] == {"train": 700, "val": 175, "test": 175}
    out, report = split(manifest_for({"a": 50, "b": 50}), train=40, val=10, test=10)
    assert report["sizes"] == {"train": 40, "val": 10, "test": 10}
    assert report["unused_images"] == 40
    assert (table(out).to_numpy() == [20, 5, 5]).all()


def test_stratified_on_imbalanced_classes_with_exact_totals():
    counts = {"a": 178, "b": 182, "c": 177, "d": 183, "e": 174}
    out, report = split(manifest_for(counts))
    n = sum(counts.values())
    assert report["sizes"]["val"] == round(0.15 * n) and report["sizes"]["test"] == round(0.15 * n)
    assert sum(report["sizes"].values()) == n
    t = table(out)
    for name, size in counts.items():
        for s, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
            assert abs(t.loc[name, s] - frac * size) < 1.0 + 1e-9, (name, s)


def test_every_image_in_exactly_one_split():
    manifest = manifest_for({"a": 20, "b": 20})
    out, _ = split(manifest)
    assert sorted(out["path"]) == sorted(manifest["path"])
    assert set(out["split"]) == {"train", "val", "test"}


def test_same_seed_same_split_other_seed_differs():
    manifest = manifest_for({"a": 40, "b": 40, "c": 40})
    first, _ = split(manifest)
    again, _ = split(manifest)
    other, _ = split(manifest, seed=1)
    assert first.to_csv(index=False) == again.to_csv(index=False)
    assert not first["split"].equals(other["split"])
    assert table(first).equals(table(other))  # same sizes, other images


def test_duplicates_never_straddle_splits():
    groups = [[("a", i), ("a", i + 1), ("a", i + 2)] for i in range(0, 30, 3)]  # 10 triples
    groups += [[("b", 0), ("c", 0)], [("b", 5), ("b", 6)]]  # a cross-class pair, a pair
    manifest = manifest_for({"a": 60, "b": 60, "c": 60}, groups)
    for seed in range(5):
        out, report = split(manifest, seed=seed)
        assert (out.groupby("sha256")["split"].nunique() == 1).all()
        assert report["duplicate_groups"] == 12
        assert len(out) == 180
        t = table(out)
        assert (t > 0).all().all()
        assert abs(t.loc["a", "test"] - 9) <= 2  # groups may move a class's counts a little


def test_every_class_in_every_split_or_a_clear_error():
    with pytest.raises(ParamError, match=r"split\.(val|test).*'b' has 3 images"):
        split(manifest_for({"a": 50, "b": 3}))


def test_duplicates_that_make_a_split_impossible_are_reported():
    manifest = manifest_for({"a": 10, "b": 10}, [[("b", i) for i in range(10)]])
    with pytest.raises(DataError, match="class 'b' has no"):
        split(manifest)


@pytest.mark.parametrize(
    "over, key, words",
    [
        (dict(train=0.5, val=0.1, test=0.1), "split", "add up to 1"),
        (dict(train=70, val=0.15, test=0.15), "split", "all as counts or all as fractions"),
        (dict(train=300, val=10, test=10), "split", "only 40"),
        (dict(val=0), "split.val", "count"),
        (dict(test=1.5), "split.test", "fraction in (0, 1)"),
        (dict(test="a third"), "split.test", "fraction"),
        (dict(seed="x"), "split.seed", "integer"),
        (dict(folds=5), "split.folds", "unknown key"),
    ],
)
def test_bad_params_name_the_key(over, key, words):
    with pytest.raises(ParamError) as err:
        split(manifest_for({"a": 20, "b": 20}), **over)
    assert err.value.key == key and words in str(err.value)


def test_main_writes_counts_for_dvc_and_the_per_class_table_apart(tmp_path, monkeypatch):
    """metrics/split.json is a DVC metrics file (every value a column of `dvc exp show`): counts only;
    the per-class table, a column per class and split, is in metrics/split_classes.json."""
    import json

    import stages.split as stage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    manifest_for({"a": 20, "b": 20}).to_csv(tmp_path / stage.MANIFEST, index=False)
    monkeypatch.setattr(stage, "stage_params", lambda name: {"split": dict(train=0.5, val=0.25, test=0.25, seed=0)})
    stage.main()
    counts = json.loads((tmp_path / stage.REPORT).read_text())
    assert counts == {"seed": 0, "sizes": {"train": 20, "val": 10, "test": 10}, "unused_images": 0, "duplicate_groups": 0}
    assert json.loads((tmp_path / stage.CLASSES).read_text()) == {
        "per_class": {c: {"train": 10, "val": 5, "test": 5} for c in ("a", "b")}}
