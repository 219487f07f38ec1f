"""Tests for utils.anatomy: the layer calculators work from a specification alone (Keras only to read built models)."""

from __future__ import annotations

import pandas as pd
import pytest

from page_code import page_definitions
from utils import anatomy, course
from utils.anatomy import (
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    GlobalPool2DSpec,
    ModelSpec,
    Pool2DSpec,
)
from utils.models import cifar_style_spec, lenet5_spec, mnist_cnn_spec, vgg_spec


def study_notes_spec() -> ModelSpec:
    """The study notes' exercise: three 3x3 stride-2 SAME convs with 100, 200, 400 maps on 200x300 RGB."""
    return ModelSpec("exercise", (200, 300, 3), tuple(
        Conv2DSpec(filters, 3, strides=2, padding="same", name=f"conv{index}")
        for index, filters in enumerate((100, 200, 400), start=1)))


def evaluate_formula(formula: str) -> int:
    """Turn '(3×3×3 + 1) × 64' into 1792 by plain arithmetic."""
    expression = formula.split(" (")[0] if not formula.startswith("(") else formula
    return eval(expression.replace("×", "*").replace(",", ""), {"__builtins__": {}})


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "expected"),
    [(6, 3, 1, "valid", 4), (4, 3, 1, "valid", 2), (6, 3, 1, 1, 6), (224, 3, 1, "same", 224),
     (224, 2, 2, "valid", 112), (200, 3, 2, "same", 100), (75, 3, 2, "same", 38), (7, 3, 2, 0, 3)],
)
def test_conv_output_size_follows_the_course_formula(size, kernel, stride, padding, expected):
    assert anatomy.conv_output_size(size, kernel, stride, padding) == expected


def test_conv_output_size_rejects_a_window_larger_than_the_image():
    with pytest.raises(ValueError, match="does not fit"):
        anatomy.conv_output_size(2, 3)
    with pytest.raises(ValueError, match="padding"):
        anatomy.conv_output_size(6, 3, 1, "full")


def test_mnist_table_matches_the_course_summary():
    table = anatomy.layer_table(mnist_cnn_spec())
    parameters = dict(zip(table["layer"], table["parameters"]))
    assert parameters["conv1"] == course.MNIST_CONV1_PARAMETERS
    assert parameters["conv2"] == course.MNIST_CONV2_PARAMETERS
    assert parameters["dense"] == course.MNIST_DENSE_PARAMETERS
    assert parameters["predictions"] == course.MNIST_OUTPUT_PARAMETERS
    assert table["parameters"].sum() == course.MNIST_PARAMETERS
    shapes = dict(zip(table["layer"], table["output_shape"]))
    assert shapes["conv1"] == "26×26×32" and shapes["conv2"] == "24×24×64"
    assert shapes["pool"] == "12×12×64" and shapes["flatten"] == str(course.MNIST_FLATTEN_SIZE)


def test_every_formula_evaluates_to_its_parameter_count():
    for spec in (mnist_cnn_spec(), vgg_spec(16), lenet5_spec()):
        for row in anatomy.analyse(spec)[1:]:
            if row.kind in ("conv", "dense"):
                assert evaluate_formula(row.formula) == row.parameters, (spec.name, row.name)
    assert anatomy.layer_table(vgg_spec(16))["formula"][1] == "(3×3×3 + 1) × 64"


def test_vgg16_totals_macs_and_receptive_fields():
    rows = {row.name: row for row in anatomy.analyse(vgg_spec(16))}
    assert rows["block1_conv1"].parameters == course.VGG16_FIRST_CONV_PARAMETERS
    assert anatomy.total_parameters(vgg_spec(16)) == course.VGG16_PARAMETERS
    assert rows["block1_conv1"].macs == 224 * 224 * 64 * 3 * 3 * 3
    assert rows["fc1"].macs == course.VGG16_FIRST_FC_WEIGHTS
    assert sum(row.macs for row in rows.values()) == 15_470_264_320
    assert rows["block1_conv2"].receptive_field == (5, 5)
    assert rows["block5_conv3"].receptive_field == (196, 196)
    assert rows["block5_pool"].receptive_field == (212, 212)
    assert rows["fc1"].receptive_field == (224, 224)
    assert rows["block1_conv1"].activation_bytes == 224 * 224 * 64 * 4


def test_stacked_3x3_convs_see_like_one_larger_kernel_with_fewer_weights():
    three = ModelSpec("three", (32, 32, 8), tuple(Conv2DSpec(8, 3, use_bias=False) for _ in range(3)))
    one = ModelSpec("one", (32, 32, 8), (Conv2DSpec(8, 7, use_bias=False),))
    assert [row.receptive_field[0] for row in anatomy.analyse(three)[1:]] == [3, 5, 7]
    assert anatomy.analyse(one)[1].receptive_field == (7, 7)
    assert anatomy.total_parameters(three) == 27 * 8 * 8
    assert anatomy.total_parameters(one) == 49 * 8 * 8


def test_global_pooling_versus_flatten_figures():
    assert anatomy.total_parameters(cifar_style_spec("flatten")) == course.CIFAR_STYLE_FLATTEN_PARAMETERS
    assert (anatomy.total_parameters(cifar_style_spec("global_max_pooling"))
            == course.CIFAR_STYLE_GLOBAL_MAX_POOLING_PARAMETERS)


