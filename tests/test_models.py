"""Tests for utils.models: the recipes build in Keras and Keras agrees with utils.anatomy."""

from __future__ import annotations

import gc

import keras
import pytest

from utils import anatomy, course, models


@pytest.fixture(autouse=True)
def free_keras_state():
    """Start and end every test with a clean Keras session and the float32 policy."""
    keras.backend.clear_session()
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()


def test_mnist_cnn_matches_the_course_and_our_table():
    model = models.build_from_spec(models.mnist_cnn_spec())
    assert model.count_params() == course.MNIST_PARAMETERS
    comparison = anatomy.compare_with_keras(models.mnist_cnn_spec(), model)
    assert comparison["agrees"].all(), comparison
    assert [layer.__class__.__name__ for layer in model.layers[1:]] == [
        "Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense"]


@pytest.mark.parametrize(("head", "expected"), [
    ("flatten", course.CIFAR_STYLE_FLATTEN_PARAMETERS),
    ("global_max_pooling", course.CIFAR_STYLE_GLOBAL_MAX_POOLING_PARAMETERS),
])
def test_cifar_style_heads(head, expected):
    model = models.build_from_spec(models.cifar_style_spec(head))
    assert model.count_params() == expected
    assert anatomy.compare_with_keras(models.cifar_style_spec(head), model)["agrees"].all()


def test_cifar_style_rejects_an_unknown_head():
    with pytest.raises(ValueError, match="head"):
        models.cifar_style_spec("average")


def test_lenet5_classic_and_the_lecture_table():
    classic = models.build_from_spec(models.lenet5_spec())
    assert classic.count_params() == 61_706
    assert {layer.__class__.__name__ for layer in classic.layers} >= {"AveragePooling2D"}
    assert classic.get_layer("conv1").get_config()["kernel_size"] == (5, 5)
    lecture_spec = models.lenet5_spec(input_shape=(32, 32, 3), filters=(8, 16))
    lecture = models.build_from_spec(lecture_spec)
    counts = {layer.name: layer.count_params() for layer in lecture.layers}
    expected = dict(zip(("conv1", "conv2", "fc3", "fc4", "predictions"), course.LENET_TABLE_PARAMETERS.values()))
    assert {name: counts[name] for name in expected} == expected


def test_vgg_family_totals_from_the_specification():
    millions = {depth: round(anatomy.total_parameters(models.vgg_spec(depth)) / 1e6)
                for depth in models.VGG_CONFIGURATIONS}
    assert millions == course.VGG_FAMILY_PARAMETERS_MILLIONS
    conv_layers = [layer for layer in models.vgg_spec(16).layers if layer.kind == "conv"]
    dense_layers = [layer for layer in models.vgg_spec(16).layers if layer.kind == "dense"]
    assert (len(conv_layers), len(dense_layers)) == (13, 3)


def test_small_vgg_build_agrees_with_its_specification():
    spec = models.vgg_spec(11, input_shape=(32, 32, 3), num_classes=10, fully_connected_units=32)
    model = models.build_from_spec(spec, kernel_initializer="zeros")
    comparison = anatomy.compare_with_keras(spec, model)
    assert comparison["agrees"].all(), comparison
    assert model.output_shape == (None, 10)


def test_vgg16_matches_keras_applications():
    reference = keras.applications.VGG16(weights=None)
    comparison = anatomy.compare_with_keras(models.vgg_spec(16), reference)
    assert comparison["agrees"].all(), comparison[~comparison["agrees"]]
    assert (comparison["layer"] == comparison["keras_layer"]).all()
    assert reference.count_params() == course.VGG16_PARAMETERS
    del reference
    gc.collect()  # half a gigabyte of weights


def test_vgg_rejects_an_unknown_depth():
    with pytest.raises(ValueError, match="depth"):
        models.vgg_spec(15)


def test_softmax_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = models.build_from_spec(models.mnist_cnn_spec())
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model.output.dtype == "float32"


def test_compare_with_keras_refuses_different_networks():
    with pytest.raises(ValueError, match="do not describe the same network"):
        anatomy.compare_with_keras(models.mnist_cnn_spec(), models.build_from_spec(models.cifar_style_spec()))
