"""Tests for utils.architectures: MAC counting against hand formulas, depth, timing, memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from page_code import page_definitions
from utils import anatomy, architectures, conv, course, runtime


def tiny_mixed_model():
    """16x16x3 input through every layer type the counter knows, with hand-checkable sizes."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.Conv2D(4, 3, padding="valid", name="conv")(inputs)  # 14x14x4
    x = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)  # 14x14x4
    x = layers.SeparableConv2D(8, 3, padding="same", name="separable")(x)  # 14x14x8
    x = layers.Conv2D(6, 3, strides=2, padding="same", name="strided")(x)  # 7x7x6
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(5, name="dense")(x)
    return keras.Model(inputs, outputs)


def hand_counted_macs() -> dict[str, int]:
    """The same model's MACs per image, written out from the definitions."""
    return {
        "conv": 14 * 14 * 4 * (3 * 3 * 3),
        "depthwise": 14 * 14 * 4 * (3 * 3),
        "separable": 14 * 14 * 4 * (3 * 3) + 14 * 14 * 4 * 8,
        "strided": 7 * 7 * 6 * (3 * 3 * 8),
        "dense": 6 * 5,
    }


def test_count_macs_matches_hand_formulas_layer_by_layer():
    model = tiny_mixed_model()
    by_layer = {layer.name: anatomy.keras_layer_macs(layer) for layer in anatomy.keras_leaf_layers(model)}
    assert {name: macs for name, macs in by_layer.items() if macs} == hand_counted_macs()
    assert architectures.count_macs(model) == sum(hand_counted_macs().values())
    assert anatomy.keras_layer_macs(model.get_layer("bn")) == 0


def test_profiler_agrees_with_layer_walk():
    model = tiny_mixed_model()
    assert architectures.profiler_macs(model) == architectures.count_macs(model)


def test_sequential_models_are_counted_too():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                              layers.Dense(3)])
    assert architectures.count_macs(model) == 6 * 6 * 2 * 9 + 72 * 3


