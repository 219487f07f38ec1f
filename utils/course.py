"""The course's own figures, gathered in one place so notebooks can assert them.

Every constant comes from the course's texts, named after what it measures and grouped by notebook. Notebooks
assert their computed numbers against these instead of retyping them; ``tests/`` pins the constants themselves.
"""

from __future__ import annotations

# --- Reading digital images (notebook 00) -----------------------------------
IMAGE_BITS_PER_CHANNEL = 8  # intensities 0-255
DIGIT_PRINT_SIZE = (18, 18)  # the course prints its MNIST digit resized to 18 x 18
TOY_COLOUR_IMAGE_SHAPE = (4, 4, 3)

# --- CIFAR-10 experiments I-VII (notebook 03) ---------------------------------

CIFAR10_INPUT_SHAPE: tuple[int, int, int] = (32, 32, 3)
CIFAR10_NUM_CLASSES = 10
CIFAR10_TRAIN_IMAGES = 50_000

# The course's training recipe, shared by all seven experiments.
CIFAR10_BATCH_SIZE = 32
CIFAR10_EPOCHS = 50
CIFAR10_LEARNING_RATE = 0.01  # ``optimizer='sgd'``: plain SGD with Keras's default rate
CIFAR10_CONV_DROPOUT = 0.25  # after each conv unit, where an experiment uses it
CIFAR10_DENSE_DROPOUT = 0.5  # in the head of every experiment
CIFAR10_DENSE_UNITS = 512
CIFAR10_L2_FACTOR = 0.01  # on the Dense(512) kernel, where an experiment uses it

# Experiment VII's notebook says 50 epochs but was actually run for only 5.
CIFAR10_EPOCHS_TRAINED_BY_COURSE: dict[str, int] = {
    "I": 50, "II": 50, "III": 50, "IV": 50, "V": 50, "VI": 50, "VII": 5,
}

# Reported final (train, "validation") accuracy; the course validated on the test set, so "validation" is test.
CIFAR10_COURSE_ACCURACY: dict[str, tuple[float, float]] = {
    "I": (0.84, 0.79),
    "II": (0.98, 0.79),
    "III": (0.89, 0.82),
    "IV": (0.94, 0.76),
    "V": (0.86, 0.83),
    "VI": (0.89, 0.84),
    "VII": (0.92, 0.84),
}

# The history key the course's plotting code used; current Keras names it "accuracy".
CIFAR10_COURSE_HISTORY_KEY = "acc"

# --- The MNIST notebook (course notebook 3) ---------------------------------
MNIST_TRAINING_SAMPLES = 20_000
MNIST_BATCH_SIZE = 128
MNIST_EPOCHS = 12
MNIST_TEST_ACCURACY = 0.9859
MNIST_TEST_LOSS_ABOUT = 0.04
MNIST_CONV1_PARAMETERS = 320
MNIST_CONV2_PARAMETERS = 18_496
MNIST_DENSE_PARAMETERS = 1_179_776
MNIST_OUTPUT_PARAMETERS = 1_290
MNIST_PARAMETERS = 1_199_882
MNIST_FLATTEN_SIZE = 9_216
# Adadelta's default learning rate: 1.0 in the original Keras, 0.001 since TF 2.
ADADELTA_ORIGINAL_LEARNING_RATE = 1.0
ADADELTA_TF2_DEFAULT_LEARNING_RATE = 0.001

# --- Global max pooling vs Flatten (textbook chapter, CIFAR-sized input) ----
CIFAR_STYLE_FLATTEN_PARAMETERS = 703_594
CIFAR_STYLE_GLOBAL_MAX_POOLING_PARAMETERS = 179_306

# --- LeNet-style parameter table for a 32x32x3 input (lecture notes) --------
LENET_TABLE_PARAMETERS = {"CONV1": 608, "CONV2": 3_216, "FC3": 48_120, "FC4": 10_164, "Softmax": 850}

# --- VGG16 dissection (course notebook 5) ------------------------------------
VGG16_FIRST_CONV_PARAMETERS = 1_792
VGG16_PARAMETERS = 138_357_544
VGG16_FIRST_FC_WEIGHTS = 102_760_448
VGG16_FC_PARAMETERS_MILLIONS_ABOUT = 124
VGG_FAMILY_PARAMETERS_MILLIONS = {11: 133, 13: 133, 16: 138, 19: 144}

# --- Study-notes exercise: 3x3 kernels, stride 2, SAME, 100/200/400 maps ----
STUDY_NOTES_EXERCISE_LAYER_PARAMETERS = (2_800, 180_200, 720_400)
STUDY_NOTES_EXERCISE_PARAMETERS = 903_400

