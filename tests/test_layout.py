"""stages.core.layout: where every run's files live. The stages, `dvc.yaml`, the report and prune
all spell these paths, so they are pinned here exactly, and checked against dvc.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages.core import layout

REPO = Path(__file__).resolve().parents[1]

# Every per-run file of model "vit", 25 % of the training images, seed 3 (layout's docstring):
# the default root, and the path below it.
RUN_FILES = {
    "model_path": ("data/models", "vit/25pct/s3.keras"),
    "predictions_path": ("data/predictions", "vit/25pct/s3.csv"),
    "train_metrics_path": ("metrics/train", "vit/25pct/s3.json"),
    "eval_metrics_path": ("metrics/eval", "vit/25pct/s3.json"),
    "train_cost_path": ("metrics/cost/train", "vit/25pct/s3.json"),
    "eval_cost_path": ("metrics/cost/eval", "vit/25pct/s3.json"),
    "curves_dir": ("plots/train", "vit/25pct/s3"),
}


@pytest.mark.parametrize("function, root, below", [(f, *paths) for f, paths in sorted(RUN_FILES.items())])
def test_each_run_file_has_its_own_path(function, root, below, tmp_path):
    path = getattr(layout, function)
    assert path("vit", 3, percent=25) == Path(root, below)
    # percent defaults to FULL: a run without --percent trains on every image.
    assert path("vit", 3) == Path(root, below.replace("25pct", "100pct"))
    # A test or a benchmark writes the same tree under its own folder (a str root works too).
    assert path("vit", 3, tmp_path, percent=25) == tmp_path / below
    assert path("vit", 3, str(tmp_path), percent=25) == tmp_path / below


def test_a_new_kind_of_run_file_gets_the_same_scheme():
    """The path functions above are all made by _per_run when the module loads: a new kind of
    per-run file is one more call, with its root and suffix."""
    path = layout._per_run(Path("data/new"), ".npz")
    assert path("vit", 3, percent=25) == Path("data/new/vit/25pct/s3.npz")
    assert path("vit", 3) == Path("data/new/vit/100pct/s3.npz")
    assert path("vit", 3, "elsewhere", percent=25) == Path("elsewhere/vit/25pct/s3.npz")
    with pytest.raises(TypeError):
        path("vit", 3, "elsewhere", 25)  # percent is keyword-only: a 4th positional argument is refused


def test_the_per_model_paths():
    assert layout.family_path("vit") == Path("data/families/vit.json")
    assert layout.features_dir("vit") == Path("data/features/vit")
    assert layout.family_path("vit", "elsewhere") == Path("elsewhere/vit.json")
    assert layout.features_dir("vit", "elsewhere") == Path("elsewhere/vit")
    assert layout.EXPLAIN_COST == Path("metrics/cost/explain.json")


def test_run_names_and_labels():
    """The folder part (prune lists runs by it) and the suffix of the run's DVC stages."""
    assert layout.run_name(3, 25) == "25pct/s3"
    assert layout.run_name(3) == "100pct/s3"
    assert layout.run_label("vit", 3, 25) == "vit-25-3"
    assert layout.run_label("vit", 3) == "vit-100-3"


# dvc.yaml's placeholders for a run: the path functions given them spell dvc.yaml's templates.
ITEM = dict(name="${item.model}", seed="${item.seed}", percent="${item.percent}")


def _dvc_stage(name: str) -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]


def _paths(entries) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for e in entries or []}


@pytest.mark.parametrize("stage", ["train"])
def test_run_label_is_the_name_dvc_gives_the_run_stages(stage):
    """DVC names a matrix stage <stage>@<values joined by '-', in the matrix's order>: messages
    such as `dvc repro train@<run_label>` must name a real stage."""
    matrix = _dvc_stage(stage)["matrix"]
    assert list(matrix) == ["model", "percent", "seed"]
    assert layout.run_label(**ITEM) == "-".join(f"${{item.{key}}}" for key in matrix)


def test_dvc_yaml_spells_the_layout_paths():
    train, evaluate = _dvc_stage("train"), _dvc_stage("evaluate")

    def path(function):
        return getattr(layout, function)(ITEM["name"], ITEM["seed"], percent=ITEM["percent"]).as_posix()

    # Per-run files are plain uncached outs (not `metrics`): out of DVC's default views.
    assert "metrics" not in train and "metrics" not in evaluate
    assert {path("model_path"), f"{path('curves_dir')}/plots/metrics", path("train_metrics_path"),
            path("train_cost_path"), f"{path('curves_dir')}/metrics.json", path("predictions_path"),
            path("eval_cost_path")} == _paths(train["outs"])
    assert {layout.EVAL_METRICS.as_posix()} == _paths(evaluate["outs"])
    assert layout.PREDICTIONS.as_posix() in evaluate["deps"]
    assert _paths(_dvc_stage("family")["outs"]) == {layout.family_path(ITEM["name"]).as_posix()}
    assert _paths(_dvc_stage("features")["outs"]) == {layout.features_dir(ITEM["name"]).as_posix()}
    assert layout.EXPLAIN_COST.as_posix() in _paths(_dvc_stage("explain")["outs"])
