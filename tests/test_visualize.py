"""Tests for utils.visualize on tiny models: shapes, finite values, layer choice, attacks that work."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

from page_code import page_definitions
from utils import visualize


def tiny_sequential():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input(shape=(16, 16, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a"),
        layers.Conv2D(6, 3, activation="relu", name="conv_b"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Dropout(0.25, name="dropout"),
        layers.Flatten(name="flatten"),
        layers.Dense(3, name="logits"),
        layers.Activation("softmax", name="softmax"),
    ], name="tiny_sequential")


def tiny_sequential_grown_with_add():
    """Built like the suite's CIFAR models: ``add()`` after ``add()``, so Keras rebuilds it each time."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(2)
    model = keras.Sequential(name="grown")
    model.add(keras.Input(shape=(16, 16, 3)))
    model.add(layers.Conv2D(4, 3, padding="same", activation="relu", name="first"))
    model.add(layers.BatchNormalization(name="bn"))
    model.add(layers.Conv2D(6, 3, activation="relu", name="last"))
    model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dense(8, activation="relu"))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(3, name="logits"))
    model.add(layers.Activation("softmax"))
    return model


def tiny_functional():
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(32, 32, 3))
    stem = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    left = layers.Conv2D(4, 1, activation="relu", name="branch_1x1")(stem)
    right = layers.SeparableConv2D(4, 3, padding="same", activation="relu", name="branch_sep")(stem)
    merged = layers.Concatenate(name="concat")([left, right])
    top = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="top_conv")(merged)
    pooled = layers.GlobalAveragePooling2D(name="gap")(top)
    outputs = layers.Dense(5, activation="softmax", name="classifier")(pooled)
    return keras.Model(inputs, outputs, name="tiny_functional")


def random_images(count: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (count, size, size, channels)).astype("float32")


def test_last_convolution_layer_is_found_for_sequential_and_functional_models():
    assert visualize.last_convolution_layer(tiny_sequential()).name == "conv_b"
    assert visualize.last_convolution_layer(tiny_functional()).name == "top_conv"


def test_every_technique_works_on_a_sequential_model_grown_with_add():
    model = tiny_sequential_grown_with_add()
    images = random_images(2, 16)
    assert visualize.last_convolution_layer(model).name == "last"
    assert set(visualize.activation_maps(model, images)) == {"first", "last"}
    page = notebook_ascent(model)
    ascent = page["maximize_activation"](*page["filter_objective"](model.get_layer("last")), [0, 1], ["0", "1"], steps=10)
    assert (ascent.objective[-1] > ascent.objective[0]).all()
    assert visualize.embed(visualize.feature_extractor(model), images).shape == (2, 8)


def test_layer_lookups_name_the_fix():
    import keras
    from keras import layers

    dense_only = keras.Sequential([keras.Input(shape=(4, 4, 1)), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match="no Conv2D"):
        visualize.last_convolution_layer(dense_only)
    never_built = keras.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match="keras.Input"):
        visualize.activation_maps(never_built, np.zeros((1, 8, 8, 1)))


def test_first_layer_filters_and_activation_maps():
    model = tiny_functional()
    filters = visualize.first_layer_filters(model)
    assert filters.shape == (4, 3, 3, 3)
    assert filters.min() >= 0 and filters.max() <= 1
    maps = visualize.activation_maps(model, random_images(2, 32))
    assert list(maps) == ["stem", "branch_1x1", "branch_sep", "top_conv"]
    assert maps["stem"].shape == (2, 32, 32, 4) and maps["top_conv"].shape == (2, 16, 16, 8)
    assert all(np.isfinite(values).all() for values in maps.values())
    with pytest.raises(ValueError, match="No layer named"):
        visualize.activation_maps(model, random_images(1, 32), ["nope"])


