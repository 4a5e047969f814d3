"""Predictions made by `train` (stages/training/inference.py), stage `evaluate` (their metrics, without
TensorFlow), params errors, and `dvc repro` / `dvc metrics diff` after a param change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import softmax
from sklearn.metrics import accuracy_score, f1_score, log_loss

from conftest import make_prepared_store, run
from stages.core.errors import DataError, ParamError
from stages.core.files import read_csv
from stages.core.prepared import open_split
from stages.evaluate import evaluate, parse_eval_params
from stages.models import build_model
from stages.training.fit import parse_predict_params
from stages.training.inference import predict_test, weights_mb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_VIT = dict(patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
PREDICT = dict(latency_warmup=1, latency_runs=3)
METRIC_KEYS = {"accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "num_test_images",
               "per_class"}
COST_KEYS = {"eval_time_s", "infer_img_per_s", "latency_ms_b1"}  # machine-dependent: their own file


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared store of 3 classes x 12 images at 16 px: 8 train, 2 val, 2 test per class."""
    return make_prepared_store(tmp_path_factory.mktemp("store"))


def logits_model(size: int = 16, classes: int = 3) -> keras.Model:
    """A head without softmax: a linear Dense whose outputs are far outside [0, 1]."""
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0))(x)
    return keras.Model(inputs, outputs)


def test_vit_predictions_and_cost(prepared):
    model = build_model("vit", 3, 16, TINY_VIT)
    test = open_split("test", 16, prepared)
    frame, cost = predict_test(model, test, 4, **PREDICT, desc="tiny")  # 6 test images: batches of 4 + 2
    probs_cols = ["prob:a", "prob:b", "prob:c"]
    assert list(frame.columns) == ["path", "label", "class_name", "pred_label", "pred_class", *probs_cols]
    assert frame["path"].tolist() == test.paths and frame["label"].tolist() == test.labels.tolist()
    assert (frame["class_name"] == frame["label"].map(dict(enumerate("abc")))).all()
    probs = frame[probs_cols].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (frame["pred_label"].astype(int) == probs.argmax(axis=1)).all()
    assert (frame["pred_class"] == frame["pred_label"].astype(int).map(dict(enumerate("abc")))).all()
    # Same probabilities as predicting the test images directly, in the same order.
    np.testing.assert_allclose(probs, model.predict(np.asarray(test.images), verbose=0), atol=1e-5)
    assert set(cost) == COST_KEYS and cost["eval_time_s"] > 0 and cost["latency_ms_b1"] > 0
    assert cost["infer_img_per_s"] == pytest.approx(6 / cost["eval_time_s"], rel=1e-2)
    # The deployable size is the weights' bytes: 4 per float32 parameter.
    assert weights_mb(model) == round(4 * model.count_params() / 1e6, 3)


def test_logits_head_gets_softmaxed(prepared):
    model = logits_model()
    test = open_split("test", 16, prepared)
    raw = model.predict(np.asarray(test.images), verbose=0)
    assert raw.min() < 0 and raw.max() > 1  # really logits
    frame, _ = predict_test(model, test, 4, **PREDICT, desc="tiny")
    probs = frame[["prob:a", "prob:b", "prob:c"]].astype(float).to_numpy()
    np.testing.assert_allclose(probs, softmax(raw.astype(np.float64), axis=1), atol=1e-5)


def test_a_model_with_other_classes_is_a_data_error(prepared):
    with pytest.raises(DataError, match="4 outputs but the test split 3 classes"):
        predict_test(logits_model(classes=4), open_split("test", 16, prepared), 4, **PREDICT, desc="tiny")


def write_predictions(root, name, seed, percent, labels, probs):
    folder = root / name / f"{percent}pct"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"path": [f"x{i}.png" for i in range(len(labels))], "label": labels})
    for k, cls in enumerate(["a", "b", "c"]):
        frame[f"prob:{cls}"] = probs[:, k]
    frame.to_csv(folder / f"s{seed}.csv", index=False)


