"""Adding a model family is one module: a throw-away token family, registered from a temporary
folder, goes through train, evaluate and explain with no other edit (docs/models.md: Adding a model family)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import stages.models
from conftest import make_prepared_store
from stages.core import layout
from stages.evaluate import evaluate
from stages.explain import Inputs, Outputs, explain, parse_params
from stages.models import available_models
from stages.train import parse_model_params, parse_run_params, train

# A patch embedding and one attention block: tokens, not feature maps, like DeiT or Swin; its
# Grad-CAM hooks say which layer's tokens to read and that they form a square grid.
TOKMIX = '''
    """Throw-away token family for tests: patches -> one self-attention block -> mean token."""
    import keras

    from stages.core.errors import ParamError
    from stages.models import _common

    DEFAULTS = {"patch_size": 4, "dim": 16, "trainable": "full", "dropout": 0.0}
    TOKEN_LAYERS = ("tokens", "mixed")


    def build(num_classes, image_size, options, key_prefix):
        opts = _common.check_options(options, DEFAULTS, key_prefix)
        _common.check_common(opts, key_prefix)
        patch, dim = opts["patch_size"], opts["dim"]
        grid = image_size // patch
        inputs = keras.Input((image_size, image_size, 3))
        x = keras.layers.Conv2D(dim, patch, strides=patch, name="patchify")(inputs)
        x = keras.layers.Reshape((grid * grid, dim), name="tokens")(x)
        attended = keras.layers.MultiHeadAttention(2, dim // 2, name="attention")(x, x)
        x = keras.layers.Add(name="mixed")([x, attended])
        x = keras.layers.LayerNormalization(name="norm")(x)
        base = keras.Model(inputs, x, name="base")
        preprocess = keras.layers.Rescaling(1 / 255, name="preprocess")
        pool = keras.layers.GlobalAveragePooling1D(name="pool")
        return _common.assemble(base, preprocess, pool, image_size, num_classes, opts, "tokmix", key_prefix)


    def cam_layer(base, requested, key):
        if requested is None:
            return "mixed"
        if requested not in TOKEN_LAYERS:
            raise ParamError(key, f"not a token layer: {requested!r}")
        return requested


    def cam_grid(base):
        side = int(round(base.get_layer("tokens").output.shape[1] ** 0.5))
        return side, side
'''
RUN = dict(strategy="auto", mixed_precision=False, jit_compile=False, deterministic=True)
MODEL = dict(family="tokmix", image_size=16, epochs=2, batch_size=8, optimizer="adam", learning_rate=0.003,
             early_stopping={"monitor": "val_loss", "patience": 0})
EXPLAIN = dict(num_images=3, seed=0, min_grid=2, layers={}, masker="blur(4,4)", shap_max_evals=20, batch_size=16)


@pytest.fixture
def tokmix_registered(tmp_path, monkeypatch):
    folder = tmp_path / "families"
    folder.mkdir()
    (folder / "tokmix.py").write_text(textwrap.dedent(TOKMIX))
    monkeypatch.setattr(stages.models, "__path__", [*stages.models.__path__, str(folder)])
    yield
    sys.modules.pop("stages.models.tokmix", None)


@pytest.mark.slow
def test_a_family_from_one_new_module_trains_evaluates_and_explains(tokmix_registered, tmp_path, monkeypatch):
    assert "tokmix" in available_models()
    prepared = make_prepared_store(tmp_path, size=16)
    monkeypatch.chdir(tmp_path)

    metrics = train("tok", 0, parse_model_params("tok", MODEL, [16]), parse_run_params(RUN), prepared)
    assert metrics["epochs_run"] == 2 and metrics["params_trainable"] == metrics["params_total"] > 0

    # train predicted the test split with the model it trained; evaluate scores that file.
    assert metrics["latency_ms_b1"] > 0 and layout.predictions_path("tok", 0).is_file()
    quality = evaluate([("tok", 100, 0)], 5)["tok-100-0"]
    assert quality["num_test_images"] == 6 and 0 <= quality["accuracy"] <= 1

    cfg = parse_params({"explain": EXPLAIN, "models": {"tok": {"family": "tokmix"}},
                        "study": {"seeds": [0], "train_percent": [100]}})
    outputs = Outputs(Path("plots/explain"), Path("metrics/explain.json"), Path("metrics/cost/explain.json"))
    explained = explain(cfg, Inputs(layout.MODELS, layout.PREDICTIONS, prepared), outputs)
    assert explained["layers"] == {"tok": "mixed"}  # the family's hook chose the layer
    assert json.loads(outputs.metrics.read_text())["images"] == explained["images"]
    assert sorted(p.name for p in outputs.figures.iterdir()) == ["overview.png", "tok.png"]


@pytest.mark.slow
def test_the_token_hooks_give_a_grid_map_that_reproduces_the_prediction(tokmix_registered):
    from stages.attribution import gradcam
    from stages.models import build_model, family_module

    family = family_module("tokmix")
    model = build_model("tokmix", 3, 16, {})
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    layer = gradcam.choose_layer(model, None, 4, "explain.layers.tok", "explain.min_grid", family)
    cm = gradcam.cam_model(model, layer, family=family)
    assert cm.grid == (4, 4)
    cams, probs = gradcam.grad_cam(cm, x)
    assert cams.shape == (2, 16, 16) and np.isfinite(cams).all()
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-5)
