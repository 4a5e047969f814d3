"""ResNet50 (keras.applications) with a new softmax head."""

from __future__ import annotations

import keras

from stages.models import _common

DEFAULTS = {"weights": "imagenet", "trainable": "frozen", "dropout": 0.0, "bn_momentum": None}

# As in keras.src.applications.resnet (BASE_WEIGHTS_PATH, WEIGHTS_HASHES).
WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + WEIGHTS_FILE
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
# resnet50.preprocess_input ("caffe" mode): RGB -> BGR, then minus this BGR mean.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def caffe_preprocess(images):
    """Built-in ops only (a channel-reversing slice + Rescaling), so the saved
    model needs no custom layer. Rescaling also casts uint8 to float."""
    bgr = images[..., ::-1]
    offset = [-m for m in IMAGENET_BGR_MEAN]
    return keras.layers.Rescaling(1.0, offset=offset, name="preprocess")(bgr)


def build(num_classes: int, image_size: int, options: dict, key_prefix: str):
    opts = _common.check_options(options, DEFAULTS, key_prefix)
    _common.check_common(opts, key_prefix)
    _common.check_min_size(image_size, 32, key_prefix, "ResNet50")
    weights = _common.parse_weights(opts["weights"], key_prefix)
    cached = weights == "imagenet"
    if cached:
        weights = _common.cached_file(
            WEIGHTS_FILE, WEIGHTS_URL, "models", f"{key_prefix}.weights", WEIGHTS_MD5
        )

    # A file path goes to keras as `weights=`, which calls model.load_weights.
    with _common.loading_weights(f"{key_prefix}.weights", weights, cached):
        base = keras.applications.ResNet50(
            input_shape=(image_size, image_size, 3),
            include_top=False,
            weights=weights,
            name="base",
        )
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    return _common.assemble(base, caffe_preprocess, pool, image_size, num_classes, opts, "resnet50", key_prefix)
