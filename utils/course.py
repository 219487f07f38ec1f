"""The course's own figures, gathered in one place so notebooks can assert them.

Every constant here comes from the course texts as summarised in
``../shared/COURSE.md``.  Notebooks compare their computed numbers with these
values (``assert computed == course.SOMETHING``) instead of retyping them, so a
figure is written down once and checked everywhere it is used.
"""

from __future__ import annotations

# --- CIFAR-10 experiments I-VII (notebook 03) ---------------------------------

CIFAR10_INPUT_SHAPE: tuple[int, int, int] = (32, 32, 3)
CIFAR10_NUM_CLASSES = 10
CIFAR10_TRAIN_IMAGES = 50_000
CIFAR10_TEST_IMAGES = 10_000

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

# Reported final (train accuracy, "validation" accuracy).  The course validated on
# the test set, so its "validation" accuracy is really test-set accuracy.
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
