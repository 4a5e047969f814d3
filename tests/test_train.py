"""Stage `train`: params validation, outputs of a real (tiny) run, the tf.data input pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import make_prepared_store, run
from stages.lib.dataset import make_dataset
from stages.lib.distribute import pick_strategy
from stages.lib.errors import ParamError
from stages.lib.prepared import open_split
from stages.models import load_model
from stages.train import parse_model_params, parse_run_params, train

TINY_VIT = dict(
    family="vit", image_size=16, epochs=2, batch_size=8, optimizer="adam", learning_rate=0.001,
    early_stopping={"monitor": "val_loss", "patience": 1}, patch_size=4, num_layers=1, num_heads=2,
    hidden_dim=16, mlp_dim=32,
)
RUN = dict(seed=0, strategy="auto", mixed_precision=False, jit_compile=False, deterministic=True)


@pytest.fixture
def prepared(tmp_path):
    """A prepared store of 3 classes x 12 images at 16 px."""
    return make_prepared_store(tmp_path)


def test_dataset_yields_every_training_image_once_per_epoch(prepared):
    split = open_split("train", 16, prepared)
    ds = make_dataset(split, batch_size=5, shuffle=True, seed=0)
    seen = [(x.numpy(), y.numpy()) for x, y in ds]
    images = np.concatenate([x for x, _ in seen])
    labels = np.concatenate([y for _, y in seen])
    assert images.dtype == np.uint8 and images.shape == (24, 16, 16, 3)
    assert labels.shape == (24, 3) and (labels.sum(1) == 1).all()
    # Same multiset of (image, label) pairs as the store: nothing dropped, duplicated or mislabelled.
    ref = {(split.images[i].tobytes(), int(split.labels[i])) for i in range(24)}
    got = {(images[i].tobytes(), int(labels[i].argmax())) for i in range(24)}
    assert got == ref
    again = np.concatenate([x.numpy() for x, _ in make_dataset(split, 5, shuffle=True, seed=0)])
    assert not np.array_equal(again, np.asarray(split.images))  # shuffled...
    np.testing.assert_array_equal(again, images)  # ...the same way for the same seed


def test_train_writes_model_metrics_and_dvclive_curves(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_model_params("tiny", TINY_VIT, [16])
    metrics = train("tiny", cfg, parse_run_params(RUN), prepared)
    assert set(metrics) == {
        "fit_time_s", "epochs_run", "best_epoch", "params_total", "params_trainable",
        "time_per_trainable_param", "train_img_per_s",
    }
    assert metrics["epochs_run"] in (1, 2) and 1 <= metrics["best_epoch"] <= metrics["epochs_run"]
    assert metrics["params_trainable"] == metrics["params_total"]  # vit fine-tunes everything
    assert metrics["time_per_trainable_param"] == pytest.approx(metrics["fit_time_s"] / metrics["params_trainable"], rel=1e-2)
    assert json.loads((tmp_path / "metrics/train/tiny.json").read_text()) == metrics
    curves = tmp_path / "plots/train/tiny/plots/metrics"
    for split in ("train", "eval"):
        for name in ("loss", "accuracy", "top3_accuracy", "macro_f1"):
            tsv = pd.read_csv(curves / split / f"{name}.tsv", sep="\t")
            assert len(tsv) == metrics["epochs_run"] and tsv[name].notna().all()
    model = load_model(tmp_path / "data/models/tiny.keras")
    x = open_split("test", 16, prepared).images[:3]
    probs = model.predict(np.asarray(x), verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert not list(tmp_path.rglob(".*tmp-*"))  # no temporaries left


def test_family_options_are_the_non_training_keys():
    cfg = parse_model_params("m", dict(TINY_VIT, dropout=0.1), [16])
    assert cfg["options"] == dict(patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, dropout=0.1)
    assert cfg["early_stopping"] == {"monitor": "val_loss", "patience": 1, "restore_best_weights": True}


@pytest.mark.parametrize(
    "over, key",
    [
        (dict(batch_size=0), "models.m.batch_size"),
        (dict(image_size=24), "models.m.image_size"),
        (dict(epochs=0), "models.m.epochs"),
        (dict(optimizer="lbfgs"), "models.m.optimizer"),
        (dict(learning_rate=-1), "models.m.learning_rate"),
        (dict(early_stopping={"monitor": "val_loss", "patience": 2, "mode": "min"}), "models.m.early_stopping.mode"),
        (dict(early_stopping={"monitor": "loss"}), "models.m.early_stopping.monitor"),
    ],
)
def test_bad_training_params_name_the_key(over, key):
    with pytest.raises(ParamError) as err:
        parse_model_params("m", dict(TINY_VIT, **over), [16])
    assert err.value.key == key


@pytest.mark.parametrize(
    "over, key",
    [(dict(strategy="tpu_pod"), "train.strategy"), (dict(jit_compile="yes"), "train.jit_compile"), (dict(seed=1.5), "train.seed")],
)
def test_bad_run_params_name_the_key(over, key):
    with pytest.raises(ParamError) as err:
        parse_run_params(dict(RUN, **over))
    assert err.value.key == key


def test_auto_strategy_on_one_cpu_is_the_default_strategy(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert pick_strategy("auto") is tf.distribute.get_strategy()
    assert pick_strategy("auto").num_replicas_in_sync == 1


def test_train_cli_errors_name_the_key(repo_copy):
    """Unknown model and a bad family option through the real entry point: message + non-zero exit."""
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["balance"]["images_per_class"] = 10
    params["models"]["mobilenet_v2"]["weights"] = "no/such/weights.h5"
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "prepare"], repo_copy)
    proc = run(["python", "-m", "stages.train", "mobilenet_v2"], repo_copy, check=False)
    assert proc.returncode == 2 and "models.mobilenet_v2.weights" in proc.stderr and "no/such/weights.h5" in proc.stderr
    assert not (repo_copy / "data/models/mobilenet_v2.keras").exists()
    proc = run(["python", "-m", "stages.train", "nonexistent"], repo_copy, check=False)
    assert proc.returncode != 0 and "nonexistent" in proc.stderr
