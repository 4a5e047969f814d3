"""MobileNetV2 (keras.applications) with a new softmax head."""

from __future__ import annotations

import keras

from stages.core.errors import ParamError
from stages.models import _common

DEFAULTS = {"weights": "imagenet", "trainable": "frozen", "dropout": 0.0, "alpha": 1.0, "bn_momentum": None}

# Widths keras has ImageNet checkpoints for.
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# keras.src.applications.mobilenet_v2.BASE_WEIGHT_PATH
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def imagenet_file_name(alpha: float, image_size: int) -> str:
    """The no-top checkpoint keras loads: trained at image_size if it is one of
    96/128/160/192/224, else the 224 one (same rule as keras.applications)."""
    rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def build(num_classes: int, image_size: int, options: dict, key_prefix: str):
    opts = _common.check_options(options, DEFAULTS, key_prefix)
    _common.check_common(opts, key_prefix)
    alpha = opts["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ParamError(f"{key_prefix}.alpha", f"must be a positive number, got {alpha!r}")
    _common.check_min_size(image_size, 32, key_prefix, "MobileNetV2")
    weights = _common.parse_weights(opts["weights"], key_prefix)
    cached = weights == "imagenet"
    if cached:
        if alpha not in IMAGENET_ALPHAS:
            raise ParamError(
                f"{key_prefix}.alpha",
                f"ImageNet weights exist only for alpha in {IMAGENET_ALPHAS}, got {alpha!r}",
            )
        name = imagenet_file_name(alpha, image_size)
        weights = _common.cached_file(name, WEIGHTS_URL + name, "models", f"{key_prefix}.weights")

    # A file path goes to keras as `weights=`, which calls model.load_weights.
    with _common.loading_weights(f"{key_prefix}.weights", weights, cached):
        base = keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3),
            alpha=float(alpha),
            include_top=False,
            weights=weights,
            name="base",
        )
    # mobilenet_v2.preprocess_input ("tf" mode): x / 127.5 - 1, i.e. [-1, 1].
    preprocess = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    return _common.assemble(base, preprocess, pool, image_size, num_classes, opts, "mobilenet_v2", key_prefix)