# --- Convolution and pooling worked examples (notebook 01) ------------------
# Inputs and results exactly as the course gives them; rows are tuples.
CONVOLUTION_X = ((1, 2, 3), (2, 0, 0), (7, 9, 1))
CONVOLUTION_Y = ((3, 2, 0), (3, 0, 1), (0, 5, 2))
CONVOLUTION_XY_RESULT = 60
VERTICAL_EDGE_FILTER = ((1, 0, -1), (1, 0, -1), (1, 0, -1))
VERTICAL_EDGE_IMAGE_ROW = (10, 10, 10, 0, 0, 0)  # every row of the 6x6 image
VERTICAL_EDGE_OUTPUT_ROW = (0, 30, 30, 0)  # every row of the 4x4 output
SIX_BY_SIX_IMAGE = (
    (3, 0, 1, 2, 7, 4), (1, 5, 8, 9, 3, 1), (2, 7, 2, 5, 1, 3),
    (0, 1, 3, 1, 7, 8), (4, 2, 1, 6, 2, 8), (2, 4, 5, 2, 3, 9),
)
SIX_BY_SIX_VERTICAL_EDGE_RESULT = ((-5, -4, 0, 8), (-10, -2, 2, 3), (0, -2, -4, -7), (-3, -2, -3, -16))
BINARY_IMAGE = (
    (1, 0, 0, 0, 0, 1), (0, 1, 0, 0, 1, 0), (0, 0, 1, 1, 0, 0),
    (1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 1, 0), (0, 0, 1, 0, 1, 0),
)
BINARY_DIAGONAL_FILTER = ((1, -1, -1), (-1, 1, -1), (-1, -1, 1))
BINARY_IMAGE_RESULT = ((3, -1, -3, -1), (-3, 1, 0, -3), (-3, -3, 0, 1), (3, -2, -2, -1))
MAX_POOL_INPUT = ((3, 3, 2, 1, 0), (0, 0, 1, 3, 1), (3, 1, 2, 2, 3), (2, 0, 0, 2, 2), (2, 0, 0, 0, 1))
MAX_POOL_SIZE, MAX_POOL_STRIDE = 3, 1
MAX_POOL_RESULT = ((3, 3, 3), (3, 3, 3), (3, 2, 3))
SHRINKING_SHAPES = ((6, 6), (4, 4), (2, 2))  # a 3x3 filter, stride 1, no padding, twice
# Combinations the course calls invalid (pixels left uncovered): (image, filter, stride).
UNTILED_COMBINATIONS = ((4, 3, 2), (5, 2, 2))

# --- 1x1 bottleneck, depthwise separable, stacked 3x3 (lecture notes) -------
BOTTLENECK_PLAIN_MULTIPLIES_MILLIONS_ABOUT = 120  # 5x5 same, 32 filters, on 28x28x192
BOTTLENECK_REDUCE_MULTIPLIES_MILLIONS_ABOUT = 2.4  # 1x1 down to 16 channels
BOTTLENECK_CONV_MULTIPLIES_MILLIONS_ABOUT = 10  # then the 5x5 on 16 channels
BOTTLENECK_TOTAL_MULTIPLIES_MILLIONS_ABOUT = 12.4
DEPTHWISE_PLAIN_MULTIPLIES = 2_160  # 6x6x3 -> 4x4x5 with 3x3 filters
DEPTHWISE_DEPTHWISE_MULTIPLIES = 432
DEPTHWISE_POINTWISE_MULTIPLIES = 240
DEPTHWISE_SEPARABLE_MULTIPLIES = 672
DEPTHWISE_RATIO_ABOUT = 0.31  # = 1/5 + 1/9
TWO_3X3_RECEPTIVE_FIELD, THREE_3X3_RECEPTIVE_FIELD = 5, 7
TWO_3X3_WEIGHTS, ONE_5X5_WEIGHTS = 18, 25  # one channel in and out
THREE_3X3_WEIGHTS_PER_C2, ONE_7X7_WEIGHTS_PER_C2 = 27, 49  # C channels in and out: times C^2

# --- A 1D convolutional text model (textbook chapter) -----------------------
# Embedding(10000, 128) on 500 tokens, Conv1D(32, 7), MaxPooling1D(5), Conv1D(32, 7), GlobalMaxPooling1D, Dense(1).
TEXT_CNN_VOCABULARY, TEXT_CNN_EMBEDDING_SIZE, TEXT_CNN_SEQUENCE_LENGTH = 10_000, 128, 500
TEXT_CNN_FILTERS, TEXT_CNN_KERNEL_SIZE, TEXT_CNN_POOL_SIZE = 32, 7, 5
TEXT_CNN_PARAMETERS = 1_315_937
