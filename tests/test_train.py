"""Stage `train`: params validation, outputs of a real (tiny) run, the tf.data input pipeline."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from conftest import make_prepared_store, run
from stages.core.errors import ParamError
from stages.core.prepared import open_split
from stages.models import load_model
from stages.train import parse_model_params, parse_run_params, train
from stages.training.dataset import make_dataset
from stages.training.distribute import pick_strategy

TINY_VIT = dict(
    family="vit", image_size=16, epochs=2, batch_size=8, optimizer="adam", learning_rate=0.001,
    early_stopping={"monitor": "val_loss", "patience": 1}, patch_size=4, num_layers=1, num_heads=2,
    hidden_dim=16, mlp_dim=32,
)
RUN = dict(strategy="auto", mixed_precision=False, jit_compile=False, deterministic=True)
# A frozen, randomly initialised MobileNetV2 (no weights offline): the cached-features path applies.
TINY_FROZEN = dict(
    family="mobilenet_v2", image_size=32, epochs=3, batch_size=8, optimizer="adam", learning_rate=0.01,
    early_stopping={"monitor": "val_loss", "patience": 0}, weights=None, trainable="frozen", alpha=0.35,
)


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
    metrics = train("tiny", 0, cfg, parse_run_params(RUN), prepared)
    quality = json.loads((tmp_path / "metrics/train/tiny/100pct/s0.json").read_text())
    cost = json.loads((tmp_path / "metrics/cost/train/tiny/100pct/s0.json").read_text())
    assert set(quality) == {
        "epochs_run", "best_epoch", "evaluated_epoch", "params_total", "params_trainable", "cached_features",
        "features_source", "seed", "split_seed", "train_percent", "train_images", "train_images_per_class", "val_images",
        "model_size_mb", "model_file_mb",
    }
    assert set(cost) == {"fit_time_s", "time_per_trainable_param", "train_img_per_s", "train_cpu_cores",
                         "features_time_s", "stored_features_time_s", "platform"}  # timings and what ran them
    assert set(cost["platform"]) == {"cpu", "cpu_cores", "isa", "gpus", "onednn", "tensorflow", "keras", "python", "os"}
    assert cost["platform"]["tensorflow"] == tf.__version__ and cost["platform"]["keras"] == keras.__version__
    eval_cost = json.loads((tmp_path / "metrics/cost/eval/tiny/100pct/s0.json").read_text())
    assert set(eval_cost) == {"eval_time_s", "infer_img_per_s", "latency_ms_b1"}
    assert metrics == {**quality, **cost, **eval_cost}
    # The test split, predicted by the model just trained, as it was saved (best epoch restored).
    predictions = pd.read_csv(tmp_path / "data/predictions/tiny/100pct/s0.csv")
    test = open_split("test", 16, prepared)
    saved = keras.saving.load_model(tmp_path / "data/models/tiny/100pct/s0.keras")
    probs = predictions[[c for c in predictions.columns if c.startswith("prob:")]].to_numpy()
    np.testing.assert_allclose(probs, saved.predict(np.asarray(test.images), verbose=0), atol=1e-5)
    # Saved without optimizer state: the file holds the weights (4 bytes each) and little else.
    assert getattr(saved, "optimizer", None) is None and not saved.compiled
    assert metrics["model_size_mb"] == round(4 * metrics["params_total"] / 1e6, 3)
    assert metrics["train_percent"] == 100 and metrics["train_images"] == 24 and metrics["val_images"] == 6
    assert metrics["cached_features"] is False and metrics["features_time_s"] is None  # a ViT trains whole
    assert metrics["epochs_run"] in (1, 2) and 1 <= metrics["best_epoch"] <= metrics["epochs_run"]
    # restore_best_weights (the default) with patience 1: the saved model is the best epoch's
    assert metrics["evaluated_epoch"] == metrics["best_epoch"]
    assert metrics["params_trainable"] == metrics["params_total"]  # vit fine-tunes everything
    assert metrics["time_per_trainable_param"] == pytest.approx(metrics["fit_time_s"] / metrics["params_trainable"], rel=1e-2)
    curves = tmp_path / "plots/train/tiny/100pct/s0/plots/metrics"
    for split in ("train", "eval"):
        for name in ("loss", "accuracy", "top3_accuracy", "macro_f1"):
            tsv = pd.read_csv(curves / split / f"{name}.tsv", sep="\t")
            assert len(tsv) == metrics["epochs_run"] and tsv[name].notna().all()
    model = load_model(tmp_path / "data/models/tiny/100pct/s0.keras")
    x = open_split("test", 16, prepared).images[:3]
    probs = model.predict(np.asarray(x), verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # The saved weights are those of evaluated_epoch: its validation loss, as dvclive logged it.
    val = open_split("val", 16, prepared)
    val_probs = model.predict(np.asarray(val.images), verbose=0)
    val_loss = -np.log(val_probs[np.arange(len(val.labels)), val.labels]).mean()
    logged = pd.read_csv(curves / "eval" / "loss.tsv", sep="\t")["loss"].tolist()
    assert val_loss == pytest.approx(logged[metrics["evaluated_epoch"] - 1], rel=1e-4)
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
    [(dict(strategy="tpu_pod"), "train.strategy"), (dict(jit_compile="yes"), "train.jit_compile"),
     (dict(cache_frozen_features="yes"), "train.cache_frozen_features"), (dict(seed=1), "train.seed")],
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
    proc = run(["python", "-m", "stages.train", "mobilenet_v2", "--percent", "100", "--seed", "0"], repo_copy,
               check=False)
    assert proc.returncode == 2 and "models.mobilenet_v2.weights" in proc.stderr and "no/such/weights.h5" in proc.stderr
    assert not (repo_copy / "data/models/mobilenet_v2/100pct/s0.keras").exists()
    proc = run(["python", "-m", "stages.train", "nonexistent"], repo_copy, check=False)
    assert proc.returncode != 0 and "nonexistent" in proc.stderr
    proc = run(["python", "-m", "stages.train", "vit", "--percent", "100", "--seed", "99"], repo_copy, check=False)
    assert proc.returncode == 2 and "study.seeds" in proc.stderr  # 99 is not in study.seeds
    proc = run(["python", "-m", "stages.train", "vit", "--percent", "33", "--seed", "0"], repo_copy, check=False)
    assert proc.returncode == 2 and "study.train_percent" in proc.stderr  # nor 33 in study.train_percent


def _train_run(prepared, root, monkeypatch, values, seed=0, percent=100, **run_over):
    """Train in its own folder; returns (metrics, loaded model, test probabilities)."""
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root)
    metrics = train("m", seed, parse_model_params("m", values, [values["image_size"]]),
                    parse_run_params(dict(RUN, **run_over)), prepared, percent=percent)
    model = load_model(root / f"data/models/m/{percent}pct/s{seed}.keras")
    x = np.asarray(open_split("test", values["image_size"], prepared).images)
    return metrics, model, model.predict(x, verbose=0)


@pytest.mark.slow
def test_cached_frozen_features_give_the_uncached_head(tmp_path, monkeypatch):
    """Exactness: training the head on features computed once equals training the whole frozen model."""
    prepared = make_prepared_store(tmp_path, size=32)
    cached, model_c, probs_c = _train_run(prepared, tmp_path / "cached", monkeypatch, TINY_FROZEN)
    plain, model_p, probs_p = _train_run(prepared, tmp_path / "plain", monkeypatch, TINY_FROZEN,
                                         cache_frozen_features=False)
    assert cached["cached_features"] is True and cached["features_time_s"] > 0
    assert plain["cached_features"] is False and plain["features_time_s"] is None
    assert cached["evaluated_epoch"] == cached["epochs_run"] == 3  # patience 0: no early stopping, no restore
    assert cached["params_trainable"] == plain["params_trainable"] == model_c.get_layer("head").count_params()
    head_c, head_p = model_c.get_layer("head").get_weights(), model_p.get_layer("head").get_weights()
    for wc, wp in zip(head_c, head_p):
        np.testing.assert_allclose(wc, wp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs_c, probs_p, rtol=1e-4, atol=1e-5)
    # The base is untouched and saved with the head: the file is the whole model.
    for wc, wp in zip(model_c.get_layer("base").get_weights(), model_p.get_layer("base").get_weights()):
        np.testing.assert_array_equal(wc, wp)
    # The curves keep their meaning: the same per-epoch train/val losses on both paths.
    for split in ("train", "eval"):
        loss_c = pd.read_csv(tmp_path / f"cached/plots/train/m/100pct/s0/plots/metrics/{split}/loss.tsv", sep="\t")["loss"]
        loss_p = pd.read_csv(tmp_path / f"plain/plots/train/m/100pct/s0/plots/metrics/{split}/loss.tsv", sep="\t")["loss"]
        np.testing.assert_allclose(loss_c, loss_p, rtol=1e-4)


@pytest.mark.slow
def test_cached_features_follow_the_base_weights_and_image_size(tmp_path, monkeypatch):
    """Invalidation: features come from the model being trained, so another base or size gives other features."""
    from stages.models import build_model
    from stages.training.frozen import cached_split, split_at_head

    prepared = make_prepared_store(tmp_path, size=32)
    make_prepared_store(tmp_path / "big", size=48)
    split = open_split("train", 32, prepared)
    feats = {}
    for key, seed, size, store in (("a", 0, 32, prepared), ("same", 0, 32, prepared), ("seed", 1, 32, prepared),
                                   ("size", 0, 48, tmp_path / "big/prepared")):
        import keras

        keras.utils.set_random_seed(seed)  # random-init base: the seed is its weights
        model = build_model("mobilenet_v2", 3, size, {k: TINY_FROZEN[k] for k in ("weights", "trainable", "alpha")})
        extractor, head = split_at_head(model)
        feats[key] = cached_split(extractor, open_split("train", size, store), 8).images
        # The features are exactly what the model's own base computes for those images.
        np.testing.assert_allclose(feats[key], extractor.predict(np.asarray(open_split("train", size, store).images),
                                                                  verbose=0), rtol=1e-5, atol=1e-6)
    assert feats["a"].shape == (len(split.labels), model.get_layer("head").input.shape[-1])
    np.testing.assert_array_equal(feats["a"], feats["same"])
    # atol=0: a random-init frozen base gives tiny activations (~1e-12), compared relatively.
    assert not np.allclose(feats["a"], feats["seed"], rtol=1e-3, atol=0)  # other base weights, other features
    assert not np.allclose(feats["a"], feats["size"], rtol=1e-3, atol=0)  # other image size, other features


def test_trainable_base_is_not_cached():
    from stages.models import build_model
    from stages.training.frozen import split_at_head

    full = build_model("mobilenet_v2", 3, 32, {"weights": None, "trainable": "full", "alpha": 0.35})
    assert split_at_head(full) is None
    frozen = build_model("mobilenet_v2", 3, 32, {"weights": None, "trainable": "frozen", "alpha": 0.35,
                                                 "dropout": 0.2})
    extractor, head = split_at_head(frozen)
    assert [layer.name for layer in head.layers[1:]] == ["head_dropout", "head"]
    assert head.get_layer("head") is frozen.get_layer("head")  # shared: training one trains the other


@pytest.mark.slow
def test_seeds_change_a_run_and_a_seed_repeats_bit_for_bit(tmp_path, monkeypatch):
    """Same seed, same machine: identical weights (op determinism). Another seed: another run."""
    prepared = make_prepared_store(tmp_path)
    tiny = dict(TINY_VIT, epochs=1, dropout=0.1)
    _, first, probs_a = _train_run(prepared, tmp_path / "a", monkeypatch, tiny, seed=0)
    _, again, probs_b = _train_run(prepared, tmp_path / "b", monkeypatch, tiny, seed=0)
    _, other, probs_c = _train_run(prepared, tmp_path / "c", monkeypatch, tiny, seed=1)
    for wa, wb in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(probs_a, probs_b)
    assert not np.array_equal(probs_a, probs_c)
    assert not np.array_equal(first.get_layer("head").get_weights()[0], other.get_layer("head").get_weights()[0])


def test_mixed_precision_policy_follows_the_gpu():
    from stages.training.distribute import mixed_precision_policy

    assert mixed_precision_policy((9, 0)) == "mixed_bfloat16"  # H100
    assert mixed_precision_policy((8, 0)) == "mixed_bfloat16"  # A100
    assert mixed_precision_policy((7, 5)) == "mixed_float16"  # T4: float16 with loss scaling
    assert mixed_precision_policy((0, 0)) == "mixed_float16"


def test_a_smaller_size_trains_on_its_nested_subset_and_the_whole_val_split(prepared, tmp_path, monkeypatch):
    """The run's training rows are exactly nested_subset's; validation is never subset."""
    import stages.train as train_stage
    from stages.training.subsets import nested_subset

    calls = []
    real = train_stage.make_dataset

    def spy(split, batch_size, shuffle, seed, one_hot=True, rows=None):
        calls.append((len(split.labels), shuffle, None if rows is None else rows.tolist()))
        return real(split, batch_size, shuffle, seed, one_hot, rows)

    monkeypatch.setattr(train_stage, "make_dataset", spy)
    monkeypatch.chdir(tmp_path)
    metrics = train("tiny", 3, parse_model_params("tiny", TINY_VIT, [16]), parse_run_params(RUN), prepared, percent=50)
    split = open_split("train", 16, prepared)
    expected = nested_subset(split.paths, split.labels, 50, 3)
    assert len(expected) == 12 and np.bincount(split.labels[expected]).tolist() == [4, 4, 4]
    (n_train, shuffled, rows), (n_val, _, val_rows) = calls
    assert shuffled and n_train == 24 and rows == expected.tolist()
    assert n_val == 6 and val_rows is None  # the whole val split, as at every size
    assert (metrics["train_percent"], metrics["train_images"], metrics["train_images_per_class"],
            metrics["val_images"]) == (50, 12, 4.0, 6)
    assert (tmp_path / "data/models/tiny/50pct/s3.keras").is_file()
    assert (tmp_path / "metrics/train/tiny/50pct/s3.json").is_file()


def _base_weights_file(tmp_path) -> str:
    """A MobileNetV2 (alpha 0.35, 32 px) base weights file: what a user's local pretrained file is."""
    import keras

    keras.utils.set_random_seed(123)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    path = tmp_path / "base.weights.h5"
    base.save_weights(path)
    return str(path)


