"""The report's figures: one function per figure, data in, PNG out.

Every function takes plain data (DataFrames, arrays, dicts), saves a PNG to
``path`` and returns the matplotlib Figure. Figures are built with
``matplotlib.figure.Figure`` rather than pyplot, so they never enter pyplot's
global registry: nothing to close, nothing leaks however many are drawn.

A training history is a DataFrame with an ``epoch`` column (1-based) and
``train_<metric>`` / ``val_<metric>`` columns for metric in loss, accuracy,
top3_accuracy, macro_f1 (any may be missing). A history averaged over repeated runs
also has ``<column>_sd`` columns (standard deviation over the runs at that epoch): the
curves then show the mean with a +/- 1 sd band.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: seaborn imports pyplot, which must not look for a display

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter, NullLocator  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from stages.core.plot_style import save_png, styled, thumb, wrap  # noqa: E402

CURVE_METRICS = {"loss": "loss", "accuracy": "accuracy", "top3_accuracy": "top-3 accuracy",
                 "macro_f1": "macro-F1"}


def model_colors(models: Sequence[str]) -> dict[str, tuple]:
    """One stable colour per model, by position (tab10, then husl beyond 10 models)."""
    palette = sns.color_palette("tab10" if len(models) <= 10 else "husl", len(models))
    return dict(zip(models, palette))


def _label_points(ax, xs, ys, names, colors) -> None:
    for x, y, name in zip(xs, ys, names):
        if pd.notna(x) and pd.notna(y):
            ax.scatter([x], [y], s=50, color=colors[name], zorder=3)
            ax.annotate(name, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=9)


def _plot_history(ax, history: pd.DataFrame, metric: str, color) -> None:
    """Train solid, validation dashed, same colour; a band of +/- 1 sd over runs where given."""
    for split, style, name in (("train", "-", "train"), ("val", "--", "validation")):
        col = f"{split}_{metric}"
        if col in history:
            ax.plot(history["epoch"], history[col], style, color=color, label=name)
            if f"{col}_sd" in history:
                sd = history[f"{col}_sd"].fillna(0)
                low = (history[col] - sd).clip(lower=1e-6) if metric == "loss" else history[col] - sd
                ax.fill_between(history["epoch"], low, history[col] + sd, color=color, alpha=0.15, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metric == "loss":
        ax.set_yscale("log")  # first-epoch losses can be 10x the rest and flatten every later curve


@styled
def study_curves(histories: Mapping[str, pd.DataFrame], test_metrics: Mapping[str, Mapping[str, float]],
                 eval_times: Mapping[str, float], fit_times: Mapping[str, float], path, *,
                 test_epochs: Mapping[str, float] | None = None) -> Figure:
    """Loss, accuracy, top-3 accuracy per epoch (train solid, val dashed, test x), and eval vs fit time.

    The test cross of a model sits at ``test_epochs[model]``, the epoch its evaluated weights come
    from (the best one when early stopping restored it; a mean over runs may be fractional), or at
    its history's last epoch where none is given.
    """
    models = list(histories)
    colors = model_colors(models)
    fig = Figure(figsize=(12, 9), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, metric in zip(axes, ("loss", "accuracy", "top3_accuracy")):
        for name in models:
            hist = histories[name]
            _plot_history(ax, hist, metric, colors[name])
            test = test_metrics.get(name, {}).get(metric)
            if test is not None and len(hist):
                epoch = (test_epochs or {}).get(name, hist["epoch"].max())
                ax.plot([epoch], [test], "x", color=colors[name], markersize=10, mew=2.5)
        ax.set(title=CURVE_METRICS[metric], xlabel="epoch",
               ylabel=CURVE_METRICS[metric] + (" (log scale)" if metric == "loss" else ""))
    fastest = min(fit_times.values())
    xs = [fit_times[m] / fastest if fastest > 0 else np.nan for m in models]
    _label_points(axes[3], xs, [eval_times[m] for m in models], models, colors)
    axes[3].set(title="test evaluation time vs training time", xlabel="training time / fastest model's",
                ylabel="test evaluation time (s)")
    axes[3].margins(0.25)
    # One legend for all panels: colour = model, line style = split.
    handles = [Line2D([], [], color=colors[m], lw=2, label=m) for m in models]
    handles += [Line2D([], [], color="0.3", ls=ls, marker=mk, label=lab)
                for ls, mk, lab in (("-", "", "train"), ("--", "", "validation"), ("", "x", "test"))]
    fig.legend(handles=handles, loc="outside right center")
    return save_png(fig, path)


def _annotations(matrix: np.ndarray) -> np.ndarray | bool:
    """Cell texts: blank below 0.005 so the real confusions stand out; none at all beyond 30 classes."""
    if len(matrix) > 30:
        return False
    values = np.nan_to_num(matrix)
    return np.where(values >= 0.005, np.char.mod("%.2f", values), "")


def _heatmap(matrix: np.ndarray, class_names: Sequence[str], title: str, xlabel: str, path) -> Figure:
    k = len(class_names)
    side = min(max(6.0, 0.45 * k + 3), 30.0)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(matrix, ax=ax, vmin=0, vmax=1, cmap="Blues", square=True, annot=_annotations(matrix), fmt="",
                annot_kws={"fontsize": max(7, 11 - k // 4)}, xticklabels=list(class_names),
                yticklabels=list(class_names), cbar_kws={"shrink": 0.8}, linewidths=0.3 if k <= 30 else 0)
    ax.set(title=title, xlabel=xlabel, ylabel="true class")
    ax.tick_params(axis="x", labelrotation=90)
    ax.tick_params(axis="y", labelrotation=0)
    ax.grid(False)
    return save_png(fig, path)


@styled
def confusion_counts(y_true, y_pred, class_names: Sequence[str], title: str, path) -> Figure:
    """Confusion matrix normalised by row: each row is where that true class's images went."""
    k = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(k), normalize="true")
    return _heatmap(np.nan_to_num(matrix), class_names, title, "predicted class", path)


