"""What DVC shows by default stays readable: `dvc exp show` and `dvc metrics diff` through DVC itself.

One throw-away git+DVC copy (two small models, two seeds) reproduced once, then two experiments
that vary one learning rate (`dvc exp run -S` twice), shared by the tests of this module.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from conftest import copy_repo, run

pytestmark = [pytest.mark.slow,  # DVC stages in subprocesses
              pytest.mark.xdist_group("dvc_views")]  # one process builds the shared study fixture
MODELS = ("vit", "mobilenet_v2")
HEADLINES = [f"{m}.accuracy.{s}" for m in MODELS for s in ("mean", "ci_low", "ci_high")] + [
    *(f"{m}.fit_time_s" for m in MODELS), "verdict.vit_vs_mobilenet_v2", "best"]
FIXED = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")  # dvc/repo/experiments/show.py
SUMMARY_FILES = {"metrics/summary.json", "metrics/data.json", "metrics/split.json"}


def shrink(repo) -> None:
    """conf/ down to two small models, two seeds, one size; params.yaml regenerated as `make params` does."""
    config_path, models_path = repo / "conf/config.yaml", repo / "conf/models/digits.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["balance"]["images_per_class"] = 20
    config["study"].update(seeds=[0, 1], train_percent=[100])
    config["explain"].update(num_images=2, shap_max_evals=60)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    models = yaml.safe_load(models_path.read_text())
    models = {name: {**models[name], "epochs": 2} for name in MODELS}
    models["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64)
    models_path.write_text(yaml.safe_dump(models, sort_keys=False))
    run(["python", "-m", "stages.preflight", "--write", "--params-only"], repo)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("views") / "repo")
    shrink(repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    for name, rate in (("lr-low", "0.0003"), ("lr-high", "0.003")):
        run(["dvc", "exp", "run", "-n", name, "-S", f"models.vit.learning_rate={rate}"], repo)
    return repo


def exp_show(repo, *flags: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv", *flags], repo).stdout)))


def test_the_summary_is_what_dvc_shows_and_the_rest_is_reachable_by_name(study):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], study).stdout)
    files = {path for rev in shown.values() for path in rev["data"]}
    assert SUMMARY_FILES <= files
    summary = json.loads((study / "metrics/summary.json").read_text())
    assert set(summary) == {*MODELS, "verdict", "best"}
    rows = exp_show(study)  # workspace, the baseline, two experiments
    assert len(rows) == 4 and set(HEADLINES) <= set(rows[0])
    assert {r["Experiment"] for r in rows} >= {"lr-low", "lr-high"}
    rates = {r["Experiment"]: r["models.vit.learning_rate"] for r in rows if r["vit.accuracy.mean"]}
    assert {rates["lr-low"], rates["lr-high"]} == {"0.0003", "0.003"}
    # Plain outputs, read when named: the full comparison, a directory of per-run files, the details.
    for target, key in (("metrics/comparison.json", "pairs.vit_vs_mobilenet_v2.verdict"),
                        ("metrics/eval", "accuracy"), ("metrics/data_files.json", "classes.digit_0.label"),
                        ("metrics/split_classes.json", "per_class.digit_0.test")):
        out = run(["dvc", "metrics", "show", target], study).stdout
        assert key in out, (target, out)
    assert "metrics/comparison.json" not in files and "metrics/data_files.json" not in files
    # The review still lists the per-run changes: the experiment retrained vit.
    review = run(["python", "-m", "stages.review", "HEAD"], study).stdout
    assert "metrics/eval/vit/100pct/s0.json" in review and "metrics/eval/mobilenet_v2" not in review


def test_exp_show_and_metrics_diff_fit_a_screen_after_one_param_change(study):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], study).stdout)
    assert {path for rev in shown.values() for path in rev["data"]} == SUMMARY_FILES
    # Two experiments side by side: what changed, each model's main metric kept.
    changed = exp_show(study, "--only-changed", "--keep", r"^\w+\.accuracy\.mean$")
    columns = list(changed[0])
    assert len(columns) <= 40, columns
    assert {"models.vit.learning_rate", *(f"{m}.accuracy.mean" for m in MODELS)} <= set(columns)
    # Metric columns by default: the summary only; every model's main metric named.
    names = list(exp_show(study)[0])  # fixed columns, metrics, params (params.yaml in order), deps
    first_param = next(iter(yaml.safe_load((study / "params.yaml").read_text())))
    metric_columns = [n for n in names[:names.index(first_param)] if n not in FIXED]
    assert len(metric_columns) <= 40 and set(HEADLINES) <= set(metric_columns), metric_columns
    diff = run(["dvc", "metrics", "diff"], study).stdout.strip().splitlines()
    assert 2 < len(diff) <= 60, diff
    assert any(line.startswith("metrics/summary.json") and "vit.accuracy.mean" in line for line in diff), diff
