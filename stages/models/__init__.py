"""Model registry: one module per model family, found by name.

A family is any module in this package whose name does not start with "_";
it exposes ``DEFAULTS`` (its options) and
``build(num_classes, image_size, options, key_prefix) -> keras.Model``.
Adding a family means adding a module; this file does not change.

Every built model takes uint8 RGB images of shape (image_size, image_size, 3),
preprocesses them itself, and outputs float32 softmax probabilities. Its
backbone is the sub-model named "base", its last layer is named "head".
"""

from __future__ import annotations

import importlib
import math
import pkgutil

from stages.core.errors import ParamError


def available_models() -> list[str]:
    """Sorted family names (module names, without importing them)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
    )


def family_module(family: str, key_prefix: str | None = None):
    """Import and return the module of ``family`` (ParamError if unknown)."""
    names = available_models()
    if family not in names:
        key = f"{key_prefix or 'models.' + str(family)}.family"
        raise ParamError(
            key, f"unknown model family {family!r}; available: {', '.join(names)}"
        )
    return importlib.import_module(f"{__name__}.{family}")


def check_options(family: str, options: dict | None, key_prefix: str | None = None) -> dict:
    """Validate a family's options without building it (no weights needed): unknown
    keys, and `trainable`/`dropout` where the family has them. Returns the options
    merged over the family's DEFAULTS. build() still checks family-specific values."""
    from stages.models import _common

    key_prefix = key_prefix or f"models.{family}"
    module = family_module(family, key_prefix)
    if not isinstance(options or {}, dict):
        raise ParamError(key_prefix, f"options must be a mapping, got {options!r}")
    opts = _common.check_options(options or {}, module.DEFAULTS, key_prefix)
    if "trainable" in opts and "dropout" in opts:
        _common.check_common(opts, key_prefix)
    return opts


def build_model(
    family: str,
    num_classes: int,
    image_size: int,
    options: dict,
    key_prefix: str | None = None,
):
    """Build an uncompiled keras.Model of ``family`` (see the module docstring)."""
    key_prefix = key_prefix or f"models.{family}"
    module = family_module(family, key_prefix)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ParamError(
            f"{key_prefix}.num_classes",
            f"a classifier needs at least 2 classes, got {num_classes!r}",
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ParamError(
            f"{key_prefix}.image_size",
            f"must be a positive integer, got {image_size!r}",
        )
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ParamError(key_prefix, f"options must be a mapping, got {options!r}")
    return module.build(num_classes, image_size, options, key_prefix)


def random_init_options(family: str, options: dict) -> dict:
    """``options`` of ``family`` with pretrained weights replaced by random init of the same
    architecture: the family's ``random_init_options`` hook, else ``weights: null``."""
    module = family_module(family)
    if hasattr(module, "random_init_options"):
        return module.random_init_options(options)
    return {**options, "weights": None} if "weights" in module.DEFAULTS else dict(options)


def attention_tokens(family: str, image_size: int, options: dict) -> int | None:
    """The fewest tokens any attention layer of ``family`` sees at ``image_size`` (the family's
    ``attention_tokens`` hook), or None for a family without attention."""
    module = family_module(family)
    hook = getattr(module, "attention_tokens", None)
    return None if hook is None else hook(image_size, {**module.DEFAULTS, **(options or {})})


def count_params(model) -> tuple[int, int]:
    """(total, trainable) parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return int(model.count_params()), int(trainable)


def load_model(path, family: str | None = None):
    """keras.saving.load_model, plus restoring a frozen base's sublayers.

    Plain keras.saving.load_model gives the same predictions; use this one
    when the reloaded model may be trained further. The model's family module
    (every family's when ``family`` is None) is imported first so that anything
    it registers is known to keras.
    """
    import keras

    for name in [family] if family else available_models():
        family_module(name)
    model = keras.saving.load_model(path)
    try:
        base = model.get_layer("base")
    except ValueError:
        return model
    # keras-hub's ViTBackbone saves only its own `trainable` flag, not its
    # sublayers', so a frozen base reloads with trainable sublayers. Setting
    # the flag propagates it (toggled: TF-keras skips a same-value assignment).
    if not base.trainable:
        base.trainable = True
        base.trainable = False
    return model
