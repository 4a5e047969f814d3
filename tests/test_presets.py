"""The study presets (conf/experiment/*.yaml): they compose, through DVC's Hydra support,
to the studies' params, pass every stage's validation, and give the expected DAG.
Presets are validated here, not trained (their datasets and weights are not offline)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO, run
from stages import preflight

DOGS = {"models": {"vit", "mobilenet_v2"}, "select": "fewest", "images_per_class": 150, "epochs": 5, "patience": 0}
EXPECTED = {
    "dogs13": {**DOGS, "num_classes": 13},
    "dogs28": {**DOGS, "num_classes": 28},
    "products7": {"models": {"mobilevitv2", "resnet50"}, "select": "all", "images_per_class": "min", "epochs": 50,
                  "patience": 5},
}


def composed(overrides: list[str], tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(REPO)
    out = tmp_path / "params.yaml"
    preflight.compose(overrides, out)
    return yaml.safe_load(out.read_text())


def dag_edges(repo) -> tuple[set[str], set[tuple[str, str]]]:
    dot = run(["dvc", "dag", "--dot"], repo).stdout
    edges = set(re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', dot))
    nodes = set(re.findall(r'^\s*"([^"]+)"\s*;?\s*$', dot, re.M)) | {n for e in edges for n in e}
    return nodes, edges


def queued_params(repo) -> dict[str, dict]:
    """Params of every experiment in `dvc exp show --json`, by experiment name."""
    found = {}
    for row in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout):
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]["params"]["params.yaml"]["data"]
    return found


def test_committed_params_yaml_is_the_composed_default(tmp_path, monkeypatch):
    """`dvc repro` reads params.yaml, `dvc exp run` recomposes it from conf/: they must agree
    byte for byte (else an exp run silently changes params). Fix: `make params`."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "params.yaml"
    preflight.compose([], out)
    assert (REPO / "params.yaml").read_text() == out.read_text()


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_composes_to_the_study_and_validates(preset, tmp_path, monkeypatch):
    want = EXPECTED[preset]
    params = composed([f"+experiment={preset}"], tmp_path, monkeypatch)
    assert set(params["models"]) == want["models"]
    assert params["prepare"]["image_sizes"] == [224]
    for name, model in params["models"].items():
        assert model["image_size"] == 224 and model["batch_size"] == 32, name
        assert model["epochs"] == want["epochs"] and model["early_stopping"]["patience"] == want["patience"], name
    balance = params["balance"]
    assert balance["select"] == want["select"] and balance["images_per_class"] == want["images_per_class"]
    if preset.startswith("dogs"):
        assert balance["num_classes"] == want["num_classes"]
        assert balance["source"].endswith("Images") and balance["labels"]["csv"] is None
        vit, mnv2 = params["models"]["vit"], params["models"]["mobilenet_v2"]
        assert vit["preset"] == "vit_base_patch16_224_imagenet21k" and vit["trainable"] == "full"
        assert (mnv2["weights"], mnv2["trainable"], mnv2["alpha"]) == ("imagenet", "frozen", 1.0)
        assert re.match(balance["class_name_pattern"], "n02085620-Chihuahua").group(1) == "Chihuahua"
        assert params["report"]["primary_metric"] == "accuracy"
    else:
        assert [params["split"][s] for s in ("train", "val", "test")] == ["2/3", "1/6", "1/6"]
        assert balance["labels"]["csv"].endswith(".csv") and balance["labels"]["level"] == 0
        assert params["models"]["mobilevitv2"]["width"] == 1.0
        assert all(m["weights"] == "imagenet" for m in params["models"].values())
        assert params["report"]["primary_metric"] == "macro_f1"

    # Every stage's own parser accepts the composed params (checks only: no data, no weights here).
    assert preflight.main([f"+experiment={preset}", "--params-only"]) == 0


