"""MobileViTv2 (kimm) with a new softmax head."""

from __future__ import annotations

import math

import keras
import kimm

from stages.core.errors import ParamError
from stages.models import _common

DEFAULTS = {"weights": "imagenet", "trainable": "frozen", "dropout": 0.0, "width": 0.5, "bn_momentum": None}

VARIANTS = {
    0.5: kimm.models.MobileViTV2W050,
    0.75: kimm.models.MobileViTV2W075,
    1.0: kimm.models.MobileViTV2W100,
    1.25: kimm.models.MobileViTV2W125,
    1.5: kimm.models.MobileViTV2W150,
    1.75: kimm.models.MobileViTV2W175,
    2.0: kimm.models.MobileViTV2W200,
}


def imagenet_weights(variant) -> tuple[str, str]:
    """(file name, URL) kimm downloads for weights="imagenet"; kimm caches it
    with keras.utils.get_file under $KERAS_HOME/kimm_models (~/.keras/...)."""
    origin, file_name = next((o, f) for n, o, f in variant.available_weights if n == "imagenet")
    return file_name, origin + file_name


def attention_tokens(image_size: int, options: dict) -> int:
    """Patches of 2 x 2 cells the last MobileViTv2 stage attends over: its feature map is
    image_size / 32 a side (rounded up to whole patches), so 1 patch below 96 px (at 32 px Keras
    warns that the softmax "will always return the value 1")."""
    return max(1, math.ceil(image_size / 64)) ** 2


def build(num_classes: int, image_size: int, options: dict, key_prefix: str):
    opts = _common.check_options(options, DEFAULTS, key_prefix)
    _common.check_common(opts, key_prefix)
    width = opts["width"]
    if isinstance(width, bool) or width not in VARIANTS:
        raise ParamError(
            f"{key_prefix}.width",
            f"must be one of {', '.join(map(str, VARIANTS))}, got {width!r}",
        )
    variant = VARIANTS[width]
    # kimm means to require >= 32 px but swallows that check; enforce it here.
    _common.check_min_size(image_size, 32, key_prefix, "MobileViTv2")
    weights = _common.parse_weights(opts["weights"], key_prefix)
    cached = weights == "imagenet"
    if cached:
        file_name, url = imagenet_weights(variant)
        weights = _common.cached_file(file_name, url, "kimm_models", f"{key_prefix}.weights")

    # kimm loads an existing file path with model.load_weights. Its imagenet
    # file is a full .keras model (with top); keras matches layers by name, so
    # it also fits this no-top base.
    with _common.loading_weights(f"{key_prefix}.weights", weights, cached):
        kimm_model = variant(
            input_shape=(image_size, image_size, 3),
            include_top=False,
            include_preprocessing=False,
            weights=weights,
        )
    # Re-wrap kimm's graph as a plain Functional model: kimm's get_config keeps
    # only constructor args, so a saved frozen base would reload with trainable
    # sublayers, and keras 3 cannot find kimm's unregistered W050..W200 classes
    # when loading. A Functional saves every layer and its trainable flag.
    base = keras.Model(kimm_model.input, kimm_model.output, name="base")
    # MobileViTv2 expects [0, 1] input (kimm's preprocessing mode "0_1"); it is
    # done here rather than by kimm so that every family casts uint8 the same way.
    preprocess = keras.layers.Rescaling(1 / 255, name="preprocess")
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    return _common.assemble(base, preprocess, pool, image_size, num_classes, opts, "mobilevitv2", key_prefix)
