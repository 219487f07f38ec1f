"""Result tables (atomic appends) and the shared figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from utils import plotting, results


def test_append_result_adds_rows_and_new_columns() -> None:
    results.append_result("unit_table", {"experiment": "I", "accuracy": 0.5})
    results.append_result("unit_table", {"experiment": "II", "accuracy": 0.6, "seconds": 3.0})
    table = results.read_results("unit_table")
    assert list(table["experiment"]) == ["I", "II"] and "timestamp" in table
    assert np.isnan(table.loc[0, "seconds"]) and table.loc[1, "seconds"] == 3.0


def test_interrupted_write_leaves_table_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    results.append_result("crash_table", {"experiment": "I"})
    before = results.results_path("crash_table").read_text()

    def interrupted(*arguments, **keywords):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.append_result("crash_table", {"experiment": "II"})
    folder = results.results_path("crash_table").parent
    assert results.results_path("crash_table").read_text() == before
    assert not list(folder.glob(".crash_table*.tmp"))


def test_read_missing_table_is_empty() -> None:
    assert results.read_results("never_written").empty


def test_learning_curves_draw_train_and_validation() -> None:
    history = {"accuracy": [0.1, 0.2], "val_accuracy": [0.1, 0.15], "loss": [2, 1], "val_loss": [2, 1.5]}
    figure = plotting.plot_learning_curves({"I": history, "II": history}, mark_epochs={"fine-tune": 1})
    accuracy_axis = figure.axes[0]
    assert len(accuracy_axis.lines) == 4 + 1
    assert accuracy_axis.get_ylabel() == "accuracy"


def test_confusion_counts() -> None:
    matrix = plotting.confusion_counts(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    figure = plotting.plot_confusion_matrix(np.array([0, 1]), np.array([1, 1]), ["a", "b"])
    assert [text.get_text() for text in figure.axes[0].texts] == ["0", "1", "0", "1"]


def test_samples_per_class_picks_each_class() -> None:
    labels = np.repeat(np.arange(3), 10)
    indices = plotting.samples_per_class(labels, 4)
    assert list(np.bincount(labels[indices])) == [4, 4, 4]
    figure = plotting.show_samples_per_class(np.zeros((30, 5, 5), np.uint8), labels, ["a", "b", "c"], 4)
    assert len(figure.axes) == 12


def test_image_grid_scales_uint8_fixed_and_signed_maps_centred() -> None:
    import matplotlib.pyplot as plt

    photo = np.random.default_rng(0).integers(0, 200, (6, 8, 3), dtype=np.uint8)
    figure = plotting.show_image_grid([photo, photo[..., 0], np.linspace(-1, 1, 16).reshape(4, 4)],
                                      ["rgb", "red", "signed"], signed=[False, False, True], colorbar=True)
    titled = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in titled] == ["rgb", "red", "signed"]
    assert len(titled) == 3 and len(figure.axes) == 3 + 2  # one row of three, colour bars on the 2D panels
    assert titled[1].images[0].get_clim() == (0, 255)  # uint8 channels are not stretched
    low, high = titled[2].images[0].get_clim()
    assert low == -high and 0.9 < high <= 1.0  # signed maps are centred on zero
    plt.close(figure)
    figure = plotting.show_image_grid([np.ones((3, 3))] * 2, cmap=["viridis", None])
    assert [axis.images[0].get_cmap().name for axis in figure.axes] == ["viridis", "gray"]
    plt.close(figure)
    with pytest.raises(ValueError, match="one per image"):
        plotting.show_image_grid([np.ones((3, 3))] * 2, signed=[True])


def test_learning_curve_epochs_have_whole_number_ticks() -> None:
    history = {"accuracy": [0.1, 0.2], "val_accuracy": [0.1, 0.15]}
    figure = plotting.plot_learning_curves({"run": history}, metrics=("accuracy",))
    figure.canvas.draw()
    ticks = [tick for tick in figure.axes[0].get_xticks() if 1 <= tick <= 2]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
