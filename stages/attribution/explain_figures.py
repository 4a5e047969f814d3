"""The `explain` stage's figures: SHAP and Grad-CAM maps next to the images they explain.

Same conventions as :mod:`stages.analysis.figures` (style, DPI and thumbnail helper shared
through :mod:`stages.core.plot_style`): plain data in, PNG out, ``matplotlib.figure.Figure`` rather than pyplot.

- SHAP: the values summed over colour channels, red where a pixel raises the explained
  class's probability and blue where it lowers it (shap's own colour map), over a faded
  grey copy of the image; the colour scale is symmetric and per image.
- Grad-CAM: the [0, 1] map in the jet colour map, half transparent over the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from stages.core.plot_style import DPI, styled, thumb, wrap  # sets the Agg backend first

from matplotlib.figure import Figure  # noqa: E402
from shap.plots.colors import red_transparent_blue  # noqa: E402

PANEL = 1.9  # inches per image panel
RIGHT, WRONG = "black", "tab:red"
LEGEND = ("SHAP: red raises, blue lowers the predicted class's probability (scale per image); "
          "Grad-CAM: blue 0 to red 1 (the class's evidence)")


@dataclass
class ModelMaps:
    """One model's explanations of the selected images (all arrays in image order)."""

    images: np.ndarray  # uint8 [N, H, W, 3], at the model's input size
    labels: np.ndarray  # true labels [N]
    classes: np.ndarray  # explained (predicted) classes [N]
    probs: np.ndarray  # probability of the explained class [N]
    cams: np.ndarray  # Grad-CAM [N, H, W] in [0, 1]
    shap: np.ndarray  # SHAP values summed over channels [N, H, W]
    layer: str  # the base layer Grad-CAM read


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def shap_panel(ax, image: np.ndarray, values: np.ndarray, title: str, color: str = RIGHT) -> None:
    grey = np.asarray(image, float).mean(axis=-1)
    ax.imshow(grey, cmap="gray", alpha=0.35, interpolation="nearest")
    limit = float(np.abs(values).max()) or 1.0  # symmetric, so white is exactly 0
    ax.imshow(values, cmap=red_transparent_blue, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(title, fontsize=9, color=color)
    _clean(ax)


def cam_panel(ax, image: np.ndarray, cam: np.ndarray, title: str, color: str = RIGHT) -> None:
    ax.imshow(np.asarray(image), interpolation="nearest")
    ax.imshow(cam, cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
    if not cam.any():  # every cell's weighted sum <= 0: say so, or the blank map looks like a bug
        ax.text(0.5, 0.5, "no positive\nevidence", ha="center", va="center", color="white", fontsize=9,
                transform=ax.transAxes)
    ax.set_title(title, fontsize=9, color=color)
    _clean(ax)


def _prediction(maps: ModelMaps, i: int, class_names: Sequence[str]) -> tuple[str, str]:
    """('pred <class> (p)', colour): red when the prediction is wrong."""
    wrong = maps.classes[i] != maps.labels[i]
    return f"pred {class_names[maps.classes[i]]} ({maps.probs[i]:.2f})", WRONG if wrong else RIGHT


@styled
def model_figure(name: str, maps: ModelMaps, class_names: Sequence[str], details: str, path) -> Figure:
    """Rows = images; columns = original | SHAP | Grad-CAM."""
    rows = len(maps.images)
    fig = Figure(figsize=(3 * PANEL + 0.4, rows * (PANEL + 0.35) + 1.0), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        pred, color = _prediction(maps, i, class_names)
        thumb(axes[i, 0], maps.images[i], wrap(f"true {class_names[maps.labels[i]]}", 26))
        shap_panel(axes[i, 1], maps.images[i], maps.shap[i], f"SHAP: {pred}", color)
        cam_panel(axes[i, 2], maps.images[i], maps.cams[i], f"Grad-CAM: {pred}", color)
    fig.suptitle(f"{name}: SHAP and Grad-CAM ({maps.layer}) of the predicted class\n{details}", fontsize=10)
    fig.supxlabel(wrap(LEGEND, 70), fontsize=8)  # constrained layout reserves its space
    fig.savefig(path, dpi=DPI, format="png")
    return fig


@styled
def overview_figure(models: Mapping[str, ModelMaps], rows: Sequence[int], class_names: Sequence[str],
                    path) -> Figure:
    """Rows = the images ``rows`` (indices into every ModelMaps); columns = original, then Grad-CAM
    and SHAP of each model."""
    cols = 1 + 2 * len(models)
    fig = Figure(figsize=(cols * PANEL, len(rows) * (PANEL + 0.5) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    first = next(iter(models.values()))
    for r, i in enumerate(rows):
        thumb(axes[r, 0], first.images[i], wrap(f"true {class_names[first.labels[i]]}", 20))
        for m, (name, maps) in enumerate(models.items()):
            pred, color = _prediction(maps, i, class_names)
            pred = wrap(pred, 18)  # long class names ("Home Furnishing") overlapped the next panel's title
            top = f"{name}\n" if r == 0 else ""
            cam_panel(axes[r, 1 + 2 * m], maps.images[i], maps.cams[i], f"{top}Grad-CAM\n{pred}", color)
            shap_panel(axes[r, 2 + 2 * m], maps.images[i], maps.shap[i], f"{top}SHAP\n{pred}", color)
    fig.suptitle("The same test images explained by every model (red title: wrong prediction)")
    fig.supxlabel(LEGEND, fontsize=9)
    fig.savefig(path, dpi=DPI, format="png")
    return fig
