"""Model registry and families: build, train a step, save/reload, offline weights.

Everything runs offline on tiny inputs: 32 px CNNs, a 2-layer ViT at 16 px.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import keras
import kimm
import keras_hub
import numpy as np
import pytest

from stages.core.errors import DataError, ParamError
from stages.models import available_models, build_model, family_module, load_model
from stages.models import mobilenet_v2, mobilevitv2, resnet50

TINY_VIT = {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}


def images(size: int, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def no_network(monkeypatch):
    """Fail every host lookup, so "download" paths fail fast even when online."""

    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "network disabled by test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def test_registry_lists_family_modules():
    """Every module of stages/models not starting with "_" is a family, with the builder interface."""
    folder = Path(family_module("vit").__file__).parent
    assert available_models() == sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    for family in available_models():
        module = family_module(family)
        assert {"trainable", "dropout"} <= set(module.DEFAULTS) and callable(module.build)
        assert ("weights" in module.DEFAULTS) != ("preset" in module.DEFAULTS)  # one way to name weights


def offline_options(family: str) -> dict:
    """A family's defaults with random init: no download, whatever the family."""
    defaults = family_module(family).DEFAULTS
    return {key: None for key in ("weights", "preset") if key in defaults}


@pytest.mark.slow
@pytest.mark.parametrize("family", available_models())
def test_every_family_builds_the_registry_layout(family, tmp_path):
    """The layout the other stages rely on (models/__init__.py docstring), for any family."""
    model = build_model(family, 3, 32, offline_options(family))
    assert model.input.dtype == "uint8" and tuple(model.input.shape) == (None, 32, 32, 3)
    assert isinstance(model.get_layer("base"), keras.Model)
    head = model.get_layer("head")
    assert isinstance(head, keras.layers.Dense) and head.activation is keras.activations.softmax
    assert model.get_layer("preprocess") and model.get_layer("pool")
    x = images(32)
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32 and probs.shape == (4, 3)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras", family).predict(x, verbose=0), probs, atol=1e-6)


# The known families' own preprocessing: family, image size, options, reference of uint8 images
FAMILIES = [
    ("mobilenet_v2", 32, {"weights": None, "alpha": 0.35, "dropout": 0.2},
     lambda x: keras.applications.mobilenet_v2.preprocess_input(x.astype("float32"))),
    ("resnet50", 32, {"weights": None},
     lambda x: keras.applications.resnet50.preprocess_input(x.astype("float32"))),
    ("mobilevitv2", 32, {"weights": None}, lambda x: x / 255.0),
    ("vit", 16, TINY_VIT, lambda x: x / 127.5 - 1.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("family,size,options,reference", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_build_train_save_reload(family, size, options, reference, tmp_path):
    model = build_model(family, 3, size, options)
    base, head = model.get_layer("base"), model.get_layer("head")
    assert model.input.dtype == "uint8" and tuple(model.input.shape) == (None, size, size, 3)
    assert model.output.dtype == "float32" and head.activation is keras.activations.softmax

    x = images(size)
    preprocess = keras.Model(model.input, model.get_layer("preprocess").output)
    np.testing.assert_allclose(preprocess.predict(x, verbose=0), reference(x), rtol=1e-5, atol=1e-4)

    frozen = family_module(family).DEFAULTS["trainable"] == "frozen"
    assert base.trainable is not frozen
    base_before, head_before = base.get_weights(), head.get_weights()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    base_changed = [not np.array_equal(a, b) for a, b in zip(base_before, base.get_weights())]
    head_changed = [not np.array_equal(a, b) for a, b in zip(head_before, head.get_weights())]
    assert all(head_changed)
    if frozen:  # all base weights, BatchNorm moving statistics included
        assert not any(base_changed)
    else:
        assert sum(base_changed) > len(base_changed) // 2

    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32 and probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0), probs, atol=1e-6)
    reloaded = load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), probs, atol=1e-6)
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)


