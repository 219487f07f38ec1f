"""The plotting helpers draw readable figures: no overlapping text, no machine paths, frames, short-curve ticks."""

from __future__ import annotations

from itertools import combinations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from page_code import notebook_08_time_plots, page_definitions, show_matrices  # noqa: E402
from utils import anatomy, experiments, models, plotting  # noqa: E402


def text_boxes(figure: plt.Figure) -> list[tuple[str, object]]:
    """Bounding boxes (in pixels) of the suptitle and every panel's title and axis labels."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = [figure._suptitle] if figure._suptitle is not None else []
    for axis in figure.axes:
        texts += [axis.title, axis.xaxis.label, axis.yaxis.label]
    return [(text.get_text(), text.get_window_extent(renderer)) for text in texts
            if text.get_visible() and text.get_text().strip()]


def overlapping_text(figure: plt.Figure) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap by more than a pixel."""
    pairs = []
    for (first, first_box), (second, second_box) in combinations(text_boxes(figure), 2):
        overlap_width = min(first_box.x1, second_box.x1) - max(first_box.x0, second_box.x0)
        overlap_height = min(first_box.y1, second_box.y1) - max(first_box.y0, second_box.y0)
        if overlap_width > 1 and overlap_height > 1:
            pairs.append((first, second))
    return pairs


def image_titles_clear_of_images(figure: plt.Figure) -> bool:
    """Every panel title sits above its own image and below the suptitle."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    suptitle_bottom = figure._suptitle.get_window_extent(renderer).y0 if figure._suptitle else np.inf
    for axis in figure.axes:
        if axis.title.get_text():
            title_box = axis.title.get_window_extent(renderer)
            if title_box.y0 < axis.get_window_extent(renderer).y1 - 1 or title_box.y1 > suptitle_bottom + 1:
                return False
    return True


def race_rows() -> pd.DataFrame:
    """A shipped-race-like table: each recipe at the 3- and 10-minute budgets."""
    return pd.DataFrame({"recipe": ["modern", "course (experiment VI)"] * 2, "budget_minutes": [3, 3, 10, 10],
                         "train_seconds": [170, 178, 530, 590], "val_accuracy": [0.86, 0.69, 0.89, 0.80]})


FIGURES = {
    "image grid with suptitle and long titles": lambda: plotting.show_image_grid(
        [np.zeros((28, 28), np.uint8)] * 12,
        [f"said 5 {index}%, true 6 with a long caption" for index in range(12)], columns=6, cell_size=2.2,
        title="mnist (JPEG image folders in /work/shared/data/mnist)"),
    "samples per class": lambda: plotting.show_samples_per_class(
        np.zeros((40, 8, 8), np.uint8), np.repeat(np.arange(4), 10), ["zero", "one", "two", "three"], 8,
        title="a title over the first row"),
    "signed grid with colour bars": lambda: plotting.show_image_grid(
        [np.linspace(-1, 1, 64).reshape(8, 8)] * 6, [f"filter {index}" for index in range(6)], signed=True,
        colorbar=True, columns=3, cell_size=3.5),
    "learning curves": lambda: plotting.plot_learning_curves(
        {"a": {"accuracy": [0.5], "val_accuracy": [0.6], "loss": [1.0], "val_loss": [0.9]}},
        title="/home/someone/runs: curves"),
    "confusion matrix": lambda: plotting.plot_confusion_matrix(
        np.arange(10), np.arange(10), [f"class {index}" for index in range(10)], title="test set"),
    "layer costs": lambda: page_definitions("04", ["plot_layer_costs"], plt=plt, pd=pd)["plot_layer_costs"](
        anatomy.layer_table(models.vgg_spec(16)), title="VGG16 costs"),
    "CIFAR-10 contrast curves, one experiment missing": lambda: experiments.plot_contrast_curves(
        {name: {"accuracy": [0.3, 0.45, 0.55], "val_accuracy": [0.35, 0.44, 0.5]}
         for name in experiments.EXPERIMENTS if name != "VII"}, title="lesson reference: 3 epochs"),
    "08: accuracy against time": lambda: notebook_08_time_plots()["plot_accuracy_against_time"](pd.DataFrame(
        {"recipe": ["modern"] * 3 + ["course"] * 3, "training_minutes": [1, 2, 3] * 2,
         "val_accuracy": [0.6, 0.75, 0.85, 0.4, 0.5, 0.6]}), 0.84).figure,
    "08: the shipped race": lambda: notebook_08_time_plots()["plot_same_clock_race"](race_rows(), 0.84).figure,
    "matrices": lambda: show_matrices(
        [np.arange(36).reshape(6, 6), np.ones((3, 3)), np.arange(16).reshape(4, 4) - 8],
        ["6 x 6 image", "filter", "4 x 4 output"]),
}


@pytest.mark.parametrize("name", FIGURES)
def test_no_overlapping_text_and_no_machine_paths(name: str) -> None:
    figure = FIGURES[name]()
    try:
        assert not overlapping_text(figure), overlapping_text(figure)
        assert image_titles_clear_of_images(figure)
        assert not any("/work/" in text or "/home/" in text for text, _ in text_boxes(figure))
        assert not legends_over_labels(figure), legends_over_labels(figure)
    finally:
        plt.close(figure)


def legends_over_labels(figure: plt.Figure) -> list[str]:
    """Axis labels and tick labels that a legend (placed anywhere, also outside its axes) covers."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    covered = []
    for axis in figure.axes:
        legend = axis.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        texts = [axis.xaxis.label, axis.yaxis.label, *axis.get_xticklabels(), *axis.get_yticklabels()]
        covered += [text.get_text() for text in texts
                    if text.get_visible() and text.get_text() and box.overlaps(text.get_window_extent(renderer))]
    return covered


