"""Stage `features@<model>`: a frozen base's features of the train and val images, computed once.

Usage: ``python -m stages.features <model>``. When nothing before a model's head trains
and the base is the same whatever the seed (pretrained weights), every run of that model
-- each training-set size of ``study.train_percent``, each seed -- would compute the same
base features. This stage computes them once, for the whole train and val splits; every
``train@<model>-*`` run takes its subset's rows (stages/training/frozen.py). Writes
``data/features/<model>/``: ``train.npy``, ``val.npy`` and ``meta.json``, or, for a model
whose runs must compute their own (a base that trains, a randomly initialised frozen base,
``train.cache_frozen_features: false``, or ``study.vary_split``: every run has its own train
and val), only ``meta.json`` saying why.

Params: ``models.<model>``, ``train`` (the run flags: mixed precision changes the features) and
``study.vary_split``.
"""

from __future__ import annotations

import argparse

from stages.core.errors import ParamError, run_stage
from stages.core.layout import features_dir
from stages.core.params import matrix_stage_params, study_vary_split
from stages.core.prepared import PREPARED, open_split, read_meta
from stages.models import check_options
from stages.training.fit import parse_model_params, parse_run_params


def _extractor(cfg: dict, num_classes: int, name: str, seed: int):
    """The model's frozen feature extractor when built with ``seed``, or None if its base trains."""
    import keras

    from stages.models import build_model
    from stages.training.frozen import split_at_head

    keras.utils.set_random_seed(seed)
    model = build_model(cfg["family"], num_classes, cfg["image_size"], cfg["options"], key_prefix=f"models.{name}")
    parts = split_at_head(model)
    return None if parts is None else parts[0]


def compute(name: str, cfg: dict, run: dict, prepared: str = PREPARED, vary_split: bool = False) -> dict:
    """Write ``data/features/<name>/`` for ``models.<name>``; returns its meta.json content."""
    from stages.training.frozen import fingerprint, save_features, save_note

    folder = features_dir(name)
    if not run["cache_frozen_features"]:
        return save_note(folder, "train.cache_frozen_features is false")
    if vary_split:
        return save_note(folder, "study.vary_split is on: each run re-draws its train and val images and "
                                 "computes their features itself")
    # An explicit `trainable` decides without importing the family (its module loads TensorFlow):
    # a stage that only writes this note then takes a second, not ten. train checks the options.
    trainable = cfg["options"].get("trainable")
    if trainable is None:
        trainable = check_options(cfg["family"], cfg["options"], f"models.{name}").get("trainable")
    if trainable != "frozen":
        return save_note(folder, "the base trains (trainable is not frozen): no features to reuse")
    import keras

    from stages.training.distribute import mixed_precision_policy

    if run["deterministic"]:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if run["mixed_precision"]:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    policy = keras.mixed_precision.global_policy().name
    size = cfg["image_size"]
    splits = {s: open_split(s, size, prepared) for s in ("train", "val")}
    num_classes = len(splits["train"].class_names)
    extractor = _extractor(cfg, num_classes, name, seed=0)
    if extractor is None:
        return save_note(folder, "something before the head trains: no features to reuse")
    # Two seeds, one base? Only then is a run's base independent of its seed (pretrained weights).
    if fingerprint(_extractor(cfg, num_classes, name, seed=1), policy) != fingerprint(extractor, policy):
        return save_note(folder, "the frozen base is randomly initialised: its features depend on the seed, "
                                 "so each run computes its own")
    rows = sum(len(s.labels) for s in splits.values())
    print(f"features@{name}: frozen base, {rows} train + val images at {size} px, once for every size and seed",
          flush=True)
    return save_features(folder, extractor, policy, splits, cfg["batch_size"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.features")
    parser.add_argument("model", help="a key of the `models` section of params.yaml")
    name = parser.parse_args(argv).model
    params = matrix_stage_params(f"features@{name}", f"models.{name}", f"is {name!r} a key of models?")
    if name not in params.get("models", {}):
        raise ParamError(f"models.{name}", "no such model in params.yaml")
    cfg = parse_model_params(name, params["models"][name], read_meta()["image_sizes"])
    meta = compute(name, cfg, parse_run_params(params.get("train")), vary_split=study_vary_split(params.get("study")))
    if meta["reusable"]:
        shapes = ", ".join(f"{s} {tuple(v['shape'])}" for s, v in meta["splits"].items())
        print(f"features@{name}: {shapes} -> {features_dir(name)}")
    else:
        print(f"features@{name}: none stored ({meta['reason']}) -> {features_dir(name)}/meta.json")


if __name__ == "__main__":
    run_stage(main)
