"""stages.lib.params: the typed section schemas' errors; which DVC failures mean "no such model",
and which show DVC's own message."""

from __future__ import annotations

import pytest

from stages.lib.errors import ParamError
from stages.lib.params import model_stage_params
from stages.lib.training import parse_model_params, parse_run_params

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
    assert err.value.key == f"train.{flag}" and "expected true or false" in str(err.value)
    assert parse_run_params(run) == {**run, "cache_frozen_features": True}  # the default


def test_family_options_pass_through_to_the_family():
    cfg = parse_model_params("vit", dict(GOOD_MODEL, patch_size=4, early_stopping={"patience": 2}), [32])
    assert cfg["options"] == {"patch_size": 4}
    assert cfg["early_stopping"] == {"monitor": "val_loss", "patience": 2, "restore_best_weights": True}
    assert cfg["learning_rate"] == 1e-3 and cfg["family"] == "vit"
