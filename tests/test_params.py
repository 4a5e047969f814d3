"""stages.core.params: the typed section schemas' errors; which DVC failures mean "no such model",
and which show DVC's own message."""

from __future__ import annotations

import pytest
from pydantic import Field

from stages.core.errors import ParamError
from stages.core.params import Schema, model_stage_params, parse_section, study_percents, study_seeds
from stages.training.fit import parse_model_params, parse_run_params

GOOD_MODEL = dict(family="vit", image_size=32, epochs=2, batch_size=8, optimizer="adam", learning_rate=1e-3)

PARAMS = "models:\n  vit: {epochs: 1}\nstudy: {seeds: [0], train_percent: [100]}\n"
DVC_YAML = """stages:
  train:
    matrix:
      model: ${models}
      percent: ${study.train_percent}
      seed: ${study.seeds}
    cmd: python -m stages.train ${item.model} --percent ${item.percent} --seed ${item.seed}
    params:
      - models.${item.model}
"""


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    """A minimal DVC project (no git) holding a `train` matrix stage; the current directory."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_stage_of_the_matrix_gives_its_params(dvc_project):
    name, seed, percent, params, model = model_stage_params("train", ["vit", "--percent", "100", "--seed", "0"])
    assert (name, seed, percent, model) == ("vit", 0, 100, {"epochs": 1})
    assert params == {"models": {"vit": {"epochs": 1}}}


@pytest.mark.parametrize("argv, stage", [
    (["nope"], "train@nope-100-0"),  # no such model
    (["vit", "--percent", "50"], "train@vit-50-0"),  # a size not in study.train_percent
    (["vit", "--seed", "7"], "train@vit-100-7"),  # a seed not in study.seeds
])
def test_a_stage_dvc_does_not_know_is_a_param_error(dvc_project, argv, stage):
    with pytest.raises(ParamError) as err:
        model_stage_params("train", argv)
    assert err.value.key == f"models.{argv[0]}"
    assert f"DVC has no stage {stage}: is {argv[0]!r} a key of models" in str(err.value)
    assert f"Stage '{stage}' not found inside 'dvc.yaml' file" in str(err.value)


CORRUPTED = "unable to read: '{}', YAML file structure is corrupted"


@pytest.mark.parametrize("file, text, words", [
    ("dvc.yaml", "stages:\n  train:\n    cmd: [unclosed\n", CORRUPTED.format("dvc.yaml")),
    ("dvc.yaml", DVC_YAML.replace("${models}", "${nomodels}"), "Could not find 'nomodels'"),
    ("params.yaml", "models: [\n", CORRUPTED.format("params.yaml")),
])
def test_other_dvc_failures_show_their_own_message(dvc_project, file, text, words):
    from dvc.exceptions import DvcException

    (dvc_project / file).write_text(text)
    with pytest.raises(DvcException) as err:
        model_stage_params("train", ["vit"])
    assert words in str(err.value)


def test_a_section_reports_every_bad_key_at_once_by_its_full_key():
    bad = dict(GOOD_MODEL, epochs=0, optimizer="adamax", learning_rate="1e-3",
               early_stopping={"patience": -1, "monitr": "val_loss"})
    with pytest.raises(ParamError) as err:
        parse_model_params("vit", bad, [32])
    problems = dict(err.value.problems)
    assert set(problems) == {"models.vit.epochs", "models.vit.optimizer", "models.vit.learning_rate",
                             "models.vit.early_stopping.patience", "models.vit.early_stopping.monitr"}
    assert problems["models.vit.epochs"] == "must be >= 1, got 0"
    assert problems["models.vit.learning_rate"] == "expected a number, got '1e-3'"  # YAML 1.2 reads 1e-3 as text
    assert problems["models.vit.early_stopping.monitr"] == (
        "unknown key; known keys: monitor, patience, restore_best_weights")
    assert err.value.key == "models.vit.epochs" and str(err.value).count("params.yaml: ") == 5


@pytest.mark.parametrize("flag, value", [("deterministic", "yes"), ("deterministic", 1), ("jit_compile", None)])
def test_nothing_is_coerced(flag, value):
    """A YAML value of the wrong type is refused, not converted: 1 is not true, "yes" not a bool."""
    run = dict(strategy="auto", mixed_precision=False, jit_compile=False, deterministic=True)
    with pytest.raises(ParamError) as err:
        parse_run_params({**run, flag: value})
    assert err.value.problems == [(f"train.{flag}", f"expected true or false, got {value!r}")]
    assert parse_run_params(run) == {**run, "cache_frozen_features": True}  # the default


def test_family_options_pass_through_to_the_family():
    cfg = parse_model_params("vit", dict(GOOD_MODEL, patch_size=4, early_stopping={"patience": 2}), [32])
    assert cfg["options"] == {"patch_size": 4}
    assert cfg["early_stopping"] == {"monitor": "val_loss", "patience": 2, "restore_best_weights": True}
    assert cfg["learning_rate"] == 1e-3 and cfg["family"] == "vit"


def test_a_stage_that_does_not_declare_the_model_gets_no_such_model(dvc_project):
    """A matrix stage that declares no `models.<name>` param: DVC gives it no entry for the model."""
    (dvc_project / "dvc.yaml").write_text(DVC_YAML.replace("models.${item.model}", "study"))
    with pytest.raises(ParamError) as err:
        model_stage_params("train", ["vit"])
    assert err.value.key == "models.vit"
    assert str(err.value) == "params.yaml: models.vit: no such model in params.yaml"


def test_the_command_line_help_says_what_each_argument_is(capsys, monkeypatch):
    """`python -m stages.train --help` names the command and what a model, a percent and a seed must be."""
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps to the terminal's width
    with pytest.raises(SystemExit) as end:
        model_stage_params("train", ["--help"])
    assert end.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m stages.train [-h] [--percent PERCENT] [--seed SEED] model ")
    assert "model a key of the `models` section of params.yaml" in text
    assert ("--percent PERCENT the run's training-set size, percent of each class's training images "
            "(one of study.train_percent)") in text
    assert "--seed SEED the run's training seed (one of study.seeds)" in text


def test_a_missing_model_argument_shows_the_stage_command(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the usage on one line
    with pytest.raises(SystemExit) as end:
        model_stage_params("train", [])
    assert end.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m stages.train [-h] [--percent PERCENT] [--seed SEED] model\n")
    assert "python -m stages.train: error: the following arguments are required: model" in err


# --- study: the seeds and training-set sizes, and how a section's errors read --------------------

STUDY = {"seeds": [0, 1], "train_percent": [100, 25, 50]}


def test_study_seeds_keep_their_order_and_sizes_are_ascending():
    assert study_seeds(STUDY) == [0, 1]
    assert study_percents(STUDY) == [25, 50, 100]


@pytest.mark.parametrize("study, key, message", [
    (None, "study", "expected a mapping, got None"),  # no study section at all
    ({"seeds": [0]}, "study.train_percent", "missing"),
    ({**STUDY, "seed": 0}, "study.seed", "unknown key; known keys: max_seeds, seed_step, seeds, train_percent, vary_split"),
    ({**STUDY, "max_seeds": 0}, "study.max_seeds", "must be >= 1, got 0"),  # make decide's schedule
    ({**STUDY, "seed_step": 1.5}, "study.seed_step", "expected an integer, got 1.5"),
    ({**STUDY, "seed_step": True}, "study.seed_step", "expected an integer, got True"),
    ({**STUDY, "seeds": []}, "study.seeds", "must be a non-empty list, got []"),
    ({**STUDY, "seeds": 0}, "study.seeds", "expected a list, got 0"),
    ({**STUDY, "seeds": [0, 0]}, "study.seeds", "entries must be distinct, got [0, 0]"),  # our own validator's
    ({**STUDY, "seeds": [0, -1]}, "study.seeds", "must be >= 0 (entry 1), got -1"),  # which entry is bad
    ({**STUDY, "seeds": [0, "1"]}, "study.seeds", "expected an integer (entry 1), got '1'"),
    ({**STUDY, "train_percent": [50, 101]}, "study.train_percent", "must be <= 100 (entry 1), got 101"),
])
def test_a_bad_study_names_the_key_and_the_value(study, key, message):
    for read in (study_seeds, study_percents):  # either one reads the whole section
        with pytest.raises(ParamError) as err:
            read(study)
        assert (err.value.key, err.value.problems) == (key, [(key, message)])
        assert str(err.value) == f"params.yaml: {key}: {message}"


@pytest.mark.parametrize("change, key, message", [
    ({"family": ""}, "models.vit.family", "must not be empty"),
    ({"family": 3}, "models.vit.family", "expected a string, got 3"),
    ({"learning_rate": 0.0}, "models.vit.learning_rate", "must be > 0.0, got 0.0"),
    ({"optimizer": "adamax"}, "models.vit.optimizer", "must be one of 'adam', 'adamw', 'sgd' or 'rmsprop', got 'adamax'"),
    # An error with no wording of ours keeps pydantic's.
    ({"early_stopping": 3}, "models.vit.early_stopping",
     "Input should be a valid dictionary or instance of EarlyStopping, got 3"),
])
def test_a_bad_model_entry_names_the_key_and_the_value(change, key, message):
    with pytest.raises(ParamError) as err:
        parse_model_params("vit", dict(GOOD_MODEL, **change), [32])
    assert err.value.problems == [(key, message)]


class Entry(Schema):
    name: str
    size: int = 1


class Section(Schema):
    """A section with the shapes no params.yaml section above has."""

    alpha: float = Field(0.05, gt=0, lt=1)
    class_names: list[str] = Field(["a", "b"], min_length=2)
    options: dict[str, str] = {}
    runs: list[Entry] = []
    by_name: dict[str, Entry] = {}
    limits: Entry | None = None


@pytest.mark.parametrize("values, key, message", [
    ({"alpha": 1.0}, "sec.alpha", "must be < 1.0, got 1.0"),
    ({"class_names": ["a"]}, "sec.class_names", "must have at least 2 entries, got ['a']"),
    ({"options": ["a"]}, "sec.options", "expected a mapping, got ['a']"),
    # An unknown key inside a list's or a mapping's entry: no known keys to suggest.
    ({"runs": [{"name": "a", "sise": 2}]}, "sec.runs.sise", "unknown key"),
    ({"by_name": {"a": {"name": "a", "sise": 2}}}, "sec.by_name.a.sise", "unknown key"),
])
def test_every_kind_of_bad_value_is_worded_for_the_user(values, key, message):
    with pytest.raises(ParamError) as err:
        parse_section(Section, values, "sec")
    assert err.value.problems == [(key, message)]


def test_an_unknown_key_in_an_optional_sub_section_is_named():
    with pytest.raises(ParamError) as err:
        parse_section(Section, {"limits": {"name": "a", "sise": 2}}, "sec")
    assert err.value.key == "sec.limits.sise" and err.value.problems[0][1].startswith("unknown key")


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["default", "dogs13", "products7"])
def test_stage_params_are_what_dvc_api_params_show_gives(preset, repo_copy):
    """stage_params reads dvc.yaml with DVC's resolver and params.yaml itself (params_show parses
    dvc.lock too: seconds per stage); both give the same params, for the first and last stage of
    every kind (foreach, matrix over a mapping and lists, plain) of the default and the presets."""
    import os
    import subprocess

    import dvc.api

    from stages import preflight
    from stages.core.params import stage_params

    if preset != "default":
        preflight.compose([f"+experiment={preset}"], repo_copy / "params.yaml")
    names = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=repo_copy, capture_output=True, text=True,
                           check=True, env=dict(os.environ, DVC_NO_ANALYTICS="1")).stdout.split()
    kinds: dict[str, list[str]] = {}
    for name in names:
        kinds.setdefault(name.split("@")[0], []).append(name)
    here = os.getcwd()
    os.chdir(repo_copy)
    try:
        for stages in kinds.values():
            for stage in {stages[0], stages[-1]}:
                assert stage_params(stage) == dvc.api.params_show(stages=stage), stage
    finally:
        os.chdir(here)
    assert {"train", "evaluate", "report", "balance"} <= set(kinds)


def test_stage_params_merge_nested_keys_and_read_only_params_yaml(dvc_project):
    """A stage's params as dvc.yaml declares them: dotted keys merged into one nested dict, the
    ``params.yaml: [keys]`` form read like plain keys, and another file's keys left out."""
    from stages.core.params import stage_params

    (dvc_project / "params.yaml").write_text(
        "models:\n  vit: {lr: 0.1, epochs: 3, depth: 2}\nstudy: {seeds: [0, 1]}\nx: 7\n")
    (dvc_project / "extra.yaml").write_text("x: 5\n")
    (dvc_project / "dvc.yaml").write_text(
        "stages:\n  probe:\n    cmd: echo\n    params:\n      - models.vit.lr\n"
        "      - params.yaml: [models.vit.epochs, study]\n      - extra.yaml: [x]\n")
    assert stage_params("probe") == {"models": {"vit": {"lr": 0.1, "epochs": 3}}, "study": {"seeds": [0, 1]}}


def test_study_vary_split_defaults_to_false_and_names_the_key_when_wrong():
    from stages.core.params import study_vary_split

    assert study_vary_split(None) is False and study_vary_split({"seeds": [0]}) is False
    assert study_vary_split({"vary_split": True}) is True
    with pytest.raises(ParamError) as err:
        study_vary_split({"vary_split": "sometimes"})
    assert "study.vary_split" in str(err.value)
