"""The figure style the report's and explain's figures share: headless backend, rcParams, DPI,
and the helpers both draw with (saving, label wrapping, image thumbnails)."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: nothing drawn here may look for a display

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 120
STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 13,
    "axes.grid": True, "grid.alpha": 0.3,
}


def styled(func):
    """Draw and save under the report style, without touching the caller's rcParams."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)
    return wrapper


def save_png(fig: Figure, path: str | Path) -> Figure:
    fig.savefig(path, dpi=DPI, format="png")
    return fig


def wrap(text: str, width: int = 18) -> str:
    return "\n".join(textwrap.wrap(str(text), width, break_long_words=True)) or str(text)


def thumb(ax, image, title: str) -> None:
    if image is None:
        ax.text(0.5, 0.5, "no test image", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.imshow(np.asarray(image), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