def test_nested_backbone_is_walked():
    import keras
    from keras import layers

    backbone = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(2, 3)], name="backbone")
    inputs = keras.Input(shape=(8, 8, 1))
    outputs = layers.Dense(3)(layers.Flatten()(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    assert architectures.count_macs(model) == 6 * 6 * 2 * 9 + 72 * 3


def test_depth_definitions_on_a_residual_block():
    import keras
    from keras import layers

    inputs = keras.Input(shape=(8, 8, 3))
    main = layers.Conv2D(4, 3, padding="same")(inputs)
    main = layers.BatchNormalization()(main)
    main = layers.Conv2D(4, 3, padding="same")(main)
    shortcut = layers.Conv2D(4, 1)(inputs)
    x = layers.Add()([main, shortcut])
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    # Four convolution/Dense layers and one batch norm hold weights ...
    assert architectures.weighted_layer_count(model) == 5
    # ... but the longest path crosses two convolutions and the Dense layer only.
    assert architectures.longest_path_depth(model) == 3


def notebook_06(*names: str, **namespace) -> dict:
    """Functions notebook 06 writes on its page (its building blocks), defined for a test."""
    import keras
    from keras import layers

    return page_definitions("06", list(names), keras=keras, layers=layers, pd=pd, architectures=architectures,
                            runtime=runtime, **namespace)


def notebook_figures() -> dict:
    """Notebook 06's plotting functions as its page writes them."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    return notebook_06("marker_boxes", "keep_labels_apart", "plot_accuracy_vs_operations", "plot_time_vs_batch_size",
                       "plot_time_vs_operations", plt=plt, ticker=ticker, matplotlib=matplotlib)


def test_course_depthwise_separable_example_by_formula_and_by_layers():
    # The formula side (utils.conv) is tested in test_conv.py; here notebook 06's blocks must agree with it.
    build_block = notebook_06("build_block")["build_block"]
    shape, out_channels = (6, 6, 3), 5
    plain = build_block("plain", shape, out_channels, 3, padding="valid")
    separable = build_block("depthwise_separable", shape, out_channels, 3, padding="valid")
    formula = conv.depthwise_separable_multiplies(4, 4, 3, 3, 5)
    assert architectures.count_macs(plain) == formula.plain == course.DEPTHWISE_PLAIN_MULTIPLIES
    assert architectures.count_macs(separable) == formula.total == course.DEPTHWISE_SEPARABLE_MULTIPLIES
    with pytest.raises(ValueError, match="bottleneck_channels"):
        build_block("bottleneck", shape, out_channels)


def test_course_inception_bottleneck_block_matches_the_formula():
    formula = conv.bottleneck_multiplies(28, 28, 5, 192, 16, 32)
    block = notebook_06("build_block")["build_block"]("bottleneck", (28, 28, 192), 32, 5, bottleneck_channels=16)
    assert architectures.count_macs(block) == formula.total
    assert round(formula.total / 1e6, 1) == course.BOTTLENECK_TOTAL_MULTIPLIES_MILLIONS_ABOUT


def test_course_figures_used_by_notebook_06_are_the_course_texts():
    # Notebook 06 asserts its computed counts against these constants; here the constants
    # themselves are pinned to the figures in the course's lecture notes.
    assert (course.DEPTHWISE_PLAIN_MULTIPLIES, course.DEPTHWISE_DEPTHWISE_MULTIPLIES,
            course.DEPTHWISE_POINTWISE_MULTIPLIES, course.DEPTHWISE_SEPARABLE_MULTIPLIES) == (2_160, 432, 240, 672)
    assert course.DEPTHWISE_RATIO_ABOUT == 0.31
    assert (course.BOTTLENECK_PLAIN_MULTIPLIES_MILLIONS_ABOUT, course.BOTTLENECK_REDUCE_MULTIPLIES_MILLIONS_ABOUT,
            course.BOTTLENECK_CONV_MULTIPLIES_MILLIONS_ABOUT,
            course.BOTTLENECK_TOTAL_MULTIPLIES_MILLIONS_ABOUT) == (120, 2.4, 10, 12.4)
    assert course.VGG16_PARAMETERS == 138_357_544


def test_bottleneck_block_of_the_exercise_by_hand():
    # Notebook 06's exercise: 1x1 from 192 to 64 channels, then 3x3 to 256, on 28x28, "same" padding.
    block = notebook_06("build_block")["build_block"]("bottleneck", (28, 28, 192), 256, 3, bottleneck_channels=64)
    by_hand = 28 * 28 * 64 * 192 + 28 * 28 * 256 * 3 * 3 * 64
    assert architectures.count_macs(block) == by_hand == 125_239_296
    assert conv.bottleneck_multiplies(28, 28, 3, 192, 64, 256).total == by_hand


def test_activation_and_weight_memory_by_hand():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    values = 6 * 6 * 2 + 72 + 3  # Sequential models do not list their input layer
    assert anatomy.keras_activation_values(model) == values
    assert architectures.activations_megabytes(model) == pytest.approx(values * 4 / 2**20)
    assert architectures.weights_megabytes(model) == pytest.approx((3 * 3 * 2 + 2 + 72 * 3 + 3) * 4 / 2**20)


def test_notebook_06_measures_its_three_blocks():
    page = notebook_06("build_block", "measure_blocks", repeats=1, warmup=1)
    table = page["measure_blocks"]({"plain": 1, "depthwise_separable": 2, "bottleneck": 3}, batch_size=2)
    assert list(table["block"]) == ["plain", "depthwise_separable", "bottleneck"]
    assert list(table["macs_formula"]) == [1, 2, 3]  # passed through as given
    assert (table["macs_counted"] == table["macs_profiler"]).all()
    by_block = table.set_index("block")
    assert by_block.loc["plain", "parameters"] == 3 * 3 * 192 * 256
    assert by_block.loc["depthwise_separable", "parameters"] == 3 * 3 * 192 + 192 * 256
    assert by_block.loc["bottleneck", "parameters"] == 192 * 64 + 3 * 3 * 64 * 256
    assert by_block.loc["depthwise_separable", "macs_vs_plain"] == pytest.approx(1 / 256 + 1 / 9)
    assert np.isfinite(table["ms_per_image"]).all() and (table["ms_per_image"] > 0).all()


def test_time_inference_reports_each_batch_size():
    model = tiny_mixed_model()
    timings = architectures.time_inference(model, [1, 4], repeats=3, warmup=1)
    assert [timing.batch_size for timing in timings] == [1, 4]
    for timing in timings:
        assert 0 < timing.fastest_batch_seconds <= timing.median_batch_seconds <= timing.slowest_batch_seconds
        assert math.isfinite(timing.milliseconds_per_image)
    table = architectures.timing_table("tiny", timings)
    assert list(table["batch_size"]) == [1, 4]
    with pytest.raises(ValueError, match="repeats"):
        architectures.time_inference(model, [1], repeats=0)


def test_profile_model_summary_row():
    summary, timings = architectures.profile_model("tiny", tiny_mixed_model(), [1, 2], repeats=1, warmup=1)
    assert summary["macs_per_image"] == summary["profiler_macs_per_image"] == sum(hand_counted_macs().values())
    assert summary["parameters"] == tiny_mixed_model().count_params()
    assert summary["weights_mb"] > 0 and summary["activations_mb_per_image"] > 0
    assert {"ms_per_image_batch1", "ms_per_image_batch2"} <= set(summary)
    assert len(timings) == 2


def test_memory_probe_in_a_fresh_process():
    peak, method = architectures.measure_application_memory("MobileNetV2", 1, input_size=32)
    if peak is None:
        assert "not measurable" in method or "cannot" in method, method
    else:
        # MobileNetV2's weights alone are 13.5 MiB; the probe must see at least those.
        assert peak > 13, (peak, method)
        assert "fresh process" in method


def test_published_table_and_unknown_application():
    table = architectures.published_accuracy_table()
    for name in ("VGG16", "ResNet50", "InceptionV3", "MobileNetV2", "DenseNet121", "EfficientNetB0"):
        assert name in set(table["model"])
    assert (table["top1"] < table["top5"]).all()
    assert table["source"].str.contains("Keras Applications").all()
    with pytest.raises(ValueError, match="Unknown application"):
        architectures.build_application("AlexNet")


def test_comparison_plots_draw_one_mark_per_model():
    import pandas as pd

    summary = pd.DataFrame({"model": ["A", "B"], "top1": [0.7, 0.75], "macs_per_image": [3e8, 4e9],
                            "parameters": [3e6, 2.5e7], "ms_per_image_batch1": [20.0, 90.0]})
    timings = pd.DataFrame({"model": ["A", "A", "B", "B"], "batch_size": [1, 8, 1, 8],
                            "ms_per_image": [20.0, 15.0, 90.0, 80.0]})
    import matplotlib.pyplot as plt

    page = notebook_figures()
    figure, (bubbles, lines, points) = plt.subplots(1, 3)
    page["plot_accuracy_vs_operations"](summary, bubbles)
    assert len(bubbles.collections[0].get_offsets()) == 2
    page["plot_time_vs_batch_size"](timings, lines)
    assert [line.get_label() for line in lines.get_lines()] == ["A", "B"]
    page["plot_time_vs_operations"](summary, 1, points)
    assert len(points.collections[0].get_offsets()) == 2
    plt.close(figure)


def test_comparison_plots_keep_every_label_readable_for_the_full_profile_models():
    """The six models of the full profile, with their published figures: no two labels may overlap."""
    import matplotlib
    import matplotlib.pyplot as plt
    import pandas as pd

    published = architectures.published_accuracy_table().set_index("model")
    names = ["VGG16", "ResNet50", "InceptionV3", "MobileNetV2", "DenseNet121", "EfficientNetB0"]
    giga_macs = {"VGG16": 15.5, "ResNet50": 3.9, "InceptionV3": 5.7, "MobileNetV2": 0.3, "DenseNet121": 2.9,
                 "EfficientNetB0": 0.39}
    summary = pd.DataFrame({"model": names, "top1": published.loc[names, "top1"].to_numpy(),
                            "parameters": published.loc[names, "parameters_millions"].to_numpy() * 1e6,
                            "macs_per_image": [giga_macs[name] * 1e9 for name in names],
                            "ms_per_image_batch1": [90.0, 30.0, 45.0, 8.0, 25.0, 10.0]})
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    page = notebook_figures()
    page["plot_accuracy_vs_operations"](summary, left)
    page["plot_time_vs_operations"](summary, 1, right)
    figure.tight_layout()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    try:
        for axis in (left, right):
            boxes = [(text.get_text(), matplotlib.text.Text.get_window_extent(text, renderer))  # the words only
                     for text in axis.texts]
            assert len(boxes) == len(names)
            clashes = [(first, second) for index, (first, box) in enumerate(boxes)
                       for second, other in boxes[index + 1:] if box.overlaps(other)]
            assert not clashes, clashes
            markers = axis.collections[0]
            centres = markers.get_offset_transform().transform(markers.get_offsets())
            radii = [size ** 0.5 / 2 * figure.dpi / 72 for size in np.broadcast_to(markers.get_sizes(), len(centres))]
            covered = [(label, names[point]) for index, (label, box) in enumerate(boxes)
                       for point, ((x, y), radius) in enumerate(zip(centres, radii))
                       if point != index and box.overlaps(matplotlib.transforms.Bbox.from_extents(
                           x - radius, y - radius, x + radius, y + radius))]
            assert not covered, f"labels covering another model's marker: {covered}"
            inside = axis.get_window_extent(renderer)
            assert all(inside.x0 <= box.x0 and box.x1 <= inside.x1 + 1 for _, box in boxes), "a label leaves its panel"
    finally:
        plt.close(figure)


def test_a_label_is_moved_off_a_neighbouring_models_marker():
    """Synthetic points: Beta sits where Alpha's label would go, up and to the right of Alpha's point."""
    import matplotlib
    import matplotlib.pyplot as plt
    import pandas as pd

    names = ["Alpha", "Beta", "Gamma"]
    summary = pd.DataFrame({"model": names, "macs_per_image": [1.0e9, 1.25e9, 5e9],
                            "ms_per_image_batch1": [10.0, 11.5, 50.0]})
    figure, axis = plt.subplots(figsize=(7, 5))
    page = notebook_figures()
    try:
        page["plot_time_vs_operations"](summary, 1, axis)
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        alpha = matplotlib.text.Text.get_window_extent(axis.texts[0], renderer)
        beta = page["marker_boxes"](axis, axis.collections[0])[1]
        assert not alpha.overlaps(beta), "Alpha's label covers Beta's marker"
        assert axis.texts[0].xyann[1] < 4, "the label was moved down from where it started"
    finally:
        plt.close(figure)