@styled
def mean_probability_heatmap(matrix: np.ndarray, class_names: Sequence[str], title: str, path) -> Figure:
    """Row = true class, columns = its mean predicted probability vector (colour scale fixed to [0, 1])."""
    return _heatmap(np.asarray(matrix, float), class_names, title, "mean predicted probability of class", path)


@styled
def worst_classes_figure(worst: Sequence[dict], class_names: Sequence[str], thumbnails: Mapping[int, np.ndarray],
                         path) -> Figure:
    """One column per worst class: its sample image and recall, then its most-confused classes."""
    rows = 1 + max((len(w["confused"]) for w in worst), default=0)
    cols = max(len(worst), 1)
    fig = Figure(figsize=(2.3 * cols + 0.8, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for col, w in enumerate(worst):
        label = int(w["label"])
        thumb(axes[0, col], thumbnails.get(label), f"{wrap(class_names[label])}\nrecall {w['recall']:.2f}")
        for row in range(1, rows):
            ax = axes[row, col]
            if row - 1 >= len(w["confused"]):
                ax.set_axis_off()
                continue
            c = w["confused"][row - 1]
            other = int(c["label"])
            thumb(ax, thumbnails.get(other), f"{wrap(class_names[other])}\nmean p {c['mean_prob']:.2f}")
    axes[0, 0].set_ylabel("worst class", fontsize=10)
    for row in range(1, rows):
        axes[row, 0].set_ylabel(f"confused #{row}", fontsize=10)
    fig.suptitle("Worst classes by recall, with the classes they are confused with")
    return save_png(fig, path)


@styled
def learning_curves(histories: Mapping[str, pd.DataFrame], path) -> Figure:
    """Loss and macro-F1 per epoch, train vs validation: one row of two panels per model."""
    models = list(histories)
    colors = model_colors(models)
    fig = Figure(figsize=(11, 3.0 * len(models) + 0.6), layout="constrained")
    # Shared y per metric column, so the models compare at a glance.
    axes = fig.subplots(len(models), 2, squeeze=False, sharey="col")
    for row, name in enumerate(models):
        for ax, metric in zip(axes[row], ("loss", "macro_f1")):
            _plot_history(ax, histories[name], metric, colors[name])
            ax.set(title=f"{name}: {CURVE_METRICS[metric]}", xlabel="epoch",
                   ylabel=CURVE_METRICS[metric] + (" (log scale)" if metric == "loss" else ""))
            ax.legend(loc="best")
    return save_png(fig, path)


@styled
def reliability_diagram(bins_df: pd.DataFrame, ece: float, title: str, path) -> Figure:
    """Accuracy per confidence bin against the diagonal, with the bins' image counts below."""
    fig = Figure(figsize=(6, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = bins_df[bins_df["count"] > 0]
    width = filled["bin_upper"] - filled["bin_lower"]
    top.bar(filled["bin_lower"], filled["accuracy"], width=width, align="edge", color="tab:blue", alpha=0.8,
            edgecolor="white", label="accuracy")
    # The gap drawn as a line from accuracy to mean confidence: unambiguous whichever is higher.
    centres = filled["bin_lower"] + width / 2
    top.vlines(centres, filled["accuracy"], filled["confidence"], color="tab:red", lw=2)
    top.plot(centres, filled["confidence"], "D", color="tab:red", markersize=5, label="mean confidence (gap)")
    top.plot([0, 1], [0, 1], "--", color="0.3", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title}\nECE = {ece:.3f}")
    fig.legend(loc="outside lower center", ncols=3)  # outside the axes: bars may reach any corner
    bars = bottom.bar(bins_df["bin_lower"], bins_df["count"], width=bins_df["bin_upper"] - bins_df["bin_lower"],
                      align="edge", color="0.5", edgecolor="white")
    # Counts printed: one full bin usually dwarfs the rest, whose bars are then invisible.
    bottom.bar_label(bars, labels=[f"{c:,}" if c else "" for c in bins_df["count"]], fontsize=7)
    bottom.margins(y=0.3)
    bottom.set(xlabel="confidence (max predicted probability)", ylabel="images")
    return save_png(fig, path)


@styled
def cost_frontier(table: pd.DataFrame, path) -> Figure:
    """Accuracy and macro-F1 (rows) against latency, parameters (log) and training time (columns)."""
    models = list(table["model"])
    colors = model_colors(models)
    costs = (("latency_ms_b1", "latency, batch 1 (ms)"), ("params_total", "parameters (log scale)"),
             ("fit_time_s", "training time (s)"))
    fig = Figure(figsize=(14, 8), layout="constrained")
    axes = fig.subplots(2, 3, squeeze=False)
    for row, (metric, name) in enumerate((("accuracy", "accuracy"), ("macro_f1", "macro-F1"))):
        for col, (cost, xlabel) in enumerate(costs):
            ax = axes[row, col]
            _label_points(ax, table[cost], table[metric], models, colors)
            if cost == "params_total":
                ax.set_xscale("log")
            ax.set(xlabel=xlabel, ylabel=f"test {name}", title=f"{name} vs {xlabel.split(' (')[0]}")
            ax.margins(x=0.3, y=0.2)
    fig.suptitle("Quality against cost: up and to the left is better")
    return save_png(fig, path)


@styled
def runs_strip(runs: pd.DataFrame, metric: str, label: str, summary: Mapping[str, Mapping], path) -> Figure:
    """Every run's ``metric`` per model (one dot per seed), with the mean and its confidence interval.

    ``runs``: one row per run with ``model`` and ``metric`` columns; ``summary``: model ->
    {mean, ci_low, ci_high} (over_runs.summarize), the interval drawn as a bar.
    """
    models = list(dict.fromkeys(runs["model"]))
    colors = model_colors(models)
    fig = Figure(figsize=(max(5.0, 1.4 * len(models) + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # horizontal jitter only, so equal values stay visible
    for i, name in enumerate(models):
        values = runs.loc[runs["model"] == name, metric].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, color=colors[name], s=28, alpha=0.8, zorder=3)
        s = summary[name]
        if s.get("ci_low") is not None:
            ax.errorbar([i + 0.3], [s["mean"]], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                        fmt="D", color="0.2", capsize=5, markersize=5, zorder=4)
        else:
            ax.plot([i + 0.3], [s["mean"]], "D", color="0.2", markersize=5)
    ax.set_xticks(range(len(models)), [wrap(m, 14) for m in models])
    n = runs.groupby("model").size()
    ax.set(title=f"{label} of every run (dots) and the mean with its 95% CI (bars), {n.min()}-{n.max()} runs per model"
           if n.min() != n.max() else f"{label} of every run (dots), mean and 95% CI (bars), {n.min()} runs per model",
           ylabel=label)
    ax.title.set_fontsize(10)
    return save_png(fig, path)


def _size_panel(ax, curve: pd.DataFrame, column: str, colors: Mapping) -> None:
    """``column``'s mean per model against x, markers at each size, a band where the interval exists."""
    for name, rows in curve.groupby("model", sort=False):
        rows = rows.sort_values("x")
        x = rows["x"].to_numpy(float)
        ax.plot(x, rows[f"{column}_mean"].to_numpy(float), "-o", color=colors[name], label=name, markersize=5)
        low = pd.to_numeric(rows[f"{column}_ci_low"], errors="coerce").to_numpy(float)
        high = pd.to_numeric(rows[f"{column}_ci_high"], errors="coerce").to_numpy(float)
        if np.isfinite(low).any() and np.isfinite(high).any():  # NaN (single run) leaves a gap, not a band
            ax.fill_between(x, low, high, color=colors[name], alpha=0.2, lw=0)
    # Log scale, because sizes usually double; ticks at the sizes actually trained, as plain numbers.
    sizes = np.sort(curve["x"].unique().astype(float))
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(sizes[0] / 1.25, sizes[-1] * 1.25)  # also a sane range around a single size
    ax.set_xlabel("training images per class (log scale)")


@styled
def data_size_curve(path, curve: pd.DataFrame, metric: str, metric_label: str, colors: dict) -> Figure:
    """``metric`` (left) and fit time (right) against training images per class: mean and 95% CI over seeds.

    ``curve``: one row per (model, x) with ``runs``, ``<metric>_mean/_ci_low/_ci_high`` and
    ``fit_time_s_mean/_ci_low/_ci_high`` (intervals NaN with a single run: no band then). The cost
    panel sits beside the quality panel so a gain from more data is read together with its price.
    """
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    _size_panel(left, curve, metric, colors)
    left.set(title=f"{metric_label} vs training-set size", ylabel=metric_label)
    _size_panel(right, curve, "fit_time_s", colors)
    right.set(title="What each point costs: fit time", ylabel="fit time (s)")
    fig.legend(handles=left.get_lines(), loc="outside right center")
    fig.suptitle(f"{metric_label} and cost vs training-set size (mean, 95% CI over seeds)")
    return save_png(fig, path)
