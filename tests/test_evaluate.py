"""Stage `evaluate`: predictions and metrics of tiny saved models, params errors, `dvc metrics diff`."""

from __future__ import annotations

import json
import os
import re

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import softmax

from conftest import make_prepared_store, run
from stages.evaluate import evaluate, parse_eval_params
from stages.lib.errors import DataError, ParamError
from stages.lib.files import read_csv
from stages.lib.prepared import open_split
from stages.models import build_model

TINY_VIT = dict(patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
EVAL = dict(ece_bins=15, latency_warmup=1, latency_runs=3)
METRIC_KEYS = {
    "accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "model_size_mb", "params_total",
    "params_trainable", "num_test_images", "per_class",
}
COST_KEYS = {"eval_time_s", "infer_img_per_s", "latency_ms_b1"}  # machine-dependent: their own file


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared store of 3 classes x 12 images at 16 px: 8 train, 2 val, 2 test per class."""
    return make_prepared_store(tmp_path_factory.mktemp("store"))


def logits_model(size: int = 16) -> keras.Model:
    """A head without softmax: a linear Dense whose outputs are far outside [0, 1]."""
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0))(x)
    return keras.Model(inputs, outputs)


def run_evaluate(model, prepared, tmp_path, batch_size=4):
    path = tmp_path / "model.keras"
    model.save(path)
    preds, metrics_file, cost_file = (tmp_path / f"out/{f}" for f in ("predictions.csv", "metrics.json", "cost.json"))
    metrics = evaluate("tiny", path, prepared, batch_size, parse_eval_params(EVAL), preds, metrics_file, cost_file)
    quality, cost = json.loads(metrics_file.read_text()), json.loads(cost_file.read_text())
    assert set(quality) == METRIC_KEYS and set(cost) == COST_KEYS and metrics == {**quality, **cost}
    return read_csv(preds), metrics


def test_vit_predictions_and_metrics_agree(prepared, tmp_path):
    model = build_model("vit", 3, 16, TINY_VIT)
    frame, metrics = run_evaluate(model, prepared, tmp_path, batch_size=4)  # 6 test images: batches of 4 + 2
    test = open_split("test", 16, prepared)
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

    assert set(metrics) == METRIC_KEYS | COST_KEYS
    assert metrics["accuracy"] == pytest.approx((frame["pred_label"].astype(int) == frame["label"]).mean())
    assert metrics["num_test_images"] == 6 and set(metrics["per_class"]) == {"a", "b", "c"}
    assert metrics["params_total"] == metrics["params_trainable"] == model.count_params()
    assert metrics["eval_time_s"] > 0 and metrics["infer_img_per_s"] == pytest.approx(6 / metrics["eval_time_s"], rel=1e-2)
    assert metrics["latency_ms_b1"] > 0 and metrics["model_size_mb"] > 0
    assert not list(tmp_path.rglob(".*tmp-*"))


def test_logits_head_gets_softmaxed(prepared, tmp_path):
    model = logits_model()
    test_images = np.asarray(open_split("test", 16, prepared).images)
    raw = model.predict(test_images, verbose=0)
    assert raw.min() < 0 and raw.max() > 1  # really logits
    frame, metrics = run_evaluate(model, prepared, tmp_path)
    probs = frame[["prob:a", "prob:b", "prob:c"]].astype(float).to_numpy()
    np.testing.assert_allclose(probs, softmax(raw.astype(np.float64), axis=1), atol=1e-5)
    assert 0 <= metrics["log_loss"] < 50 and 0 <= metrics["ece"] <= 1


def test_model_size_not_prepared_is_a_data_error(prepared, tmp_path):
    with pytest.raises(DataError) as err:
        run_evaluate(logits_model(size=24), prepared, tmp_path)
    assert "24" in str(err.value) and "prepare.image_sizes" in str(err.value)
    assert not (tmp_path / "out/metrics.json").exists()


@pytest.mark.parametrize(
    "over, key",
    [(dict(latency_runs=0), "evaluate.latency_runs"), (dict(ece_bins=0), "evaluate.ece_bins"),
     (dict(latency_warmup=-1), "evaluate.latency_warmup"), (dict(bins=10), "evaluate.bins")],
)
def test_bad_eval_params_name_the_key(over, key):
    with pytest.raises(ParamError) as err:
        parse_eval_params(dict(EVAL, **over))
    assert err.value.key == key


@pytest.mark.parametrize(
    "params, key",
    [({"evaluate": dict(EVAL, latency_runs=0), "models": {"m": {"batch_size": 4, "family": "vit"}}},
      "evaluate.latency_runs"),
     ({"evaluate": EVAL, "models": {"m": {"batch_size": 0, "family": "vit"}}}, "models.m.batch_size"),
     ({"evaluate": EVAL, "models": {"m": {"batch_size": 4}}}, "models.m.family"),
     ({"evaluate": EVAL, "models": {}}, "models.m")],
)
def test_main_checks_params_before_loading_anything(monkeypatch, params, key):
    """main() with the params DVC would resolve; in-process, as a subprocess would only add TF's import time."""
    import stages.evaluate as stage
    import stages.lib.params

    monkeypatch.setattr(stages.lib.params, "stage_params", lambda name: params if name == "evaluate@m-100-0" else None)
    with pytest.raises(ParamError) as err:
        stage.main(["m", "--percent", "100", "--seed", "0"])
    assert err.value.key == key


def edit_params(repo, change) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def shrink(params):
    params["balance"]["images_per_class"] = 20
    params["study"]["seeds"] = [0]
    for model in params["models"].values():
        model["epochs"] = 1
    # Tracing the training step dominates these runs: a 1-layer ViT, and only MobileNetV2's head
    # trained, trace in a third of the time. The learning rate still changes the head's weights.
    params["models"]["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64)
    params["models"]["mobilenet_v2"]["trainable"] = "frozen"


def test_dvc_repro_and_metrics_diff_after_a_param_change(repo_copy):
    edit_params(repo_copy, shrink)
    proc = run(["dvc", "repro", "evaluate@vit-100-0", "evaluate@mobilenet_v2-100-0"], repo_copy)
    # Quiet output: no TF start-up lines, no Keras input warnings (tests/test_tf_startup.py has the rest).
    for noise in ("absl::InitializeLog", "cudart_stub", "oneDNN custom operations", "ran out of data"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert ("cuInit" in proc.stdout + proc.stderr) <= os.path.exists("/dev/nvidiactl")
    for stage in ("prepare", "train@vit-100-0", "evaluate@mobilenet_v2-100-0"):  # each ends with its time
        assert re.search(rf"^{re.escape(stage)}: done in \d+\.\d s$", proc.stdout, re.MULTILINE), stage
    for name in ("vit", "mobilenet_v2"):
        metrics = json.loads((repo_copy / f"metrics/eval/{name}/100pct/s0.json").read_text())
        assert METRIC_KEYS <= set(metrics) and metrics["num_test_images"] == 30  # 15 % of 10 x 20
        assert len(pd.read_csv(repo_copy / f"data/predictions/{name}/100pct/s0.csv")) == 30
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "evaluate"], repo_copy)

    edit_params(repo_copy, lambda p: p["models"]["mobilenet_v2"].update(learning_rate=0.01))
    out = run(["dvc", "repro", "evaluate@mobilenet_v2-100-0"], repo_copy).stdout
    assert "Running stage 'train@mobilenet_v2-100-0'" in out and "train@vit" not in out
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo_copy).stdout)
    changed = diff["metrics/eval/mobilenet_v2/100pct/s0.json"]
    assert "log_loss" in changed and not COST_KEYS & set(changed), changed  # quality only
    assert COST_KEYS <= set(diff["metrics/cost/eval/mobilenet_v2/100pct/s0.json"])
    assert "metrics/eval/vit/100pct/s0.json" not in diff  # the other models need not change
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "learning rate"], repo_copy)

    # A re-run that changes nothing but timings: the quality diff is empty, the cost diff is not.
    run(["dvc", "repro", "-f", "-s", "evaluate@vit-100-0"], repo_copy)
    quality = json.loads(run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/eval", "metrics/train"],
                             repo_copy).stdout)
    assert quality == {}, quality
    assert "metrics/cost/eval/vit/100pct/s0.json" in json.loads(
        run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/cost"], repo_copy).stdout)

    # Editing one family's module re-runs that family's models only (the family@ fingerprints).
    module = repo_copy / "stages/models/mobilenet_v2.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    run(["dvc", "repro", "-s", "family@vit", "family@mobilenet_v2"], repo_copy)
    status = json.loads(run(["dvc", "status", "--json", "--with-deps", "evaluate@vit-100-0",
                             "evaluate@mobilenet_v2-100-0"], repo_copy).stdout)
    assert "train@mobilenet_v2-100-0" in status and "evaluate@mobilenet_v2-100-0" in status
    assert not [stage for stage in status if "vit" in stage], status