def test_frozen_vit_stays_frozen_after_reload(tmp_path):
    model = build_model("vit", 2, 16, {**TINY_VIT, "trainable": "frozen"})
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    model.save(tmp_path / "vit.keras")
    reloaded = load_model(tmp_path / "vit.keras")
    assert [w.path for w in reloaded.trainable_weights] == ["head/kernel", "head/bias"]


def test_head_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("mobilenet_v2", 2, 32, {"weights": None, "alpha": 0.35})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("base").compute_dtype == "float16"
    assert model.predict(images(32, 2), verbose=0).dtype == np.float32


# --- pretrained weights, offline ----------------------------------------------------------


class Requested(Exception):
    """Raised by a get_file spy to stop keras/kimm once they ask for a download."""


@pytest.fixture
def get_file_spy(monkeypatch):
    """Record what keras.applications and kimm would download, without downloading."""
    from keras.src.utils import file_utils

    calls = []

    def spy(fname=None, origin=None, **kwargs):
        calls.append((fname, origin, kwargs.get("file_hash")))
        raise Requested

    monkeypatch.setattr(file_utils, "get_file", spy)  # keras.applications
    monkeypatch.setattr(keras.utils, "get_file", spy)  # kimm
    return calls


def test_weights_file_names_match_what_the_libraries_download(get_file_spy):
    expected = [
        ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
         lambda: keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False)),
        ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5",
         lambda: keras.applications.MobileNetV2((96, 96, 3), alpha=1.0, include_top=False)),
        ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
         lambda: keras.applications.ResNet50(include_top=False, input_shape=(32, 32, 3))),
        ("mobilevitv2w050_mobilevitv2_050.cvnets_in1k.keras",
         lambda: kimm.models.MobileViTV2W050(input_shape=(32, 32, 3), include_top=False)),
    ]
    ours = [
        (mobilenet_v2.imagenet_file_name(0.35, 32), mobilenet_v2.WEIGHTS_URL, None),
        (mobilenet_v2.imagenet_file_name(1.0, 96), mobilenet_v2.WEIGHTS_URL, None),
        (resnet50.WEIGHTS_FILE, resnet50.WEIGHTS_URL.rsplit("/", 1)[0] + "/", resnet50.WEIGHTS_MD5),
        (*mobilevitv2.imagenet_weights(mobilevitv2.VARIANTS[0.5]), None),
    ]
    for (name, make), (our_name, our_url, our_hash) in zip(expected, ours):
        with pytest.raises(Requested):
            make()
        fname, origin, file_hash = get_file_spy[-1]
        assert our_name == name == fname
        assert origin.startswith(our_url) and origin.endswith(name)
        assert file_hash == our_hash


