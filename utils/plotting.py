"""Figures shared by several notebooks: learning curves, image grids, confusion matrices.

Every function draws a new figure and returns it (Jupyter displays it); styling lives here so the notebooks
keep only what teaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import re

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np

# An absolute path (POSIX, home-relative or Windows) inside a title: "/work/data/cifar10", "C:\\data\\x.npz".
# It needs two separators and nothing word-like before it, so "1/255" or "red / blue" are left alone.
_PATH_PATTERN = re.compile(r"(?<![\w.])(?:[A-Za-z]:\\|~?/)[^\s,;()'\"]*[\\/][^\s,;()'\"]*")
FRAME_COLOUR = "0.6"  # mid grey: visible around white and black pixels alike


def without_machine_paths(text: str) -> str:
    """``text`` with every absolute path shortened to its last part.

    Learners on other machines gain nothing from "/work/shared/data/flowers", and it leaks the author's folders.
    """
    return _PATH_PATTERN.sub(lambda match: last_path_part(match.group(0)), text)


def last_path_part(path_text: str) -> str:
    """The last non-empty component of a path written with / or \\ separators."""
    parts = [part for part in re.split(r"[\\/]", path_text) if part and part != "~" and not part.endswith(":")]
    return parts[-1] if parts else path_text


def history_dict(history: Any) -> dict[str, list[float]]:
    """The metrics of a Keras ``History`` (or an already plain dict) as a dict of lists."""
    return dict(getattr(history, "history", history))


def plot_learning_curves(
    histories: Mapping[str, Any],
    metrics: Sequence[str] = ("accuracy", "loss"),
    title: str = "",
    mark_epochs: Mapping[str, int] | None = None,
) -> plt.Figure:
    """Overlay training (dashed) and validation (solid) curves of several runs, one panel per metric.

    ``mark_epochs`` draws labelled vertical lines, e.g. ``{"fine-tuning starts": 5}``.
    """
    figure, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False,
                                layout="constrained")
    longest = max((len(values) for history in histories.values() for values in history_dict(history).values()),
                  default=1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(axes[0], metrics):
        for index, (name, history) in enumerate(histories.items()):
            values = history_dict(history)
            colour = colours[index % len(colours)]
            if metric in values:
                epochs = np.arange(1, len(values[metric]) + 1)
                marker = "x" if len(epochs) <= 3 else None  # a one-epoch dashed "line" would be invisible
                axis.plot(epochs, values[metric], linestyle="--", marker=marker, color=colour, label=f"{name} train")
            if f"val_{metric}" in values:
                epochs = np.arange(1, len(values[f"val_{metric}"]) + 1)
                axis.plot(epochs, values[f"val_{metric}"], marker="o", color=colour, label=f"{name} validation")
        for label, epoch in (mark_epochs or {}).items():
            axis.axvline(epoch + 0.5, color="grey", linestyle=":")
            axis.annotate(label, (epoch + 0.5, axis.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
        axis.set_xlabel("epoch")
        if longest <= 12:  # every epoch gets its tick, so one or two epochs do not read 0.945-1.05
            axis.set_xticks(range(1, longest + 1))
        else:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axis.set_xlim(0.5, longest + 0.5)
        if "accuracy" in metric:
            low, high = max(0.0, axis.get_ylim()[0]), min(1.0, axis.get_ylim()[1])
            if high > low:
                axis.set_ylim(low, high)  # accuracy lives in [0, 1]; no ticks above 100%
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(labels) > 6:  # many runs: the legend goes beside the panels, where it covers no data
        figure.legend(handles, labels, fontsize=8, loc="outside right upper")
    else:
        axes[0][0].legend(fontsize=8)
    figure.suptitle(without_machine_paths(title))
    return figure


def show_image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    cell_size: float = 1.6,
    cmap: str | Sequence[str | None] | None = None,
    title: str = "",
    signed: bool | Sequence[bool] = False,
    colorbar: bool = False,
) -> plt.Figure:
    """Show images in a grid of panels with optional titles, and return the figure.

    ``columns`` defaults to one row of up to 8. Grayscale images get ``cmap`` (one for all or one per panel,
    default gray); uint8 grayscale is drawn on the fixed 0-255 scale, so a dim channel looks dim. ``signed``
    centres a diverging scale on zero (the honest way to show filter responses), clipped at the 99.5th
    percentile of absolute values so a few extreme pixels do not wash out the rest.
    """
    count = len(images)
    columns = columns or max(1, min(count, 8))
    rows = max(1, int(np.ceil(count / columns)))
    cmaps = [cmap] * count if cmap is None or isinstance(cmap, str) else list(cmap)
    signed = [signed] * count if isinstance(signed, bool) else list(signed)
    if len(cmaps) != count or len(signed) != count:
        raise ValueError(
            f"show_image_grid got {count} images but {len(cmaps)} colour maps and {len(signed)} signed flags; "
            "give one per image, or a single value for all."
        )
    aspects = {_aspect(image) for image in images}
    figure, axes = plt.subplots(rows, columns, squeeze=False, layout=_grid_layout(aspects),
                                figsize=grid_figure_size(max(aspects, default=1.0), rows, columns, cell_size,
                                                         titles is not None, colorbar, bool(title)))
    for index, axis in enumerate(axes.flat):
        if index >= count:
            axis.axis("off")
            continue
        frame(axis)
        image = np.asarray(images[index])
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        shown = axis.imshow(image, **_display_scale(image, cmaps[index], signed[index]))
        if titles is not None:
            axis.set_title(without_machine_paths(titles[index]), fontsize=max(8.0, min(10.0, 3 * cell_size)))
        if colorbar and image.ndim == 2:
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
    figure.suptitle(without_machine_paths(title))
    return figure


def grid_figure_size(
    aspect: float, rows: int, columns: int, cell_size: float, titled: bool, colorbar: bool, suptitle: bool,
) -> tuple[float, float]:
    """Width and height (inches) of an image grid whose rows sit close, whatever the images' shape.

    Panels are ``cell_size`` wide and ``aspect`` times that high, plus title room; a square cell for a landscape
    photo would leave a blank band under every row.
    """
    width = columns * cell_size * (1.3 if colorbar else 1.0)
    height = rows * (cell_size * aspect + (0.35 if titled else 0.1)) + (0.45 if suptitle else 0.0)
    return width, height


def _grid_layout(aspects: set[float]) -> str:
    """Matplotlib's layout engine for a grid of images with these height / width ratios.

    "compressed" pulls fixed-aspect panels together but assumes one shape (a mix would shrink every panel to
    the widest), so mixed grids keep "constrained".
    """
    return "compressed" if len(aspects) <= 1 else "constrained"


def _aspect(image: np.ndarray) -> float:
    """Height / width of an image array (H x W or H x W x C)."""
    shape = np.shape(image)
    return shape[0] / shape[1]


def frame(axis: plt.Axes) -> None:
    """Hide an image panel's ticks but keep a thin grey frame, so white pixels at the edge stay visible."""
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(FRAME_COLOUR)
        spine.set_linewidth(0.8)


