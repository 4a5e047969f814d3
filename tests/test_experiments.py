"""The review workflow end to end, in a throw-away git+DVC copy of the repository:
`dvc exp run -S` -> `dvc exp show` -> `dvc metrics diff` -> `dvc plots diff`."""

from __future__ import annotations

import json

import yaml

from conftest import run


def shrink(repo) -> None:
    """Edit conf/ (params.yaml is composed from it) down to one small ViT, then regenerate
    params.yaml as `make params` does."""
    config_path, models_path = repo / "conf/config.yaml", repo / "conf/models/digits.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["balance"]["images_per_class"] = 20
    config["study"].update(seeds=[0], train_percent=[100])
    config["explain"].update(num_images=2, shap_max_evals=60)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    vit = yaml.safe_load(models_path.read_text())["vit"]
    vit.update(epochs=2, num_layers=1, hidden_dim=32, mlp_dim=64)
    models_path.write_text(yaml.safe_dump({"vit": vit}, sort_keys=False))
    run(["python", "-m", "stages.preflight", "--write", "--params-only"], repo)


def experiments(repo) -> dict[str, dict]:
    """`dvc exp show --json` as {experiment name: its data (params, metrics)}."""
    found = {}
    for row in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout):
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def test_exp_run_set_param_then_show_and_diff_metrics_and_plots(repo_copy, tmp_path):
    shrink(repo_copy)
    run(["dvc", "repro"], repo_copy)
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "baseline"], repo_copy)
    baseline = json.loads((repo_copy / "metrics/eval/vit/100pct/s0.json").read_text())

    run(["dvc", "exp", "run", "-n", "lr-high", "-S", "models.vit.learning_rate=0.01"], repo_copy)

    exp = experiments(repo_copy)["lr-high"]
    assert exp["params"]["params.yaml"]["data"]["models"]["vit"]["learning_rate"] == 0.01
    # Per-run files are out of the default views (tests/test_dvc_views.py); DVC reads them by name.
    assert "metrics/eval/vit/100pct/s0.json" not in exp["metrics"] and "metrics/summary.json" in exp["metrics"]
    exp_eval = json.loads((repo_copy / "metrics/eval/vit/100pct/s0.json").read_text())
    assert exp_eval["log_loss"] != baseline["log_loss"]

    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/eval"], repo_copy).stdout)
    eval_diff = diff["metrics/eval/vit/100pct/s0.json"]
    assert eval_diff["log_loss"]["old"] == baseline["log_loss"]
    assert eval_diff["log_loss"]["new"] == exp_eval["log_loss"] and eval_diff["log_loss"]["diff"] != 0
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo_copy).stdout)
    lr = params_diff["params.yaml"]["models.vit.learning_rate"]
    assert (lr["old"], lr["new"]) == (0.001, 0.01)

    # The training curves of both revisions, side by side, as a reviewer sees them.
    # dvc.yaml's top-level plots (curves, confusion matrices) carry both revisions' data.
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD"], repo_copy).stdout)["data"]
    for plot in ("loss", "confusion", "runs"):
        values = plots[plot][0]["content"]["data"]["values"]
        assert {p["rev"] for p in values} == {"HEAD", "workspace"}, plot
    val_loss = {p["rev"]: p["loss"] for p in plots["loss"][0]["content"]["data"]["values"]
                if (p["model"], p["split"]) == ("vit", "val")}
    assert val_loss["HEAD"] != val_loss["workspace"]  # the experiment's learning rate shows in the curve
    html = tmp_path / "plots_diff"
    run(["dvc", "plots", "diff", "HEAD", "-o", str(html)], repo_copy)
    assert '<div id = "confusion">' in (html / "index.html").read_text()
