"""Figures shared by several notebooks: learning curves, image grids, confusion matrices.

Every function draws on a new matplotlib figure and returns it, so notebooks can
show it (Jupyter displays the returned figure) or save it.  Plot styling lives
here so the notebooks keep only what teaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np


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

    ``histories`` maps a run name to its Keras ``History`` or history dict.
    ``mark_epochs`` draws labelled vertical lines, e.g. ``{"fine-tuning starts": 5}``.
    """
    figure, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metric in zip(axes[0], metrics):
        for index, (name, history) in enumerate(histories.items()):
            values = history_dict(history)
            colour = colours[index % len(colours)]
            if metric in values:
                epochs = np.arange(1, len(values[metric]) + 1)
                axis.plot(epochs, values[metric], linestyle="--", color=colour, label=f"{name} train")
            if f"val_{metric}" in values:
                epochs = np.arange(1, len(values[f"val_{metric}"]) + 1)
                axis.plot(epochs, values[f"val_{metric}"], marker="o", color=colour, label=f"{name} validation")
        for label, epoch in (mark_epochs or {}).items():
            axis.axvline(epoch + 0.5, color="grey", linestyle=":")
            axis.annotate(label, (epoch + 0.5, axis.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def show_image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    columns: int = 8,
    cell_size: float = 1.6,
    cmap: str | None = None,
    title: str = "",
) -> plt.Figure:
    """Show images in a grid with optional titles; grayscale images get a gray colour map."""
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * cell_size, rows * cell_size * 1.15), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = np.asarray(images[index])
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        axis.imshow(image, cmap=cmap or ("gray" if image.ndim == 2 else None))
        if titles is not None:
            axis.set_title(titles[index], fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


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
    figure, axis = plt.subplots(figsize=(size, size))
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
    axis.set_title(title)
    figure.tight_layout()
    return figure


def confusion_counts(true_labels: np.ndarray, predicted_labels: np.ndarray, class_count: int) -> np.ndarray:
    """The confusion matrix as an array (rows true, columns predicted)."""
    matrix = np.zeros((class_count, class_count), dtype=int)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted_labels)), 1)
    return matrix
