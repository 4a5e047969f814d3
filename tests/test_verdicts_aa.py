"""A/A through the real stages: two identically configured models under two names never differ.

The twins are the same ViT entry; the second's ``seed_offset`` seeds its training randomness apart
(initialisation, shuffling), so in every run the two differ as two honest runs do -- on the same
training subset and the same test images. The report's verdicts must not call either better. This
is the end-to-end half of the known-truth check; benchmarks/verdict_simulation.py measures the
rates on thousands of synthetic studies.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import run

SEEDS = [0, 1, 2, 3]


def twins(params: dict) -> None:
    params["balance"]["images_per_class"] = 40  # 60 test images: 15 % of 10 x 40
    params["study"].update(seeds=SEEDS, train_percent=[50, 100])
    vit = dict(params["models"]["vit"], epochs=2, num_layers=1, hidden_dim=32, mlp_dim=64)
    params["models"] = {"twin_a": vit, "twin_b": dict(vit, seed_offset=1000)}


@pytest.mark.slow  # 16 training runs of a 1-layer ViT through `dvc repro` (~3 min on 2 cores)
def test_two_identical_models_seeded_apart_are_never_called_better(repo_copy):
    path = repo_copy / "params.yaml"
    params = yaml.safe_load(path.read_text())
    twins(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "report"], repo_copy)

    # Seeded apart: in every run the twins' predictions differ, on the same test images.
    for seed in SEEDS:
        a, b = (pd.read_csv(repo_copy / f"data/predictions/{m}/100pct/s{seed}.csv") for m in ("twin_a", "twin_b"))
        assert a["path"].tolist() == b["path"].tolist()
        assert not a.filter(like="prob:").equals(b.filter(like="prob:")), seed
    summary = json.loads((repo_copy / "metrics/comparison.json").read_text())
    pair = summary["pairs"]["twin_a_vs_twin_b"]
    assert pair["n"] == len(SEEDS) and pair["diff_mean"] != 0  # they differ, as two honest runs do
    assert pair["verdict"] in ("equivalent", "undecided"), pair["sentence"]
    points = summary["data_size"]["pairs"]["twin_a_vs_twin_b"]["points"]
    assert len(points) == 2 and all(p["verdict"] != "better" for p in points), points
    report = (repo_copy / "plots/report.md").read_text()
    assert "twin_a is better" not in report and "twin_b is better" not in report
    assert "no significant difference" not in report
