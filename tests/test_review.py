"""`make review BASE=<rev>`: a Markdown review of a change, in a git+DVC copy with two commits."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import REPO, run

RUN = "metrics/eval/vit/100pct/s0.json"
COST = "metrics/cost/eval/vit/100pct/s0.json"


def write_results(repo, accuracy: float, seconds: float, verdict: str) -> None:
    for rel, data in ((RUN, {"accuracy": accuracy, "num_test_images": 10}), (COST, {"eval_time_s": seconds}),
                      ("metrics/comparison.json", {"models": {"vit": {"accuracy": {"mean": accuracy}}},
                                                   "pairs": {"vit vs cnn": {"verdict": "better", "sentence": verdict}},
                                                   "data_size": {"statement": "One training-set size only."}})):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(json.dumps(data))
    (repo / "metrics/comparison.md").write_text(f"| model | accuracy |\n|---|---|\n| vit | {accuracy} |\n")


def test_review_lists_changed_params_and_quality_apart_from_cost(repo_copy):
    write_results(repo_copy, 0.80, 1.5, "vit is better than cnn in accuracy.")
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "base"], repo_copy)
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["models"]["vit"]["learning_rate"] = 0.0003
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_results(repo_copy, 0.85, 1.9, "vit and cnn do not differ significantly in accuracy.")
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "change"], repo_copy)

    out = run([sys.executable, "-m", "stages.review", "HEAD~1"], repo_copy).stdout
    sections = {part.split("\n", 1)[0]: part for part in out.split("\n## ")}
    params_part, quality = sections["Params changed"], sections["Quality metrics changed"]
    assert "models.vit.learning_rate" in params_part and "0.001" in params_part and "0.0003" in params_part
    assert f"| {RUN}" in quality and "0.8 " in quality and "0.85" in quality
    assert "eval_time_s" not in quality  # timings are apart...
    assert "eval_time_s" in sections["Cost metrics changed"]  # ...not gone
    assert "| vit | 0.85 |" in sections["Comparison"]
    assert "do not differ significantly" in sections["Verdicts"] and "One training-set size only." in out

    out = run([sys.executable, "-m", "stages.review", "HEAD"], repo_copy).stdout
    assert "No params changed." in out and "No quality metric changed." in out and "Cost metrics" not in out


def test_make_review_runs_the_review_against_base():
    dry = subprocess.run(["make", "-n", "review", "BASE=origin/main"], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0 and "-m stages.review origin/main" in dry.stdout, dry.stdout + dry.stderr


def test_the_pull_request_workflow_reproduces_and_comments_the_review():
    workflow = yaml.safe_load((REPO / ".github/workflows/review.yml").read_text())
    steps = workflow["jobs"]["review"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "make install" in commands and "make repro" in commands and "dvc pull" in commands
    assert "make --no-print-directory review BASE=origin/${{ github.base_ref }} > review.md" in commands
    assert "gh pr comment" in commands and "--body-file review.md" in commands