def blank_bands_between_rows(figure: plt.Figure) -> list[float]:
    """Empty height (pixels) between each row of image panels and the next, as a fraction of the panel height.

    The gap is measured from the bottom of the lowest image in a row to the top of the next
    row's highest title (or image, when untitled), after the figure is drawn, so the fixed
    aspect of the images has already shrunk their panels; colour bars are not panels.
    """
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    rows: dict[int, list[plt.Axes]] = {}
    for axis in figure.axes:
        if axis.images and axis.get_subplotspec() is not None and not hasattr(axis, "_colorbar"):
            rows.setdefault(axis.get_subplotspec().rowspan.start, []).append(axis)
    ordered = [rows[row] for row in sorted(rows)]
    bands = []
    for upper, lower in zip(ordered, ordered[1:]):
        upper_bottom = min(axis.get_window_extent(renderer).y0 for axis in upper)
        lower_top = max(axis.title.get_window_extent(renderer).y1 if axis.title.get_text()
                        else axis.get_window_extent(renderer).y1 for axis in lower)
        panel_height = max(axis.get_window_extent(renderer).height for axis in upper)
        bands.append((upper_bottom - lower_top) / panel_height)
    return bands


GRID_SHAPES = {
    "landscape photos, 2 x 4, titled": lambda: plotting.show_image_grid(
        [np.zeros((300, 451, 3), np.uint8)] * 8, [f"panel {index}" for index in range(8)], columns=4, cell_size=3),
    "landscape photos with colour bars, 2 x 3": lambda: plotting.show_image_grid(
        [np.linspace(-1, 1, 300 * 451).reshape(300, 451)] * 6, [f"map {index}" for index in range(6)], signed=True,
        columns=3, cell_size=4, colorbar=True),
    "portrait images, 3 x 2, untitled": lambda: plotting.show_image_grid(
        [np.zeros((120, 40), np.uint8)] * 6, columns=2, cell_size=1.5),
    "square digits, one row per class, suptitle": lambda: plotting.show_samples_per_class(
        np.zeros((40, 28, 28), np.uint8), np.repeat(np.arange(10), 4), [str(digit) for digit in range(10)], 4,
        title="digits"),
    "mixed shapes, 2 x 3": lambda: plotting.show_image_grid(
        [np.zeros((28, 28)), np.zeros((30, 90)), np.zeros((90, 30))] * 2, list("abcdef"), columns=3),
}


@pytest.mark.parametrize("name", GRID_SHAPES)
def test_image_grid_rows_sit_close(name: str) -> None:
    figure = GRID_SHAPES[name]()
    try:
        bands = blank_bands_between_rows(figure)
        assert bands, "the figure has a single row; this test needs at least two"
        assert max(bands) < 0.12, f"blank band of {max(bands):.0%} of a panel's height between rows"
    finally:
        plt.close(figure)


def test_blank_band_detector_catches_a_band() -> None:
    figure, axes = plt.subplots(2, 2, figsize=(4, 8), layout="constrained")  # square images in tall cells
    for axis in axes.flat:
        axis.imshow(np.zeros((10, 10)))
    try:
        assert max(blank_bands_between_rows(figure)) > 0.5
    finally:
        plt.close(figure)


def test_overlap_detector_catches_overlap() -> None:
    figure, axis = plt.subplots()
    axis.set_title("a long title written twice")
    figure.suptitle("a long title written twice", y=0.9)
    try:
        assert overlapping_text(figure)
    finally:
        plt.close(figure)


def test_small_images_are_framed_so_white_pixels_show() -> None:
    figure = plotting.show_image_grid([np.full((4, 4, 3), 255, np.uint8)])
    try:
        spines = figure.axes[0].spines.values()
        assert all(spine.get_visible() for spine in spines)
    finally:
        plt.close(figure)


def test_one_grey_convention_zero_is_black() -> None:
    figure = show_matrices([np.array([[0, 9]])], [""])
    try:
        shown = figure.axes[0].images[0]
        assert shown.get_cmap().name == "gray" and shown.norm.vmin == 0
        assert np.allclose(shown.to_rgba(0)[:3], 0.0)  # 0 is black
    finally:
        plt.close(figure)


def test_one_epoch_curve_has_a_single_whole_tick() -> None:
    figure = plotting.plot_learning_curves({"run": {"accuracy": [0.9], "val_accuracy": [0.95]}}, metrics=("accuracy",))
    try:
        axis = figure.axes[0]
        low, high = axis.get_xlim()
        assert [tick for tick in axis.get_xticks() if low <= tick <= high] == [1.0]
        assert axis.get_ylim()[1] <= 1.0
    finally:
        plt.close(figure)


@pytest.mark.parametrize("text,expected", [
    ("images in /work/shared/data/flowers", "images in flowers"),
    ("cache ~/data/cifar.npz", "cache cifar.npz"),
    ("scale 1/255, red / blue", "scale 1/255, red / blue"),
])
def test_machine_paths_are_shortened(text: str, expected: str) -> None:
    assert plotting.without_machine_paths(text) == expected