def test_study_notes_exercise_parameters_and_memory():
    rows = anatomy.analyse(study_notes_spec())[1:]
    assert tuple(row.parameters for row in rows) == course.STUDY_NOTES_EXERCISE_LAYER_PARAMETERS
    assert sum(row.parameters for row in rows) == course.STUDY_NOTES_EXERCISE_PARAMETERS
    assert [row.output_shape for row in rows] == [(100, 150, 100), (50, 75, 200), (25, 38, 400)]
    assert [row.activation_bytes for row in rows] == [6_000_000, 3_000_000, 1_520_000]


def notebook_memory() -> dict:
    """Notebook 04's training-memory estimate, as its page writes it."""
    return page_definitions("04", ["VALUE_BYTES", "TrainingMemory", "training_memory"], anatomy=anatomy)


def test_training_memory_adds_up_by_hand():
    training_memory = notebook_memory()["training_memory"]
    spec = ModelSpec("tiny", (4, 4, 1), (Conv2DSpec(2, 3), FlattenSpec(), DenseSpec(3)))
    # conv: (9 + 1) * 2 = 20 parameters, output 2x2x2 = 8 values; dense: (8 + 1) * 3 = 27, 3 values.
    memory = training_memory(spec, batch_size=10, precision="float32", optimizer_slots=2)
    assert memory.parameter_bytes == 47 * 4
    assert memory.gradient_bytes == 47 * 4
    assert memory.optimizer_state_bytes == 2 * 47 * 4
    assert memory.input_bytes == 16 * 4 * 10
    assert memory.activation_bytes == (8 + 3) * 4 * 10  # the Flatten view is not counted twice
    assert memory.total_bytes == 47 * 4 * 4 + 16 * 40 + 11 * 40
    half = training_memory(spec, batch_size=10, precision="float16", optimizer_slots=2)
    assert half.total_bytes * 2 == memory.total_bytes
    mixed = training_memory(spec, batch_size=10, precision="mixed_float16")
    assert mixed.parameter_bytes == 47 * 4 and mixed.activation_bytes == 11 * 2 * 10


def test_training_memory_grows_with_batch_size():
    training_memory = notebook_memory()["training_memory"]
    small, large = (training_memory(vgg_spec(16), batch_size, "float32") for batch_size in (32, 256))
    assert large.activation_bytes == 8 * small.activation_bytes
    assert small.parameter_bytes == large.parameter_bytes == course.VGG16_PARAMETERS * 4
    with pytest.raises(KeyError, match="int8"):
        training_memory(vgg_spec(16), 32, precision="int8")


def test_bad_layer_orders_give_clear_errors():
    with pytest.raises(ValueError, match="FlattenSpec"):
        anatomy.analyse(ModelSpec("bad", (8, 8, 1), (DenseSpec(4),)))
    with pytest.raises(ValueError, match="before the Flatten"):
        anatomy.analyse(ModelSpec("bad", (8, 8, 1), (FlattenSpec(), Conv2DSpec(4))))
    with pytest.raises(ValueError, match="does not fit"):
        anatomy.analyse(ModelSpec("bad", (4, 4, 1), (Conv2DSpec(4, 5),)))
    with pytest.raises(ValueError, match="padding"):
        Conv2DSpec(4, 3, padding="full")
    with pytest.raises(ValueError, match="mode"):
        Pool2DSpec(2, mode="min")
    with pytest.raises(ValueError, match="rate"):
        DropoutSpec(1.5)


def test_global_pool_and_dropout_shapes():
    spec = ModelSpec("gp", (10, 10, 3), (Conv2DSpec(5, 3), GlobalPool2DSpec("average"), DropoutSpec(0.1)))
    table = anatomy.layer_table(spec)
    assert list(table["output_shape"]) == ["10×10×3", "8×8×5", "5", "5"]
    assert table["receptive_field"].iloc[2] == "10×10 (whole image)"
    assert sum(row.macs for row in anatomy.analyse(spec)) == 8 * 8 * 5 * 27


def test_format_helpers():
    assert anatomy.format_count(138_357_544) == "138,357,544"
    assert anatomy.format_shape((224, 224, 64)) == "224×224×64"


def test_plot_layer_costs_draws_one_bar_per_weighted_layer():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_layer_costs = page_definitions("04", ["plot_layer_costs"], plt=plt, pd=pd)["plot_layer_costs"]
    figure = plot_layer_costs(anatomy.layer_table(vgg_spec(16)), title="VGG16")
    top, bottom = figure.axes
    assert len(top.patches) == len(bottom.patches) == 16
    assert max(patch.get_height() for patch in top.patches) == pytest.approx(102_764_544 / 1e6)


def test_keras_layer_macs_agree_with_the_specification_and_cover_other_convolutions():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(12, 12, 3)), layers.Conv2D(4, 3), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(5)])
    by_layer = [anatomy.keras_layer_macs(layer) for layer in anatomy.keras_leaf_layers(model)]
    assert by_layer == [10 * 10 * 4 * 27, 0, 0, 100 * 5]
    one_d = keras.Sequential([keras.Input(shape=(10, 2)), layers.Conv1D(4, 3)])
    three_d = keras.Sequential([keras.Input(shape=(4, 4, 4, 1)), layers.Conv3D(2, 2)])
    grouped = keras.Sequential([keras.Input(shape=(5, 5, 4)), layers.Conv2D(4, 3, groups=2)])
    assert anatomy.keras_layer_macs(one_d.layers[0]) == 8 * 4 * (3 * 2)
    assert anatomy.keras_layer_macs(three_d.layers[0]) == 27 * 2 * 8
    assert anatomy.keras_layer_macs(grouped.layers[0]) == 9 * 4 * (9 * 2)
