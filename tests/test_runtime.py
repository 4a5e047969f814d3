"""Projected run times: arithmetic over measured rates, and the committed benchmarks cover every experiment.

stages/planning/runtime.py projects each stage from benchmarks/study_runtime.csv (model rates),
benchmarks/pipeline.csv (stage fixed costs) and benchmarks/memory.csv (data stages); preflight
prints it. These tests pin the arithmetic on made-up figures and check that the committed
benchmarks hold a rate for every model of the default experiment and of every preset, so a
changed architecture fails here until the benchmark is run again.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pytest
import yaml

from stages import preflight, split
from stages.planning import runtime
from stages.training.fit import parse_model_params, parse_run_params

REPO = Path(__file__).resolve().parents[1]
# The default and every preset Hydra can compose (`+experiment=<name>`: conf/experiment/<name>.yaml),
# read from the folder so that a new preset is checked without editing this list.
EXPERIMENTS = ("default", *sorted(p.stem for p in (REPO / "conf/experiment").glob("*.yaml")))


def composed(experiment: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        preflight.compose([] if experiment == "default" else [f"+experiment={experiment}"], Path(tmp) / "p.yaml")
        return yaml.safe_load((Path(tmp) / "p.yaml").read_text())


def models_of(params: dict) -> dict:
    sizes = params["prepare"]["image_sizes"]
    return {n: parse_model_params(n, v, sizes) for n, v in params["models"].items()}


def figures_for(params: dict, rates: dict) -> runtime.Figures:
    run = parse_run_params(params["train"])
    keyed = {runtime.model_key(cfg, run): rates[name] for name, cfg in models_of(params).items() if name in rates}
    return runtime.Figures(rates=keyed, plain_stage_s=2.0, tf_stage_s=10.0, stage_s={"report": 20.0},
                           data={"balance": (3.0, 0.01), "prepare": (4.0, 0.02)},
                           sources={"rates": "made up"})


def by_stage(rows: list[runtime.StageTime]) -> dict[str, runtime.StageTime]:
    return {r.stage: r for r in rows}


def test_projection_is_the_rates_times_the_experiments_counts(monkeypatch):
    monkeypatch.chdir(REPO)
    params = composed("products7")  # two frozen pretrained bases: features once, then heads
    params["study"].update(seeds=[0, 1], train_percent=[50, 100])
    params["models"]["resnet50"]["trainable"] = "full"  # one base that trains: the full model every epoch
    rates = {"mobilevitv2": {"train": 20.0, "infer": 40.0, "head": 4000.0, "train_first": 7.0, "infer_first": 3.0,
                             "latency": 0.05},
             "resnet50": {"train": 10.0, "infer": 25.0, "head": None, "train_first": 9.0, "infer_first": 4.0,
                          "latency": 0.1}}
    counts = {"classes": 7, "candidates": 1050, "train": 700, "val": 175, "test": 175}
    rows = by_stage(runtime.project(params, models_of(params), parse_run_params(params["train"]), counts,
                                    figures_for(params, rates)))

    assert rows["balance"].total == pytest.approx(3.0 + 0.01 * 1050)
    assert rows["prepare"].total == pytest.approx(4.0 + 0.02 * 1050)
    epochs = params["models"]["mobilevitv2"]["epochs"]
    assert rows["features@mobilevitv2"].total == pytest.approx(10.0 + 3.0 + 875 / 40.0)  # start, trace, images
    latency_mv = (params["predict"]["latency_warmup"] + params["predict"]["latency_runs"]) * 0.05
    head_fits = [10.0 + epochs * (round(700 * p / 100) + 175) / 4000.0 + 3.0 + 175 / 40.0 + latency_mv
                 for p in (50, 100) for _ in (0, 1)]
    assert rows["train@mobilevitv2-*"].runs == 4 and rows["train@mobilevitv2-*"].total == pytest.approx(sum(head_fits))
    assert rows["train@mobilevitv2-*"].note == f"at most {epochs} epochs"  # early stopping: the maximum
    assert rows["features@resnet50"].total == 10.0  # nothing to cache
    # train then predicts the test split (trace, images) and times batch-1 latency, in the same process.
    pr = params["predict"]
    latency = (pr["latency_warmup"] + pr["latency_runs"]) * 0.1
    full = 10.0 + 4.0 + 9.0 + params["models"]["resnet50"]["epochs"] * (700 / 10.0 + 175 / 25.0) \
        + 4.0 + 175 / 25.0 + latency
    assert rows["train@resnet50-*"].seconds == pytest.approx(full)
    assert rows["evaluate"].total == 2.0 and rows["evaluate"].runs == 1  # no TensorFlow: a plain stage
    assert not [r for r in rows if r.startswith("evaluate@")]
    ex = params["explain"]
    shap = ex["num_images"] * ex["shap_max_evals"] * (1 / 40 + 1 / 25)  # shap_max_evals per image, per model
    assert rows["explain"].total == pytest.approx(10.0 + 3.0 + 4.0 + shap)
    assert not [r for r in rows if r.startswith("embedded@")]  # the preset writes no digits


def test_a_model_without_a_measured_rate_is_named_not_guessed(monkeypatch):
    monkeypatch.chdir(REPO)
    params = composed("default")
    rates = {"vit": {"train": 100.0, "infer": 300.0, "head": None, "train_first": 5.0, "infer_first": 2.0,
                     "latency": 0.01}}
    counts = {"classes": 10, "candidates": 1797, "train": 840, "val": 180, "test": 180}
    figures = figures_for(params, rates)
    rows = runtime.project(params, models_of(params), parse_run_params(params["train"]), counts, figures)
    params["models"]["resnet50"] = {**params["models"]["vit"], "family": "resnet50"}  # no rate measured for it
    rows = runtime.project(params, models_of(params), parse_run_params(params["train"]), counts, figures)
    missing = by_stage(rows)["train@resnet50-*"]
    assert math.isnan(missing.total) and "not benchmarked" in missing.note
    text = runtime.format_projection(rows, figures)
    assert "+ the stages not benchmarked" in text and "measured by: made up" in text


def test_the_stage_overhead_is_the_median_gap_between_measured_and_projected():
    """calibrate(): per stage kind, the median over models of (measured - projected); train on
    the full-size runs only (the projection's per-run figure is the largest size's)."""
    projected = [runtime.StageTime("train@a-*", 4, 50.0, 160.0), runtime.StageTime("train@b-*", 4, 80.0, 260.0),
                 runtime.StageTime("evaluate@a-*", 4, 10.0, 40.0), runtime.StageTime("evaluate@b-*", 4, 12.0, 48.0),
                 runtime.StageTime("explain", 1, 30.0, 30.0), runtime.StageTime("balance", 1, 4.0, 4.0)]
    measured = {"train@a-100-0": 70.0, "train@a-100-1": 74.0, "train@a-25-0": 20.0, "train@b-100-0": 95.0,
                "evaluate@a-100-0": 18.0, "evaluate@a-25-0": 20.0, "evaluate@b-100-0": 11.0, "explain": 75.0,
                "balance": 9.0}
    # train: a 72 - 50 = 22, b 95 - 80 = 15; evaluate: a 19 - 10 = 9, b 11 - 12 = -1; explain 75 - 30
    assert runtime.calibrate(projected, measured) == {"train": 18.5, "evaluate": 4.0, "explain": 45.0}
    assert runtime.calibrate(projected[:1], {"train@a-100-0": 40.0}) == {"train": 0.0}  # never below zero


def test_counts_come_from_the_params_or_from_the_scanned_folder():
    sizes = split.parse_params({"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0})["sizes"]
    fewest = {"select": "fewest", "num_classes": 10, "images_per_class": 120, "class_names": []}
    assert runtime.counts_from_params(fewest, sizes) == {"classes": 10, "candidates": 1200, "candidates_known": False,
                                                         "train": 840, "val": 180, "test": 180}
    every = {"select": "all", "num_classes": None, "images_per_class": "min", "class_names": []}
    assert runtime.counts_from_params(every, sizes) is None  # left to the data: no guess
    found = {"a": 30, "b": 20, "c": 50}
    counts = runtime.counts_from_params(every, sizes, found)
    assert counts["classes"] == 3 and counts["candidates"] == 100 and sum(counts[s] for s in sizes) == 60


def test_the_architecture_key_ignores_the_weights_and_sees_the_compute(monkeypatch):
    monkeypatch.chdir(REPO)
    params = composed("products7")
    run = parse_run_params(params["train"])
    cfg = models_of(params)["resnet50"]
    assert runtime.model_key(cfg, run) == runtime.model_key({**cfg, "options": {**cfg["options"], "weights": None}}, run)
    assert runtime.model_key(cfg, run) != runtime.model_key({**cfg, "batch_size": 64}, run)
    assert runtime.model_key(cfg, run) != runtime.model_key(cfg, {**run, "mixed_precision": True})
    assert runtime.caches_features(cfg, run) and not runtime.caches_features(cfg, {**run, "cache_frozen_features": False})


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_committed_benchmarks_rate_every_model_of_every_experiment(experiment, monkeypatch):
    monkeypatch.chdir(REPO)
    params = composed(experiment)
    run = parse_run_params(params["train"])
    figures = runtime.load_figures()
    missing = [n for n, cfg in models_of(params).items() if runtime.model_key(cfg, run) not in figures.rates]
    assert not missing, f"{experiment}: no rate for {missing}: run python benchmarks/study_runtime.py"


def test_the_presets_are_read_from_the_preset_folder():
    assert len(EXPERIMENTS) > 1 and {"dogs13", "products7"} <= set(EXPERIMENTS)  # the folder was found


def test_the_committed_benchmarks_name_their_machine_and_date():
    figures = runtime.load_figures()
    assert set(figures.sources) == {"rates", "stages", "data", "overhead"}
    for what, source in figures.sources.items():
        # "<file>: <machine>, <YYYY-MM-DD>", the machine a real name: a file without one falls back to "?".
        named = re.fullmatch(r"(?P<file>[\w.]+\.csv): (?P<machine>.+), (?P<date>\d{4}-\d{2}-\d{2})", source)
        assert named, f"{what}: {source!r} does not name a machine and a date"
        assert named["machine"].strip() not in ("", "?"), f"{what}: {source!r} names no machine"


def test_preflight_prints_every_stages_projected_time(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert preflight.main(["+experiment=dogs13", "--params-only"]) == 0
    out = capsys.readouterr().out
    assert "projected time of each stage (13 classes, 1364/293/293 train/val/test images)" in out
    for stage in ("balance", "prepare", "features@mobilenet_v2", "train@vit-*", "evaluate", "explain", "total"):
        assert any(line.startswith(stage + " ") for line in out.splitlines()), stage
    assert "measured by: study_runtime.csv:" in out
    assert preflight.main(["+experiment=products7", "--params-only"]) == 0  # `select: all`: counts need the data
    assert "the image counts depend on the dataset" in capsys.readouterr().out


def test_preflight_on_a_folder_counts_its_images_for_the_projection(tmp_path, monkeypatch, capsys):
    """Not --params-only: every check runs (the folder form has no labels CSV to look into) and
    the projection counts what balance will verify: every file of the folder."""
    from PIL import Image

    for c in range(3):
        (tmp_path / f"class_{c}").mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8), (40 * c, 10 * i, 0)).save(tmp_path / f"class_{c}" / f"{i}.png")
    monkeypatch.chdir(REPO)
    code = preflight.main(["embedded=[]", f"balance.source={tmp_path}", "balance.num_classes=3",
                           "balance.images_per_class=4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "projected time of each stage (3 classes, 8/2/2 train/val/test images)" in out
    assert any(line.startswith("balance ") and "15 images verified" in line for line in out.splitlines())