def notebook_ascent(model) -> dict:
    """Notebook 07's gradient ascent, as written on its page, for ``model``."""
    import keras
    import tensorflow as tf

    return page_definitions("07", ["AscentResult", "blur", "filter_objective", "maximize_activation"], keras=keras,
                            tf=tf, model=model, graph=visualize.symbolic_graph(model))


@pytest.mark.parametrize("target", ["filter", "class"])
def test_the_notebooks_gradient_ascent_raises_its_objective(target):
    import tensorflow as tf

    model = tiny_sequential()
    page = notebook_ascent(model)
    tapped = (page["filter_objective"](model.get_layer("conv_b")) if target == "filter" else
              (page["graph"].outputs["logits"], lambda scores: tf.cast(scores, tf.float32)))
    result = page["maximize_activation"](*tapped, [2, 0, 1], ["a", "b", "c"], steps=25, seed=3)
    assert result.images.shape == (3, 16, 16, 3) and np.isfinite(result.images).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert result.objective.shape == (26, 3)
    assert (result.objective[-1] > result.objective[0]).all()


def test_the_notebooks_ascent_reads_a_relu_filter_before_its_relu_and_class_scores_before_the_softmax():
    import keras
    import tensorflow as tf

    model = tiny_sequential()
    page = notebook_ascent(model)
    tapped, to_values = page["filter_objective"](model.get_layer("conv_b"))
    assert tapped is page["graph"].layer_inputs["conv_b"]  # conv_b has a ReLU: its input is tapped
    images = random_images(2, 16)
    after_relu = keras.Model(model.inputs, model.get_layer("conv_b").output)  # the layer's output: never negative
    values = np.asarray(to_values(page["graph"].model(tapped)(images)))
    assert values.shape == (2, 6) and values.min() < 0 <= np.asarray(after_relu(images)).min()
    ascent = page["maximize_activation"](page["graph"].outputs["logits"], lambda scores: tf.cast(scores, tf.float32),
                                         [1], ["class 1"], steps=0)
    logits = keras.Model(model.inputs, model.get_layer("logits").output)(ascent.images, training=False)
    assert np.allclose(ascent.objective[-1], np.asarray(logits)[:, 1], atol=1e-6)


def test_the_notebooks_nearest_neighbours_are_the_closest_rows():
    nearest_neighbours = page_definitions("07", ["nearest_neighbours"])["nearest_neighbours"]
    database = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    queries = np.array([[0.9, 0.1], [0.0, 0.0]])
    indices, distances = nearest_neighbours(queries, database, k=2)
    np.testing.assert_array_equal(indices, [[1, 0], [0, 1]])
    assert distances[1, 0] == pytest.approx(0.0)
    assert np.all(np.diff(distances, axis=1) >= 0)


def test_feature_extractor_gives_penultimate_vectors():
    model = tiny_sequential()
    extractor = visualize.feature_extractor(model)
    features = visualize.embed(extractor, random_images(5, 16), batch_size=2)
    assert features.shape == (5, 7 * 7 * 6)
    assert np.isfinite(features).all()


def test_eight_bit_storage_erases_sub_level_steps_and_keeps_whole_levels():
    to_8bit = page_definitions("07", ["to_8bit"])["to_8bit"]
    levels = np.array([[10, 128, 250]], dtype=np.uint8)
    images = levels.astype("float32") / 255.0
    assert np.array_equal(to_8bit(images), levels)
    assert np.array_equal(to_8bit(images + 0.4 / 255), levels)  # below half a level: gone
    assert np.array_equal(to_8bit(images + 1 / 255).astype(int) - levels, np.ones((1, 3), int))
    assert to_8bit(np.array([1.2, -0.1])).tolist() == [255, 0]


def notebook_figures(**namespace) -> dict:
    """Notebook 07's figure functions as its page writes them, with the globals they read."""
    import matplotlib
    import matplotlib.pyplot as plt

    names = ["AdversarialExamples", "plot_activation_maps", "overlay_heatmap", "plot_grad_cam", "plot_adversarial",
             "plot_neighbours"]
    return page_definitions("07", names, plt=plt, matplotlib=matplotlib, visualize=visualize, itertools=itertools,
                            class_names=["airplane", "automobile"], **namespace)


