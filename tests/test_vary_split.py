"""``study.vary_split``: each run's seed re-draws train/val/test, and the verdicts use Nadeau-Bengio.

The re-drawn split (stages/core/prepared.py ``open_splits``) keeps each class's counts, never puts
one image (or two identical ones) in two splits, is the same for every model at a seed, and
differs between seeds; train records it, the report detects it and switches the verdicts'
variance to the corrected resampled t-test (stages/analysis/verdicts.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import make_prepared_store, run
from stages.analysis import verdicts
from stages.analysis.report_runs import varied_split
from stages.analysis.report_stats import pair_statistics
from stages.core.errors import DataError
from stages.core.prepared import SPLITS, images_by_path, open_splits


@pytest.fixture
def prepared(tmp_path):
    """3 classes x 12 images (8 train, 2 val, 2 test each), at 16 and 24 px."""
    root = make_prepared_store(tmp_path, size=16)
    other = make_prepared_store(tmp_path / "other", size=24)
    (root / "24px").mkdir()
    for s in SPLITS:
        (other / "24px" / f"{s}.npy").rename(root / "24px" / f"{s}.npy")
    meta = json.loads((root / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps({**meta, "image_sizes": [16, 24]}))
    return root


def _per_class(split) -> list[int]:
    return np.bincount(split.labels, minlength=3).tolist()


def test_a_redrawn_split_keeps_every_class_count_and_partitions_the_same_images(prepared):
    fixed = open_splits(16, prepared)
    drawn = open_splits(16, prepared, resample_seed=5)
    assert {s: _per_class(drawn[s]) for s in SPLITS} == {s: _per_class(fixed[s]) for s in SPLITS}
    every = [p for s in SPLITS for p in drawn[s].paths]
    assert len(every) == len(set(every)) == 36  # disjoint, none lost
    assert set(every) == {p for s in SPLITS for p in fixed[s].paths}
    assert drawn["test"].paths != fixed["test"].paths  # it is a new draw
    # Each image keeps its label and its pixels.
    by_path = {p: (int(lab), img.tobytes()) for s in SPLITS
               for p, lab, img in zip(fixed[s].paths, fixed[s].labels, np.asarray(fixed[s].images))}
    for s in SPLITS:
        for p, lab, img in zip(drawn[s].paths, drawn[s].labels, drawn[s].images):
            assert by_path[p] == (int(lab), img.tobytes())


def test_a_seed_gives_one_split_for_every_image_size_and_seeds_differ(prepared):
    a16, a24 = open_splits(16, prepared, resample_seed=1), open_splits(24, prepared, resample_seed=1)
    again = open_splits(16, prepared, resample_seed=1)
    other = open_splits(16, prepared, resample_seed=2)
    assert all(a16[s].paths == a24[s].paths == again[s].paths for s in SPLITS)  # models of any size pair up
    assert other["test"].paths != a16["test"].paths


def test_identical_images_stay_in_one_split(tmp_path):
    root = make_prepared_store(tmp_path)
    # Make two train images of class a copies of a test image (duplicate files).
    train, test = (np.load(root / "16px" / f"{s}.npy") for s in ("train", "test"))
    train[0] = train[1] = test[0]
    np.save(root / "16px" / "train.npy", train)
    fixed = open_splits(16, root)
    copies = {fixed["train"].paths[0], fixed["train"].paths[1], fixed["test"].paths[0]}
    for seed in range(20):
        drawn = open_splits(16, root, resample_seed=seed)
        homes = {s for s in SPLITS for p in drawn[s].paths if p in copies}
        assert len(homes) == 1, (seed, homes)


def test_images_by_path_finds_a_run_s_test_images_in_any_split(prepared):
    drawn = open_splits(16, prepared, resample_seed=3)
    got = images_by_path(drawn["test"].paths, 16, prepared)
    np.testing.assert_array_equal(got, drawn["test"].images)
    with pytest.raises(DataError, match="nope.png"):
        images_by_path(["nope.png"], 16, prepared)


# --- the report: detection and the corrected variance ------------------------------------------

def test_the_report_refuses_fixed_and_redrawn_runs_mixed():
    sized = {("a", 0, 100): {"train": {"split_seed": 0}}, ("a", 1, 100): {"train": {"split_seed": None}}}
    with pytest.raises(DataError, match=r"a-100-0 re-drew .* a-100-1 used the split stage's"):
        varied_split(sized)
    assert varied_split({("a", 0, 100): {"train": {"split_seed": 0}}})
    assert not varied_split({("a", 0, 100): {"train": {}}})  # runs from before the key: fixed


def test_redrawn_runs_get_nadeau_bengio_s_corrected_interval():
    a, b = [0.81, 0.78, 0.84, 0.80], [0.75, 0.77, 0.74, 0.78]
    runs = pd.DataFrame([{"model": m, "seed": s, "accuracy": v, "train_images": 840}
                         for m, vals in (("vit", a), ("cnn", b)) for s, v in enumerate(vals)])
    mcn = {"vit_vs_cnn": {"b": [0] * 4, "c": [0] * 4, "p": [1.0] * 4, "p_holm": [1.0] * 4}}
    cfg = {"primary_metric": "accuracy", "alpha": 0.05, "margin": 0.02, "looks": 1}
    y_true = np.zeros(180, int)
    pair = pair_statistics(["vit", "cnn"], runs, [0, 1, 2, 3], mcn, cfg, {}, y_true, 2, varied=True)["vit_vs_cnn"]
    d = np.subtract(a, b)
    se = np.sqrt(np.var(d, ddof=1) * (1 / 4 + 180 / 840))  # Nadeau & Bengio 2003, eq. for the corrected t
    half = stats.t.ppf(0.975, 3) * se
    assert pair["overlap"] == pytest.approx(180 / 840) and pair["df"] == pytest.approx(3)
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert pair["p_diff"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 3))
    # The uncorrected t-test over the same runs is narrower: the correction is what varies.
    assert se > np.std(d, ddof=1) / 2


def test_overlap_needs_no_image_variance_and_its_floor_is_explained():
    with pytest.raises(ValueError, match="image_var must be 0"):
        verdicts.paired_difference([0.8, 0.7], [0.7, 0.7], margin=0.02, image_var=1e-4, overlap=0.2)
    # +0.03, sd 0.03 over splits: with one fixed split about ten runs would decide it; with re-drawn
    # splits at n_test/n_train = 0.5, the overlap's floor (SE >= 0.021) keeps it undecided at any count.
    point = verdicts.paired_difference([0.83, 0.80, 0.86], [0.80, 0.80, 0.80], margin=0.02, overlap=0.5)
    pair = verdicts.decide([{"a": "x", "b": "y", "n_images": 100, **point}], alpha=0.05)[0]
    assert pair["verdict"] == "undecided" and pair["runs_needed"] is None
    assert "re-drawn splits share most of their images" in verdicts.runs_advice(pair)
    assert verdicts.runs_needed(point["diff_mean"], point["seed_sd"], 0.0, None, 0.02, 0.05, 4) is not None


# --- through the real stages -------------------------------------------------------------------

@pytest.mark.slow  # 4 runs of a 1-layer ViT, the report and the explanations through `dvc repro` (~2 min)
def test_vary_split_through_the_pipeline(repo_copy):
    path = repo_copy / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["balance"]["images_per_class"] = 40
    params["study"].update(seeds=[0, 1], train_percent=[100], vary_split=True)
    vit = dict(params["models"]["vit"], epochs=2, num_layers=1, hidden_dim=32, mlp_dim=64)
    params["models"] = {"twin_a": vit, "twin_b": dict(vit, seed_offset=1000)}
    params["explain"].update(num_images=2, shap_max_evals=40)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo_copy)

    preds = {(m, s): pd.read_csv(repo_copy / f"data/predictions/{m}/100pct/s{s}.csv")
             for m in ("twin_a", "twin_b") for s in (0, 1)}
    for s in (0, 1):
        assert preds[("twin_a", s)]["path"].tolist() == preds[("twin_b", s)]["path"].tolist()  # paired
        record = json.loads((repo_copy / f"metrics/train/twin_a/100pct/s{s}.json").read_text())
        assert record["split_seed"] == s
    assert set(preds[("twin_a", 0)]["path"]) != set(preds[("twin_a", 1)]["path"])  # the split varied
    assert len(preds[("twin_a", 0)]) == len(preds[("twin_a", 1)]) == 60  # 15 % of 400, both draws
    fixed_test = set(pd.read_csv(repo_copy / "data/prepared/test.csv")["path"])
    assert set(preds[("twin_a", 0)]["path"]) != fixed_test
    summary = json.loads((repo_copy / "metrics/comparison.json").read_text())
    assert summary["split"] == "re-drawn per seed"
    pair = summary["pairs"]["twin_a_vs_twin_b"]
    assert pair["overlap"] == pytest.approx(60 / 280, rel=1e-5) and pair["image_se"] == 0 and pair["df"] == pytest.approx(1)
    assert pair["verdict"] != "better", pair["sentence"]
    assert "re-drawn" in (repo_copy / "plots/report.md").read_text()
    assert json.loads((repo_copy / "metrics/explain.json").read_text())
    note = json.loads((repo_copy / "data/features/twin_a/meta.json").read_text())
    assert not note["reusable"]
