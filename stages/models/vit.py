"""Vision Transformer (keras-hub ViTBackbone) with a class-token softmax head.

Weights come from `preset`, not `weights`: a keras-hub preset name (loaded
through the kagglehub cache), a local preset directory (works offline), or
null/"" for random init from the architecture options. With a preset, the
architecture comes from the preset; architecture options given explicitly must
agree with it. build() fills DEFAULTS itself, so pass only the user's options.
"""

from __future__ import annotations

import os

import keras
import keras_hub

from stages.lib.errors import DataError, ParamError
from stages.models import _common

DEFAULTS = {
    "preset": None,
    "patch_size": 4,
    "num_layers": 4,
    "num_heads": 4,
    "hidden_dim": 128,
    "mlp_dim": 256,
    "trainable": "full",
    "dropout": 0.0,
}
ARCHITECTURE = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")


def resolve_preset(preset, key: str):
    """Return (preset, is_local) or (None, False) for random init."""
    if preset is None or preset == "":
        return None, False
    if not isinstance(preset, str):
        raise ParamError(key, f"must be a preset name, a directory or null, got {preset!r}")
    path = os.path.expanduser(preset)
    if os.path.isdir(path):
        return path, True
    if "://" in preset:  # kaggle://, hf://, ... handles: keras-hub resolves them
        return preset, False
    if os.sep in preset or "/" in preset or preset.startswith((".", "~")):
        raise ParamError(key, f"preset directory not found: {preset}")
    if preset not in keras_hub.models.ViTBackbone.presets:
        known = ", ".join(sorted(keras_hub.models.ViTBackbone.presets))
        raise ParamError(key, f"unknown keras-hub ViT preset {preset!r}; known: {known}")
    return preset, False


def load_preset(preset: str, is_local: bool, key: str):
    try:
        # A preset missing from the kagglehub cache means a download: fail fast.
        with _common.network_timeout():
            return keras_hub.models.ViTBackbone.from_preset(preset, name="base")
    except Exception as err:
        if is_local:
            raise DataError(f"cannot load keras-hub preset directory {preset}: {err}") from err
        cache = os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")
        raise DataError(
            f"keras-hub preset {preset!r} is not in the kagglehub cache ({cache}) and "
            f"cannot be downloaded ({type(err).__name__}: {err}). On a connected "
            f"machine run keras_hub.models.ViTBackbone.from_preset({preset!r})"
            ".save_to_preset(<dir>), copy <dir> here and set "
            f"{key} to it (or copy the kagglehub cache)."
        ) from err


def preset_scaling(preset: str):
    """(scale, offset) from the preset's image converter; [-1, 1] if it has none
    (a backbone-only preset from save_to_preset has no image_converter.json)."""
    try:
        converter = keras_hub.layers.ViTImageConverter.from_preset(preset)
    except FileNotFoundError:
        return 1 / 127.5, -1.0
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    return scale, offset


def check_against_preset(backbone, options: dict, preset: str, image_size: int, key_prefix: str):
    """keras-hub's ViT has no position-embedding interpolation, so the image
    size (and architecture) must be the preset's own."""
    size = backbone.image_shape[0]
    if tuple(backbone.image_shape[:2]) != (image_size, image_size):
        raise ParamError(
            f"{key_prefix}.image_size",
            f"{image_size} differs from the input size {size} of preset {preset}; "
            f"set image_size to {size}",
        )
    for name in ARCHITECTURE:
        actual = getattr(backbone, name)
        if name == "patch_size":
            actual = actual[0]
        # null means "the preset's": lets `dvc exp run -S models.vit.patch_size=null` switch to a preset.
        if options.get(name) is not None and options[name] != actual:
            raise ParamError(
                f"{key_prefix}.{name}",
                f"{options[name]!r} differs from the value {actual} of preset {preset}; "
                "remove it",
            )


def build(num_classes: int, image_size: int, options: dict, key_prefix: str):
    if "weights" in options:
        raise ParamError(
            f"{key_prefix}.weights",
            "not used by vit; pretrained weights come from the `preset` option",
        )
    opts = _common.check_options(options, DEFAULTS, key_prefix)
    _common.check_common(opts, key_prefix)
    preset, is_local = resolve_preset(opts["preset"], f"{key_prefix}.preset")

    if preset is None:
        arch = {k: _common.check_int(opts[k], f"{key_prefix}.{k}") for k in ARCHITECTURE}
        if image_size % arch["patch_size"]:
            raise ParamError(
                f"{key_prefix}.image_size",
                f"{image_size} is not divisible by patch_size {arch['patch_size']}",
            )
        if arch["hidden_dim"] % arch["num_heads"]:
            raise ParamError(
                f"{key_prefix}.hidden_dim",
                f"{arch['hidden_dim']} is not divisible by num_heads {arch['num_heads']}",
            )
        base = keras_hub.models.ViTBackbone(
            image_shape=(image_size, image_size, 3), name="base", **arch
        )
        scale, offset = 1 / 127.5, -1.0  # the [-1, 1] convention of ViT presets
    else:
        base = load_preset(preset, is_local, f"{key_prefix}.preset")
        check_against_preset(base, options, preset, image_size, key_prefix)
        scale, offset = preset_scaling(preset)

    preprocess = keras.layers.Rescaling(scale, offset=offset, name="preprocess")

    def class_token(tokens):  # ViTImageClassifier's default pooling="token"
        return tokens[:, 0]

    return _common.assemble(base, preprocess, class_token, image_size, num_classes, opts, "vit", key_prefix)