def test_grad_cam_figure_keeps_captions_clear_of_the_images():
    import matplotlib.pyplot as plt

    page = notebook_figures()
    images = random_images(4, 16, seed=5)
    overlays = [page["overlay_heatmap"](image, image[..., 0]) for image in images]
    figure = page["plot_grad_cam"](images, overlays, ["true cat\npred dog"] * 4, title="Grad-CAM")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes
    assert len(axes) == 8
    for axis in axes:
        caption = axis.title.get_window_extent(renderer)
        for other in axes:
            if other is not axis and axis.title.get_text():
                assert not caption.overlaps(other.get_window_extent(renderer)), "a caption runs into an image"
    plt.close(figure)
    with pytest.raises(ValueError, match="zip"):
        page["plot_grad_cam"](images, overlays[:2], ["a"] * 4)


def _texts_clear(figure) -> list[str]:
    """Problems with a figure's text: titles that overlap each other or run into another panel's image."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    titled = [(axis, axis.title.get_window_extent(renderer)) for axis in figure.axes if axis.title.get_text()]
    images = [(axis, axis.get_window_extent(renderer)) for axis in figure.axes if axis.images]
    problems = []
    for index, (axis, box) in enumerate(titled):
        problems += [f"{axis.title.get_text()!r} overlaps {other.title.get_text()!r}"
                     for other, other_box in titled[index + 1:] if box.overlaps(other_box)]
        problems += [f"{axis.title.get_text()!r} runs into an image"
                     for other, other_box in images if other is not axis and box.overlaps(other_box)]
    return problems


def _adversarial_examples(page: dict, epsilon: float):
    original = random_images(1, 16, seed=3)
    perturbation = np.full_like(original, epsilon)
    return page["AdversarialExamples"](original + perturbation, perturbation, epsilon, np.array([0]), np.array([1]),
                                       np.array([0.93]), np.array([0.71]))


def _neighbours_figure():
    page = notebook_figures(x_test=random_images(2, 16), y_test=np.array([0, 1]), database=random_images(20, 16, seed=1),
                            splits=types.SimpleNamespace(y_train=np.arange(20) % 2))
    return page["plot_neighbours"](np.arange(2), {"feature space": np.arange(10).reshape(2, 5),
                                                  "pixel space": np.arange(10, 20).reshape(2, 5)})


FIGURES = {
    "activation maps": lambda: notebook_figures()["plot_activation_maps"](
        {"conv2d": random_images(1, 30, 8), "conv2d_1": random_images(1, 28, 8), "conv2d_2": random_images(1, 12, 16)},
        channels=8, title="Feature maps, shallow (top) to deep (bottom)"),
    "adversarial example": lambda: (lambda page: page["plot_adversarial"](
        random_images(1, 16, seed=3)[0], _adversarial_examples(page, 2 / 255)))(notebook_figures()),
    "neighbours": _neighbours_figure,
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_keep_their_titles_readable(name):
    import matplotlib.pyplot as plt

    figure = FIGURES[name]()
    try:
        assert not _texts_clear(figure), _texts_clear(figure)
    finally:
        plt.close(figure)


def test_adversarial_captions_give_whole_levels_and_the_magnification():
    import matplotlib.pyplot as plt

    page = notebook_figures()
    figure = page["plot_adversarial"](random_images(1, 16, seed=3)[0], _adversarial_examples(page, 2 / 255))
    try:
        captions = [axis.title.get_text() for axis in figure.axes]
        assert captions[0] == "original: airplane\n(93% sure)" and captions[2] == "adversarial: automobile\n(71% sure)"
        assert "x64" in captions[1] and "2/255" in captions[1]
    finally:
        plt.close(figure)
