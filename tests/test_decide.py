"""`make decide` (stages/decide.py): seeds added look by look, each look a `dvc exp run`, until every
pair is decided or study.max_seeds. Unit tests run a fake DVC that writes the report's pairs; one slow
test runs the real thing twice in a repository copy and checks the second look trains only the new seed."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO, run
from stages import decide as dec


def seeds_of(args: list[str]) -> list[int]:
    """The last `-S study.seeds=[...]` of a `dvc exp run` argument list (the one that wins)."""
    value = [a for a in args if a.startswith("study.seeds=")][-1]
    return json.loads(value.partition("=")[2])


class FakeDvc:
    """Stands in for `dvc exp run`: records each call and writes metrics/comparison.json with the
    verdicts ``verdicts(n)`` gives for n runs per model (n = the seeds it was given)."""

    def __init__(self, root, verdicts, fail_at: int | None = None):
        self.root, self.verdicts, self.fail_at, self.calls = root, verdicts, fail_at, []

    def __call__(self, args: list[str]) -> int:
        self.calls.append(args)
        if len(self.calls) == self.fail_at:
            return 255
        n = len(seeds_of(args))
        pairs = {key: {"verdict": verdict, "n": n, "runs_needed": 12 if verdict == "undecided" else None,
                       "better": key.split("_vs_")[0] if verdict == "better" else None,
                       "sentence": f"{key}: {verdict} over {n} runs per model"}
                 for key, verdict in self.verdicts(n).items()}
        path = self.root / "metrics/comparison.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"pairs": pairs}))
        return 0


@pytest.fixture
def in_repo(tmp_path, monkeypatch):
    """The repository's conf/ (what decide composes) with metrics/ written in a temporary folder."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(dec, "COMPARISON", tmp_path / "metrics/comparison.json")
    return tmp_path


def test_schedule_and_seeds():
    assert dec.schedule(3, 2, 10) == [3, 5, 7, 9, 10]
    assert dec.schedule(2, 1, 3) == [2, 3]
    assert dec.schedule(4, 3, 4) == [4]  # at the cap already: one look, a fixed design
    assert dec.extend([3, 1], 5) == [3, 1, 0, 2, 4]  # the next unused non-negative integers
    assert dec.extend([0, 1, 2], 3) == [0, 1, 2]


def test_every_look_passes_the_cumulative_seeds_and_report_looks_k_and_stops_at_the_cap(in_repo, capsys):
    fake = FakeDvc(in_repo, lambda n: {"vit_vs_mobilenet_v2": "better" if n >= 5 else "undecided",
                                       "vit_vs_resnet50": "undecided"})
    assert dec.main(["--set", "study.max_seeds=8", "--set", "+experiment=dogs13"], runner=fake) == 0
    assert [seeds_of(c) for c in fake.calls] == [[0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6],
                                                 [0, 1, 2, 3, 4, 5, 6, 7]]
    for call in fake.calls:
        assert call[:2] == ["exp", "run"]
        sets = call[3::2]
        assert call[2::2] == ["-S"] * len(sets)
        # the user's overrides first, then the look's seeds and the planned looks K = 4
        assert sets[:2] == ["study.max_seeds=8", "+experiment=dogs13"] and sets[-1] == "report.looks=4"
    out = capsys.readouterr().out
    assert "4 planned look(s) at 3, 5, 7, 8 runs per model" in out
    assert re.search(r"=== look 2/4: 5 seeds per model \[0, 1, 2, 3, 4\], elapsed \d+ s", out)
    assert "vit_vs_mobilenet_v2: better over 7 runs per model" in out  # each look's sentences
    assert "=== look 4/4 done" in out and "1/2 pair(s) decided" in out
    summary = out.split("decide: stopped")[1]
    assert "after 4 of 4 look(s) at 8 runs per model (the cap, study.max_seeds)" in summary
    assert "vit_vs_mobilenet_v2: better (vit), decided at 5 runs per model" in summary
    assert ("vit_vs_resnet50: undecided at the cap (8 runs per model): about 12 runs per model would likely "
            "decide it (raise the cap: --set study.max_seeds=12)") in summary


