"""Grad-CAM for every model family of the registry: CNNs, MobileViTv2 and ViT.

A model of the registry is ``uint8 image -> preprocess -> "base" -> pool (or class token)
-> [head_dropout] -> Dense softmax "head"`` (stages/models/_common.py). Grad-CAM needs the
activations of one feature map of the base and the gradient of the class score with respect
to them, so the forward pass is split in three: ``pre`` (image -> base input), ``lower``
(base input -> feature map and base output) and ``post`` (base output -> the head's input).

The class score is the predicted class's **logit**, recovered as the head's kernel and bias
applied to its input: the softmax probability saturates (gradient ~0) on confident images
and mixes every other class into the gradient, the logit does neither (as in the Grad-CAM
paper, which uses the score before the softmax).

Every family gets the same method, so the maps compare across families:

- CNNs (and MobileViTv2, whose base is a plain Functional model over kimm's graph): a
  convolutional feature map of the base. The default is the *last* layer whose output is a
  square 4-D map of at least ``min_grid`` x ``min_grid`` cells. The very last map is not
  used because at the default 32 px it is 1x1 (MobileNetV2, ResNet50 and MobileViTv2 all
  downsample 32x): a 1x1 Grad-CAM is one number, it cannot localise anything.
- Token families (ViT): a family module that defines the token hooks below says which layer's
  tokens to read and how they map to the patch grid; Grad-CAM then runs on that grid the same
  way. The ViT's choice and why: stages/models/vit.py.

Family hooks (optional functions of a family module; without them the base's feature maps
are used as above). A family whose base outputs tokens defines:

- ``cam_layer(base, requested, key) -> str``: the layer whose output tokens Grad-CAM reads --
  the family's default when ``requested`` is None, else ``requested`` checked (ParamError
  naming ``key`` when the family cannot explain from it);
- ``cam_grid(base) -> (h, w)``: the patch grid; the tokens are the last h*w of the layer's
  sequence in row-major order (leading class/extra tokens are dropped);
- ``cam_lower(base, layer)`` (optional): a callable ``base input -> (tokens of layer, base
  output)``, for a base whose token layers are not tensors of its graph (keras-hub's ViT);
  the default is a sub-model of the base's graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf

from stages.core.errors import DataError, ParamError

# Layers whose output is a map but not a feature map: padding shifts the grid off the image.
NOT_FEATURE_MAPS = (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)


@dataclass
class CamModel:
    """A model split around the feature map Grad-CAM reads."""

    pre: keras.Model  # uint8 image -> the base's input (the model's own preprocessing)
    lower: Callable  # base input -> (feature map [B, h, w, c] or tokens [B, 1 + h*w, c], base output)
    post: keras.Model  # base output -> the head's input (pooling / class token, dropout)
    head: keras.layers.Dense
    layer: str  # the base layer whose output is the feature map
    grid: tuple[int, int] | None = None  # (h, w) of a token sequence to reshape; None for maps


def split_model(model: keras.Model, path) -> tuple[keras.Model, keras.Model, keras.Model, keras.layers.Dense]:
    """(pre, base, post, head) of a registry model; DataError if it does not have that layout.

    The registry's layout (stages/models/_common.py assemble) names the layer that feeds the
    base "preprocess" and the one the base feeds "pool"; each is called once, so their public
    ``output`` / ``input`` are the outer graph's tensors (a nested model's own .input/.output
    are its inner graph's).
    """
    try:
        base, head = model.get_layer("base"), model.get_layer("head")
        preprocess, pool = model.get_layer("preprocess"), model.get_layer("pool")
    except ValueError as err:
        raise DataError(f"{path}: expected layers 'preprocess', 'base' (a sub-model), 'pool' and 'head' "
                        f"(a Dense layer) as the model registry builds them ({err})") from err
    if not isinstance(head, keras.layers.Dense):
        raise DataError(f"{path}: layer 'head' is a {type(head).__name__}, expected Dense")
    pre = keras.Model(model.input, preprocess.output, name="explain_pre")
    post = keras.Model(pool.input, head.input, name="explain_post")
    return pre, base, post, head


def has_token_hooks(family) -> bool:
    """Whether ``family`` (a family module or None) explains from tokens (see the module docstring)."""
    return family is not None and hasattr(family, "cam_grid")


def _spatial(layer) -> tuple[int, int] | None:
    shape = tuple(layer.output.shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def default_conv_layer(base, min_grid: int, image_shape: tuple[int, int]) -> str | None:
    """The last layer of ``base`` with a feature map of at least ``min_grid`` cells a side.

    The map must have the image's aspect ratio: MobileViTv2's transformer blocks run on
    unfolded patches, 4-D tensors shaped (pixels per patch, patches, channels), not maps.
    """
    for layer in reversed(base.layers):
        hw = _spatial(layer)
        if (hw is None or isinstance(layer, NOT_FEATURE_MAPS) or min(hw) < min_grid
                or hw[0] * image_shape[1] != hw[1] * image_shape[0]):
            continue
        return layer.name
    return None


def choose_layer(model: keras.Model, layer: str | None, min_grid: int, key: str, min_grid_key: str,
                 family=None) -> str:
    """The base layer Grad-CAM reads: ``layer`` if given (checked), else the family's default.

    ``family``: the model's family module, for its hooks (None: feature maps of the base).
    ``key`` is the params key naming an explicit layer (explain.layers.<model>);
    ``min_grid_key`` the one blamed when no default layer is large enough.
    """
    base = model.get_layer("base")
    if has_token_hooks(family):
        grid = tuple(family.cam_grid(base))
        if min(grid) < min_grid:
            raise ParamError(min_grid_key, f"{model.name}: its patch grid {grid} is smaller than "
                                           f"{min_grid}x{min_grid}")
        return family.cam_layer(base, layer, key)
    image_shape = tuple(model.input_shape[1:3])
    if layer is None:
        chosen = default_conv_layer(base, min_grid, image_shape)
        if chosen is None:
            raise ParamError(min_grid_key, f"{model.name}: no feature map of its base at {image_shape[0]} px is "
                                           f"at least {min_grid}x{min_grid}; lower it or name a layer in {key}")
        return chosen
    try:
        found = base.get_layer(layer)
    except ValueError:
        raise ParamError(key, f"no layer {layer!r} in the base of {model.name}") from None
    if _spatial(found) is None:
        raise ParamError(key, f"layer {layer!r} outputs {tuple(found.output.shape)}, not a 4-D feature map")
    return layer


def _graph_lower(base, layer: str) -> keras.Model:
    return keras.Model(base.input, [base.get_layer(layer).output, base.output], name="explain_lower")


def cam_model(model: keras.Model, layer: str, path="model", family=None) -> CamModel:
    """Split ``model`` around base layer ``layer`` (from :func:`choose_layer`, same ``family``)."""
    pre, base, post, head = split_model(model, path)
    if has_token_hooks(family):
        lower = family.cam_lower(base, layer) if hasattr(family, "cam_lower") else _graph_lower(base, layer)
        return CamModel(pre, lower, post, head, layer, grid=tuple(family.cam_grid(base)))
    return CamModel(pre, _graph_lower(base, layer), post, head, layer)


def logits_and_features(cm: CamModel, images, tape: tf.GradientTape | None = None):
    """(logits [B, K], feature map [B, ...]) of uint8 ``images``; the feature watched by ``tape``."""
    x = cm.pre(images)
    feature, base_out = cm.lower(x)
    if tape is not None:
        tape.watch(feature)
    pooled = cm.post(base_out)
    logits = tf.matmul(tf.cast(pooled, cm.head.kernel.dtype), cm.head.kernel) + cm.head.bias
    return logits, feature


def _to_grid(values: np.ndarray, grid: tuple[int, int] | None) -> np.ndarray:
    """Tokens [B, 1 + h*w, c] -> [B, h, w, c] without the class token; maps pass through."""
    if grid is None:
        return values
    patches = values[:, -grid[0] * grid[1]:]  # the class token comes first
    return patches.reshape(len(values), grid[0], grid[1], values.shape[-1])


def grad_cam(cm: CamModel, images: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps [N, H, W] in [0, 1] at the image size, and the probabilities [N, K].

    ``classes``: the class explained per image; default the predicted one.
    """
    images = tf.convert_to_tensor(np.asarray(images))
    with tf.GradientTape() as tape:
        logits, feature = logits_and_features(cm, images, tape)
        if classes is None:
            classes = tf.argmax(logits, axis=1)
        score = tf.gather(logits, tf.convert_to_tensor(classes, tf.int64), axis=1, batch_dims=1)
    grads = tape.gradient(score, feature)
    acts = _to_grid(np.asarray(feature, np.float32), cm.grid)
    grads = _to_grid(np.asarray(grads, np.float32), cm.grid)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per channel: the spatial mean
    cams = np.maximum((weights * acts).sum(axis=-1), 0)
    size = tuple(images.shape[1:3])
    probs = tf.nn.softmax(logits).numpy()
    return np.stack([normalise(upsample(c, size)) for c in cams]), probs


def normalise(cam: np.ndarray) -> np.ndarray:
    # Divided by the maximum (not min-max): 0 keeps meaning "no evidence for the class".
    peak = cam.max()
    return cam / peak if peak > 0 else np.zeros_like(cam)


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a coarse map to (height, width)."""
    return cv2.resize(cam.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
