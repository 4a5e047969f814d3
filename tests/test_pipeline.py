"""End to end: `dvc repro` of the data stages in a throw-away git+DVC copy of the repository."""

from __future__ import annotations

import json
import os
import re

import yaml

from conftest import make_odd_tree, run
from stages.core.prepared import open_split


def set_params(repo, section: str, **values):
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def lock_outs(repo) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: [o["md5"] for o in st.get("outs", [])] for name, st in lock["stages"].items()}


def test_default_pipeline_runs_is_clean_and_reproducible(repo_copy):
    run(["dvc", "repro", "prepare"], repo_copy)
    report = json.loads((repo_copy / "metrics/data.json").read_text())
    assert report["num_classes"] == 10 and report["num_images"] == 1200
    assert json.loads((repo_copy / "metrics/split.json").read_text())["sizes"] == {"train": 840, "val": 180, "test": 180}
    train = open_split("train", 32, repo_copy / "data/prepared")
    assert train.images.shape == (840, 32, 32, 3) and train.class_names[0] == "digit_0"
    assert 0 < train.images.mean() < 255  # real digits, not blank tensors

    assert "up to date" in run(["dvc", "status", "--with-deps", "prepare"], repo_copy).stdout
    dot = run(["dvc", "dag", "--dot"], repo_copy).stdout
    edges = set(re.findall(r'"?([\w@.-]+)"?\s*->\s*"?([\w@.-]+)"?', dot))
    assert {("embedded@digits", "balance"), ("balance", "split"), ("split", "prepare")} <= edges, dot

    # Same seed, same bytes: a forced re-run reproduces every output hash.
    before = lock_outs(repo_copy)
    run(["dvc", "repro", "-f", "prepare"], repo_copy)
    assert lock_outs(repo_copy) == before

    # Another seed selects other images.
    set_params(repo_copy, "balance", seed=1)
    run(["dvc", "repro", "prepare"], repo_copy)
    assert lock_outs(repo_copy)["balance"] != before["balance"]


def test_user_folder_with_awkward_files(repo_copy, tmp_path):
    source = tmp_path / "user images"
    expected = make_odd_tree(source)
    set_params(repo_copy, "balance", source=str(source), select="all", images_per_class=4)
    set_params(repo_copy, "split", train=6, val=3, test=3)
    run(["dvc", "repro", "embedded@digits", "prepare"], repo_copy)
    report = json.loads((repo_copy / "metrics/data.json").read_text())
    files = json.loads((repo_copy / "metrics/data_files.json").read_text())
    assert {f["path"] for f in files["undecodable_files"]} == expected["undecodable"]
    assert report["num_classes"] == 3 and report["num_images"] == 12
    assert open_split("test", 32, repo_copy / "data/prepared").images.shape == (3, 32, 32, 3)
    assert "up to date" in run(["dvc", "status", "--with-deps", "prepare"], repo_copy).stdout


def test_bad_params_fail_with_the_key_and_write_nothing(repo_copy):
    set_params(repo_copy, "balance", images_per_class=5000)
    proc = run(["dvc", "repro", "balance"], repo_copy, check=False)
    assert proc.returncode != 0
    assert "balance.images_per_class" in proc.stderr + proc.stdout
    assert not (repo_copy / "data/manifest.csv").exists()
    assert not (repo_copy / "metrics/data.json").exists()

    proc = run(["python", "-m", "stages.balance"], repo_copy, check=False)
    assert proc.returncode == 2
    *_, error, took = proc.stderr.strip().splitlines()
    assert error.startswith("error: params.yaml: balance.images_per_class: 5000") and "failed after" in took


def stale_stages(repo) -> set[str]:
    """Stages `dvc repro` would run: those `dvc status` reports changed (new stages included)."""
    return set(json.loads(run(["dvc", "status", "--json"], repo).stdout))


def _pretrained_mobilenet_v2(tmp_path) -> str:
    """A local MobileNetV2 base weights file (alpha 0.35, 32 px): a stand-in for ImageNet weights offline."""
    import keras

    keras.utils.set_random_seed(7)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    base.save_weights(tmp_path / "mobilenet_v2.weights.h5")
    return str(tmp_path / "mobilenet_v2.weights.h5")


