"""Vision Transformer (keras-hub ViTBackbone) with a class-token softmax head.

Weights come from `preset`, not `weights`: a keras-hub preset name (loaded
through the kagglehub cache), a local preset directory (works offline), or
null/"" for random init from the architecture options or a named `size` (SIZES: base16, ...). With a preset, the
architecture comes from the preset; architecture options given explicitly must
agree with it. build() fills DEFAULTS itself, so pass only the user's options.

Grad-CAM (stages/attribution/gradcam.py, through the hooks at the end of this module) reads the patch
tokens entering the last encoder block, class token dropped, reshaped to the patch grid. Not
the last block's output: the head reads only the class token of it and the final LayerNorm is
per token, so the patch tokens there have zero gradient; the last block's attention is what
mixes the patch tokens into the class token. Not attention rollout either: rollout is
class-agnostic (the same map whatever the class) and a different method from the CNNs',
whereas Grad-CAM is class-discriminative and one method for every family. Expect ViT maps to
be noisier: trained on a toy task (tests/test_explain.py) a CNN's map peaked on the object in
9 images of 10, a tiny ViT's in 0 to 6 depending on the seed (its tokens carry position
embeddings and, after the first block, mixed information).
"""

from __future__ import annotations

import os

import kagglehub
import keras
import keras_hub

from stages.core.errors import DataError, ParamError
from stages.models import _common