def test_stops_as_soon_as_every_pair_is_decided(in_repo, capsys):
    fake = FakeDvc(in_repo, lambda n: {"a_vs_b": "better" if n >= 5 else "undecided",
                                       "a_vs_c": "equivalent" if n >= 3 else "undecided"})
    assert dec.main([], runner=fake) == 0
    assert [len(seeds_of(c)) for c in fake.calls] == [3, 5]  # of 3, 5, 7, 9, 10
    assert all(c[-1] == "report.looks=5" for c in fake.calls)
    out = capsys.readouterr().out
    assert "after 2 of 5 look(s) at 5 runs per model (every pair decided)" in out
    assert "a_vs_b: better (a), decided at 5 runs per model" in out
    assert "a_vs_c: equivalent, decided at 3 runs per model" in out and "undecided at the cap" not in out


def test_a_verdict_that_changed_counts_from_the_look_it_last_changed(in_repo, capsys):
    flips = {3: "better", 5: "undecided", 7: "better"}
    fake = FakeDvc(in_repo, lambda n: {"a_vs_b": flips[n], "a_vs_c": "equivalent" if n == 7 else "undecided",
                                       "a_vs_d": "better"})
    assert dec.main(["--set", "study.max_seeds=7"], runner=fake) == 0
    out = capsys.readouterr().out
    assert "after 3 of 3 look(s) at 7 runs per model (every pair decided)" in out
    assert "a_vs_b: better (a), decided at 7 runs per model" in out  # not 3: it did not hold at 5
    assert "a_vs_d: better (a), decided at 3 runs per model" in out


def test_a_pair_that_more_runs_will_not_decide_gets_the_reports_advice(in_repo, capsys):
    from stages.analysis.verdicts import runs_advice

    evidence = {"runs_needed": None, "diff_mean": 0.001, "seed_sd": 0.01, "image_se": 0.05, "margin": 0.02,
                "alpha_power": 0.025}

    def report(args):
        n = len(seeds_of(args))
        (in_repo / "metrics").mkdir(exist_ok=True)
        (in_repo / "metrics/comparison.json").write_text(json.dumps({"pairs": {"a_vs_b": {
            "verdict": "undecided", "n": n, "sentence": "s", **evidence}}}))
        return 0

    assert dec.main(["--set", "study.max_seeds=3"], runner=report) == 0
    advice = runs_advice({**evidence, "n": 3})
    assert advice.startswith("more runs alone will not decide it: the test images carry a sampling error")
    assert f"a_vs_b: undecided at the cap (3 runs per model): {advice}" in capsys.readouterr().out


def test_a_failed_dvc_run_names_the_command_and_its_exit_code(in_repo, capsys):
    fake = FakeDvc(in_repo, lambda n: {"a_vs_b": "undecided"}, fail_at=2)
    assert dec.main(["--set", "models.vit.epochs=2"], runner=fake) == 1
    assert len(fake.calls) == 2
    err = capsys.readouterr().err
    assert ("error: look 2/5: `dvc exp run -S models.vit.epochs=2 -S 'study.seeds=[0,1,2,3,4]' -S report.looks=5` "
            "failed with exit code 255") in err


def test_max_seeds_below_the_seeds_is_an_error_naming_the_key(in_repo, capsys):
    fake = FakeDvc(in_repo, lambda n: {})
    assert dec.main(["--set", "study.max_seeds=2"], runner=fake) == 2
    assert dec.main(["--set", "study.seed_step=0"], runner=fake) == 2
    err = capsys.readouterr().err
    assert "study.max_seeds: must be >= the number of seeds in study.seeds (3: [0, 1, 2]), got 2" in err
    assert "study.seed_step: must be >= 1, got 0" in err
    assert fake.calls == []


