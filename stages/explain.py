"""Stage `explain`: Grad-CAM and SHAP maps of every model on the same test images.

Usage: ``python -m stages.explain``. Explains one run per model: the first seed of
``study.seeds`` at the largest size of ``study.train_percent``. Reads
``data/predictions/<model>/<percent>pct/s<seed>.csv`` of every model of the ``models``
section (in params order) to pick the images, then each
``data/models/<model>/<percent>pct/s<seed>.keras`` and the test images in
``data/prepared/``. Writes

- ``plots/explain/<model>.png``: rows = images, columns = original | SHAP | Grad-CAM;
- ``plots/explain/overview.png``: a few of the images across every model;
- ``metrics/explain.json``: the images, the Grad-CAM layer of each model and the SHAP settings;
- ``metrics/cost/explain.json``: wall time, total and per model (machine-dependent, so apart).

The images are the same for every model: about half that every model classifies
correctly and half that at least one gets wrong (when there are both), picked with
``explain.seed`` and spread over classes. Each map explains the model's own predicted
class. Grad-CAM: :mod:`stages.attribution.gradcam`, with the hooks of each model's family module
(stages/models/<family>.py) where it has them; SHAP: :mod:`stages.attribution.shap_maps`.

Params: ``explain`` (num_images, seed, min_grid, layers, masker, shap_max_evals,
batch_size) and ``models`` (the model names and families).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from stages.attribution import explain_figures, gradcam, shap_maps
from stages.core import layout, predictions
from stages.core.compared_models import model_families
from stages.core.errors import DataError, ParamError, run_stage
from stages.core.files import atomic_output, write_json
from stages.core.params import Schema, parse_section, stage_params, study_percents, study_seeds
from stages.core.prepared import PREPARED, images_by_path
from stages.models import family_module, load_model

OVERVIEW_ROWS = 3  # images in the overview: it has 1 + 2 x models columns already


@dataclass(frozen=True)
class Inputs:
    models: Path = layout.MODELS
    predictions: Path = layout.PREDICTIONS
    prepared: Path = Path(PREPARED)


@dataclass(frozen=True)
class Outputs:
    figures: Path = Path("plots/explain")
    metrics: Path = Path("metrics/explain.json")
    cost: Path = layout.EXPLAIN_COST


# --- params ---------------------------------------------------------------------------------

class Explain(Schema):
    num_images: int = Field(ge=1)
    seed: int = Field(ge=0)
    min_grid: int = Field(ge=1)
    # {model name: base layer name}; a null entry means the family's default
    layers: dict[str, Annotated[str, Field(min_length=1)] | None] | None = None
    masker: str
    shap_max_evals: int = Field(ge=10)  # shap needs a few evaluations per image
    batch_size: int = Field(ge=1)


def parse_params(params: dict) -> dict:
    """Validate the `explain` section and the model names."""
    p = parse_section(Explain, params.get("explain"), "explain")
    families = model_families(params.get("models"))
    models = list(families)
    for name in p.layers or {}:
        if name not in models:
            raise ParamError(f"explain.layers.{name}", f"no model {name!r} in `models` ({', '.join(models)})")
    study = params.get("study")
    return {
        "models": models,
        "families": families,
        **p.model_dump(exclude={"layers", "masker"}),
        "layers": {name: layer for name, layer in (p.layers or {}).items() if layer is not None},
        "masker": shap_maps.check_masker(p.masker, "explain.masker"),
        # One run per model is explained: the first seed's (explanations are per model, not statistics).
        "run_seed": study_seeds(study)[0],
        "run_percent": study_percents(study)[-1],  # the largest training set
    }


# --- image selection ------------------------------------------------------------------------

def check_same_images(frames: dict[str, pd.DataFrame], folder: Path, seed: int, percent: int = layout.FULL) -> None:
    """Every model's explained run was tested on the same images, in the same order."""
    runs = {layout.run_label(name, seed, percent): name for name in frames}
    predictions.check_same_test_set(
        {run: frames[name] for run, name in runs.items()},
        {run: layout.predictions_path(name, seed, folder, percent=percent) for run, name in runs.items()})