def test_preflight_warns_when_a_transformer_attends_over_one_token_and_the_default_does_not(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert preflight.main(["--params-only"]) == 0
    assert "WARNING" not in capsys.readouterr().out  # the default's models are what their names say
    assert preflight.main(["models=products", "models.mobilevitv2.image_size=32", "models.resnet50.image_size=32",
                           "prepare.image_sizes=[32]",
                           "--params-only"]) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and warned[0].startswith("ok   models.mobilevitv2: WARNING: at 32 px")
    assert "sees 1 token" in warned[0] and "models.mobilevitv2.image_size" in warned[0]


def test_preflight_reports_every_bad_param_and_a_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code = preflight.main(["+experiment=products7", "models.resnet50.epochs=0", "split.test=7/6", "--params-only"])
    out = capsys.readouterr().out
    assert code == 2
    assert "FAIL models.resnet50: params.yaml: models.resnet50.epochs" in out
    assert "FAIL split: params.yaml: split.test" in out
    assert "ok   models.mobilevitv2" in out  # the others are still checked

    assert preflight.main(["+experiment=nope", "--params-only"]) == 2
    assert "dogs13" in capsys.readouterr().err  # hydra lists the available presets

    # Not --params-only: the dataset folder is checked (it is not in the repository).
    code = preflight.main(["+experiment=dogs13", "balance.source=" + str(tmp_path / "absent")])
    out = capsys.readouterr().out
    assert code == 3 and f"FAIL dataset: dataset folder {tmp_path / 'absent'} not found" in out


def test_embedded_data_is_written_only_where_balance_reads_it(monkeypatch, capsys):
    """Presets read their own folder and list no embedded dataset (no embedded@digits stage, see
    the DAG test); dropping digits while balance still reads data/raw/digits is named up front."""
    monkeypatch.chdir(REPO)
    assert preflight.main(["embedded=[]", "--params-only"]) == 2
    out = capsys.readouterr().out
    assert ("FAIL embedded: params.yaml: embedded: balance.source is data/raw/digits, written by the "
            "embedded@digits stage, which `embedded` does not list") in out
    assert preflight.main(["embedded=[mnist]", "--params-only"]) == 2
    assert "'mnist' is not an embedded dataset; known: digits" in capsys.readouterr().out
    assert preflight.main(["embedded=[]", "balance.source=/data/mine", "--params-only"]) == 0


def test_preflight_reads_params_yaml_as_dvc_does(tmp_path, monkeypatch, capsys):
    """YAML 1.2, DVC's loader: `1e-3` is a number (PyYAML: a string, a false alarm) and `yes` a
    string (PyYAML: true, so preflight passed what the stage then refused)."""
    text = (REPO / "params.yaml").read_text()
    assert "learning_rate: 0.001" in text and "deterministic: true" in text
    (tmp_path / "params.yaml").write_text(text.replace("learning_rate: 0.001", "learning_rate: 1e-3")
                                          .replace("deterministic: true", "deterministic: yes"))
    monkeypatch.chdir(tmp_path)
    params = preflight.read_params(tmp_path / "params.yaml")
    assert params["models"]["vit"]["learning_rate"] == 0.001 and params["train"]["deterministic"] == "yes"
    assert preflight.main(["--params-only"]) == 2
    out = capsys.readouterr().out
    assert "FAIL train" in out and "train.deterministic" in out
    assert not [line for line in out.splitlines() if "learning_rate" in line]


def test_preflight_names_a_missing_image_dir_beside_the_other_problems(tmp_path, monkeypatch, capsys):
    """The labels CSV is fine but its image folder is `images/`, not the preset's `Images/`: preflight
    says so (balance used to be the first to notice), next to a bad param, in one run."""
    root = tmp_path / "flipkart"
    (root / "images").mkdir(parents=True)
    (root / "flipkart_com-ecommerce_sample_1050.csv").write_text(
        "uniq_id,image,product_category_tree\n1,a.jpg,\"[\"\"Watches >> Wrist Watches\"\"]\"\n")
    monkeypatch.chdir(REPO)
    code = preflight.main(["+experiment=products7", f"balance.source={root}", "models.resnet50.epochs=0"])
    out = capsys.readouterr().out
    assert code == 2  # a params problem is reported over a data one
    assert "FAIL models.resnet50: params.yaml: models.resnet50.epochs" in out
    assert "ok   dataset" in out  # the CSV and its columns
    assert (f"FAIL dataset images: params.yaml: balance.labels.image_dir: folder not found: {root / 'Images'} "
            "(there is 'images': names are case-sensitive)") in out


@pytest.mark.slow
def test_preflight_passes_where_the_products_dataset_and_weights_are_in_place(tmp_path, monkeypatch, capsys):
    """The offline setup the README describes: the dataset folder with its CSV, and the
    pretrained weights under the exact Keras cache names (random weights made here)."""
    import socket

    import keras
    import kimm

    root = tmp_path / "flipkart"
    (root / "Images").mkdir(parents=True)
    (root / "flipkart_com-ecommerce_sample_1050.csv").write_text(
        "uniq_id,image,product_category_tree\n1,a.jpg,\"[\"\"Watches >> Wrist Watches\"\"]\"\n")
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    (home / "models").mkdir(parents=True)
    keras.applications.ResNet50(include_top=False, input_shape=(32, 32, 3), weights=None).save(
        home / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    (home / "kimm_models").mkdir()
    kimm.models.MobileViTV2W100(input_shape=(32, 32, 3), weights=None).save(
        home / "kimm_models" / "mobilevitv2w100_mobilevitv2_100.cvnets_in1k.keras")
    keras.backend.clear_session()

    def refuse(*args, **kwargs):  # offline: a download attempt would fail, not hang
        raise socket.gaierror(socket.EAI_NONAME, "network disabled by test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.chdir(REPO)
    assert preflight.main(["+experiment=products7", f"balance.source={root}"]) == 0
    out = capsys.readouterr().out
    assert f"ok   dataset: {root / 'flipkart_com-ecommerce_sample_1050.csv'}" in out
    assert "ok   weights of models.resnet50: resnet50 at 224 px builds (23." in out
    assert "ok   weights of models.mobilevitv2: mobilevitv2 at 224 px builds (4." in out

    # A wrong column is named with the columns the CSV has.
    assert preflight.main(["+experiment=products7", f"balance.source={root}", "balance.labels.label_column=tree",
                           "--params-only"]) == 0  # a params-only check reads no file...
    assert preflight.main(["+experiment=products7", f"balance.source={root}",
                           "balance.labels.label_column=tree"]) == 2  # ...the full one does
    assert "columns: uniq_id, image, product_category_tree" in capsys.readouterr().out


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_gives_the_expected_dag_with_readable_stage_names(preset, repo_copy, tmp_path, monkeypatch):
    params = composed([f"+experiment={preset}"], tmp_path, monkeypatch)
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    nodes, edges = dag_edges(repo_copy)
    models, seeds = EXPECTED[preset]["models"], params["study"]["seeds"]
    percents = params["study"]["train_percent"]
    assert len(seeds) >= 3  # every study preset rests on repeated runs
    assert percents == [25, 50, 100]  # and draws the data-size curve
    runs = [(m, f"{m}-{p}-{s}") for m in models for p in percents for s in seeds]
    per_run = {f"train@{r}" for _, r in runs}
    per_model = {f"{stage}@{m}" for stage in ("family", "features") for m in models}
    assert nodes == {"balance", "split", "prepare", "evaluate", "report", "explain"} | per_run | per_model
    assert {("balance", "split"), ("split", "prepare"), ("evaluate", "report")} <= edges
    for m, r in runs:
        assert {("prepare", f"features@{m}"), (f"features@{m}", f"train@{r}"), ("prepare", f"train@{r}"),
                (f"family@{m}", f"features@{m}"), (f"family@{m}", f"train@{r}"), (f"train@{r}", "evaluate"),
                (f"train@{r}", "report"), (f"train@{r}", "explain"), (f"family@{m}", "explain")} <= edges, r
    # each run depends on its own model's family only
    assert not {(f"family@{other}", f"train@{r}") for m, r in runs for other in models if other != m} & edges
    assert not [n for n in nodes if n.startswith("embedded")]  # it reads its own folder: digits are not written


def test_exp_run_composes_preset_then_set_params_and_drops_hand_edits(repo_copy):
    """DVC's Hydra pitfalls: `-S` values must win over the preset, and a hand edit of
    params.yaml is replaced by the composition (the README says: edit conf/, not params.yaml)."""
    run(["dvc", "exp", "run", "--queue", "-n", "dogs13-seed7", "-S", "+experiment=dogs13",
         "-S", "study.seeds=[7,8,9]", "-S", "models.vit.epochs=2", "-S", "balance.num_classes=5"], repo_copy)
    path = repo_copy / "params.yaml"
    edited = yaml.safe_load(path.read_text())
    edited["study"]["seeds"] = [99]
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    run(["dvc", "exp", "run", "--queue", "-n", "plain"], repo_copy)

    params = queued_params(repo_copy)
    exp = params["dogs13-seed7"]
    assert set(exp["models"]) == {"vit", "mobilenet_v2"}
    assert exp["study"]["seeds"] == [7, 8, 9] and exp["balance"]["num_classes"] == 5
    assert exp["models"]["vit"]["epochs"] == 2 and exp["models"]["mobilenet_v2"]["epochs"] == 5
    assert exp["models"]["vit"]["preset"] == "vit_base_patch16_224_imagenet21k"
    plain = params["plain"]
    assert plain["study"]["seeds"] == [0, 1, 2]  # the hand edit ([99]) is gone: composed from conf/
    assert set(plain["models"]) == set(yaml.safe_load((repo_copy / "conf/models/digits.yaml").read_text()))
