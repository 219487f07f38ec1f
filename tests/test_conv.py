"""Tests for utils.conv: the course's worked examples, edge cases, and agreement with Keras."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from utils import conv, course

RANDOM = np.random.default_rng(7)


# ----------------------------------------------------------------------------- sizes and padding


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "expected"),
    [(6, 3, 1, 0, 4), (4, 3, 1, 0, 2), (7, 3, 2, 0, 3), (32, 3, 1, 1, 32), (224, 2, 2, 0, 112),
     (5, 5, 1, 0, 1), (4, 3, 2, 0, 1), (5, 2, 2, 0, 2)],
)
def test_output_size_follows_the_course_formula(size, kernel, stride, padding, expected):
    assert conv.output_size(size, kernel, stride, padding) == expected


def test_shrinking_shapes_6_4_2():
    shapes = [course.SHRINKING_SHAPES[0]]
    for _ in range(2):
        shapes.append(tuple(conv.output_size(side, 3) for side in shapes[-1]))
    assert tuple(shapes) == course.SHRINKING_SHAPES


@pytest.mark.parametrize(("size", "kernel", "stride"), course.UNTILED_COMBINATIONS)
def test_untiled_combinations_raise_only_when_exact_tiling_is_asked_for(size, kernel, stride):
    assert conv.output_size(size, kernel, stride) >= 1  # Keras silently drops the leftover pixels
    with pytest.raises(ValueError, match="does not tile exactly"):
        conv.output_size(size, kernel, stride, require_exact=True)


def test_exact_combinations_pass_the_exact_check():
    assert conv.output_size(5, 3, 2, require_exact=True) == 2
    assert conv.output_size(5, 3, 2, padding=1, require_exact=True) == 3
    assert conv.output_size(4, 2, 2, require_exact=True) == 2


@pytest.mark.parametrize(
    "arguments",
    [(3, 5, 1, 0), (6, 3, 0, 0), (6, 0, 1, 0), (6, 3, 1, -1), (6, 2.5, 1, 0)],
)
def test_output_size_rejects_impossible_inputs(arguments):
    with pytest.raises(ValueError):
        conv.output_size(*arguments)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [(6, 3, 1, (1, 1)), (6, 3, 2, (0, 1)), (5, 2, 2, (0, 1)), (7, 3, 2, (1, 1)),
     (6, 2, 2, (0, 0)), (5, 5, 1, (2, 2)), (6, 4, 1, (1, 2)), (6, 1, 4, (0, 0))],
)
def test_same_padding_puts_the_odd_pixel_after(size, kernel, stride, expected):
    assert conv.same_padding(size, kernel, stride) == expected
    before, after = expected
    assert conv.output_size(size + before + after, kernel, stride) == -(-size // stride)


def test_resolve_padding_spellings():
    assert conv.resolve_padding("valid", (6, 6), (3, 3), (1, 1)) == ((0, 0), (0, 0))
    assert conv.resolve_padding("SAME", (6, 5), (3, 2), (2, 2)) == ((0, 1), (0, 1))
    assert conv.resolve_padding(2, (6, 6), (3, 3), (1, 1)) == ((2, 2), (2, 2))
    assert conv.resolve_padding((1, 0), (6, 6), (3, 3), (1, 1)) == ((1, 1), (0, 0))
    assert conv.resolve_padding(((0, 1), (2, 3)), (6, 6), (3, 3), (1, 1)) == ((0, 1), (2, 3))


@pytest.mark.parametrize("padding", ["full", -1, 1.5, (1, 2, 3), ((1, -1), (0, 0))])
def test_resolve_padding_rejects_unknown_spellings(padding):
    with pytest.raises(ValueError, match="padding"):
        conv.resolve_padding(padding, (6, 6), (3, 3), (1, 1))


def test_pad_image_zero_and_edge():
    image = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(conv.pad_image(image, 1), [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(conv.pad_image(image, 1, mode="edge"),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    colour = RANDOM.integers(0, 255, size=(3, 4, 3))
    padded = conv.pad_image(colour, ((0, 1), (2, 0)))
    assert padded.shape == (4, 6, 3)
    np.testing.assert_array_equal(padded[:3, 2:], colour)
    with pytest.raises(ValueError, match="mode"):
        conv.pad_image(image, 1, mode="reflect")
    with pytest.raises(ValueError, match="batch axis"):
        conv.pad_image(np.zeros((1, 4, 4, 3)), 1)


def test_windows_are_the_patches_the_filter_sees():
    image = np.arange(30).reshape(5, 6)
    patches = conv.windows(image, (3, 2), (2, 3))
    assert patches.shape == (2, 2, 3, 2)
    np.testing.assert_array_equal(patches[1, 1], image[2:5, 3:5])
    colour = np.arange(5 * 6 * 3).reshape(5, 6, 3)
    colour_patches = conv.windows(colour, (3, 3), (1, 1))
    assert colour_patches.shape == (3, 4, 3, 3, 3)
    np.testing.assert_array_equal(colour_patches[2, 1], colour[2:5, 1:4])


# ----------------------------------------------------------------------------- the course's worked examples


def test_element_wise_product_and_sum_is_60():
    result = conv.correlate2d(course.CONVOLUTION_X, course.CONVOLUTION_Y)
    assert result.shape == (1, 1)
    assert result[0, 0] == course.CONVOLUTION_XY_RESULT


def test_vertical_edge_gives_0_30_30_0():
    image = np.tile(course.VERTICAL_EDGE_IMAGE_ROW, (6, 1))
    result = conv.correlate2d(image, course.VERTICAL_EDGE_FILTER)
    np.testing.assert_array_equal(result, np.tile(course.VERTICAL_EDGE_OUTPUT_ROW, (4, 1)))


def test_six_by_six_example():
    result = conv.correlate2d(course.SIX_BY_SIX_IMAGE, course.VERTICAL_EDGE_FILTER)
    np.testing.assert_array_equal(result, course.SIX_BY_SIX_VERTICAL_EDGE_RESULT)


def test_binary_image_example():
    result = conv.correlate2d(course.BINARY_IMAGE, course.BINARY_DIAGONAL_FILTER, stride=1)
    np.testing.assert_array_equal(result, course.BINARY_IMAGE_RESULT)


def test_max_pooling_example():
    result = conv.max_pool2d(course.MAX_POOL_INPUT, course.MAX_POOL_SIZE, stride=course.MAX_POOL_STRIDE)
    np.testing.assert_array_equal(result, course.MAX_POOL_RESULT)


# ----------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_correlate2d_matches_scipy(stride):
    image, kernel = RANDOM.normal(size=(9, 11)), RANDOM.normal(size=(3, 4))
    expected = signal.correlate2d(image, kernel, mode="valid")[::stride, ::stride]
    np.testing.assert_allclose(conv.correlate2d(image, kernel, stride=stride), expected)


def test_correlate2d_padding_modes():
    image, kernel = RANDOM.normal(size=(6, 7)), RANDOM.normal(size=(3, 3))
    np.testing.assert_allclose(conv.correlate2d(image, kernel, padding=1),
                               signal.correlate2d(image, kernel, mode="same"))
    edge = conv.correlate2d(image, kernel, padding=1, pad_mode="edge")
    np.testing.assert_allclose(edge, signal.correlate2d(np.pad(image, 1, mode="edge"), kernel, mode="valid"))
    assert conv.correlate2d(image, kernel, padding="same").shape == image.shape
    assert conv.correlate2d(image, kernel, stride=(1, 2)).shape == (4, 3)


def test_correlate2d_strict_tiling_and_shape_errors():
    with pytest.raises(ValueError, match="does not tile exactly"):
        conv.correlate2d(np.zeros((4, 4)), np.ones((3, 3)), stride=2, require_exact=True)
    with pytest.raises(ValueError, match="does not fit"):
        conv.correlate2d(np.zeros((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="correlate_multichannel"):
        conv.correlate2d(np.zeros((4, 4, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="stride"):
        conv.correlate2d(np.zeros((4, 4)), np.ones((3, 3)), stride=0)


def test_convolve2d_flips_the_filter():
    image, kernel = RANDOM.normal(size=(6, 6)), RANDOM.normal(size=(3, 3))
    np.testing.assert_allclose(conv.convolve2d(image, kernel), signal.convolve2d(image, kernel, mode="valid"))
    assert not np.allclose(conv.convolve2d(image, kernel), conv.correlate2d(image, kernel))
    symmetric = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_allclose(conv.convolve2d(image, symmetric), conv.correlate2d(image, symmetric))


def test_multichannel_is_the_sum_of_per_channel_correlations_plus_bias():
    image, kernel = RANDOM.normal(size=(7, 6, 3)), RANDOM.normal(size=(3, 3, 3))
    expected = sum(conv.correlate2d(image[..., c], kernel[..., c]) for c in range(3)) + 0.5
    np.testing.assert_allclose(conv.correlate_multichannel(image, kernel, bias=0.5), expected)
    assert conv.correlate_multichannel(image, kernel, stride=2, padding="same").shape == (4, 3)
    with pytest.raises(ValueError, match="one slice per input channel"):
        conv.correlate_multichannel(image, kernel[..., :2])


def test_spread_over_channels_sees_the_channel_mean():
    image, kernel = RANDOM.normal(size=(6, 7, 3)), RANDOM.normal(size=(3, 3))
    spread = conv.spread_over_channels(kernel)
    assert spread.shape == (3, 3, 3)
    np.testing.assert_allclose(conv.correlate_multichannel(image, spread), conv.correlate2d(image.mean(axis=2), kernel))
    with pytest.raises(ValueError, match="2D filter"):
        conv.spread_over_channels(spread)


def test_conv_layer_stacks_one_map_per_filter():
    image, kernels, biases = RANDOM.normal(size=(8, 8, 3)), RANDOM.normal(size=(3, 3, 3, 4)), RANDOM.normal(size=4)
    maps = conv.conv_layer(image, kernels, biases)
    assert maps.shape == (6, 6, 4)
    np.testing.assert_allclose(maps[..., 2], conv.correlate_multichannel(image, kernels[..., 2], biases[2]))
    gray = conv.conv_layer(image[..., 0], kernels[:, :, :1])
    np.testing.assert_allclose(gray[..., 1], conv.correlate2d(image[..., 0], kernels[:, :, 0, 1]))
    with pytest.raises(ValueError, match="kh, kw, C, F"):
        conv.conv_layer(image, kernels[:, :, :2])
    with pytest.raises(ValueError, match="one value per filter"):
        conv.conv_layer(image, kernels, biases[:3])


def test_one_by_one_convolution_mixes_channels_per_pixel():
    image, weights, biases = RANDOM.normal(size=(5, 5, 3)), RANDOM.normal(size=(3, 2)), RANDOM.normal(size=2)
    np.testing.assert_allclose(conv.conv_layer(image, weights[np.newaxis, np.newaxis], biases),
                               image @ weights + biases)


# ----------------------------------------------------------------------------- pooling


def test_pooling_defaults_and_per_channel():
    feature_map = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(conv.max_pool2d(feature_map), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(conv.average_pool2d(feature_map), [[2.5, 4.5], [10.5, 12.5]])
    stacked = np.stack([feature_map, -feature_map], axis=-1)
    pooled = conv.max_pool2d(stacked)
    assert pooled.shape == (2, 2, 2)
    np.testing.assert_array_equal(pooled[..., 1], [[0, -2], [-8, -10]])


def test_same_pooling_ignores_padding():
    feature_map = -np.ones((3, 3))  # zeros in the padding would win a max and shrink an average
    np.testing.assert_array_equal(conv.max_pool2d(feature_map, 2, padding="same"), -np.ones((2, 2)))
    np.testing.assert_array_equal(conv.average_pool2d(feature_map, 2, padding="same"), -np.ones((2, 2)))


def test_pooling_errors():
    with pytest.raises(ValueError, match="mode"):
        conv.pool2d(np.zeros((4, 4)), mode="median")
    with pytest.raises(ValueError, match="does not tile exactly"):
        conv.max_pool2d(np.zeros((5, 5)), 2, require_exact=True)
    with pytest.raises(ValueError, match="H x W"):
        conv.max_pool2d(np.zeros(5))
    with pytest.raises(ValueError, match="pool_size"):
        conv.max_pool2d(np.zeros((4, 4)), 0)


def test_tiling_rows():
    rows = {(row["image"], row["filter"], row["stride"]): row
            for row in conv.tiling_rows([(4, 3, 2, 0), (5, 2, 2, 0), (5, 3, 2, 0), (6, 3, 1, 0)])}
    assert not rows[(4, 3, 2)]["tiles exactly"] and rows[(4, 3, 2)]["uncovered pixels"] == 1
    assert not rows[(5, 2, 2)]["tiles exactly"] and rows[(5, 2, 2)]["output"] == 2
    assert rows[(5, 3, 2)]["tiles exactly"] and rows[(5, 3, 2)]["uncovered pixels"] == 0
    assert rows[(6, 3, 1)]["(n+2p-k)/s + 1"] == 4 and rows[(6, 3, 1)]["'same' output"] == 6


# ----------------------------------------------------------------------------- counting


def test_parameter_counts_match_the_course():
    assert conv.conv2d_parameter_count(3, 3, 64) == course.VGG16_FIRST_CONV_PARAMETERS
    assert conv.conv2d_parameter_count(3, 1, 32) == course.MNIST_CONV1_PARAMETERS
    assert conv.conv2d_parameter_count(3, 32, 64) == course.MNIST_CONV2_PARAMETERS
    assert conv.dense_parameter_count(course.MNIST_FLATTEN_SIZE, 128) == course.MNIST_DENSE_PARAMETERS
    lenet = {"CONV1": conv.conv2d_parameter_count(5, 3, 8), "CONV2": conv.conv2d_parameter_count(5, 8, 16),
             "FC3": conv.dense_parameter_count(400, 120), "FC4": conv.dense_parameter_count(120, 84),
             "Softmax": conv.dense_parameter_count(84, 10)}
    assert lenet == course.LENET_TABLE_PARAMETERS
    exercise = (conv.conv2d_parameter_count(3, 3, 100), conv.conv2d_parameter_count(3, 100, 200),
                conv.conv2d_parameter_count(3, 200, 400))
    assert exercise == course.STUDY_NOTES_EXERCISE_LAYER_PARAMETERS
    assert conv.conv2d_parameter_count((3, 5), 2, 4, use_bias=False) == 120
    assert conv.dense_parameter_count(10, 3, use_bias=False) == 30


def test_parameter_counts_match_keras_layers():
    import keras

    layer = keras.layers.Conv2D(6, (3, 5))
    layer.build((None, 12, 12, 4))
    assert layer.count_params() == conv.conv2d_parameter_count((3, 5), 4, 6)
    dense = keras.layers.Dense(7)
    dense.build((None, 11))
    assert dense.count_params() == conv.dense_parameter_count(11, 7)


def test_bottleneck_multiplies():
    cost = conv.bottleneck_multiplies(28, 28, 5, 192, 16, 32)
    assert cost.plain == 120_422_400
    assert round(cost.plain / 1e6) == course.BOTTLENECK_PLAIN_MULTIPLIES_MILLIONS_ABOUT
    assert round(cost.first_stage / 1e6, 1) == course.BOTTLENECK_REDUCE_MULTIPLIES_MILLIONS_ABOUT
    assert round(cost.second_stage / 1e6) == course.BOTTLENECK_CONV_MULTIPLIES_MILLIONS_ABOUT
    assert round(cost.total / 1e6, 1) == course.BOTTLENECK_TOTAL_MULTIPLIES_MILLIONS_ABOUT


def test_depthwise_separable_multiplies():
    cost = conv.depthwise_separable_multiplies(4, 4, 3, 3, 5)
    assert cost.plain == course.DEPTHWISE_PLAIN_MULTIPLIES
    assert cost.first_stage == course.DEPTHWISE_DEPTHWISE_MULTIPLIES
    assert cost.second_stage == course.DEPTHWISE_POINTWISE_MULTIPLIES
    assert cost.total == course.DEPTHWISE_SEPARABLE_MULTIPLIES
    assert cost.ratio == pytest.approx(1 / 5 + 1 / 9)
    assert round(cost.ratio, 2) == course.DEPTHWISE_RATIO_ABOUT


def test_plain_multiplies_count_every_product():
    assert conv.conv_multiplies(4, 4, 3, 3, 5) == 4 * 4 * 5 * 27
    assert conv.conv_multiplies(2, 3, (1, 2), 4, 1) == 2 * 3 * 1 * 2 * 4


def test_receptive_field_and_stacked_weights():
    assert conv.receptive_field([3, 3]) == course.TWO_3X3_RECEPTIVE_FIELD
    assert conv.receptive_field([3, 3, 3]) == course.THREE_3X3_RECEPTIVE_FIELD
    assert conv.receptive_field([3, 2, 3], strides=[1, 2, 1]) == 3 + 1 + 2 * 2
    assert conv.stacked_conv_weights(3, 2) == course.TWO_3X3_WEIGHTS
    assert conv.stacked_conv_weights(5, 1) == course.ONE_5X5_WEIGHTS
    assert conv.stacked_conv_weights(3, 3, channels=4) == course.THREE_3X3_WEIGHTS_PER_C2 * 16
    assert conv.stacked_conv_weights(7, 1, channels=4) == course.ONE_7X7_WEIGHTS_PER_C2 * 16
    with pytest.raises(ValueError, match="one stride per layer"):
        conv.receptive_field([3, 3], strides=[1])


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_receptive_field_is_the_reach_of_an_impulse(layers):
    impulse = np.zeros((15, 15))
    impulse[7, 7] = 1.0
    response = impulse
    for _ in range(layers):
        response = conv.correlate2d(response, np.ones((3, 3)), padding="same")
    reached_rows = np.flatnonzero(response.any(axis=1))
    assert len(reached_rows) == conv.receptive_field([3] * layers)


# ----------------------------------------------------------------------------- agreement with Keras

KERAS_SETTINGS = [(1, "valid"), (2, "valid"), (3, "valid"), (1, "same"), (2, "same"), (3, "same")]


@pytest.mark.parametrize("image_shape", [(8, 8, 3), (7, 10, 2)])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_hand_versions_agree_with_keras(image_shape, kernel_size):
    image = RANDOM.normal(size=image_shape)
    kernels = RANDOM.normal(size=(kernel_size, kernel_size, image_shape[2], 3))
    biases = RANDOM.normal(size=3)
    rows = conv.compare_with_keras(image, kernels, biases, KERAS_SETTINGS, pool_size=kernel_size)
    assert len(rows) == 3 * len(KERAS_SETTINGS)
    for row in rows:
        assert row["hand shape"] == row["keras shape"], row
        assert row["max abs difference"] < 1e-4, row


def test_keras_same_padding_is_asymmetric_and_so_is_ours():
    image = RANDOM.normal(size=(6, 6, 1))
    kernels = RANDOM.normal(size=(3, 3, 1, 1))
    library = conv.keras_conv2d(image, kernels, stride=2, padding="same")
    ours = conv.conv_layer(image, kernels, stride=2, padding="same")
    np.testing.assert_allclose(ours, library, atol=1e-5)
    padded_at_top_left = conv.conv_layer(image, kernels, stride=2, padding=((1, 0), (1, 0)))
    assert padded_at_top_left.shape == library.shape
    assert not np.allclose(padded_at_top_left, library, atol=1e-3)


def test_keras_pool_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        conv.keras_pool2d(np.zeros((4, 4)), mode="median")