@pytest.mark.slow
def test_features_stage_stores_a_pretrained_frozen_base_once_for_every_size_and_seed(tmp_path, monkeypatch):
    """features@<model> computes train+val features once; every run (size, seed) reuses them and trains the
    same head as a run that computes its own."""
    from stages.features import compute

    prepared = make_prepared_store(tmp_path, size=32)
    pretrained = dict(TINY_FROZEN, weights=_base_weights_file(tmp_path))
    root = tmp_path / "shared"
    root.mkdir()
    monkeypatch.chdir(root)
    meta = compute("m", parse_model_params("m", pretrained, [32]), parse_run_params(RUN), prepared)
    assert meta["reusable"] is True and {s: v["rows"] for s, v in meta["splits"].items()} == {"train": 24, "val": 6}
    stored = np.load(root / "data/features/m/train.npy")
    assert stored.shape[0] == 24 and stored.ndim == 2

    runs = {}
    for percent, seed in ((50, 0), (50, 1), (100, 0)):
        runs[(percent, seed)] = _train_run(prepared, root, monkeypatch, pretrained, seed=seed, percent=percent)
        assert runs[(percent, seed)][0]["features_source"] == "features stage"
        assert runs[(percent, seed)][0]["stored_features_time_s"] == meta["seconds"] > 0
    assert runs[(50, 0)][0]["train_images"] == 12 and runs[(100, 0)][0]["train_images"] == 24
    # The same run without the stored features computes its own: the same head, the same predictions.
    alone, model_a, probs_a = _train_run(prepared, tmp_path / "alone", monkeypatch, pretrained, seed=1, percent=50)
    assert alone["features_source"] == "this run" and alone["stored_features_time_s"] is None
    _, model_s, probs_s = runs[(50, 1)]
    for wa, ws in zip(model_a.get_layer("head").get_weights(), model_s.get_layer("head").get_weights()):
        np.testing.assert_allclose(wa, ws, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs_a, probs_s, rtol=1e-4, atol=1e-5)
    # Stored features of another base are not used: the run computes its own.
    other = dict(pretrained, weights=None)
    keras_seeded, _, _ = _train_run(prepared, root, monkeypatch, other, seed=0, percent=50)
    assert keras_seeded["features_source"] == "this run"