def save_legacy_h5(model, path):
    """The keras.applications cache files are legacy (Keras 2) .h5 files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)  # a .h5 suffix selects the legacy format


def test_mobilenet_v2_imagenet_from_keras_cache(keras_home, no_network):
    saved = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    save_legacy_h5(saved, keras_home / "models" / name)
    model = build_model("mobilenet_v2", 2, 32, {"alpha": 0.35})  # weights: imagenet by default
    assert_same_weights(model.get_layer("base"), saved)


def test_resnet50_imagenet_from_keras_cache(keras_home, no_network):
    saved = keras.applications.ResNet50(include_top=False, input_shape=(32, 32, 3), weights=None)
    save_legacy_h5(saved, keras_home / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    model = build_model("resnet50", 2, 32, {"weights": "imagenet"})
    assert_same_weights(model.get_layer("base"), saved)


@pytest.mark.slow
def test_mobilevitv2_weights_from_file_and_from_kimm_cache(keras_home, no_network, tmp_path):
    saved = kimm.models.MobileViTV2W050(
        input_shape=(32, 32, 3), include_top=False, include_preprocessing=False, weights=None
    )
    saved.save_weights(tmp_path / "mine.weights.h5")
    model = build_model("mobilevitv2", 2, 32, {"weights": str(tmp_path / "mine.weights.h5")})
    assert_same_weights(model.get_layer("base"), saved)

    # kimm's ImageNet file is a whole model (with top) saved as .keras.
    full = kimm.models.MobileViTV2W050(input_shape=(32, 32, 3), weights=None)
    (keras_home / "kimm_models").mkdir()
    full.save(keras_home / "kimm_models" / "mobilevitv2w050_mobilevitv2_050.cvnets_in1k.keras")
    base = build_model("mobilevitv2", 2, 32, {"weights": "imagenet"}).get_layer("base")
    full_weights = {w.path: w.numpy() for w in full.weights}
    assert len(base.weights) == len(full.weights) - 2  # all but the 1000-class classifier
    for w in base.weights:
        np.testing.assert_array_equal(w.numpy(), full_weights[w.path])


def test_vit_from_local_preset_directory(tmp_path):
    backbone = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), **TINY_VIT)
    backbone.save_to_preset(tmp_path / "preset")
    model = build_model("vit", 2, 16, {"preset": str(tmp_path / "preset")})
    assert_same_weights(model.get_layer("base"), backbone)
    assert model.get_layer("preprocess").scale == pytest.approx(1 / 127.5)  # no converter: [-1, 1]

    # A preset's image converter decides the scaling.
    converter = keras_hub.layers.ViTImageConverter(
        image_size=(16, 16), scale=[1 / 255] * 3, offset=[-0.5, 0.0, 0.5]
    )
    converter.save_to_preset(tmp_path / "preset")
    model = build_model("vit", 2, 16, {"preset": str(tmp_path / "preset")})
    x = images(16, 1)
    out = keras.Model(model.input, model.get_layer("preprocess").output).predict(x, verbose=0)
    np.testing.assert_allclose(out, x / 255 + np.array([-0.5, 0.0, 0.5]), atol=1e-5)

    with pytest.raises(ParamError) as err:  # no position-embedding interpolation
        build_model("vit", 2, 32, {"preset": str(tmp_path / "preset")})
    assert err.value.key == "models.vit.image_size" and "input size 16" in str(err.value)
    with pytest.raises(ParamError) as err:
        build_model("vit", 2, 16, {"preset": str(tmp_path / "preset"), "patch_size": 8})
    assert err.value.key == "models.vit.patch_size" and "value 4" in str(err.value)
    # Matching or null architecture keys are accepted with a preset (null = the preset's value).
    nulls = {k: None for k in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")}
    model = build_model("vit", 2, 16, {"preset": str(tmp_path / "preset"), **nulls})
    assert_same_weights(model.get_layer("base"), backbone)
    with pytest.raises(ParamError) as err:  # but random init needs them all
        build_model("vit", 2, 16, {"preset": None, **nulls})
    assert err.value.key == "models.vit.patch_size"


@pytest.mark.parametrize("family,file_name", [
    ("mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    ("resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("mobilevitv2", "mobilevitv2w050_mobilevitv2_050.cvnets_in1k.keras"),
])
def test_missing_imagenet_weights_fail_fast_offline(family, file_name, keras_home, no_network):
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        build_model(family, 2, 32, {"weights": "imagenet"})
    assert time.monotonic() - start < 30
    message = str(err.value)
    assert file_name in message and str(keras_home) in message and "https://" in message


def test_missing_named_vit_preset_fails_fast_offline(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        build_model("vit", 2, 224, {"preset": "vit_base_patch16_224_imagenet21k"})
    assert time.monotonic() - start < 30
    assert "vit_base_patch16_224_imagenet21k" in str(err.value)
    assert "save_to_preset" in str(err.value) and "models.vit.preset" in str(err.value)
    # ... and, like the CNNs' message, says that random init is possible and how
    assert "Or train from random init: set models.vit.preset to null and models.vit.size to one of tiny16" \
        in str(err.value)


def test_mobilevitv2_parameter_counts_and_scaling():
    """ImageNet-head sizes from the MobileViTv2 paper / timm, within 1 %."""
    for width, millions in [(0.5, 1.38), (1.0, 4.92), (2.0, 18.48)]:
        net = mobilevitv2.VARIANTS[width](input_shape=(32, 32, 3), weights=None)  # 1000 classes
        assert net.count_params() == pytest.approx(millions * 1e6, rel=0.01)
    # build() scales by 1/255 itself because this is kimm's own convention.
    assert net.preprocessing_mode == "0_1"


# --- bad params ---------------------------------------------------------------------------

BAD = [
    ("nope", 2, 32, {}, "models.nope.family"),
    ("resnet50", 2, 32, {"alhpa": 1.0}, "models.resnet50.alhpa"),
    ("resnet50", 1, 32, {"weights": None}, "models.resnet50.num_classes"),
    ("mobilenet_v2", 2, 32, {"weights": "no/such/file.h5"}, "models.mobilenet_v2.weights"),
    ("mobilenet_v2", 2, 16, {"weights": None}, "models.mobilenet_v2.image_size"),
    ("mobilenet_v2", 2, 32, {"alpha": 0.6}, "models.mobilenet_v2.alpha"),  # no ImageNet weights
    ("mobilenet_v2", 2, 32, {"trainable": "half"}, "models.mobilenet_v2.trainable"),
    ("mobilenet_v2", 2, 32, {"dropout": 1.0}, "models.mobilenet_v2.dropout"),
    ("resnet50", 2, 31, {"weights": None}, "models.resnet50.image_size"),
    ("mobilevitv2", 2, 32, {"width": 0.6}, "models.mobilevitv2.width"),
    ("mobilevitv2", 2, 16, {"weights": None}, "models.mobilevitv2.image_size"),
    ("vit", 2, 30, {}, "models.vit.image_size"),  # not divisible by patch_size 4
    ("vit", 2, 32, {"hidden_dim": 30}, "models.vit.hidden_dim"),  # not divisible by num_heads
    ("vit", 2, 32, {"num_layers": 0}, "models.vit.num_layers"),
    ("vit", 2, 32, {"weights": "imagenet"}, "models.vit.weights"),
    ("vit", 2, 32, {"preset": "./no/such/preset"}, "models.vit.preset"),
    ("vit", 2, 32, {"preset": "vit_no_such_preset"}, "models.vit.preset"),
]


@pytest.mark.parametrize("family,num_classes,size,options,key", BAD, ids=[b[4] for b in BAD])
def test_bad_params_name_their_key(family, num_classes, size, options, key):
    with pytest.raises(ParamError) as err:
        build_model(family, num_classes, size, options)
    assert err.value.key == key
    assert str(err.value).startswith(f"params.yaml: {key}: ")


def test_errors_use_the_callers_key_prefix_and_name_the_file(tmp_path):
    with pytest.raises(ParamError, match=r"models\.cnn_a\.alhpa: unknown option; known: alpha, "):
        build_model("mobilenet_v2", 2, 32, {"alhpa": 1}, key_prefix="models.cnn_a")
    with pytest.raises(ParamError, match="no/such/file.h5"):
        build_model("resnet50", 2, 32, {"weights": "no/such/file.h5"})
    with pytest.raises(ParamError, match="mobilenet_v2, mobilevitv2, resnet50, vit"):
        build_model("efficientnet", 2, 32, {})
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(ParamError) as err:
        build_model("mobilenet_v2", 2, 32, {"weights": str(garbage), "alpha": 0.35})
    assert err.value.key == "models.mobilenet_v2.weights" and str(garbage) in str(err.value)


def test_bn_momentum_overrides_every_batchnorm_layer_of_the_base():
    model = build_model("mobilenet_v2", 3, 32, {"weights": None, "alpha": 0.35, "bn_momentum": 0.9})
    bns = [l for l in model.get_layer("base")._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) > 10 and {l.momentum for l in bns} == {0.9}
    default = build_model("mobilenet_v2", 3, 32, {"weights": None, "alpha": 0.35})
    assert {l.momentum for l in default.get_layer("base")._flatten_layers()
            if isinstance(l, keras.layers.BatchNormalization)} == {0.999}  # keras' own value kept
    with pytest.raises(ParamError, match=r"models\.r\.bn_momentum"):
        build_model("resnet50", 3, 32, {"weights": None, "bn_momentum": 1.5}, key_prefix="models.r")


def test_a_bug_while_loading_a_preset_is_not_reported_as_a_missing_preset(tmp_path, monkeypatch):
    """Only download/cache failures read "not in the kagglehub cache"; anything else propagates."""
    def broken(*args, **kwargs):
        raise TypeError("a bug, not a missing preset")

    monkeypatch.setattr(keras_hub.models.ViTBackbone, "from_preset", broken)
    with pytest.raises(TypeError, match="a bug"):
        build_model("vit", 2, 224, {"preset": "vit_base_patch16_224_imagenet21k"})
    (tmp_path / "preset").mkdir()
    with pytest.raises(TypeError, match="a bug"):
        build_model("vit", 2, 16, {"preset": str(tmp_path / "preset")})


def test_a_random_init_vit_takes_a_named_size_and_reports_every_missing_key_at_once():
    from stages.models.vit import SIZES, random_init_architecture

    nulls = {k: None for k in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")}
    with pytest.raises(ParamError) as err:  # the dogs preset's keys with preset: null and no size
        random_init_architecture({"preset": None, **nulls}, "models.vit")
    assert [key for key, _ in err.value.problems] == [f"models.vit.{k}" for k in nulls]  # one run, not five
    assert "models.vit.size" in str(err.value) and "base16" in str(err.value)
    assert random_init_architecture({**nulls, "size": "base16"}, "models.vit") == SIZES["base16"] == {
        "patch_size": 16, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072}
    assert random_init_architecture({"size": "tiny16", "num_layers": 2}, "models.vit")["num_layers"] == 2
    assert random_init_architecture({}, "models.vit")["hidden_dim"] == 128  # the small default
    with pytest.raises(ParamError, match="models.vit.size: unknown size 'huge16'"):
        random_init_architecture({"size": "huge16"}, "models.vit")


def test_a_size_is_for_random_init_only():
    with pytest.raises(ParamError, match=r"models.vit.size: 'base16' is for random init"):
        build_model("vit", 3, 224, {"preset": "vit_base_patch16_224_imagenet21k", "size": "base16"}, "models.vit")


@pytest.mark.parametrize("size, tokens", [(32, 1), (64, 1), (96, 4), (128, 4), (256, 16)])
def test_mobilevitv2_attention_tokens_match_what_keras_warns_about(size, tokens):
    """The hook's count is what the built model attends over: Keras warns of a softmax over an
    axis of size 1 exactly when the hook says 1 token."""
    import warnings

    from stages.models import attention_tokens, build_model

    assert attention_tokens("mobilevitv2", size, {}) == tokens
    if size > 96:
        return  # the bigger models build slowly; 32/64/96 cover both sides of the limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model("mobilevitv2", 3, size, dict(weights=None, trainable="full", width=0.5))
    single = [w for w in caught if "This axis has size 1" in str(w.message)]
    assert bool(single) == (tokens == 1)


def test_vit_attention_tokens_are_its_patches_and_cnns_have_none():
    from stages.models import attention_tokens

    assert attention_tokens("vit", 32, {"patch_size": 4}) == 64
    assert attention_tokens("vit", 32, {"patch_size": 32}) == 1
    assert attention_tokens("vit", 224, {"preset": "vit_base_patch16_224_imagenet21k"}) == 196
    assert attention_tokens("mobilenet_v2", 32, {}) is None and attention_tokens("resnet50", 32, {}) is None