DEFAULTS = {
    "preset": None,
    "size": None,  # random init: a named architecture (SIZES); explicit architecture keys win
    "patch_size": 4,
    "num_layers": 4,
    "num_heads": 4,
    "hidden_dim": 128,
    "mlp_dim": 256,
    "trainable": "full",
    "dropout": 0.0,
}
ARCHITECTURE = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")
# Named architectures for random init (`size: base16`): the ViT paper's (Dosovitskiy et al. 2021,
# table 1) and DeiT's tiny/small, patch size in the name.
SIZES = {
    f"{name}{patch}": {"patch_size": patch, **arch}
    for name, arch in {
        "tiny": {"num_layers": 12, "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768},
        "small": {"num_layers": 12, "num_heads": 6, "hidden_dim": 384, "mlp_dim": 1536},
        "base": {"num_layers": 12, "num_heads": 12, "hidden_dim": 768, "mlp_dim": 3072},
        "large": {"num_layers": 24, "num_heads": 16, "hidden_dim": 1024, "mlp_dim": 4096},
    }.items()
    for patch in (16, 32)
}
# The architectures of the keras-hub presets the studies use, to build the same ViT with random
# weights offline (benchmarks/study_runtime.py, via random_init_options).
PRESET_ARCHITECTURES = {"vit_base_patch16_224_imagenet21k": SIZES["base16"]}
# keras-hub's layer names inside ViTBackbone.
EMBEDDING, ENCODER = "vit_patching_and_embedding", "vit_encoder"


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


# What loading a preset raises when the preset cannot be had: a failed download (requests' and
# kagglehub's HTTP errors, refused connections and socket timeouts are all OSErrors) or kagglehub
# refusing it; and, for a preset folder, a missing or malformed file (OSError, ValueError, KeyError).
DOWNLOAD_ERRORS = (OSError, kagglehub.exceptions.BackendError, kagglehub.exceptions.NotFoundError,
                   kagglehub.exceptions.UnauthenticatedError, kagglehub.exceptions.DataCorruptionError)
FOLDER_ERRORS = (OSError, ValueError, KeyError)


def load_preset(preset: str, is_local: bool, key: str):
    try:
        # A preset missing from the kagglehub cache means a download: fail fast.
        with _common.network_timeout():
            return keras_hub.models.ViTBackbone.from_preset(preset, name="base")
    except FOLDER_ERRORS if is_local else DOWNLOAD_ERRORS as err:
        if is_local:
            raise DataError(f"cannot load keras-hub preset directory {preset}: {type(err).__name__}: {err}") from err
        cache = os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")
        raise DataError(
            f"keras-hub preset {preset!r} is not in the kagglehub cache ({cache}) and "
            f"cannot be downloaded ({type(err).__name__}: {err}). On a connected "
            f"machine run keras_hub.models.ViTBackbone.from_preset({preset!r})"
            ".save_to_preset(<dir>), copy <dir> here and set "
            f"{key} to it (or copy the kagglehub cache). Or train from random init: set {key} to "
            f"null and {key.rpartition('.')[0]}.size to one of {', '.join(SIZES)} (no pretrained weights)."
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


def random_init_options(options: dict) -> dict:
    """``options`` with the preset replaced by random init of its architecture (KeyError if unknown)."""
    if options.get("preset") is None:
        return dict(options)
    return {**options, **PRESET_ARCHITECTURES[options["preset"]], "preset": None}


def random_init_architecture(options: dict, key_prefix: str) -> dict:
    """The architecture of a randomly initialised ViT: each key given (not null) in ``options``,
    else the named ``size``'s, else (no size) the small default of DEFAULTS. A key set to null with
    no size to fill it is a problem; all such keys are reported at once, with the sizes to choose."""
    size = options.get("size")
    if size is not None and size not in SIZES:
        raise ParamError(f"{key_prefix}.size", f"unknown size {size!r}; known: {', '.join(SIZES)}")
    fallback = SIZES[size] if size is not None else {k: DEFAULTS[k] for k in ARCHITECTURE}
    arch = {k: options[k] if options.get(k) is not None else (None if k in options and size is None
                                                                 else fallback[k]) for k in ARCHITECTURE}
    missing = [k for k, v in arch.items() if v is None]
    if missing:
        why = (f"null with preset null and no size: give it, or set {key_prefix}.size "
               f"(one of {', '.join(SIZES)}) for a named architecture")
        problems = [(f"{key_prefix}.{k}", why) for k in missing]
        raise ParamError(*problems[0], problems=problems)
    return {k: _common.check_int(v, f"{key_prefix}.{k}") for k, v in arch.items()}


def attention_tokens(image_size: int, options: dict) -> int | None:
    """Image patches the encoder attends over: (image_size // patch_size)^2 (the class token
    aside); None for a preset whose patch size is not known here."""
    if options.get("preset") is not None:
        patch = (PRESET_ARCHITECTURES.get(options["preset"]) or {}).get("patch_size")
    else:
        patch = random_init_architecture(options, "models.vit")["patch_size"]
    return None if not patch else (image_size // patch) ** 2


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
        arch = random_init_architecture(options, key_prefix)
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
        if opts["size"] is not None:
            raise ParamError(f"{key_prefix}.size", f"{opts['size']!r} is for random init (preset null); with "
                                                   f"preset {preset} the architecture is the preset's")
        base = load_preset(preset, is_local, f"{key_prefix}.preset")
        check_against_preset(base, options, preset, image_size, key_prefix)
        scale, offset = preset_scaling(preset)

    preprocess = keras.layers.Rescaling(scale, offset=offset, name="preprocess")
    return _common.assemble(base, preprocess, class_token, image_size, num_classes, opts, "vit", key_prefix)


def class_token(tokens):
    """The first token, ViTImageClassifier's default pooling="token". Built-in layers (a crop
    named "pool", as the registry's layout wants, and a flatten), so the saved model needs no
    custom object."""
    cropped = keras.layers.Cropping1D((0, tokens.shape[1] - 1), name="pool")(tokens)
    return keras.layers.Flatten(name="class_token")(cropped)


# --- Grad-CAM hooks (stages/attribution/gradcam.py) ---------------------------------------------------

def cam_token_layers(base) -> list[str]:
    """Layers whose output is the token sequence: the embedding, then every encoder block."""
    return [EMBEDDING, *(block.name for block in base.get_layer(ENCODER).encoder_layers)]


def cam_layer(base, requested: str | None, key: str) -> str:
    names = cam_token_layers(base)
    if requested is None:
        return names[-2]  # the tokens entering the last block (see the module docstring)
    if requested not in names:
        raise ParamError(key, f"no token layer {requested!r} in the ViT base; one of {', '.join(names[:-1])}")
    if requested == names[-1]:
        raise ParamError(key, f"{requested!r} is the last encoder block: its patch tokens have zero gradient "
                              f"(the head reads only the class token); use {names[-2]!r}")
    return requested


def cam_grid(base) -> tuple[int, int]:
    patch = base.patch_size if isinstance(base.patch_size, (tuple, list)) else (base.patch_size,) * 2
    return base.image_shape[0] // patch[0], base.image_shape[1] // patch[1]


def cam_lower(base, layer: str):
    """Base input -> (tokens output by ``layer``, base output).

    Hand-written: keras-hub's ViTEncoder runs its blocks inside one layer call, so a block's
    output is no tensor of the backbone's graph to cut a sub-model at; this repeats
    ViTEncoder.call's steps (dropout, blocks, final LayerNorm) with its public attributes.
    tests/test_explain.py checks that the result equals the model's own prediction.
    """
    embed, encoder = base.get_layer(EMBEDDING), base.get_layer(ENCODER)
    stop = cam_token_layers(base).index(layer)  # 0 = the embedding, i = after block i

    def lower(x):
        x = encoder.dropout(embed(x))
        feature = x
        for i, block in enumerate(encoder.encoder_layers, start=1):
            x = block(x)
            if i == stop:
                feature = x
        return feature, encoder.layer_norm(x)

    return lower
