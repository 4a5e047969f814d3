"""`make prune`: the outputs of runs the params no longer produce are removed; current ones stay."""

from __future__ import annotations

from pathlib import Path

from stages.core import layout
from stages.prune import prune, stale_paths

PARAMS = {"models": {"vit": {"family": "vit"}, "resnet50": {"family": "resnet50"}},
          "study": {"seeds": [0, 1], "train_percent": [100]}}


def make_run(root: Path, model: str, percent: int, seed: int) -> list[Path]:
    files = [root / f(model, seed, percent=percent) for f in (
        layout.model_path, layout.predictions_path, layout.train_metrics_path, layout.eval_metrics_path,
        layout.train_cost_path, layout.eval_cost_path)]
    curves = root / layout.curves_dir(model, seed, percent=percent) / "plots/metrics/train/loss.tsv"
    for path in [*files, curves]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return files + [root / layout.curves_dir(model, seed, percent=percent)]


def test_prune_removes_what_no_current_run_or_model_owns_and_keeps_the_rest(tmp_path):
    (tmp_path / "data/models/vit/100pct/.gitignore").parent.mkdir(parents=True)
    (tmp_path / "data/models/vit/100pct/.gitignore").write_text("/s0.keras\n")  # DVC's: kept
    current = [p for m in ("vit", "resnet50") for s in (0, 1) for p in make_run(tmp_path, m, 100, s)]
    old_model = make_run(tmp_path, "mobilenet_v2", 100, 0)          # dropped from models
    old_seed = make_run(tmp_path, "vit", 100, 2)                    # dropped from study.seeds
    old_size = make_run(tmp_path, "vit", 25, 0)                     # dropped from study.train_percent
    for model in ("vit", "mobilenet_v2"):
        (tmp_path / layout.features_dir(model)).mkdir(parents=True)
        (tmp_path / layout.family_path(model)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / layout.family_path(model)).write_text("{}")

    listed = stale_paths(PARAMS, tmp_path)
    assert set(listed) >= {*old_seed, *old_size}
    assert tmp_path / layout.features_dir("mobilenet_v2") in listed
    assert tmp_path / layout.family_path("mobilenet_v2") in listed
    assert all(p.exists() for p in listed)  # listing removes nothing
    assert prune(PARAMS, tmp_path, dry_run=True) == listed and all(p.exists() for p in listed)

    prune(PARAMS, tmp_path)
    assert all(p.exists() for p in current) and (tmp_path / "data/models/vit/100pct/.gitignore").exists()
    assert not [p for p in [*old_model, *old_seed, *old_size] if p.exists()]
    assert (tmp_path / layout.features_dir("vit")).exists() and (tmp_path / layout.family_path("vit")).exists()
    assert not (tmp_path / layout.family_path("mobilenet_v2")).exists()
    assert stale_paths(PARAMS, tmp_path) == []
