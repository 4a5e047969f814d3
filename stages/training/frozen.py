"""Frozen bases computed once: train a model's head on cached base features.

When nothing before a model's head trains (a frozen base in inference mode, no
augmentation), the base maps each image to the same features in every epoch.
Computing them once and training only the head on them gives the same head
updates -- the same batches in the same order, through the same layers -- at the
cost of one forward pass of the base instead of one per epoch.

The head model built here *shares* the full model's head layers (the same weight
variables), so training it trains the full model: saving the full model afterwards
gives a self-contained base + head file, and `evaluate` / `explain` see no difference.

A base that is also the same for every seed (pretrained weights) gives the same features
in every run of the model, whatever its training-set size or seed: the `features@<model>`
stage computes them once for the whole train and val splits (:func:`save_features`), and
each run takes its subset's rows (:func:`load_features`). A fingerprint of the base's
weights ties the stored features to the base that made them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from stages.core.files import atomic_output
from stages.core.prepared import PreparedSplit

HEAD_PREFIX = "head"  # the registry's head layers: "head_dropout" (optional), then "head"


def split_at_head(model: "keras.Model") -> tuple["keras.Model", "keras.Model"] | None:
    """(features model, head model) if nothing before the head has trainable weights, else None."""
    head_layers = [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    if not head_layers:
        return None
    import keras  # here: a stage that only writes a note (save_note) must not load TensorFlow

    features = head_layers[0].input
    extractor = keras.Model(model.inputs, features, name=f"{model.name}_features")
    if extractor.trainable_weights:
        return None
    x = inputs = keras.Input(tuple(features.shape[1:]), dtype=features.dtype, name="features")
    for layer in head_layers:  # a chain: [Dropout ->] Dense, as _common.assemble builds it
        x = layer(x)
    return extractor, keras.Model(inputs, x, name=f"{model.name}_head")


def take_rows(split: PreparedSplit, rows: np.ndarray | None) -> PreparedSplit:
    """The split restricted to ``rows`` (in that order); None = all of it."""
    if rows is None:
        return split
    return PreparedSplit(np.asarray(split.images)[rows], split.labels[rows], [split.paths[i] for i in rows],
                         split.class_names)


def cached_split(extractor: "keras.Model", split: PreparedSplit, batch_size: int,
                 rows: np.ndarray | None = None) -> PreparedSplit:
    """The split (or its ``rows``) with each image replaced by its base features, computed once."""
    from stages.training.dataset import make_dataset  # tf.data; imported here to keep this module light

    images = make_dataset(split, batch_size, shuffle=False, seed=0, one_hot=False, rows=rows).map(lambda x, y: x)
    features = np.asarray(extractor.predict(images, verbose=0))
    expected = len(split.labels) if rows is None else len(rows)
    if len(features) != expected:
        raise RuntimeError(f"computed {len(features)} feature rows for {expected} images")
    if rows is None:
        return PreparedSplit(features, split.labels, split.paths, split.class_names)
    return PreparedSplit(features, split.labels[rows], [split.paths[i] for i in rows], split.class_names)


# --- features shared by every run of a model (stage features@<model>) -----------------------

def fingerprint(extractor: "keras.Model", policy: str) -> str:
    """sha256 of the base's input shape, compute dtype policy and every weight, in order."""
    import keras

    digest = hashlib.sha256(f"{tuple(extractor.input_shape)}|{policy}".encode())
    for weight in extractor.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def _paths_digest(paths: list[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def save_features(folder: Path, extractor: "keras.Model", policy: str, splits: dict[str, PreparedSplit],
                  batch_size: int) -> dict:
    """Write ``<split>.npy`` features of every split and meta.json; returns the meta."""
    import time

    start = time.perf_counter()
    meta = {"reusable": True, "reason": None, "fingerprint": fingerprint(extractor, policy), "splits": {}}
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        for name, split in splits.items():
            features = cached_split(extractor, split, batch_size).images
            np.save(tmp / f"{name}.npy", features)
            meta["splits"][name] = {"rows": len(split.labels), "paths_sha256": _paths_digest(split.paths),
                                    "shape": list(features.shape)}
        meta["seconds"] = round(time.perf_counter() - start, 3)  # machine-dependent, like every time
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def save_note(folder: Path, reason: str) -> dict:
    """meta.json only: why this model's runs compute their own features (or none)."""
    meta = {"reusable": False, "reason": reason}
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def load_features(folder: Path, extractor: "keras.Model", policy: str,
                  splits: dict[str, PreparedSplit]) -> tuple[dict[str, PreparedSplit] | None, str, float | None]:
    """(stored features of ``splits``, "reused", the seconds they took to compute) if they were made
    by this very base from these images, else (None, why not, None)."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        return None, f"{meta_path} not found", None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not meta.get("reusable"):
        return None, meta.get("reason") or "not reusable", None
    if meta.get("fingerprint") != fingerprint(extractor, policy):
        return None, f"{folder} was computed from another base (weights, size or precision differ)", None
    out = {}
    for name, split in splits.items():
        info = meta["splits"].get(name)
        if info is None or info["rows"] != len(split.labels) or info["paths_sha256"] != _paths_digest(split.paths):
            return None, f"{folder}: the {name} images differ from the prepared split's", None
        features = np.load(Path(folder) / f"{name}.npy")
        out[name] = PreparedSplit(features, split.labels, split.paths, split.class_names)
    return out, "reused", meta.get("seconds")