def test_evaluate_scores_every_runs_predictions_as_sklearn_does(tmp_path):
    rng = np.random.default_rng(0)
    runs = [("vit", 100, 0), ("vit", 50, 0), ("cnn", 100, 1)]
    truth = {}
    for name, percent, seed in runs:
        labels = rng.integers(0, 3, 20)
        probs = rng.dirichlet(np.ones(3), 20)
        write_predictions(tmp_path / "preds", name, seed, percent, labels, probs)
        truth[f"{name}-{percent}-{seed}"] = (labels, probs)
    results = evaluate(runs, ece_bins=10, predictions=tmp_path / "preds", out=tmp_path / "eval")
    assert list(results) == ["vit-100-0", "vit-50-0", "cnn-100-1"]
    for run_name, (labels, probs) in truth.items():
        name, percent, seed = run_name.split("-")
        on_disk = json.loads((tmp_path / f"eval/{name}/{percent}pct/s{seed}.json").read_text())
        assert on_disk == results[run_name] and set(on_disk) == METRIC_KEYS
        assert on_disk["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
        assert on_disk["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))
        assert on_disk["log_loss"] == pytest.approx(log_loss(labels, probs, labels=[0, 1, 2]))
        assert on_disk["num_test_images"] == 20 and list(on_disk["per_class"]) == ["a", "b", "c"]


def test_a_missing_run_names_its_file_and_train_stage_and_writes_nothing(tmp_path):
    write_predictions(tmp_path / "preds", "vit", 0, 100, np.array([0, 1, 2]), np.eye(3))
    with pytest.raises(DataError, match=r"vit/100pct/s1\.csv not found: run `dvc repro train@vit-100-1` first"):
        evaluate([("vit", 100, 0), ("vit", 100, 1)], 15, predictions=tmp_path / "preds", out=tmp_path / "eval")
    assert not (tmp_path / "eval").exists() and not list(tmp_path.glob(".*tmp-*"))


def test_evaluate_imports_no_tensorflow():
    code = "import sys, stages.evaluate; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("over, key", [(dict(ece_bins=0), "evaluate.ece_bins"), (dict(bins=10), "evaluate.bins"),
                                       (dict(latency_runs=3), "evaluate.latency_runs")])
def test_bad_eval_params_name_the_key(over, key):
    with pytest.raises(ParamError) as err:
        parse_eval_params(dict(dict(ece_bins=15), **over))
    assert err.value.key == key


@pytest.mark.parametrize("over, key", [(dict(latency_runs=0), "predict.latency_runs"),
                                       (dict(latency_warmup=-1), "predict.latency_warmup")])
def test_bad_predict_params_name_the_key(over, key):
    with pytest.raises(ParamError) as err:
        parse_predict_params(dict(PREDICT, **over))
    assert err.value.key == key


@pytest.mark.parametrize(
    "params, key",
    [({"evaluate": {"ece_bins": 0}, "models": {"m": {"family": "vit"}}, "study": {"seeds": [0], "train_percent": [100]}},
      "evaluate.ece_bins"),
     ({"evaluate": {"ece_bins": 15}, "models": {"m": {}}, "study": {"seeds": [0], "train_percent": [100]}},
      "models.m.family"),
     ({"evaluate": {"ece_bins": 15}, "models": {}, "study": {"seeds": [0], "train_percent": [100]}}, "models"),
     ({"evaluate": {"ece_bins": 15}, "models": {"m": {"family": "vit"}}, "study": {"seeds": [], "train_percent": [100]}},
      "study.seeds")],
)
def test_main_checks_params_before_reading_anything(monkeypatch, params, key):
    import stages.evaluate as stage

    monkeypatch.setattr(stage, "stage_params", lambda name: params if name == "evaluate" else None)
    with pytest.raises(ParamError) as err:
        stage.main()
    assert err.value.key == key