def _display_scale(image: np.ndarray, cmap: str | None, signed: bool) -> dict[str, Any]:
    """``imshow`` colour map and limits for one panel of :func:`show_image_grid`."""
    if signed:
        limit = float(np.percentile(np.abs(image), 99.5)) or float(np.max(np.abs(image))) or 1.0
        return {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    if image.ndim == 3:
        return {}
    if image.dtype == np.uint8:
        return {"cmap": cmap or "gray", "vmin": 0, "vmax": 255}
    return {"cmap": cmap or "gray"}


def samples_per_class(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` random examples of each class, class by class."""
    generator = np.random.default_rng(seed)
    chosen = [generator.choice(np.flatnonzero(labels == value), size=min(per_class, int((labels == value).sum())),
                               replace=False) for value in np.unique(labels)]
    return np.concatenate(chosen)


def show_samples_per_class(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int = 8, title: str = ""
) -> plt.Figure:
    """A grid with one row per class, ``per_class`` random examples in each."""
    indices = samples_per_class(labels, per_class)
    titles = [class_names[labels[index]] for index in indices]
    return show_image_grid(images[indices], titles, columns=per_class, title=title)


def plot_confusion_matrix(
    true_labels: np.ndarray, predicted_labels: np.ndarray, class_names: Sequence[str], title: str = ""
) -> plt.Figure:
    """A confusion matrix with counts written in the cells (rows: true class, columns: predicted)."""
    class_count = len(class_names)
    matrix = confusion_counts(true_labels, predicted_labels, class_count)
    size = max(4.0, 0.55 * class_count + 2)
    figure, axis = plt.subplots(figsize=(size, size), layout="constrained")
    axis.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.max() else 1
    for row in range(class_count):
        for column in range(class_count):
            colour = "white" if matrix[row, column] > threshold else "black"
            axis.text(column, row, str(matrix[row, column]), ha="center", va="center", fontsize=8, color=colour)
    axis.set_xticks(range(class_count), class_names, rotation=45, ha="right")
    axis.set_yticks(range(class_count), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(without_machine_paths(title))
    return figure


def confusion_counts(true_labels: np.ndarray, predicted_labels: np.ndarray, class_count: int) -> np.ndarray:
    """The confusion matrix as an array (rows true, columns predicted)."""
    matrix = np.zeros((class_count, class_count), dtype=int)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted_labels)), 1)
    return matrix