def _spread(pool: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` rows of ``pool`` in seeded random order, one per class before any class repeats."""
    shuffled = rng.permutation(pool)
    # The n-th image of its class in the shuffled order sorts after every class's (n-1)-th.
    rank = pd.Series(labels[shuffled]).groupby(labels[shuffled]).cumcount().to_numpy()
    return shuffled[np.argsort(rank, kind="stable")][:k].tolist()


def select_images(frames: dict[str, pd.DataFrame], num_images: int, seed: int) -> list[int]:
    """Row positions of the test images to explain, the same for every model.

    About half that at least one model gets wrong (rounded up) and half that every model
    gets right, topped up from the other group when one is short; interleaved, wrong first,
    so any prefix (the overview's rows) mixes both.
    """
    labels = next(iter(frames.values()))["label"].to_numpy()
    all_right = np.logical_and.reduce([f["pred_label"].to_numpy() == labels for f in frames.values()])
    right, wrong = np.flatnonzero(all_right), np.flatnonzero(~all_right)
    n = min(num_images, len(labels))
    n_wrong = min(len(wrong), max(n - len(right), (n + 1) // 2))
    rng = np.random.default_rng(seed)
    picks_wrong = _spread(wrong, labels, n_wrong, rng)
    picks_right = _spread(right, labels, n - n_wrong, rng)
    order = [p for pair in zip(picks_wrong, picks_right) for p in pair]
    shorter = min(len(picks_wrong), len(picks_right))
    return order + picks_wrong[shorter:] + picks_right[shorter:]


# --- explanation ----------------------------------------------------------------------------

def load(name: str, seed: int, inputs: Inputs, percent: int = layout.FULL, family: str | None = None):
    path = layout.model_path(name, seed, inputs.models, percent=percent)
    if not path.is_file():
        raise DataError(f"{path} not found: run `dvc repro train@{layout.run_label(name, seed, percent)}` first")
    model = load_model(path, family)
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise DataError(f"{path}: expected a model taking square images, its input shape is {shape}")
    return model, path


def selected_images(prepared: Path, size: int, paths: list[str], model_path: Path) -> np.ndarray:
    """The images at ``paths`` from the prepared store at ``size`` px, in that order (the run's test
    images: the split stage's test split, or its seed's re-drawn one with ``study.vary_split``)."""
    return images_by_path(paths, size, prepared, needed_by=model_path)


def explain_model(name: str, labels: np.ndarray, paths: list[str], num_classes: int, cfg: dict,
                  inputs: Inputs) -> explain_figures.ModelMaps:
    """Grad-CAM and SHAP of one model on the selected images."""
    family = cfg["families"][name]
    model, path = load(name, cfg["run_seed"], inputs, cfg["run_percent"], family)
    hooks = family_module(family, f"models.{name}")
    if model.output_shape[-1] != num_classes:
        raise DataError(f"{path} has {model.output_shape[-1]} outputs but the predictions have {num_classes} "
                        f"classes: re-run `dvc repro train@{name}`")
    images = selected_images(inputs.prepared, int(model.input_shape[1]), paths, path)
    layer = gradcam.choose_layer(model, cfg["layers"].get(name), cfg["min_grid"], f"explain.layers.{name}",
                                 "explain.min_grid", hooks)
    values = shap_maps.shap_values(model, images, cfg["masker"], cfg["shap_max_evals"], cfg["batch_size"])
    # Grad-CAM told SHAP's class (the prediction): the same class even on a float tie of two.
    cams, probs = gradcam.grad_cam(gradcam.cam_model(model, layer, path, hooks), images, values.classes)
    maps = explain_figures.ModelMaps(images=images, labels=labels, classes=values.classes,
                                     probs=probs[np.arange(len(images)), values.classes], cams=cams,
                                     shap=values.values.sum(axis=-1), layer=layer)
    return maps, values.evaluations / len(images)


def explain(cfg: dict, inputs: Inputs = Inputs(), outputs: Outputs = Outputs()) -> dict:
    """Pick the images, explain them with every model, write the figures, metrics and cost; returns
    the metrics and cost keys in one dict."""
    start = time.perf_counter()
    seed, percent = cfg["run_seed"], cfg["run_percent"]
    frames = {name: predictions.read_predictions(layout.predictions_path(name, seed, inputs.predictions,
                                                                         percent=percent),
                                                 layout.run_label(name, seed, percent)) for name in cfg["models"]}
    check_same_images(frames, inputs.predictions, seed, percent)
    ref = next(iter(frames.values()))
    class_names = [c[len("prob:"):] for c in ref.columns if c.startswith("prob:")]
    rows = select_images(frames, cfg["num_images"], cfg["seed"])
    paths, labels = ref["path"].iloc[rows].tolist(), ref["label"].to_numpy()[rows]
    details = f"SHAP: {cfg['masker']} masker, {cfg['shap_max_evals']} evaluations per image"
    explained, seconds, evaluations = {}, {}, {}
    with atomic_output(outputs.figures) as tmp:
        tmp.mkdir()
        for name in cfg["models"]:
            began = time.perf_counter()
            explained[name], evaluations[name] = explain_model(name, labels, paths, len(class_names), cfg, inputs)
            explain_figures.model_figure(name, explained[name], class_names, details, tmp / f"{name}.png")
            seconds[name] = round(time.perf_counter() - began, 2)
            print(f"explain: {name}: Grad-CAM on {explained[name].layer}, SHAP, figure in {seconds[name]:.1f} s",
                  flush=True)
        explain_figures.overview_figure(explained, range(min(OVERVIEW_ROWS, len(rows))), class_names,
                                        tmp / "overview.png")
    metrics = {"run_seed": seed, "run_percent": percent, "images": paths,
               "layers": {name: maps.layer for name, maps in explained.items()},
               "shap_max_evals": cfg["shap_max_evals"], "masker": cfg["masker"], "gradcam_score": "logit"}
    # What bounds the cost: images SHAP sent through each model per explained image (at most
    # shap_max_evals plus shap's few reference calls; tests/test_explain.py).
    cost = {"seconds": round(time.perf_counter() - start, 2), "per_model_seconds": seconds,
            "shap_evaluations_per_image": evaluations}
    write_json(outputs.metrics, metrics)
    write_json(outputs.cost, cost)
    return {**metrics, **cost}


def main() -> None:
    cfg = parse_params(stage_params("explain"))
    m = explain(cfg)
    print(f"explain: {len(m['images'])} images x {len(m['layers'])} models in {m['seconds']:.1f} s "
          f"-> {Outputs().figures}, {Outputs().metrics}, {Outputs().cost}")


if __name__ == "__main__":
    run_stage(main)