def edit_params(repo, change) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def shrink(params):
    params["balance"]["images_per_class"] = 20
    params["study"].update(seeds=[0], train_percent=[100])
    for model in params["models"].values():
        model["epochs"] = 1
    # Tracing the training step dominates these runs: a 1-layer ViT, and only MobileNetV2's head
    # trained, trace in a third of the time. The learning rate still changes the head's weights.
    params["models"]["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64)
    params["models"]["mobilenet_v2"]["trainable"] = "frozen"


def test_dvc_repro_and_metrics_diff_after_a_param_change(repo_copy):
    edit_params(repo_copy, shrink)
    proc = run(["dvc", "repro", "evaluate"], repo_copy)
    # Quiet output: no TF start-up lines, no Keras input warnings (tests/test_tf_startup.py has the rest).
    for noise in ("absl::InitializeLog", "cudart_stub", "oneDNN custom operations", "ran out of data"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert ("cuInit" in proc.stdout + proc.stderr) <= os.path.exists("/dev/nvidiactl")
    for stage in ("prepare", "train@vit-100-0", "evaluate"):  # each ends with its time
        assert re.search(rf"^{re.escape(stage)}: done in \d+\.\d s$", proc.stdout, re.MULTILINE), stage
    for name in ("vit", "mobilenet_v2"):
        metrics = json.loads((repo_copy / f"metrics/eval/{name}/100pct/s0.json").read_text())
        assert METRIC_KEYS == set(metrics) and metrics["num_test_images"] == 30  # 15 % of 10 x 20
        assert len(pd.read_csv(repo_copy / f"data/predictions/{name}/100pct/s0.csv")) == 30
        train = json.loads((repo_copy / f"metrics/train/{name}/100pct/s0.json").read_text())
        # The saved model holds no optimizer state: its file is about its weights, not 3x them.
        assert 0 < train["model_size_mb"] <= train["model_file_mb"] < 1.5 * train["model_size_mb"] + 0.5
        assert COST_KEYS == set(json.loads((repo_copy / f"metrics/cost/eval/{name}/100pct/s0.json").read_text()))
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "evaluate"], repo_copy)

    # An evaluate param re-runs evaluate (and what reads its metrics), never a training run.
    edit_params(repo_copy, lambda p: p["evaluate"].update(ece_bins=5))
    stale = set(json.loads(run(["dvc", "status", "--json"], repo_copy).stdout))
    assert "evaluate" in stale and not [s for s in stale if s.startswith(("train@", "features@"))], stale
    edit_params(repo_copy, lambda p: p["evaluate"].update(ece_bins=15))

    edit_params(repo_copy, lambda p: p["models"]["mobilenet_v2"].update(learning_rate=0.01))
    out = run(["dvc", "repro", "evaluate"], repo_copy).stdout
    assert "Running stage 'train@mobilenet_v2-100-0'" in out and "Running stage 'train@vit" not in out
    targets = ["--targets", "metrics/eval", "metrics/train", "metrics/cost"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", *targets], repo_copy).stdout)
    changed = diff["metrics/eval/mobilenet_v2/100pct/s0.json"]
    assert "log_loss" in changed and not COST_KEYS & set(changed), changed  # quality only
    assert COST_KEYS <= set(diff["metrics/cost/eval/mobilenet_v2/100pct/s0.json"])
    assert "metrics/eval/vit/100pct/s0.json" not in diff  # the other models need not change
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "learning rate"], repo_copy)

    # A re-run that changes nothing but timings: the quality diff is empty, the cost diff is not.
    run(["dvc", "repro", "-f", "-s", "train@vit-100-0"], repo_copy)
    run(["dvc", "repro", "evaluate"], repo_copy)
    quality = json.loads(run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/eval", "metrics/train"],
                             repo_copy).stdout)
    assert quality == {}, quality
    assert "metrics/cost/eval/vit/100pct/s0.json" in json.loads(
        run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/cost"], repo_copy).stdout)

    # Editing one family's module re-runs that family's models only (the family@ fingerprints).
    module = repo_copy / "stages/models/mobilenet_v2.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    run(["dvc", "repro", "-s", "family@vit", "family@mobilenet_v2"], repo_copy)
    status = json.loads(run(["dvc", "status", "--json", "--with-deps", "train@vit-100-0",
                             "train@mobilenet_v2-100-0"], repo_copy).stdout)
    assert "train@mobilenet_v2-100-0" in status
    assert not [stage for stage in status if "vit" in stage], status