def test_dry_run_prints_the_schedule_and_runs_nothing(in_repo, capsys):
    fake = FakeDvc(in_repo, lambda n: {})
    assert dec.main(["--dry-run", "--set", "study.seeds=[4,7]", "--set", "study.seed_step=3",
                     "--set", "study.max_seeds=6"], runner=fake) == 0
    assert fake.calls == [] and not (in_repo / "metrics").exists()
    out = capsys.readouterr().out
    assert "3 planned look(s) at 2, 5, 6 runs per model" in out
    assert ("look 3/3: dvc exp run -S 'study.seeds=[4,7]' -S study.seed_step=3 -S study.max_seeds=6 "
            "-S 'study.seeds=[4,7,0,1,2,3]' -S report.looks=3") in out
    assert "dry run: nothing was run" in out
    assert "study.vary_split is false" in out  # 6 runs on one split: the note on re-drawing it
    dec.main(["--dry-run", "--set", "study.max_seeds=6", "--set", "study.vary_split=true"], runner=fake)
    assert "study.vary_split is false" not in capsys.readouterr().out


def test_a_report_without_the_looks_runs_is_named(in_repo, capsys):
    def stale(args):  # a report that did not run: the previous look's n
        (in_repo / "metrics").mkdir(exist_ok=True)
        (in_repo / "metrics/comparison.json").write_text(json.dumps(
            {"pairs": {"a_vs_b": {"verdict": "undecided", "n": 2, "sentence": "s"}}}))
        return 0

    assert dec.main([], runner=stale) == 3
    assert "pairs.a_vs_b has n = 2 runs per model, expected 3" in capsys.readouterr().err


# --- the real thing ---------------------------------------------------------------------------------

def shrink(repo) -> None:
    """conf/ down to two small models (a 1-layer ViT, MobileNetV2's head on a frozen random base),
    seeds [0, 1], one size; max_seeds 3, seed_step 1: two looks. params.yaml regenerated."""
    config_path, models_path = repo / "conf/config.yaml", repo / "conf/models/digits.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["balance"]["images_per_class"] = 20
    config["study"].update(seeds=[0, 1], train_percent=[100], max_seeds=3, seed_step=1)
    config["explain"].update(num_images=2, shap_max_evals=60)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    models = yaml.safe_load(models_path.read_text())
    models = {name: {**models[name], "epochs": 2} for name in ("vit", "mobilenet_v2")}
    models["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64)
    models["mobilenet_v2"]["trainable"] = "frozen"
    models_path.write_text(yaml.safe_dump(models, sort_keys=False))
    run(["python", "-m", "stages.preflight", "--write", "--params-only"], repo)


def test_decide_runs_two_cached_looks_in_a_repo_copy(repo_copy):
    """Two real `dvc exp run`s: the second trains only seed 2's runs, the report plans 2 looks.
    report.alpha is tiny so that no pair is decided at 2 runs (this test is about the looks, not the
    verdicts; stopping early is the unit tests' part): both looks run and decide stops at the cap."""
    shrink(repo_copy)
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "tiny study"], repo_copy)
    proc = run(["python", "-m", "stages.decide", "--set", "report.alpha=1e-9"], repo_copy)
    out = proc.stdout
    assert "2 planned look(s) at 2, 3 runs per model" in out
    first, second = out.split("=== look 2/2:")
    for model in ("vit", "mobilenet_v2"):
        for seed in (0, 1):
            assert f"Running stage 'train@{model}-100-{seed}'" in first
            assert f"Running stage 'train@{model}-100-{seed}'" not in second  # cached: not trained again
            assert re.search(rf"Stage 'train@{model}-100-{seed}' (didn't change|is cached)", second)
        assert f"Running stage 'train@{model}-100-2'" in second
    assert "Running stage 'report'" in second
    comparison = json.loads((repo_copy / "metrics/comparison.json").read_text())
    pair = comparison["pairs"]["vit_vs_mobilenet_v2"]
    assert pair["n"] == 3 and pair["verdict"] == "undecided" and pair["alpha_used"] == pytest.approx(1e-9 / 2)
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    assert params["report"]["looks"] == 2 and params["study"]["seeds"] == [0, 1, 2]
    assert "after 2 of 2 look(s) at 3 runs per model (the cap, study.max_seeds)" in out
    assert "vit_vs_mobilenet_v2: undecided at the cap (3 runs per model): " in out
