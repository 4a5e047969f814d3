"""Helpers shared by the family modules: option checks, offline weights, head."""

from __future__ import annotations

import contextlib
import os
import socket

import keras

from stages.core.errors import DataError, ParamError

TRAINABLE = ("frozen", "full")
# Seconds to wait for a download to start before treating us as offline.
NETWORK_TIMEOUT = 10


def check_options(options: dict, defaults: dict, key_prefix: str) -> dict:
    """Return ``defaults`` updated with ``options``; reject unknown keys."""
    for key in options:
        if key not in defaults:
            raise ParamError(
                f"{key_prefix}.{key}",
                f"unknown option; known: {', '.join(sorted(defaults))}",
            )
    return {**defaults, **options}


def check_common(opts: dict, key_prefix: str) -> None:
    """Validate the options every family has: trainable and dropout."""
    if opts["trainable"] not in TRAINABLE:
        raise ParamError(
            f"{key_prefix}.trainable",
            f"must be one of {', '.join(TRAINABLE)}, got {opts['trainable']!r}",
        )
    dropout = opts["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ParamError(
            f"{key_prefix}.dropout", f"must be a number in [0, 1), got {dropout!r}"
        )


def check_int(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamError(key, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_min_size(image_size: int, minimum: int, key_prefix: str, what: str) -> None:
    if image_size < minimum:
        raise ParamError(
            f"{key_prefix}.image_size",
            f"{what} needs images of at least {minimum} px, got {image_size}",
        )


def parse_weights(value, key_prefix: str):
    """``weights`` option -> None (random init), "imagenet", or an existing path."""
    key = f"{key_prefix}.weights"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if not isinstance(value, str):
        raise ParamError(key, f'must be "imagenet", null or a file path, got {value!r}')
    if value == "imagenet":
        return value
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        raise ParamError(key, f"weights file not found: {value}")
    return path


def keras_cache_dir(subdir: str = "models") -> str:
    """Where keras.utils.get_file caches downloads: $KERAS_HOME/<subdir> or
    ~/.keras/<subdir>. Read at call time (keras reads KERAS_HOME at import)."""
    home = os.environ["KERAS_HOME"] if "KERAS_HOME" in os.environ else "~/.keras"
    return os.path.join(os.path.expanduser(home), subdir)


@contextlib.contextmanager
def network_timeout(seconds: float = NETWORK_TIMEOUT):
    """Make blocked connections fail fast instead of hanging (no-network runs)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def cached_file(file_name: str, url: str, cache_subdir: str, key: str, file_hash=None) -> str:
    """Local path of a pretrained-weights file, downloading it if needed.

    Uses keras.utils.get_file -- the call keras.applications and kimm make --
    but with the cache dir passed explicitly so it matches keras_cache_dir().
    Offline without the file, fail fast with a DataError saying where to put it.
    """
    cache = keras_cache_dir(cache_subdir)
    path = os.path.join(cache, file_name)
    if os.path.isfile(path):
        return path  # used as is (no hash check), so a hand-copied file works
    # get_file falls back to a temp dir when the cache dir does not exist yet.
    with contextlib.suppress(OSError):
        os.makedirs(cache, exist_ok=True)
    try:
        with network_timeout():
            return keras.utils.get_file(
                file_name,
                url,
                cache_subdir=cache_subdir,
                cache_dir=os.path.dirname(cache),
                file_hash=file_hash,
            )
    except Exception as err:  # URL errors, timeouts, hash mismatch
        raise DataError(
            f"cannot download pretrained weights {file_name} from {url} "
            f"({type(err).__name__}: {err}). For offline use, download that "
            f"file on a connected machine and put it at {path} (the Keras cache: "
            f"$KERAS_HOME/{cache_subdir}, default ~/.keras/{cache_subdir}), or set "
            f"{key} to a local weights file or null."
        ) from err


@contextlib.contextmanager
def loading_weights(key: str, path, from_cache: bool = False):
    """Turn keras's errors for an unusable weights file into a PipelineError:
    a bad user-given file is a params problem, a bad cached file a data one."""
    try:
        yield
    except (ValueError, OSError, KeyError) as err:
        if from_cache:
            raise DataError(
                f"cached weights file {path} does not fit the model ({err}); "
                "delete it so it is downloaded again"
            ) from err
        raise ParamError(key, f"cannot load weights from {path}: {err}") from err


def assemble(base, preprocess, pool, image_size: int, num_classes: int, opts: dict, name: str, key_prefix: str):
    """uint8 image -> preprocess -> base -> pool -> [Dropout] -> softmax "head".

    Preprocessing lives inside the model so a saved .keras file is
    self-contained; the head is float32 so probabilities stay float32 under
    mixed precision. The layout every consumer relies on (stages/training/frozen.py,
    stages/attribution/gradcam.py): the layer feeding the base is named "preprocess", the
    first one after it "pool" (``preprocess`` and ``pool`` are callables that
    create them), the base is the sub-model "base", the classifier the Dense "head".
    """
    set_bn_momentum(base, opts.get("bn_momentum"), key_prefix)
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    x = call_base(base, preprocess(inputs), opts["trainable"])
    x = pool(x)
    if opts["dropout"] > 0:
        x = keras.layers.Dropout(opts["dropout"], name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="head"
    )(x)
    model = keras.Model(inputs, outputs, name=name)
    for layer in ("preprocess", "pool"):  # a family module's bug, not the user's
        if layer not in {lay.name for lay in model.layers}:
            raise ValueError(f"{name}: the family's {layer} callable must create a layer named {layer!r}")
    return model


def set_bn_momentum(base, momentum, key_prefix: str) -> None:
    """Override the BatchNormalization momentum of every layer of ``base``.

    keras.applications use 0.99 (ResNet) and 0.999 (MobileNetV2), tuned for long
    ImageNet runs: trained from scratch for a few hundred steps, the moving
    statistics never converge and validation accuracy stays at chance. A lower
    momentum (e.g. 0.9) fixes that. None keeps the architecture's value.
    """
    if momentum is None:
        return
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum < 1:
        raise ParamError(f"{key_prefix}.bn_momentum", f"must be a number in (0, 1) or null, got {momentum!r}")
    for layer in base._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)


def call_base(base, x, trainable: str):
    """Frozen: no weight updates and BatchNorm in inference mode (training=False),
    the standard keras transfer-learning recipe. Full: everything trains."""
    if trainable == "frozen":
        base.trainable = False
        return base(x, training=False)
    base.trainable = True
    return base(x)