@pytest.mark.parametrize("over, run_over, reason", [
    (dict(weights=None), {}, "randomly initialised"),  # the seed is the base: nothing to share
    (dict(trainable="full"), {}, "the base trains"),
    ({}, dict(cache_frozen_features=False), "cache_frozen_features is false"),
])
def test_features_stage_writes_only_a_note_when_features_cannot_be_shared(tmp_path, monkeypatch, over, run_over,
                                                                          reason):
    from stages.features import compute

    prepared = make_prepared_store(tmp_path, size=32)
    values = {**TINY_FROZEN, "weights": _base_weights_file(tmp_path), **over}
    monkeypatch.chdir(tmp_path)
    meta = compute("m", parse_model_params("m", values, [32]), parse_run_params(dict(RUN, **run_over)), prepared)
    assert meta["reusable"] is False and reason in meta["reason"]
    assert sorted(p.name for p in (tmp_path / "data/features/m").iterdir()) == ["meta.json"]


@pytest.fixture
def float32_after():
    """Mixed precision sets a global Keras policy: put float32 back for the tests that follow."""
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("run_over, check", [
    (dict(strategy="mirrored"), "replicas"),         # tf.distribute.MirroredStrategy inside train()
    (dict(jit_compile=True), "xla"),                 # XLA-compiled train step
    (dict(mixed_precision=True), "mixed"),           # mixed_float16 on CPU (no GPU: no bfloat16 tensor cores)
])
def test_train_runs_under_every_run_flag(prepared, tmp_path, monkeypatch, float32_after, run_over, check):
    """The run flags are not only parsed: train() really trains under each, and the saved model predicts."""
    import keras

    monkeypatch.chdir(tmp_path)
    metrics = train("tiny", 0, parse_model_params("tiny", TINY_VIT, [16]), parse_run_params(dict(RUN, **run_over)),
                    prepared)
    assert metrics["epochs_run"] >= 1 and metrics["train_images"] == 24
    model = load_model(tmp_path / "data/models/tiny/100pct/s0.keras")
    probs = model.predict(np.asarray(open_split("test", 16, prepared).images), verbose=0)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-3)
    if check == "mixed":  # the saved model computes in float16 but its head answers in float32
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert model.get_layer("base").dtype_policy.compute_dtype == "float16"
        assert model.get_layer("head").dtype_policy.name == "float32"
