"""The course's figures in ``utils/course.py`` are the ones the course gives.

Notebooks assert that what they compute equals ``course.X``; this file pins each
``course.X`` to the figure written in the course texts, once, so a typo in a
constant fails here instead of silently moving the target the notebooks check.
"""

from __future__ import annotations

from utils import course


def test_reading_images() -> None:
    assert course.IMAGE_BITS_PER_CHANNEL == 8 and 2**course.IMAGE_BITS_PER_CHANNEL == 256
    assert course.DIGIT_PRINT_SIZE == (18, 18) and course.TOY_COLOUR_IMAGE_SHAPE == (4, 4, 3)


def test_mnist_recipe_and_summary() -> None:
    assert (course.MNIST_TRAINING_SAMPLES, course.MNIST_BATCH_SIZE, course.MNIST_EPOCHS) == (20_000, 128, 12)
    assert (course.MNIST_TEST_ACCURACY, course.MNIST_TEST_LOSS_ABOUT) == (0.9859, 0.04)
    assert (course.MNIST_CONV1_PARAMETERS, course.MNIST_CONV2_PARAMETERS) == (320, 18_496)
    assert (course.MNIST_DENSE_PARAMETERS, course.MNIST_OUTPUT_PARAMETERS) == (1_179_776, 1_290)
    assert (course.MNIST_PARAMETERS, course.MNIST_FLATTEN_SIZE) == (1_199_882, 9_216)
    assert (course.ADADELTA_ORIGINAL_LEARNING_RATE, course.ADADELTA_TF2_DEFAULT_LEARNING_RATE) == (1.0, 0.001)


def test_mnist_summary_adds_up() -> None:
    parts = (course.MNIST_CONV1_PARAMETERS, course.MNIST_CONV2_PARAMETERS, course.MNIST_DENSE_PARAMETERS,
             course.MNIST_OUTPUT_PARAMETERS)
    assert sum(parts) == course.MNIST_PARAMETERS


def test_text_cnn() -> None:
    assert course.TEXT_CNN_PARAMETERS == 1_315_937
    assert (course.TEXT_CNN_VOCABULARY, course.TEXT_CNN_EMBEDDING_SIZE, course.TEXT_CNN_SEQUENCE_LENGTH) == (
        10_000, 128, 500)
    assert (course.TEXT_CNN_FILTERS, course.TEXT_CNN_KERNEL_SIZE, course.TEXT_CNN_POOL_SIZE) == (32, 7, 5)


def test_flatten_versus_global_pooling_and_lenet() -> None:
    assert course.CIFAR_STYLE_FLATTEN_PARAMETERS == 703_594
    assert course.CIFAR_STYLE_GLOBAL_MAX_POOLING_PARAMETERS == 179_306
    assert course.LENET_TABLE_PARAMETERS == {"CONV1": 608, "CONV2": 3_216, "FC3": 48_120, "FC4": 10_164,
                                             "Softmax": 850}


def test_vgg16() -> None:
    assert (course.VGG16_FIRST_CONV_PARAMETERS, course.VGG16_PARAMETERS) == (1_792, 138_357_544)
    assert course.VGG16_FIRST_FC_WEIGHTS == 7 * 7 * 512 * 4096 == 102_760_448
    assert course.VGG16_FC_PARAMETERS_MILLIONS_ABOUT == 124
    assert course.VGG_FAMILY_PARAMETERS_MILLIONS == {11: 133, 13: 133, 16: 138, 19: 144}


def test_study_notes_exercise() -> None:
    assert course.STUDY_NOTES_EXERCISE_LAYER_PARAMETERS == (2_800, 180_200, 720_400)
    assert sum(course.STUDY_NOTES_EXERCISE_LAYER_PARAMETERS) == course.STUDY_NOTES_EXERCISE_PARAMETERS == 903_400


def test_convolution_examples() -> None:
    assert course.CONVOLUTION_XY_RESULT == 60
    assert course.VERTICAL_EDGE_OUTPUT_ROW == (0, 30, 30, 0)
    assert course.SIX_BY_SIX_VERTICAL_EDGE_RESULT[0] == (-5, -4, 0, 8)
    assert course.BINARY_IMAGE_RESULT[0] == (3, -1, -3, -1)
    assert (course.MAX_POOL_SIZE, course.MAX_POOL_STRIDE) == (3, 1)
    assert course.MAX_POOL_RESULT == ((3, 3, 3), (3, 3, 3), (3, 2, 3))
    assert course.SHRINKING_SHAPES == ((6, 6), (4, 4), (2, 2))
    assert course.UNTILED_COMBINATIONS == ((4, 3, 2), (5, 2, 2))


def test_cost_figures() -> None:
    assert (course.BOTTLENECK_PLAIN_MULTIPLIES_MILLIONS_ABOUT, course.BOTTLENECK_TOTAL_MULTIPLIES_MILLIONS_ABOUT) == (
        120, 12.4)
    assert (course.DEPTHWISE_PLAIN_MULTIPLIES, course.DEPTHWISE_SEPARABLE_MULTIPLIES) == (2_160, 672)
    assert (course.TWO_3X3_WEIGHTS, course.ONE_5X5_WEIGHTS) == (18, 25)
    assert (course.THREE_3X3_WEIGHTS_PER_C2, course.ONE_7X7_WEIGHTS_PER_C2) == (27, 49)


def test_cifar10_recipe() -> None:
    assert (course.CIFAR10_BATCH_SIZE, course.CIFAR10_EPOCHS, course.CIFAR10_LEARNING_RATE) == (32, 50, 0.01)
    assert (course.CIFAR10_CONV_DROPOUT, course.CIFAR10_DENSE_DROPOUT, course.CIFAR10_DENSE_UNITS) == (0.25, 0.5, 512)
    assert course.CIFAR10_L2_FACTOR == 0.01
    assert course.CIFAR10_COURSE_ACCURACY["V"] == (0.86, 0.83)
    assert course.CIFAR10_EPOCHS_TRAINED_BY_COURSE["VII"] == 5