def test_whole_pipeline_runs_for_every_family_and_plots_render(repo_copy, tmp_path):
    """`dvc repro` of the whole default DAG (features, train, evaluate, report, explain) for 2 seeds, shrunk to
    1 epoch on 20 images per class; adding a seed or a training-set size re-runs only the new runs; dvc push /
    pull brings back the exact artifacts."""
    set_params(repo_copy, "balance", images_per_class=20)
    set_params(repo_copy, "study", seeds=[0, 1], train_percent=[100])
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    for model in params["models"].values():
        model["epochs"] = 1
    # Tracing the training step dominates these runs: a 1-layer ViT; ResNet50 and MobileViTv2 with frozen
    # random bases (features cached within each run); MobileNetV2 frozen on a "pretrained" weights file, so
    # the features stage computes its features once for every run.
    params["models"]["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64)
    # The default compares two families; the other two join as a user adds a model: one entry each.
    common = {k: params["models"]["mobilenet_v2"][k] for k in ("image_size", "epochs", "batch_size", "optimizer",
                                                               "learning_rate", "early_stopping")}
    params["models"]["resnet50"] = {"family": "resnet50", **common, "weights": None}
    params["models"]["mobilevitv2"] = {"family": "mobilevitv2", **common, "weights": None, "width": 0.5}
    for name in ("resnet50", "mobilevitv2", "mobilenet_v2"):
        params["models"][name]["trainable"] = "frozen"
    params["models"]["mobilenet_v2"]["weights"] = _pretrained_mobilenet_v2(tmp_path)
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo_copy)

    families = set(params["models"])
    assert families == {"vit", "mobilenet_v2", "resnet50", "mobilevitv2"}
    source = {"vit": None, "resnet50": "this run", "mobilevitv2": "this run", "mobilenet_v2": "features stage"}
    for name in families:
        for seed in (0, 1):
            metrics = json.loads((repo_copy / f"metrics/train/{name}/100pct/s{seed}.json").read_text())
            assert metrics["epochs_run"] == 1 and metrics["params_trainable"] > 0 and metrics["seed"] == seed
            assert metrics["cached_features"] is (name != "vit") and metrics["features_source"] == source[name]
            assert metrics["train_images"] == 140 and metrics["val_images"] == 30
            assert (repo_copy / f"data/models/{name}/100pct/s{seed}.keras").stat().st_size > 10_000
        meta = json.loads((repo_copy / f"data/features/{name}/meta.json").read_text())
        assert meta["reusable"] is (name == "mobilenet_v2"), meta
    assert "up to date" in run(["dvc", "status"], repo_copy).stdout
    assert json.loads(run(["dvc", "metrics", "show", "--json"], repo_copy).stdout)  # parses, lists metrics
    # Every stage wrote only its declared outputs: each file under data/, metrics/, plots/ is one.
    lock = yaml.safe_load((repo_copy / "dvc.lock").read_text())
    declared = [o["path"] for st in lock["stages"].values() for o in st.get("outs", [])]
    written = [p.relative_to(repo_copy).as_posix() for top in ("data", "metrics", "plots")
               for p in (repo_copy / top).rglob("*") if p.is_file() and p.name != ".gitignore"]
    undeclared = [f for f in written if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in declared)]
    assert written and not undeclared, undeclared

    html_dir = tmp_path / "plots_html"
    run(["dvc", "plots", "show", "-o", str(html_dir)], repo_copy)
    html = (html_dir / "index.html").read_text()
    # dvc.yaml's top-level plots: every model in each (tests/test_plots_offline.py renders them).
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo_copy).stdout)["data"]
    for plot in ("loss", "accuracy", "top3_accuracy", "macro_f1", "confusion", "runs"):
        assert f'<div id = "{plot}">' in html
        assert {p["model"] for p in shown[plot][0]["content"]["data"]["values"]} == families, plot
    # The per-run dvclive curves are outputs, not page plots (24 runs x 8 curves drowned the review),
    # and still render when named.
    assert "plots/train/" not in html
    curve = "plots/train/vit/100pct/s0/plots/metrics/eval/loss.tsv"
    assert json.loads(run(["dvc", "plots", "show", "--json", curve], repo_copy).stdout)["data"][curve]
    for name in families:
        for figure in ("confusion", "mean_probability", "worst_classes", "reliability"):
            assert f"plots_report_{figure}_{name}.png" in html
    for figure in ("study_curves", "learning_curves", "cost_frontier", "runs", "data_size"):
        assert f"plots_report_{figure}.png" in html
    report = (repo_copy / "plots/report.md").read_text()
    assert all(f"| {name} |" in report for name in families)
    assert "2 runs per model" in report and "no significant difference" not in report
    assert report.split("\n## ")[1].startswith("Summary\n\nOn these images (")  # the summary opens it
    for name in families:
        assert f"plots_explain_{name}.png" in html
    assert json.loads((repo_copy / "metrics/cost/explain.json").read_text())["seconds"] > 0
    cost = json.loads((repo_copy / "metrics/cost/comparison.json").read_text())
    assert all(cost["models"][m]["fit_time_s"]["n"] == 2 for m in families)
    comparison = json.loads((repo_copy / "metrics/comparison.json").read_text())
    assert "fit_time_s" not in json.dumps(comparison) and "eval_time_s" not in json.dumps(comparison)
    assert comparison["seeds"] == [0, 1] and set(comparison["models"]) == families
    assert all(comparison["models"][m]["accuracy"]["n"] == 2 for m in families)
    assert len(comparison["pairs"]) == 6
    assert all(len(p["mcnemar"]["p_holm"]) == 2 and p["verdict"] for p in comparison["pairs"].values())

    assert comparison["data_size"]["percents"] == [100] and "One training-set size only" in \
        comparison["data_size"]["statement"]

    # Adding a seed or a size: only the new runs and the stages that read every run are stale
    # (not the data stages, not the features, not the existing runs).
    set_params(repo_copy, "study", seeds=[0, 1, 2])
    new_runs = {f"train@{name}-100-2" for name in families}
    assert stale_stages(repo_copy) == new_runs | {"evaluate", "report", "explain"}, stale_stages(repo_copy)
    set_params(repo_copy, "study", seeds=[0, 1], train_percent=[50, 100])
    new_runs = {f"train@{name}-50-{seed}" for name in families for seed in (0, 1)}
    assert stale_stages(repo_copy) == new_runs | {"evaluate", "report", "explain"}, stale_stages(repo_copy)
    set_params(repo_copy, "study", seeds=[0, 1], train_percent=[100])
    assert stale_stages(repo_copy) == set()

    # Exact artifacts for a reviewer: push to a remote, clone, pull; then nothing re-runs.
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "storage", str(remote)], repo_copy)
    run(["dvc", "push"], repo_copy)
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "results"], repo_copy)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    for name in families:
        assert (clone / f"data/models/{name}/100pct/s1.keras").read_bytes() == \
            (repo_copy / f"data/models/{name}/100pct/s1.keras").read_bytes()
        assert (clone / f"data/predictions/{name}/100pct/s1.csv").read_text() == \
            (repo_copy / f"data/predictions/{name}/100pct/s1.csv").read_text()
    assert "up to date" in run(["dvc", "status"], clone).stdout
    lock = (clone / "dvc.lock").read_text()
    assert stale_stages(clone) == set()
    repro = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in repro and (clone / "dvc.lock").read_text() == lock


def test_large_outputs_are_linked_from_the_cache_not_copied(repo_copy):
    """.dvc/config: cache.type hardlink,copy -- the prepared tensors (2.5 GB for the dogs runs) are
    not stored twice: the workspace files are the cache's (with reflink first, DVC copied them)."""
    import hashlib

    run(["dvc", "repro", "prepare"], repo_copy)
    arrays = sorted((repo_copy / "data/prepared").rglob("*.npy"))
    assert arrays
    for array in arrays:
        digest = hashlib.md5(array.read_bytes()).hexdigest()
        cached = repo_copy / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
        assert cached.is_file() and os.path.samefile(array, cached), array
