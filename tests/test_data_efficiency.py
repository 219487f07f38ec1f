"""Tests for utils.data_efficiency: subsets, budgets, the runner's points, and the verdict drawn from a curve.

Rows and images here are synthetic, built by each test; no test reads a real dataset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import data, data_efficiency, results


def test_per_class_subset_takes_exactly_that_many_of_every_class_and_depends_on_the_seed():
    labels = np.repeat(np.arange(5), 40)
    chosen = data_efficiency.per_class_subset(labels, 10, seed=0)
    assert np.array_equal(np.bincount(labels[chosen]), [10] * 5)
    assert len(set(chosen)) == 50
    assert not np.array_equal(np.sort(chosen), np.sort(data_efficiency.per_class_subset(labels, 10, seed=1)))
    assert np.array_equal(chosen, data_efficiency.per_class_subset(labels, 10, seed=0))


def test_per_class_subset_all_is_every_image_and_too_many_is_a_clear_error():
    labels = np.repeat(np.arange(3), [5, 7, 9])
    assert sorted(data_efficiency.per_class_subset(labels, data_efficiency.ALL_IMAGES, seed=0)) == list(range(21))
    with pytest.raises(ValueError, match="CURVE_PER_CLASS"):
        data_efficiency.per_class_subset(labels, 6, seed=0)


def test_images_seen_is_forty_passes_within_its_bounds():
    assert data_efficiency.images_seen(50, 4000, 8000) == 4000
    assert data_efficiency.images_seen(150, 4000, 8000) == 6000
    assert data_efficiency.images_seen(3000, 4000, 8000) == 8000


def test_a_small_set_is_repeated_to_fill_an_epoch():
    images, labels = np.zeros((50, 4, 4, 3), np.uint8), np.arange(50) % 5
    repeated_images, repeated_labels, copies = data_efficiency.repeated(images, labels)
    assert copies == 21 and len(repeated_labels) == 1050 >= data_efficiency.LEAST_IMAGES_PER_EPOCH
    assert np.array_equal(repeated_labels[:50], labels) and repeated_images.shape[1:] == images.shape[1:]


def test_split_cifar_keeps_source_and_target_classes_apart():
    dataset = data.synthetic_image_dataset("cifar10", (32, 32, 3), data.CIFAR10_CLASS_NAMES)
    source, near = data_efficiency.split_cifar(dataset, validation_images=50, seed=0)
    assert source.class_names == dataset.class_names[:5] and near.class_names == dataset.class_names[5:]
    assert set(np.unique(source.y_train)) <= set(range(5)) and set(np.unique(near.y_train)) == set(range(5))
    assert len(source.y_validation) == 50
    assert len(near.y_train) == int(np.isin(dataset.y_train, range(5, 10)).sum())
    target_images = dataset.x_train[np.isin(dataset.y_train, range(5, 10))]
    assert np.array_equal(near.x_train, target_images)


def curve_rows(accuracies: dict[tuple[str, str, int], list[float]], test_images: int = 5000) -> pd.DataFrame:
    """Synthetic curve rows: one per (target, arm, per_class) and seed, with the given test accuracies."""
    rows = []
    for (target, arm, per_class), values in accuracies.items():
        for seed, value in enumerate(values):
            rows.append({"target": target, "arm": arm, "per_class": per_class, "seed": seed, "test_accuracy": value,
                         "train_images": 5 * (per_class or 600), "target_classes": 5, "test_images": test_images,
                         "majority_share": 0.2, "train_seconds": 1.0})
    return pd.DataFrame(rows)


def test_pretraining_pays_only_beyond_the_noise():
    rows = curve_rows({
        ("near", "frozen pretrained", 10): [0.65, 0.66], ("near", "fine-tuned", 10): [0.67, 0.68],
        ("near", "from scratch", 10): [0.52, 0.53],
        ("near", "frozen pretrained", 100): [0.70, 0.72], ("near", "fine-tuned", 100): [0.76, 0.80],
        ("near", "from scratch", 100): [0.75, 0.79],
    })
    gains = data_efficiency.pretraining_gain(data_efficiency.summarise(rows)).set_index("per_class")
    assert gains.loc["10", "best pretrained arm"] == "fine-tuned"
    assert gains.loc["10", "gain"] == pytest.approx(0.15)
    assert bool(gains.loc["10", "pretraining pays"]) and not bool(gains.loc["100", "pretraining pays"])
    sentence = data_efficiency.where_pretraining_stops_paying(gains.reset_index(), "near")
    assert sentence == "near: pretraining pays at 10 images per class; not beyond noise at 100."


def test_the_test_sets_noise_does_not_average_out_over_seeds():
    one_seed = data_efficiency.summarise(curve_rows({("far", "from scratch", 10): [0.5]}, test_images=100))
    assert one_seed.loc[0, "spread"] == 0.0
    assert data_efficiency.standard_error(one_seed)[0] == pytest.approx(0.05)
    two_equal_seeds = data_efficiency.summarise(curve_rows({("far", "from scratch", 10): [0.5, 0.5]}, test_images=100))
    assert data_efficiency.standard_error(two_equal_seeds)[0] == pytest.approx(0.05)


def test_no_paying_count_is_said_with_the_counts():
    rows = curve_rows({("far", "frozen pretrained", 10): [0.40], ("far", "from scratch", 10): [0.55],
                       ("far", "frozen random init", 10): [0.45],
                       ("far", "frozen pretrained", 0): [0.50], ("far", "from scratch", 0): [0.75],
                       ("far", "frozen random init", 0): [0.49]})
    gains = data_efficiency.pretraining_gain(data_efficiency.summarise(rows))
    assert gains["frozen: pretrained - random features"].round(2).tolist() == [-0.05, 0.01]
    assert data_efficiency.where_pretraining_stops_paying(gains, "far") == (
        "far: pretraining does not beat training from scratch beyond noise at any count measured (10, all per class)."
        " Training from scratch beats it beyond noise at 10, all per class."
        " Its frozen features never beat a random network's beyond noise.")


def test_the_curve_table_and_the_course_table_show_what_was_measured():
    rows = curve_rows({("far: flowers", "frozen pretrained", 0): [0.40, 0.42],
                       ("far: flowers", "fine-tuned", 0): [0.50, 0.52]})
    summary = data_efficiency.summarise(rows)
    table = data_efficiency.curve_table(summary)
    assert list(table.columns) == ["frozen pretrained", "fine-tuned"]
    assert table.loc[("far: flowers", "all"), "frozen pretrained"] == "41.0% ± 1.4%"
    course = data_efficiency.course_experiments_offline(summary, None)
    assert course.loc["1 frozen, new head (stand-in, 32 px)", "this run"] == "41.0% ± 1.4% (2 seeds)"
    assert course.loc["control: from scratch (32 px)", "this run"] == "not measured yet"
    assert course.loc["1 frozen, new head (stand-in, 32 px)", "reference run"] == "not measured yet"


def test_the_curves_plot_one_panel_per_target_with_the_floor():
    rows = curve_rows({("near", "frozen pretrained", 10): [0.6, 0.62], ("far", "from scratch", 10): [0.5, 0.52]})
    summary = data_efficiency.summarise(rows)
    figure = data_efficiency.plot_curves(summary, summary, title="synthetic rows")
    assert [ax.get_title() for ax in figure.axes] == ["near (floor 20%)", "far (floor 20%)"]
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "frozen pretrained (this run)" in labels and "frozen pretrained (reference run)" in labels
    assert "majority-class floor" in labels
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["10"]
    reference_only = data_efficiency.summarise(curve_rows({("near", "frozen pretrained", 100): [0.7]}))
    figure = data_efficiency.plot_curves(summary, pd.concat([summary, reference_only]))
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["10", "100"]
    crowded = data_efficiency.summarise(curve_rows({("near", "frozen pretrained", 110): [0.7]}))
    figure = data_efficiency.plot_curves(summary, pd.concat([summary, reference_only, crowded]))
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["10", "100"]  # 110 would overlap 100


def test_a_point_is_recorded_once_and_a_rerun_reuses_it(own_outputs):
    """A linear head on synthetic features, through the runner: the second call trains nothing and adds no row."""
    generator = np.random.default_rng(0)
    labels = np.arange(100) % 5
    features = (generator.normal(size=(100, 8)) + np.eye(5, 8)[labels] * 3).astype(np.float32)
    target = data_efficiency.Target("synthetic target", np.zeros((100, 4, 4, 3), np.uint8), labels,
                                    np.zeros((100, 4, 4, 3), np.uint8), labels, list("abcde"), "synthetic")
    calls = []

    def fit(head, folder):
        calls.append(folder)
        return data_efficiency.fit_head(head, features, labels, folder, seed=0)

    def point():
        return data_efficiency.record_point(target, "frozen pretrained", 20, 0, {"profile": "test"},
                                            build=lambda: data_efficiency.linear_head(8, 5), fit=fit,
                                            test_inputs=features, train_images=100, keep_model=True)

    first, second = point(), point()
    assert len(calls) == 1 and second.reused and not first.reused
    assert len(results.read_results(data_efficiency.CURVE_TABLE)) == 1
    assert first.row["test_accuracy"] > 0.8  # the classes are separable: a working head learns them
    assert second.model is not None and second.row["test_accuracy"] == first.row["test_accuracy"]
