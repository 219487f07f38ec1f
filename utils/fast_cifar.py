"""A modern CIFAR-10 training recipe, built from switchable, documented ingredients (notebook 08).

The public CIFAR-10 speed records (Keller Jordan's airbench, arXiv 2404.00498; David Page's
"How to train your ResNet" series) reach 94% in about ten epochs of a small VGG-like network, where the
course's plain-SGD recipe needs 50 epochs for 84%. The difference is a list of small ingredients: a frozen
whitening first convolution, batch norm ported from PyTorch with fast-learning biases, whole-array flip and
translate augmentation, label smoothing, Nesterov SGD with warm-up then decay, identity-initialised
convolutions, lookahead and test-time augmentation. A :class:`Recipe` holds each as a field, so an ablation
is ``dataclasses.replace(recipe, label_smoothing=0.0)``; :func:`run_recipe` trains, evaluates and records a
recipe through :mod:`utils.recording`, optionally within a training-time budget, so that "accuracy within
ten minutes" is something a run measures rather than a claim.

Porting traps (the records are PyTorch code; each trap silently costs accuracy in Keras):

1. Batch-norm momentum is inverted (Keras's is one minus PyTorch's); epsilon must be set.
2. The records sum the loss over a batch, Keras averages it: multiply their per-example
   learning rate by the batch size.
3. Keras 3's ``weight_decay`` is decoupled (outside the momentum); PyTorch's is a gradient
   term that passes through it.
4. Keras optimizers have no parameter groups: a faster learning rate for some variables
   needs a reparameterisation (or a custom training step).
5. Keras ships no warm-up-then-linear-decay schedule.
6. Keras's ``use_ema`` is not lookahead: its fixed momentum damps training from step one.
7. Keras kernels are (rows, columns, in, out), PyTorch's (out, in, rows, columns); Keras
   has no identity (``dirac_``) initialiser.

The audit against airbench94 (``legacy/airbench94.py`` at commit ``f1c599c``): beyond the traps, the port
differs in its widths (64/128/128, airbench's 93% variant), its data (the shared copy is JPEG), 45,000
training images (5,000 held out), a batch of 512 in whole epochs, no whitening bias, a Glorot-initialised
head, test-time augmentation over mean probabilities, mixed bfloat16 and Keras's form of Nesterov momentum.
Recipe fields switch four of these to airbench's way (``whitening_bias_epochs``, ``head_init``,
``whitening_dtype``, ``momentum_form``; their defaults are the port as shipped), every run records both
ways of combining its test-time views, and ``python -m tools.audit`` trains each difference
(:data:`AUDIT_VARIANTS`); :func:`audit_table` reads what each changes. The replicas (:data:`AIRBENCH_REPLICAS`)
train every setting of airbench93 and airbench94 at once, on all 50,000 images of this copy:
:func:`replica_table` sets them beside the published figures.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import pandas as pd

from utils import course, recording, reference, results, runtime

RESULTS_TABLE = "fast_cifar"
COURSE_ARCHITECTURE = "course_VI"  # the course's best CIFAR-10 model: experiment VI (84%)
MODERN_ARCHITECTURE = "airbench"
WHITENING_PATCH_SIZE = 2
WHITENING_IMAGES = 5_000  # images whose patches estimate the covariance (airbench uses 5,000)
WHITENING_EPSILON = 5e-4  # added to the eigenvalues so that near-zero directions do not explode
WHITENING_BIAS = "whiten_bias"  # the layer holding airbench's whitening bias (``Recipe.whitening_bias_epochs``)

# airbench94's hyperparameters, as its PyTorch code states them (summed loss, L2 weight decay).
AIRBENCH_LEARNING_RATE = 11.5
AIRBENCH_WEIGHT_DECAY = 0.0153
AIRBENCH_MOMENTUM = 0.85
AIRBENCH_BATCH_SIZE = 1024
AIRBENCH_BATCH_NORM_MOMENTUM_PYTORCH = 0.4  # PyTorch's convention: weight of the *new* batch
LOOKAHEAD_FINAL_DECAY = 0.95 ** 5  # airbench's lookahead keeps this much of the slow weights at the end


# --- Porting the records' settings to Keras -------------------------------------------


def kilostep_scale(momentum: float, batch_size: int = AIRBENCH_BATCH_SIZE) -> float:
    """airbench's normaliser of its learning rate: ``1024 * (1 + 1 / (1 - momentum))``.

    Dividing by it keeps a step's size (learning rate times the momentum's amplification) fixed as momentum changes.
    """
    return batch_size * (1.0 + 1.0 / (1.0 - momentum))


def keras_learning_rate(batch_size: int, learning_rate: float = AIRBENCH_LEARNING_RATE,
                        momentum: float = AIRBENCH_MOMENTUM) -> float:
    """The peak learning rate for Keras's *averaged* loss that matches airbench's summed loss.

    The gradient of the sum is ``batch_size`` times that of the mean, so this is airbench's per-example rate
    times the batch size (porting trap 2).
    """
    per_example = learning_rate / kilostep_scale(momentum)
    return per_example * batch_size


def keras_weight_decay(batch_size: int, weight_decay: float = AIRBENCH_WEIGHT_DECAY,
                       learning_rate: float = AIRBENCH_LEARNING_RATE, momentum: float = AIRBENCH_MOMENTUM) -> float:
    """Keras's *decoupled* weight decay that shrinks weights as much per step as airbench's.

    airbench hands PyTorch's SGD ``wd / lr`` (``wd = weight_decay * batch_size / kilostep_scale``); the scheduled
    rate multiplies it back and Nesterov momentum amplifies it by ``1 / (1 - momentum)``. Keras 3 shrinks by
    ``factor * keras_lr * keras_wd`` outside the momentum (porting trap 3); solving for ``keras_wd`` gives
    ``weight_decay / (learning_rate * (1 - momentum))`` for any batch size.
    """
    airbench_shrink_per_step = weight_decay * batch_size / kilostep_scale(momentum) / (1.0 - momentum)
    return airbench_shrink_per_step / keras_learning_rate(batch_size, learning_rate, momentum)


def keras_batch_norm_momentum(pytorch_momentum: float) -> float:
    """Keras's batch-norm momentum for a PyTorch one: Keras weighs the *old* average, PyTorch the new batch."""
    return 1.0 - pytorch_momentum


# --- The recipe ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Every ingredient of a CIFAR-10 training recipe, one field each (all of them enter the run key).

    The defaults are airbench's ingredients with its 93% variant's narrower widths (sized for a CPU);
    :func:`course_recipe` gives the course's recipe in the same terms. Network fields (``widths`` to
    ``output_scale``) apply to the ``airbench`` architecture only.
    """

    name: str = "modern"
    architecture: str = MODERN_ARCHITECTURE
    widths: tuple[int, int, int] = (64, 128, 128)
    whitening: bool = True  # frozen first conv initialised to whiten 2x2 patches (else a trainable conv)
    identity_init: bool = True  # convolutions start as identities where their shapes allow (PyTorch's dirac_)
    activation: str = "gelu"
    batch_norm_momentum: float = keras_batch_norm_momentum(AIRBENCH_BATCH_NORM_MOMENTUM_PYTORCH)
    batch_norm_epsilon: float = 1e-12
    batch_norm_scale: bool = False  # airbench freezes the scale at 1
    bias_lr_scale: float = 64.0  # batch-norm biases learn this many times faster (airbench: 64)
    output_scale: float = 1.0 / 9.0
    epochs: int = 3
    batch_size: int = 512
    learning_rate: float = keras_learning_rate(512)  # the peak, for Keras's averaged loss
    momentum: float = AIRBENCH_MOMENTUM
    nesterov: bool = True
    weight_decay: float = keras_weight_decay(512)  # Keras's decoupled decay
    warmup_fraction: float = 0.23
    warmup_start_factor: float = 0.2
    end_factor: float = 0.07
    label_smoothing: float = 0.2
    flip: bool = True
    alternating_flip: bool = True
    translate_pixels: int = 2
    lookahead: bool = True  # every few steps, pull the weights towards a slow average (airbench)
    lookahead_every_steps: int = 5
    lookahead_final_decay: float = LOOKAHEAD_FINAL_DECAY
    tta_flip: bool = True
    tta_shift_pixels: int = 1
    # Three airbench details the port left out at first; the defaults keep the port as it was shipped, and the
    # audit (``python -m tools.audit``) trains them airbench's way to measure what each costs.
    whitening_bias_epochs: int = 0  # airbench: a bias after the whitening conv trains for 3 epochs, then freezes
    head_init: str = "glorot"  # the linear head's start: Keras's "glorot", or PyTorch's "pytorch" (+-1/sqrt(fan_in))
    whitening_dtype: str = "compute"  # "float32": normalise and whiten in float32 under mixed precision
    momentum_form: str = "keras"  # "pytorch": PyTorch's SGD momentum, rescaled by today's learning rate

    def changed(self, **changes: Any) -> "Recipe":
        """A copy with some ingredients changed (``dataclasses.replace``), checked for sense."""
        return validate_recipe(dataclasses.replace(self, **changes))

    def settings(self) -> dict[str, Any]:
        """Every field by name, ready for a run key (tuples become text, whole-number floats ints)."""
        return {name: key_value(value) for name, value in dataclasses.asdict(self).items()}


def key_value(value: Any) -> Any:
    """A setting as it survives a CSV round trip: tuples as ``64x128x128``, ``64.0`` as ``64``.

    A CSV cell of 64.0 reads back as ``"64"``, so a whole-number float in a key would never match its own row.
    """
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        return int(value)
    return value


# The linear head's initialisers by name: Keras's default, and PyTorch's nn.Linear default, uniform +-1/sqrt(fan_in).
HEAD_INITIALIZERS = {
    "glorot": lambda: keras.initializers.GlorotUniform(),
    "pytorch": lambda: keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
}


def validate_recipe(recipe: Recipe) -> Recipe:
    """Return ``recipe`` or raise a ``ValueError`` saying which field is wrong and what fits."""
    problems = []
    if recipe.architecture not in (MODERN_ARCHITECTURE, COURSE_ARCHITECTURE):
        problems.append(f"architecture {recipe.architecture!r} is not {MODERN_ARCHITECTURE!r} or "
                        f"{COURSE_ARCHITECTURE!r}")
    if len(recipe.widths) != 3 or min(recipe.widths) < 1:
        problems.append(f"widths {recipe.widths!r} must be three positive channel counts, e.g. (64, 128, 128)")
    if recipe.epochs < 1 or recipe.batch_size < 1:
        problems.append(f"epochs ({recipe.epochs}) and batch_size ({recipe.batch_size}) must be at least 1")
    if not 0.0 <= recipe.warmup_fraction < 1.0:
        problems.append(f"warmup_fraction {recipe.warmup_fraction} must be in [0, 1)")
    if not 0.0 <= recipe.label_smoothing < 1.0:
        problems.append(f"label_smoothing {recipe.label_smoothing} must be in [0, 1)")
    if not 0.0 <= recipe.batch_norm_momentum < 1.0:
        problems.append(f"batch_norm_momentum {recipe.batch_norm_momentum} must be in [0, 1) (Keras's convention)")
    if recipe.bias_lr_scale <= 0:
        problems.append(f"bias_lr_scale {recipe.bias_lr_scale} must be positive (1 means no boost)")
    if recipe.lookahead_every_steps < 1 or not 0.0 <= recipe.lookahead_final_decay < 1.0:
        problems.append(f"lookahead_every_steps ({recipe.lookahead_every_steps}) must be at least 1 and "
                        f"lookahead_final_decay ({recipe.lookahead_final_decay}) in [0, 1)")
    if recipe.translate_pixels < 0 or recipe.tta_shift_pixels < 0:
        problems.append("translate_pixels and tta_shift_pixels must be 0 or more")
    if recipe.whitening_bias_epochs < 0 or (recipe.whitening_bias_epochs and not recipe.whitening):
        problems.append(f"whitening_bias_epochs ({recipe.whitening_bias_epochs}) must be 0 or more, and 0 without "
                        "whitening")
    if recipe.head_init not in HEAD_INITIALIZERS:
        problems.append(f"head_init {recipe.head_init!r} is not one of {sorted(HEAD_INITIALIZERS)}")
    if recipe.whitening_dtype not in ("compute", "float32"):
        problems.append(f"whitening_dtype {recipe.whitening_dtype!r} is not 'compute' or 'float32'")
    if recipe.momentum_form not in ("keras", "pytorch"):
        problems.append(f"momentum_form {recipe.momentum_form!r} is not 'keras' or 'pytorch'")
    if problems:
        raise ValueError(f"Recipe {recipe.name!r} cannot be trained: " + "; ".join(problems)
                         + ". Change the field with recipe.changed(...) or dataclasses.replace(...).")
    return recipe


def modern_recipe(**changes: Any) -> Recipe:
    """The modern recipe (the :class:`Recipe` defaults), with optional changes."""
    return Recipe().changed(**changes)


def course_recipe(**changes: Any) -> Recipe:
    """The course's recipe in the same terms: experiment VI, plain SGD at 0.01, batch 32, nothing else."""
    return Recipe(
        name="course (experiment VI)", architecture=COURSE_ARCHITECTURE, whitening=False,
        activation="relu", batch_size=course.CIFAR10_BATCH_SIZE, learning_rate=course.CIFAR10_LEARNING_RATE,
        momentum=0.0, nesterov=False, weight_decay=0.0, warmup_fraction=0.0, warmup_start_factor=1.0,
        end_factor=1.0, bias_lr_scale=1.0, label_smoothing=0.0, flip=False, alternating_flip=False, translate_pixels=0,
        identity_init=False, lookahead=False, tta_flip=False, tta_shift_pixels=0,
    ).changed(**changes)


# Each ablation removes one ingredient from the modern recipe (the field changes that do it).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no whitening init (trainable first conv)": {"whitening": False},
    "no label smoothing": {"label_smoothing": 0.0},
    "no flip/translate augmentation": {"flip": False, "alternating_flip": False, "translate_pixels": 0},
    "no identity init of the convolutions": {"identity_init": False},
    "no lookahead (weight averaging)": {"lookahead": False},
    "constant learning rate, no warm-up": {"warmup_fraction": 0.0, "warmup_start_factor": 1.0, "end_factor": 1.0},
    "plain momentum, not Nesterov": {"nesterov": False},
    "Keras batch-norm defaults (not ported)": {"batch_norm_momentum": 0.99, "batch_norm_epsilon": 1e-3,
                                              "batch_norm_scale": True},
    "batch-norm biases at the common learning rate": {"bias_lr_scale": 1.0},
    "ReLU instead of GELU": {"activation": "relu"},
}
NO_TTA = "no test-time augmentation"  # same trained network, evaluated without flips and shifts
NOT_MEASURED = reference.NOT_MEASURED


def ablated_recipes(recipe: Recipe, names: Sequence[str] | None = None) -> dict[str, Recipe]:
    """The recipe with one ingredient removed per entry of :data:`ABLATIONS` (all, or those named)."""
    chosen = list(ABLATIONS) if names is None else list(names)
    unknown = [name for name in chosen if name not in ABLATIONS]
    if unknown:
        raise ValueError(f"Unknown ablation(s) {unknown}; choose from {list(ABLATIONS)}.")
    return {name: recipe.changed(name=name, **ABLATIONS[name]) for name in chosen}


# --- Augmentation ---------------------------------------------------------------------------


def flip_mask(count: int, epoch: int, seed: int, alternating: bool) -> np.ndarray:
    """Which images to flip horizontally in ``epoch``: random halves, or alternating per image.

    Alternating (airbench): one random choice per image in epoch 0, then the other way every epoch, so each
    image is seen both ways over two epochs.
    """
    if alternating:
        first = np.random.default_rng(seed).random(count) < 0.5
        return first ^ bool(epoch % 2)
    return np.random.default_rng([seed, epoch]).random(count) < 0.5


def translate_images(images: np.ndarray, pixels: int, generator: np.random.Generator) -> np.ndarray:
    """Shift every image by its own random offset of up to ``pixels``, filling edges by reflection.

    Vectorised: one reflect-pad, then one slice copy per distinct offset, ``(2 * pixels + 1) ** 2`` in all.
    """
    if pixels == 0:
        return images.copy()
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="reflect")
    rows = generator.integers(0, 2 * pixels + 1, size=len(images))
    columns = generator.integers(0, 2 * pixels + 1, size=len(images))
    translated = np.empty_like(images)
    for row in range(2 * pixels + 1):
        for column in range(2 * pixels + 1):
            chosen = np.flatnonzero((rows == row) & (columns == column))
            translated[chosen] = padded[chosen, row:row + height, column:column + width]
    return translated


def augment_epoch(images: np.ndarray, recipe: Recipe, epoch: int, seed: int) -> np.ndarray:
    """The training images of one epoch: translated, then flipped, as the recipe says (whole array)."""
    generator = np.random.default_rng([seed, epoch, 1])
    augmented = translate_images(images, recipe.translate_pixels, generator)
    if recipe.flip:
        flipped = flip_mask(len(images), epoch, seed, recipe.alternating_flip)
        augmented[flipped] = augmented[flipped, :, ::-1]
    return augmented


def smoothed_targets(labels: np.ndarray, num_classes: int, smoothing: float) -> np.ndarray:
    """The targets cross-entropy compares with under label smoothing (what Keras computes inside its loss).

    Never a one, so the network is never pushed towards infinite confidence.
    """
    one_hot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


class EpochBatches:
    """Shuffled, augmented, one-hot batches of images in [0, 1], re-augmented every epoch, as a tf.data pipeline.

    tf.data runs the per-batch work (scaling, one-hot) in TensorFlow's threads, prefetched; the per-epoch work
    stays one vectorised NumPy call (:meth:`start_epoch`, called by :func:`epoch_augmenter`), so epoch ``e``
    depends only on the seed and ``e`` and a resumed run sees what it would have seen. That holds because Keras
    creates each epoch's iterator after ``on_epoch_begin``, and :attr:`dataset` reads the arrays then (one
    ``from_generator`` element per epoch). ``len()`` is the number of batches per epoch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, recipe: Recipe, num_classes: int, seed: int) -> None:
        self.source_images, self.source_labels = images, np.asarray(labels, dtype=np.int64)
        self.recipe, self.num_classes, self.seed = recipe, int(num_classes), int(seed)
        self.start_epoch(0)
        self.dataset = self._pipeline()

    def start_epoch(self, epoch: int) -> None:
        """Augment and reorder the whole training array for ``epoch`` (uint8, as NumPy computes it)."""
        order = np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.source_labels))
        self.images = augment_epoch(self.source_images, self.recipe, epoch, self.seed)[order]
        self.labels = self.source_labels[order]
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.source_labels) / self.recipe.batch_size)

    def _current_epoch(self) -> Any:
        """The generator behind :attr:`dataset`: the prepared epoch's arrays, once."""
        yield self.images, self.labels

    def _pipeline(self) -> Any:
        """uint8 epoch array -> batches -> float32 in [0, 1] and one-hot labels, prefetched."""
        import tensorflow as tf

        signature = (tf.TensorSpec((None, *self.source_images.shape[1:]), tf.uint8), tf.TensorSpec((None,), tf.int64))
        epoch = tf.data.Dataset.from_generator(self._current_epoch, output_signature=signature)
        batches = epoch.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y))).batch(self.recipe.batch_size)
        batches = batches.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.one_hot(y, self.num_classes)),
                              num_parallel_calls=tf.data.AUTOTUNE)
        return batches.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(tf.data.AUTOTUNE)


def epoch_augmenter(batches: EpochBatches) -> Any:
    """A Keras callback that re-augments ``batches`` at the start of each epoch it has not prepared yet."""

    class EpochAugmenter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if batches.epoch != epoch:
                batches.start_epoch(epoch)

    return EpochAugmenter()


# --- Learning-rate schedule and time budget -------------------------------------------------------


@keras.saving.register_keras_serializable(package="cnn_notebooks")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate rising linearly from ``start_factor * peak`` to ``peak``, then falling linearly.

    The rise takes the first ``warmup_fraction`` of ``total_steps``; the fall reaches ``end_factor * peak`` on
    the last step and stays there. Keras ships no such schedule (porting trap 5).
    """

    def __init__(self, total_steps: int, peak: float, warmup_fraction: float = 0.23,
                 start_factor: float = 0.2, end_factor: float = 0.07) -> None:
        self.total_steps = int(total_steps)
        self.peak = float(peak)
        self.warmup_fraction = float(warmup_fraction)
        self.start_factor = float(start_factor)
        self.end_factor = float(end_factor)

    def factor(self, step: Any) -> Any:
        """The multiplier of ``peak`` at ``step`` (works on NumPy numbers and tensors alike)."""
        from keras import ops

        step = ops.cast(step, "float32")
        warmup_steps = max(self.warmup_fraction * self.total_steps, 1e-9)
        decay_steps = max(self.total_steps - warmup_steps, 1e-9)
        rising = self.start_factor + (1.0 - self.start_factor) * step / warmup_steps
        falling = 1.0 + (self.end_factor - 1.0) * ops.minimum((step - warmup_steps) / decay_steps, 1.0)
        return ops.where(step < warmup_steps, rising, falling)

    def __call__(self, step: Any) -> Any:
        return self.peak * self.factor(step)

    def get_config(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "peak": self.peak, "warmup_fraction": self.warmup_fraction,
                "start_factor": self.start_factor, "end_factor": self.end_factor}


def time_budget_callback(budget_seconds: float | None, already_spent: float = 0.0) -> Any:
    """A Keras callback that stops training once ``budget_seconds`` of training wall time are spent.

    Training time runs from the start of ``fit`` minus validation passes, plus ``already_spent`` before a
    resume. It is checked after every batch, so ``steps_per_execution`` must be 1; the callback keeps
    ``stopped``, ``steps_in_epoch`` and ``spent`` for the record.
    """

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.spent = float(already_spent)
            self.steps_in_epoch = 0
            self.stopped = False

        def on_train_begin(self, logs=None):
            require_one_step_per_call(self.model, "time_budget_callback")
            self.last_mark = time.perf_counter()

        def _advance(self) -> None:
            now = time.perf_counter()
            self.spent += now - self.last_mark
            self.last_mark = now

        def on_epoch_begin(self, epoch, logs=None):
            self.steps_in_epoch = 0

        def on_train_batch_end(self, batch, logs=None):
            self._advance()
            self.steps_in_epoch += 1
            if budget_seconds is not None and self.spent >= budget_seconds:
                self.stopped = True
                self.model.stop_training = True

        def on_test_begin(self, logs=None):
            self._advance()

        def on_test_end(self, logs=None):
            self.last_mark = time.perf_counter()  # validation time is not training time

    return TimeBudget()


def lookahead_decay(step: int, total_steps: int, final_decay: float = LOOKAHEAD_FINAL_DECAY) -> float:
    """How much of the slow weights a lookahead update keeps at ``step``: ``final_decay * (step / total) ** 3``.

    Near zero for most of training, it rises at the end, when averaging the last steps' weights pays off.
    """
    return float(final_decay * (min(step, total_steps) / max(total_steps, 1)) ** 3)


def require_one_step_per_call(model: Any, callback: str) -> None:
    """Raise a ``ValueError`` naming ``callback`` and the fix when ``model`` runs several batches per call.

    With ``steps_per_execution`` N > 1 Keras calls ``on_train_batch_end`` once per N batches: wrong counts, silently.
    """
    steps = int(getattr(model, "steps_per_execution", 1) or 1)
    if steps > 1:
        raise ValueError(
            f"fast_cifar.{callback} needs one callback call per training batch, but the model was compiled with "
            f"steps_per_execution={steps}, so Keras calls it once per {steps} batches and it would count steps "
            f"wrongly. Compile the model with steps_per_execution=1 (fast_cifar.compile_recipe does), or leave "
            f"this callback out.")


def lookahead_pull(weights: Sequence[Any], slow: Sequence[Any]) -> Any:
    """A function ``pull(decay)`` doing ``slow += (1 - decay) * (weights - slow); weights = slow`` on every pair.

    One compiled ``tf.function``: the weights stay on their device, and ``1 - decay`` enters as a float32 tensor
    rounded as NumPy rounds it, so it never retraces and matches the NumPy update bit for bit.
    """
    import tensorflow as tf

    @tf.function
    def pull(fraction: Any) -> None:
        for weight, average in zip(weights, slow):
            weight.assign(average.assign_add(fraction * (tf.convert_to_tensor(weight) - average)))

    def pull_with(decay: float) -> None:
        pull(tf.constant(np.float32(1.0 - decay)))

    return pull_with


def lookahead_callback(total_steps: int, every_steps: int = 5, final_decay: float = LOOKAHEAD_FINAL_DECAY,
                       batches_per_epoch: int | None = None) -> Any:
    """A Keras callback doing airbench's lookahead: every few steps, pull the weights back towards a slow average.

    Every ``every_steps`` steps ``slow = decay * slow + (1 - decay) * weights`` and the weights are set to it;
    when training ends they become the slow copy. Batch-norm statistics are averaged too (airbench). Keras's
    ``use_ema`` is not this: its fixed momentum damps every step from the first (porting trap 6).

    Steps are counted from batches (``epoch * batches_per_epoch + batch + 1``), not ``optimizer.iterations``:
    under ``mixed_float16`` a loss-scale overflow skips a step without advancing that counter, and the callback
    would pull again and again at the same step. The slow copy is not checkpointed: a resumed run restarts it
    from the weights it resumes with. ``pulled_at`` lists the steps pulled so far.
    """

    class Lookahead(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.slow: list[Any] = []
            self.pulled_at: list[int] = []
            self.epoch = 0

        def on_train_begin(self, logs=None):
            import tensorflow as tf

            require_one_step_per_call(self.model, "lookahead_callback")
            self.batches_per_epoch = batches_per_epoch or (self.params or {}).get("steps")
            if not self.batches_per_epoch:
                raise ValueError("fast_cifar.lookahead_callback needs the number of batches per epoch: pass "
                                 "batches_per_epoch=len(batches) (Keras did not report it for this input).")
            weights = [weight for weight in self.model.weights if "float" in str(weight.dtype)]
            if [id(weight) for weight in weights] != getattr(self, "weight_ids", None):  # once per model
                with self.model.distribute_strategy.scope():  # mirrored across replicas, like the weights
                    self.slow = [tf.Variable(tf.convert_to_tensor(weight), trainable=False) for weight in weights]
                self.pull, self.weight_ids = lookahead_pull(weights, self.slow), [id(weight) for weight in weights]
            for average, weight in zip(self.slow, weights):
                average.assign(tf.convert_to_tensor(weight))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            step = self.epoch * self.batches_per_epoch + batch + 1
            if step % every_steps == 0:
                self.pull(lookahead_decay(step, total_steps, final_decay))
                self.pulled_at.append(step)

        def on_train_end(self, logs=None):
            self.pull(1.0)

    return Lookahead()


# --- The network -----------------------------------------------------------------------------


def whitening_bias_callback(train_epochs: int) -> Any:
    """Freeze the whitening bias after ``train_epochs`` epochs, as airbench stops its gradient (L410).

    From then on each step's optimizer update of the bias (momentum and Keras's decoupled decay would still move
    it) is undone right after the batch; lookahead, listed after this callback, still pulls it towards its slow
    copy, as airbench's lookahead does with every weight.
    """

    class WhiteningBiasFreeze(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.bias = self.model.get_layer(WHITENING_BIAS).stored
            self.frozen, self.before = False, None

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.frozen = epoch >= train_epochs

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if self.frozen:
                self.before = keras.ops.convert_to_numpy(self.bias.value).copy()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.frozen:
                self.bias.assign(self.before)

    return WhiteningBiasFreeze()


def training_callbacks(recipe: Recipe, batches: "EpochBatches", budget: Any) -> list[Any]:
    """A run's callbacks in their order: augmentation, the time budget, the whitening-bias freeze, lookahead."""
    callbacks = [epoch_augmenter(batches), budget]
    if recipe.whitening_bias_epochs:
        callbacks.append(whitening_bias_callback(recipe.whitening_bias_epochs))
    if recipe.lookahead:
        callbacks.append(lookahead_callback(recipe.epochs * len(batches), recipe.lookahead_every_steps,
                                            recipe.lookahead_final_decay, batches_per_epoch=len(batches)))
    return callbacks


def image_patches(images: np.ndarray, size: int = WHITENING_PATCH_SIZE) -> np.ndarray:
    """Every ``size`` x ``size`` patch of every image, flattened in (row, column, channel) order."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))
    # windows: (N, H', W', C, size, size) -> (N, H', W', size, size, C), the order of a Keras kernel
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size * size * images.shape[-1])


def patch_covariance(images: np.ndarray, size: int = WHITENING_PATCH_SIZE, chunk: int = 500) -> np.ndarray:
    """The covariance matrix of all ``size`` x ``size`` patches (accumulated in chunks to save memory)."""
    features = size * size * images.shape[-1]
    total, outer, count = np.zeros(features), np.zeros((features, features)), 0
    for start in range(0, len(images), chunk):
        patches = image_patches(images[start:start + chunk].astype(np.float64), size)
        total += patches.sum(axis=0)
        outer += patches.T @ patches
        count += len(patches)
    mean = total / count
    return outer / count - np.outer(mean, mean)


def whitening_kernel(images: np.ndarray, size: int = WHITENING_PATCH_SIZE,
                     epsilon: float = WHITENING_EPSILON) -> np.ndarray:
    """A Keras conv kernel ``(size, size, C, 2 * size * size * C)`` whose outputs have identity covariance.

    Each filter is a patch-covariance eigenvector divided by the square root of its eigenvalue; the second half
    are the same filters negated (airbench), so that a following GELU keeps both signs. ``eigh``'s columns come
    in the patches' (row, column, channel) order, a Keras kernel's (porting trap 7).
    """
    eigenvalues, eigenvectors = np.linalg.eigh(patch_covariance(images, size))
    filters = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0.0) + epsilon)
    kernel = filters.reshape(size, size, images.shape[-1], -1)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


def batch_norm_settings(recipe: Recipe) -> dict[str, Any]:
    """The batch-norm layer options of a recipe (Keras's momentum convention, explicit epsilon).

    With ``bias_lr_scale`` other than 1 the layer has no bias: a :class:`ScaledBias` after it holds it.
    """
    return {"momentum": recipe.batch_norm_momentum, "epsilon": recipe.batch_norm_epsilon,
            "scale": recipe.batch_norm_scale, "center": recipe.bias_lr_scale == 1.0}


@keras.saving.register_keras_serializable(package="cnn_notebooks")
class ScaledBias(keras.layers.Layer):
    """Adds a per-channel bias stored divided by ``sqrt(lr_scale)``: it learns ``lr_scale`` times faster.

    Keras has one learning rate for all variables (porting trap 4); training ``v`` in ``b = c * v`` makes each
    step on ``b`` ``c ** 2`` times larger. airbench's batch-norm biases learn 64 times faster: ``c = 8``.
    """

    def __init__(self, lr_scale: float = 64.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lr_scale = float(lr_scale)

    def build(self, input_shape: Any) -> None:
        self.stored = self.add_weight(name="stored_bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        return inputs + keras.ops.cast(math.sqrt(self.lr_scale) * self.stored, inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lr_scale": self.lr_scale}


@keras.saving.register_keras_serializable(package="cnn_notebooks")
class PartialIdentity(keras.initializers.Initializer):
    """PyTorch's default conv initialisation, with as many filters as fit set to pass a channel through.

    Filter ``i`` (below the input channels) is a one at the centre of channel ``i``, so the deep network starts
    close to a shallow one (airbench's ``dirac_``, porting trap 7); the rest are PyTorch's uniform +-1/sqrt(fan_in).
    """

    def __init__(self, identity: bool = True, seed: int | None = None) -> None:
        self.identity = bool(identity)
        self.seed = seed

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        base = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform", seed=self.seed)
        kernel = np.array(keras.ops.convert_to_numpy(base(shape, dtype="float32")))
        if self.identity and len(shape) == 4:
            rows, columns, inputs, outputs = shape
            passed = min(inputs, outputs)
            kernel[..., :passed] = 0.0
            kernel[rows // 2, columns // 2, np.arange(passed), np.arange(passed)] = 1.0
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {"identity": self.identity, "seed": self.seed}


def _normalise(x: Any, recipe: Recipe, name: str) -> Any:
    """Batch norm with the recipe's settings, then the fast-learning bias when the recipe has one."""
    from utils import layers as suite_layers

    x = suite_layers.batch_normalization(name=name, **batch_norm_settings(recipe))(x)
    if recipe.bias_lr_scale != 1.0:
        x = ScaledBias(recipe.bias_lr_scale, name=f"{name}_bias")(x)
    return x


def _conv_block(x: Any, width: int, recipe: Recipe, index: int) -> Any:
    """conv -> max-pool -> BN -> activation -> conv -> BN -> activation (airbench's block)."""
    from keras import layers

    initializer = {"kernel_initializer": PartialIdentity(recipe.identity_init)}
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{index}_conv1", **initializer)(x)
    x = layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = _normalise(x, recipe, f"block{index}_bn1")
    x = layers.Activation(recipe.activation, name=f"block{index}_act1")(x)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{index}_conv2", **initializer)(x)
    x = _normalise(x, recipe, f"block{index}_bn2")
    return layers.Activation(recipe.activation, name=f"block{index}_act2")(x)


def build_network(recipe: Recipe, training_images: np.ndarray, num_classes: int = course.CIFAR10_NUM_CLASSES) -> Any:
    """The airbench-style network of ``recipe`` for images in [0, 1] (uncompiled functional model).

    ``training_images`` (uint8) give the input normalisation's mean and spread and the whitening patches.
    """
    from keras import layers

    scaled = training_images[:WHITENING_IMAGES].astype(np.float32) / 255.0
    mean, spread = scaled.mean(axis=(0, 1, 2)), scaled.std(axis=(0, 1, 2))
    first_width = 2 * WHITENING_PATCH_SIZE ** 2 * training_images.shape[-1]
    inputs = keras.Input(shape=training_images.shape[1:], name="image")
    first_dtype = {"dtype": "float32"} if recipe.whitening_dtype == "float32" else {}
    x = layers.Normalization(mean=mean, variance=spread ** 2, name="normalise", **first_dtype)(inputs)
    if recipe.whitening:
        kernel = whitening_kernel((scaled - mean) / spread)
        whitening = layers.Conv2D(first_width, WHITENING_PATCH_SIZE, use_bias=False, trainable=False, name="whiten",
                                  **first_dtype)
        x = whitening(x)
        whitening.set_weights([kernel])
        if recipe.whitening_bias_epochs:
            x = ScaledBias(1.0, name=WHITENING_BIAS, **first_dtype)(x)  # frozen later by whitening_bias_callback
    else:
        x = layers.Conv2D(first_width, WHITENING_PATCH_SIZE, name="first_conv")(x)
    x = layers.Activation(recipe.activation, name="first_act", **first_dtype)(x)
    for index, width in enumerate(recipe.widths, start=1):
        x = _conv_block(x, int(width), recipe, index)
    x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="logits",
                     kernel_initializer=HEAD_INITIALIZERS[recipe.head_init]())(x)
    x = layers.Rescaling(recipe.output_scale, dtype="float32", name="scale_logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name="fast_cifar")


def build_model(recipe: Recipe, training_images: np.ndarray, num_classes: int = course.CIFAR10_NUM_CLASSES) -> Any:
    """The recipe's network: the modern one, or the course's experiment VI (both take images in [0, 1])."""
    if recipe.architecture == COURSE_ARCHITECTURE:
        from utils import experiments

        return experiments.build_experiment_model("VI", num_classes=num_classes,
                                                  input_shape=tuple(training_images.shape[1:]))
    return build_network(recipe, training_images, num_classes)


@keras.saving.register_keras_serializable(package="cnn_notebooks")
class TorchFormSGD(keras.optimizers.SGD):
    """SGD whose momentum takes PyTorch's form: the velocity sums raw gradients, today's rate scales the step.

    PyTorch: ``v = m v + g``, then ``w -= lr (g + m v)`` (Nesterov) or ``w -= lr v``. Keras folds each
    gradient's own rate into the velocity (``v = m v - lr g``), so under a changing rate the two differ: past
    gradients keep the rate of their own step in Keras and take today's in PyTorch. With a constant rate they
    are the same updates. Weight decay stays Keras's decoupled decay, applied before this step.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not self.momentums:
            return super().update_step(gradient, variable, learning_rate)
        learning_rate = keras.ops.cast(learning_rate, variable.dtype)
        gradient = keras.ops.cast(gradient, variable.dtype)
        momentum = keras.ops.cast(self.momentum, variable.dtype)
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(velocity, keras.ops.add(keras.ops.multiply(velocity, momentum), gradient))
        step = keras.ops.add(gradient, keras.ops.multiply(velocity, momentum)) if self.nesterov else velocity
        self.assign_sub(variable, keras.ops.multiply(step, learning_rate))


def compile_recipe(model: Any, recipe: Recipe, steps_per_epoch: int) -> Any:
    """Compile with the recipe's optimizer, schedule, weight averaging and label-smoothed loss."""
    schedule = WarmupLinearDecay(recipe.epochs * steps_per_epoch, recipe.learning_rate, recipe.warmup_fraction,
                                 recipe.warmup_start_factor, recipe.end_factor)
    optimizer = (TorchFormSGD if recipe.momentum_form == "pytorch" else keras.optimizers.SGD)(
        learning_rate=schedule, momentum=recipe.momentum, nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay or None,
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
    return model


# --- Test-time augmentation ------------------------------------------------------------------------


def tta_views(images: np.ndarray, flip: bool, shift_pixels: int) -> list[np.ndarray]:
    """The views TTA averages over: the images, mirrored (``flip``), and both shifted up-left and down-right."""
    views = [images]
    if flip:
        views.append(images[:, :, ::-1])
    if shift_pixels:
        size = shift_pixels
        padded = [np.pad(view, ((0, 0), (size, size), (size, size), (0, 0)), mode="reflect") for view in list(views)]
        height, width = images.shape[1:3]
        for view in padded:
            views.append(view[:, :height, :width])
            views.append(view[:, 2 * size:, 2 * size:])
    return views


def predict_views(model: Any, images: np.ndarray, flip: bool = True, shift_pixels: int = 0,
                  batch_size: int = 1000) -> list[np.ndarray]:
    """The model's class probabilities for each of the :func:`tta_views` of ``images`` (uint8 or [0, 1] floats)."""
    scaled = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return [model.predict(view, batch_size=batch_size, verbose=0) for view in tta_views(scaled, flip, shift_pixels)]


def airbench_view_weights(views: int, shift_pixels: int) -> np.ndarray:
    """airbench's weights for the :func:`tta_views`: half on the unshifted views, half on the shifted ones.

    With a flip and one-pixel shifts that is 1/4 for the image and its mirror and 1/8 for each shifted view
    (airbench94.py, ``infer_mirror_translate``); within each half the views weigh the same.
    """
    unshifted = views // 3 if shift_pixels else views
    weights = np.full(views, 1.0 / unshifted)
    if shift_pixels:
        weights[:unshifted] = 0.5 / unshifted
        weights[unshifted:] = 0.5 / (views - unshifted)
    return weights


def combine_views(view_probabilities: Sequence[np.ndarray], how: str = "probabilities",
                  shift_pixels: int = 0) -> np.ndarray:
    """One score per class from the views: the mean probability, or airbench's weighted mean of the logits.

    ``how="logits"`` averages log-probabilities with :func:`airbench_view_weights`: a view's log-probabilities
    are its logits minus one number per image, which the weights (summing to 1) shift every class by alike, so
    the winning class is the one airbench's average of logits picks.
    """
    stacked = np.stack(view_probabilities)
    if how == "probabilities":
        return stacked.mean(axis=0)
    if how == "logits":
        weights = airbench_view_weights(len(stacked), shift_pixels)
        return np.tensordot(weights, np.log(np.maximum(stacked, np.finfo(np.float32).tiny)), axes=1)
    raise ValueError(f"how={how!r}: combine the views' 'probabilities' (this suite) or 'logits' (airbench).")


def predict_with_tta(model: Any, images: np.ndarray, flip: bool = True, shift_pixels: int = 0,
                     batch_size: int = 1000) -> np.ndarray:
    """Class probabilities averaged over the :func:`tta_views` of ``images`` (uint8 or [0, 1] floats)."""
    return combine_views(predict_views(model, images, flip, shift_pixels, batch_size))


def accuracy_of(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The share of images whose most probable class is the true one."""
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))


# --- Planning, running and recording ----------------------------------------------------------------


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Batches per epoch (the last one may be smaller)."""
    return math.ceil(train_images / batch_size)


def measure_seconds_per_step(recipe: Recipe, splits: Any, steps: int = 8, seed: int = runtime.DEFAULT_SEED,
                             repeats: int = 3, strategy: Any = None) -> float:
    """Seconds one training step of ``recipe`` costs on this machine inside ``fit``, in the precision in force.

    Trains a throwaway copy through a real run's batches and callbacks and keeps the *marginal* cost of a step
    (:func:`utils.runtime.marginal_seconds_per_step`), so a fit's start-up is not charged to every step. The
    epoch's whole-array augmentation is timed and spread over its steps too: bare ``train_on_batch`` timings come
    out short, and a schedule planned from them is cut off by the budget. The probe is built inside ``strategy``
    (default :func:`utils.runtime.distribution_strategy`), as :func:`run_recipe` builds its model.
    """
    runtime.set_seed(seed)
    count = min(len(splits.y_train), recipe.batch_size * 2 * steps)
    images, labels = splits.x_train[:count], splits.y_train[:count]
    num_classes = len(splits.class_names)
    batches = EpochBatches(images, labels, recipe, num_classes, seed)
    with (strategy or runtime.distribution_strategy()).scope():
        model = compile_recipe(build_model(recipe, images, num_classes), recipe, len(batches))
    callbacks = [lookahead_callback(recipe.epochs * len(batches), recipe.lookahead_every_steps,
                                    batches_per_epoch=len(batches))] if recipe.lookahead else []

    def fit_steps(steps_to_fit: int) -> None:
        model.fit(batches.dataset, epochs=1, steps_per_epoch=steps_to_fit, verbose=0, shuffle=False,
                  callbacks=callbacks)

    long = len(batches)
    short = max(1, min(steps, long // 2))
    seconds = runtime.marginal_seconds_per_step(fit_steps, short, long, repeats=repeats, warm_up=min(2, long))
    started = time.perf_counter()
    augment_epoch(splits.x_train, recipe, epoch=0, seed=seed)
    augmentation_per_step = (time.perf_counter() - started) / steps_per_epoch(len(splits.y_train), recipe.batch_size)
    del model
    runtime.clear_session_keeping_precision()
    return seconds + augmentation_per_step


def epochs_for_budget(seconds_per_step: float, train_images: int, batch_size: int, budget_seconds: float,
                      margin: float = 0.9) -> int:
    """Whole epochs whose training fits in ``margin`` of the budget (at least one).

    The margin covers tracing, augmentation and a shared machine's slow moments, so the schedule ends first.
    """
    epoch_seconds = seconds_per_step * steps_per_epoch(train_images, batch_size)
    return max(1, int(margin * budget_seconds // epoch_seconds))


def planned_training_minutes(budgets: Sequence[float], first_budget_seeds: int, later_budget_seeds: int,
                             ablation_minutes: float, ablations: int) -> float:
    """The most training time notebook 08's runs can take: every run stops when its budget is spent.

    The first budget runs once per seed, later ones ``later_budget_seeds`` times, the course's recipe once at
    the first budget, each ablation once at ``ablation_minutes`` (plus the full and course recipes when that
    differs from the first budget). Runs recorded earlier are reused and cost nothing.
    """
    headline = budgets[0] * first_budget_seeds + sum(budgets[1:]) * later_budget_seeds
    extra_at_ablation_budget = 0.0 if ablation_minutes == budgets[0] else 2 * ablation_minutes
    return float(headline + budgets[0] + ablations * ablation_minutes + extra_at_ablation_budget)


def run_settings(recipe: Recipe, splits: Any, *, seed: int, profile: str, precision: str,
                 time_budget_seconds: float | None, evaluate_test: bool, replicas: int = 1,
                 hardware: str | None = None) -> dict[str, Any]:
    """Every recipe field plus the data, seed, profile, precision, budget, test flag, replicas and hardware.

    ``replicas`` changes batch-norm statistics and speed; ``hardware`` (default: this machine) matters because a
    time-budgeted run's result depends on how many steps the machine does in its budget.
    """
    return dict(
        **recipe.settings(), seed=seed, profile=profile, precision=precision, replicas=int(replicas),
        hardware=hardware or runtime.hardware_name(),
        time_budget_seconds=key_value(float(time_budget_seconds)) if time_budget_seconds is not None else "none",
        evaluate_test=evaluate_test, validation_protocol=splits.protocol, data_source=splits.source,
        train_images=len(splits.y_train),
        data_fingerprint=recording.data_fingerprint(splits.x_train, splits.y_train, splits.x_validation,
                                                    splits.y_validation, splits.x_test, splits.y_test),
    )


RUN_FOLDER_NAMING = ("name", "epochs", "profile", "seed")  # key values that start a run folder's name


def model_path(recipe: Recipe, seed: int) -> Path:
    """Where a trained recipe's model is saved (``save_model=True``)."""
    slug = "".join(character if character.isalnum() else "-" for character in recipe.name).strip("-")
    return runtime.runs_dir() / "models" / f"fast_cifar_{slug}_seed{seed}.keras"


def run_recipe(recipe: Recipe, splits: Any, **options: Any) -> recording.Record:
    """Train ``recipe`` on ``splits``, evaluate it and record one row (see :func:`recipe_spec` for the options)."""
    return recording.run(recipe_spec(recipe, splits, **options)[0])


def recipe_spec(
    recipe: Recipe,
    splits: Any,
    *,
    seed: int = runtime.DEFAULT_SEED,
    profile: str,
    time_budget_seconds: float | None = None,
    evaluate_test: bool = False,
    save_model: bool = False,
    force: bool = False,
    verbose: int | str = 0,
    precision: str | None = None,
    keep_model: bool = False,
    strategy: Any = None,
    table: str = RESULTS_TABLE,
) -> tuple[recording.RunSpec, dict[str, Any]]:
    """The runner's spec for ``recipe`` on ``splits`` (a :class:`utils.data.Splits`), and the state its evaluate reads.

    A row of ``results/fast_cifar.csv`` with the same run key is reused (unless ``force``); training resumes
    from its checkpoint and stops once ``time_budget_seconds`` of training are spent. Validation accuracy is
    measured with and without TTA; the test set only when ``evaluate_test``, so that it is read once. The model
    is built inside ``strategy.scope()`` (default :func:`utils.runtime.distribution_strategy`; the batch is the
    global one) and runs one batch per call, as its lookahead and budget callbacks act after every batch.

    ``evaluate`` reads ``state["batches"]`` (the :class:`EpochBatches` that ``build`` makes) and
    ``state["budget"]`` (the :func:`time_budget_callback` that ``fit`` makes). Notebook 08 replaces ``build``
    and ``fit`` with its own Keras code (``dataclasses.replace``) that fills the same two entries; the key, and
    so the recorded row, stay this spec's.
    """
    recipe = validate_recipe(recipe)
    policy = runtime.apply_precision(precision) if precision else keras.mixed_precision.global_policy().name
    strategy = strategy or runtime.distribution_strategy()
    migrate_results_table(table)
    num_classes = len(splits.class_names)
    state: dict[str, Any] = {}

    def build() -> Any:
        state["batches"] = batches = EpochBatches(splits.x_train, splits.y_train, recipe, num_classes, seed)
        return compile_recipe(build_model(recipe, splits.x_train, num_classes), recipe, len(batches))

    def fit(model: Any, folder: Path, resuming: bool) -> dict[int, dict[str, float]]:
        batches = state["batches"]
        state["budget"] = budget = time_budget_callback(time_budget_seconds, spent_before(folder, resuming))
        return recording.fit_resumably(model, batches.dataset, folder=folder, epochs=recipe.epochs,
                                       validation=validation_data(splits), verbose=verbose,
                                       callbacks=training_callbacks(recipe, batches, budget))

    def evaluate(model: Any, epoch_log: dict[int, dict[str, float]]) -> dict[str, Any]:
        measured = _measured_columns(model, recipe, splits, epoch_log, state["budget"], len(state["batches"]),
                                     evaluate_test)
        return {**measured, "model_path": str(model_path(recipe, seed))} if save_model else measured

    spec = recording.RunSpec(
        table=table, name=recipe.name, definition=recipe, seed=seed, strategy=strategy, force=force,
        settings=run_settings(recipe, splits, seed=seed, profile=profile, precision=policy,
                              time_budget_seconds=time_budget_seconds, evaluate_test=evaluate_test,
                              replicas=strategy.num_replicas_in_sync),
        readable=RUN_FOLDER_NAMING, build=build, fit=fit, evaluate=evaluate, keep_model=keep_model,
        model_path=model_path(recipe, seed) if save_model else None)
    return spec, state


def validation_data(splits: Any) -> tuple[np.ndarray, np.ndarray]:
    """The validation images in [0, 1] and their one-hot labels, as ``fit`` checks them after each epoch."""
    num_classes = len(splits.class_names)
    return splits.x_validation.astype(np.float32) / 255.0, np.eye(num_classes, dtype=np.float32)[splits.y_validation]


def spent_before(folder: Path, resuming: bool) -> float:
    """Training seconds a resumed run already spent (its epoch log's total), 0 for a fresh one."""
    return recording.epoch_log_totals(recording.read_epoch_log(folder))["train_seconds"] if resuming else 0.0


def migrate_results_table(table_name: str = RESULTS_TABLE) -> None:
    """Give this machine's ``results/<table_name>.csv`` the key columns added since its rows were recorded.

    Old runs stay reusable: until ``replicas`` entered the run key, :func:`run_recipe` always trained on one
    device (1), and a recipe field added later has a default that is what every earlier run did.
    """
    table = results.read_results(table_name)
    missing = {"replicas": 1, **Recipe().settings()}
    missing = {column: value for column, value in missing.items() if column not in table.columns}
    if not table.empty and missing:
        migrated = table.assign(**missing)
        results.write_text_atomically(lambda handle: migrated.to_csv(handle, index=False),
                                      results.results_path(table_name))


def _tta_accuracies(model: Any, recipe: Recipe, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy with this suite's test-time augmentation (mean probability) and with airbench's (weighted logits).

    Both read the same predictions of the same views, so the second costs no extra pass over the images.
    """
    views = predict_views(model, images, recipe.tta_flip, recipe.tta_shift_pixels)
    return (accuracy_of(combine_views(views), labels),
            accuracy_of(combine_views(views, "logits", recipe.tta_shift_pixels), labels))


def _measured_columns(model: Any, recipe: Recipe, splits: Any, epoch_log: dict[int, dict[str, float]], budget: Any,
                      batches_per_epoch: int, evaluate_test: bool) -> dict[str, Any]:
    """Evaluate the trained model (validation with and without TTA, test if asked): the row's measured columns."""
    started = time.perf_counter()
    plain = accuracy_of(predict_with_tta(model, splits.x_validation, flip=False), splits.y_validation)
    with_tta, with_airbench_tta = _tta_accuracies(model, recipe, splits.x_validation, splits.y_validation)
    validation_seconds = time.perf_counter() - started
    test_accuracy, test_airbench_tta, test_seconds = float("nan"), float("nan"), 0.0
    if evaluate_test:
        started = time.perf_counter()
        test_accuracy, test_airbench_tta = _tta_accuracies(model, recipe, splits.x_test, splits.y_test)
        test_seconds = time.perf_counter() - started
    totals = recording.epoch_log_totals(epoch_log)
    history = recording.history_from_epoch_log(epoch_log)
    epochs_done = len(epoch_log)
    if budget.stopped:  # the last logged epoch was cut short by the budget
        epochs_done = len(epoch_log) - 1 + budget.steps_in_epoch / batches_per_epoch
    return {
        "val_accuracy": with_tta, "val_accuracy_no_tta": plain, "test_accuracy": test_accuracy,
        "val_accuracy_airbench_tta": with_airbench_tta, "test_accuracy_airbench_tta": test_airbench_tta,
        "train_accuracy": history["accuracy"][-1], "train_loss": history["loss"][-1],
        "train_seconds": round(totals["train_seconds"], 2),
        "seconds": round(totals["train_seconds"] + (test_seconds if evaluate_test else validation_seconds), 2),
        "seconds_with_epoch_validation": round(totals["seconds"] + validation_seconds + test_seconds, 2),
        "epochs_done": round(epochs_done, 3), "stopped_by_budget": bool(budget.stopped),
        "images_per_second": round(len(splits.y_train) * epochs_done / max(totals["train_seconds"], 1e-9), 1),
        "params": model.count_params(), "val_images": len(splits.y_validation), "test_images": len(splits.y_test),
    }


# --- Reading the results -------------------------------------------------------------------------------


def ablation_table(full: recording.Record, ablations: dict[str, recording.Record],
                   course_run: recording.Record | None = None) -> pd.DataFrame:
    """Validation accuracy and time of the full recipe, each ingredient removed, and the course's recipe.

    The "no test-time augmentation" row is the full recipe's own network evaluated without TTA (no retraining).
    """
    entries = [_ablation_entry(FULL_RECIPE, full.row), _ablation_entry(NO_TTA, full.row, "val_accuracy_no_tta")]
    entries += [_ablation_entry(name, run.row) for name, run in ablations.items()]
    if course_run is not None:
        entries.append(_ablation_entry(course_run.name, course_run.row))
    return _with_change_points(entries, float(full.row["val_accuracy"]))


def _ablation_entry(recipe: str, row: Any, accuracy_column: str = "val_accuracy") -> dict[str, Any]:
    """One row of an ablation table from a results row: accuracy, training time and epochs done."""
    return {"recipe": recipe, "val_accuracy": float(row[accuracy_column]),
            "train_seconds": float(row["train_seconds"]), "epochs_done": float(row["epochs_done"])}


def _with_change_points(entries: list[dict[str, Any]], base_accuracy: float) -> pd.DataFrame:
    """The ablation entries as a table with ``change_points``: percentage points against the full recipe."""
    table = pd.DataFrame(entries).set_index("recipe")
    table.insert(1, "change_points", (100 * (table["val_accuracy"] - base_accuracy)).round(2))
    return table


# --- Reference rows: measured runs shipped in results/reference/ ------------------------------------------


def read_reference(profile: str) -> pd.DataFrame:
    """Notebook 08's shipped rows of ``profile``, ``results/reference/fast_cifar_<profile>.csv`` (empty if none)."""
    return reference.read_reference(f"{RESULTS_TABLE}_{profile}", required=()).rows


def headline_beside_reference(this_run: pd.DataFrame, references: dict[str, pd.DataFrame],
                              course_accuracy: float) -> pd.DataFrame:
    """Test accuracy per budget: the course's figure, each shipped reference profile, and this run.

    ``this_run`` is the notebook's headline table (index: budget in minutes; ``mean``, ``runs``). A budget
    nobody measured shows "not measured yet".
    """
    columns: dict[str, dict[float, str]] = {}
    for name, rows in references.items():
        columns[f"{name} reference"] = {
            float(minutes): f"{_mean_and_spread(row)} ({int(row['runs'])} seed(s), {rows['hardware'].iloc[0]})"
            for minutes, row in reference_headline(rows).iterrows()}
    columns["this run"] = {float(minutes): f"{row['mean']:.2%} ({int(row['runs'])} seed(s))"
                           for minutes, row in this_run.iterrows()}
    budgets = sorted({minutes for column in columns.values() for minutes in column})
    table = pd.DataFrame({name: [column.get(minutes, NOT_MEASURED) for minutes in budgets]
                          for name, column in columns.items()}, index=pd.Index(budgets, name="budget (minutes)"))
    table.insert(0, "course's best (50 epochs)", f"{course_accuracy:.0%}")
    return table


# --- The shipped reference rows, read in every profile (a smoke test has no numbers worth reading) -------

FULL_RECIPE = "full modern recipe"  # the ablation table's row of the recipe with every ingredient
REFERENCE_SETTING = ("time_budget_seconds", "seed", "precision", "hardware")  # what rows must share to be compared


def _named(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows whose ``name`` column is ``name`` (none when the table is empty or has no such column)."""
    return rows[rows["name"].astype(str) == name] if "name" in rows.columns else rows.iloc[0:0]


def _in_setting(rows: pd.DataFrame, setting: dict[str, Any]) -> pd.DataFrame:
    """The rows measured with the same budget, seed, precision and hardware as ``setting`` (compared as text)."""
    same = np.ones(len(rows), dtype=bool)
    for column, value in setting.items():
        same &= (rows[column].astype(str) == str(value)).to_numpy()
    return rows[same]


def shipped_ablation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The ablation in shipped rows, in :func:`ablation_table`'s form, each row against its own full recipe.

    The quick profile's one-epoch ablation is noise, so every profile shows the maintainers': the setting
    (budget, seed, precision, hardware) with most ablation rows, its latest ``modern`` row as the full recipe,
    and its course row for context. An ingredient that setting lacks may come from a run without a clock for
    exactly the full recipe's planned epochs (:func:`_epoch_matched`); ``compared_on`` says which. ``source_row``
    is the row's index in ``rows``. Empty when there is none.
    """
    empty = pd.DataFrame(columns=["val_accuracy", "change_points"]).rename_axis("recipe")
    if "name" not in rows.columns:
        return empty
    ablated = rows[rows["name"].astype(str).isin(list(ABLATIONS))]
    with_base = [setting for setting, _ in ablated.groupby(list(REFERENCE_SETTING), sort=True)
                 if not _in_setting(_named(rows, "modern"), dict(zip(REFERENCE_SETTING, setting))).empty]
    if not with_base:
        return empty
    counts = {setting: len(_in_setting(ablated, dict(zip(REFERENCE_SETTING, setting)))) for setting in with_base}
    setting = dict(zip(REFERENCE_SETTING, max(with_base, key=lambda chosen: counts[chosen])))
    chosen = _in_setting(rows, setting)
    base = _named(chosen, "modern").iloc[-1]
    clock = f"same {float(setting['time_budget_seconds']) / 60:g}-min clock"

    def entry(recipe: str, row: pd.Series, accuracy_column: str = "val_accuracy", on: str = clock) -> dict[str, Any]:
        measured = {**setting, "time_budget_seconds": np.nan} if on != clock else setting
        return {**_ablation_entry(recipe, row, accuracy_column), "val_images": int(row["val_images"]),
                "stopped_by_budget": str(row["stopped_by_budget"]) == "True", **measured, "compared_on": on,
                "source_row": row.name}

    entries = [entry(FULL_RECIPE, base), entry(NO_TTA, base, "val_accuracy_no_tta")]
    matched = _epoch_matched(rows, base)
    for name in ABLATIONS:
        if not _named(chosen, name).empty:
            entries.append(entry(name, _named(chosen, name).iloc[-1]))
        elif not _named(matched, name).empty:
            entries.append(entry(name, _named(matched, name).iloc[-1], on=f"same {int(base['epochs'])} epochs, no clock"))
    course_rows = _named(chosen, course_recipe().name)
    if not course_rows.empty:
        entries.append(entry(course_recipe().name, course_rows.iloc[-1]))
    return _with_change_points(entries, float(base["val_accuracy"]))


def _epoch_matched(rows: pd.DataFrame, base: pd.Series) -> pd.DataFrame:
    """Ablation rows trained without a clock for the planned epochs of ``base``, with its seed, precision and width.

    Training is deterministic, so such a row reads what the same run on ``base``'s machine would have read, provided
    it would have finished there too: only a ``base`` that used its whole plan (not stopped by its budget) qualifies.
    A slower machine can then add an ingredient the budgeted setting lacks; the row's seconds are that machine's.
    """
    alike = ("epochs", "seed", "precision", "widths", "train_images", "val_images", "data_fingerprint")
    if str(base["stopped_by_budget"]) == "True" or not {*alike, "time_budget_seconds"} <= set(rows.columns):
        return rows.iloc[0:0]
    unclocked = pd.to_numeric(rows["time_budget_seconds"], errors="coerce").isna()  # empty, or "none" in results/
    same = unclocked & rows["name"].astype(str).isin(list(ABLATIONS))
    for column in alike:
        same &= rows[column].astype(str) == str(base[column])
    return rows[same & (rows["epochs_done"].astype(float) == float(base["epochs"]))]


def ingredient_costs(table: pd.DataFrame, validation_images: int | None = None) -> pd.DataFrame:
    """The ingredients of an ablation table ranked by what removing each cost, costliest first.

    The full and course recipes are not ingredients and are left out. With ``validation_images``,
    ``noise_points`` is two standard errors of the difference of two accuracies on that many images (sampling
    noise only; seeds add more) and ``beyond_noise`` says whether a change exceeds it.
    """
    costs = table.drop(index=[FULL_RECIPE, course_recipe().name], errors="ignore")
    costs = costs.sort_values("change_points", kind="stable")
    if validation_images and not costs.empty:
        base = float(table.loc[FULL_RECIPE, "val_accuracy"])
        variance = base * (1 - base) + costs["val_accuracy"] * (1 - costs["val_accuracy"])
        costs["noise_points"] = (200 * np.sqrt(variance / validation_images)).round(2)
        costs["beyond_noise"] = costs["change_points"].abs() > costs["noise_points"]
    return costs


def _joined(values: pd.Series, formatter: Any = str) -> str:
    """The distinct values of a column, formatted and joined (several mean the rows were not all alike)."""
    return " / ".join(formatter(value) for value in pd.unique(values))


def describe_rows(table: pd.DataFrame) -> str:
    """How many shipped rows a table rests on and where they were measured, read from their columns.

    A reference number means little without its hardware, precision, budget and seed.
    """
    if table.empty:
        return NOT_MEASURED
    count = table["source_row"].nunique() if "source_row" in table.columns else len(table)
    return (f"{count} shipped rows; hardware {_joined(table['hardware'])}, precision {_joined(table['precision'])}, "
            f"budget {_joined(table['time_budget_seconds'], _budget_text)}, "
            f"seed {_joined(table['seed'], lambda seed: str(int(seed)))}")


def _budget_text(seconds: Any) -> str:
    """A run's budget for people: ``3 min``, or ``no clock`` for a run trained for its planned epochs."""
    seconds = pd.to_numeric(seconds, errors="coerce")
    return "no clock" if pd.isna(seconds) else f"{float(seconds) / 60:g} min"


def reference_label(rows: pd.DataFrame) -> str:
    """``shipped reference run (lesson profile, <hardware>, <precision>)``, read from the rows' columns."""
    if rows.empty:
        return f"shipped reference run ({NOT_MEASURED})"
    return (f"shipped reference run ({_joined(rows['profile'])} profile, {_joined(rows['hardware'])}, "
            f"{_joined(rows['precision'])})")


def same_clock_race(rows: pd.DataFrame) -> pd.DataFrame:
    """The modern and the course's recipe at each budget and seed where both were trained on the same clock.

    The fair comparison is the same wall-clock budget, machine and precision, not the same epochs. One row per
    recipe and setting (the latest), sorted by budget and seed.
    """
    columns = ["budget_minutes", "recipe", "seed", "val_accuracy", "train_seconds", "seconds", "epochs_done",
               "stopped_by_budget", "time_budget_seconds", "precision", "hardware", "source_row"]
    modern, course_rows = _named(rows, "modern"), _named(rows, course_recipe().name)
    entries: list[dict[str, Any]] = []
    if modern.empty or course_rows.empty:
        return pd.DataFrame(entries, columns=columns)
    for setting, _ in modern.groupby(list(REFERENCE_SETTING), sort=True):
        setting = dict(zip(REFERENCE_SETTING, setting))
        rival = _in_setting(course_rows, setting)
        if rival.empty:
            continue
        for row in (_in_setting(modern, setting).iloc[-1], rival.iloc[-1]):
            entries.append({"budget_minutes": float(setting["time_budget_seconds"]) / 60, "recipe": row["name"],
                            "seed": int(setting["seed"]), "val_accuracy": float(row["val_accuracy"]),
                            "train_seconds": float(row["train_seconds"]), "seconds": float(row["seconds"]),
                            "epochs_done": float(row["epochs_done"]),
                            "stopped_by_budget": str(row["stopped_by_budget"]) == "True",
                            **{name: setting[name] for name in ("time_budget_seconds", "precision", "hardware")},
                            "source_row": row.name})
    race = pd.DataFrame(entries, columns=columns)
    return race.sort_values(["budget_minutes", "seed"], kind="stable").reset_index(drop=True)


def race_summary(race: pd.DataFrame) -> pd.DataFrame:
    """One row per budget and seed of :func:`same_clock_race`: both validation accuracies and the modern lead in points."""
    course_name = course_recipe().name
    summary = []
    for (minutes, seed), pair in race.groupby(["budget_minutes", "seed"], sort=True):
        modern, rival = pair[pair["recipe"] == "modern"].iloc[0], pair[pair["recipe"] == course_name].iloc[0]
        summary.append({"budget (minutes)": minutes, "seed": seed, "modern recipe": modern["val_accuracy"],
                        "course's recipe": rival["val_accuracy"],
                        "modern lead (points)": round(100 * (modern["val_accuracy"] - rival["val_accuracy"]), 2),
                        "modern epochs done": modern["epochs_done"], "course epochs done": rival["epochs_done"],
                        "modern train s": modern["train_seconds"], "course train s": rival["train_seconds"]})
    return pd.DataFrame(summary).set_index(["budget (minutes)", "seed"]) if summary else pd.DataFrame()


def reference_headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy of the modern recipe per budget over the rows that read the test set, one row per budget.

    Columns ``runs``, ``mean``, ``std`` (NaN for one seed), ``min``, ``max`` and ``mean_seconds``.
    """
    tested = _named(rows, "modern")
    if tested.empty:
        return pd.DataFrame(columns=["runs", "mean", "std", "min", "max", "mean_seconds"]).rename_axis("budget (minutes)")
    tested = tested[tested["evaluate_test"].astype(str) == "True"]
    tested = tested.assign(minutes=tested["time_budget_seconds"].astype(float) / 60,
                           test=tested["test_accuracy"].astype(float), run_seconds=tested["seconds"].astype(float))
    table = tested.groupby("minutes", sort=True).agg(
        runs=("test", "size"), mean=("test", "mean"), std=("test", "std"), min=("test", "min"), max=("test", "max"),
        mean_seconds=("run_seconds", "mean"))
    return table.rename_axis("budget (minutes)")


def _mean_and_spread(row: pd.Series) -> str:
    """A headline row's mean test accuracy and, over several seeds, its spread: ``82.00% ± 1.41%``."""
    return f"{row['mean']:.2%}" + ("" if np.isnan(row["std"]) else f" ± {row['std']:.2%}")


def key_numbers(course_accuracy: float, race: pd.DataFrame, headline: pd.DataFrame, costs: pd.DataFrame,
                source: str, verdicts: bool = True) -> pd.Series:
    """Notebook 08's key numbers from a race, a headline and ranked ingredient costs, naming their source.

    With ``verdicts=False`` (a smoke test) no ingredient is named the costliest.
    """
    course_name = course_recipe().name
    numbers = {"course's best test accuracy (experiment VI, 50 epochs)": f"{course_accuracy:.0%}"}
    for _, run in race.iterrows():
        recipe = "course's recipe" if run["recipe"] == course_name else "modern recipe"
        numbers[f"{recipe}, validation within {run['budget_minutes']:g} min (seed {run['seed']})"] = (
            f"{run['val_accuracy']:.2%} ({run['epochs_done']:.2f} epochs)")
    for minutes, row in headline.iterrows():
        numbers[f"modern recipe, test within {minutes:g} min ({int(row['runs'])} seed(s))"] = _mean_and_spread(row)
    costliest = "ingredient whose removal cost most (validation)"
    if not verdicts:
        numbers[costliest] = "no verdict: smoke test"
    elif costs.empty:
        numbers[costliest] = NOT_MEASURED
    else:
        numbers[costliest] = f"{costs.index[0]} ({costs['change_points'].iloc[0]:+.2f} points)"
    numbers["measured by"] = source
    return pd.Series(numbers, name="value")


def headline_verdicts(headline: pd.DataFrame, course_accuracy: float, source: str) -> list[str]:
    """One sentence per budget: whether the modern recipe's mean test accuracy reached the course's figure."""
    return [f"{source}: within {minutes:g} min the modern recipe "
            f"{'reached' if row['mean'] >= course_accuracy else 'did not reach'} the course's {course_accuracy:.0%} "
            f"on the test set: {row['mean']:.2%} mean over {int(row['runs'])} seed(s) in {row['mean_seconds']:.0f} s."
            for minutes, row in headline.iterrows()]


def costs_beside(shipped: pd.DataFrame, this_run: pd.DataFrame, this_run_label: str) -> pd.DataFrame:
    """Shipped and this run's ingredient costs side by side, in the shipped ranking (NaN where a row was not run)."""
    names = list(shipped.index) + [name for name in this_run.index if name not in shipped.index]
    table = pd.DataFrame(index=pd.Index(names, name="ingredient removed"))
    for label, costs in (("shipped", shipped), (this_run_label, this_run)):
        for column, heading in (("val_accuracy", "validation"), ("change_points", "change (points)")):
            table[f"{label}: {heading}"] = [float(costs.loc[name, column]) if name in costs.index else float("nan")
                                            for name in names]
    return table


# --- The audit against airbench94: each difference trained airbench's way (``python -m tools.audit``) -------

AIRBENCH94_ACCURACY = 0.9401  # airbench94.py's header: "94.01 average accuracy in n=1000 runs" (original CIFAR-10)
AIRBENCH93_ACCURACY = 0.9300  # lib_airbench93.py, widths 64/128/128 as this port's: "93.00 in n=50"
AUDIT_TABLE = "fast_cifar_audit"
AUDIT_EPOCHS = 5  # the lesson ablation's scale: five epochs of the 64/128/128 network, no clock
AS_LOADED, ALL_TRAINING_IMAGES, JPEG_AGAIN = "as loaded", "all 50,000", "jpeg again"
JPEG_QUALITY = 75  # the shared copy's quality (its quantisation tables are the IJG tables at 75)
JPEG_SUBSAMPLING = 2  # Pillow's code for 4:2:0, the shared copy's colour subsampling
JPEG_GRID_OFFSET = 3  # pixels a second JPEG pass's block grid is moved by (odd, so the colour pairs move too)
PORT_AS_SHIPPED = "port as shipped"
AIRBENCH_TTA = "test-time augmentation"  # the audit line read from every run's two TTA columns, no extra training


@dataclass(frozen=True)
class AuditVariant:
    """One audit run: the port with one difference made airbench's way (recipe changes, or other data)."""

    name: str  # the row's recipe name
    difference: str  # the audit line it measures (notebook 08's table); empty for the port as shipped
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: str = AS_LOADED  # AS_LOADED, ALL_TRAINING_IMAGES or JPEG_AGAIN
    precision: str | None = None  # a Keras dtype policy for the whole run; None: the machine's (mixed bfloat16)
    read_as: str = "test_accuracy"  # the column its runs are read in (airbench's TTA for the combined line)
    epochs: int | None = None  # its own length (the replicas); None: the audit's 5, or ``--epochs``
    published: float | None = None  # the published accuracy of the airbench file it replicates (replicas only)


AIRBENCH_DETAILS = {"whitening_bias_epochs": 3, "head_init": "pytorch", "whitening_dtype": "float32",
                    "momentum_form": "pytorch"}  # every recipe field the audit switches to airbench's way

AIRBENCH_BATCH = {"batch_size": AIRBENCH_BATCH_SIZE, "learning_rate": keras_learning_rate(AIRBENCH_BATCH_SIZE),
                  "weight_decay": keras_weight_decay(AIRBENCH_BATCH_SIZE)}  # airbench's batch, rate and decay ported

AUDIT_VARIANTS = (
    AuditVariant(PORT_AS_SHIPPED, ""),
    AuditVariant("whitening bias trained for 3 epochs", "whitening layer", {"whitening_bias_epochs": 3}),
    AuditVariant("PyTorch's initialisation of the head", "linear head's start", {"head_init": "pytorch"}),
    AuditVariant("float32 normalisation and whitening", "precision", {"whitening_dtype": "float32"}),
    AuditVariant("batch of 1,024", "batch and epochs", AIRBENCH_BATCH),
    AuditVariant("trained on all 50,000 images", "training images", data=ALL_TRAINING_IMAGES),
    AuditVariant("CIFAR-10 JPEG-compressed once more", "data", data=JPEG_AGAIN),
    AuditVariant("PyTorch's form of Nesterov momentum", "Nesterov momentum under a changing rate",
                 {"momentum_form": "pytorch"}),
    AuditVariant("widths 64/256/256", "widths", {"widths": (64, 256, 256)}),
    AuditVariant("everything in float32", "precision, whole network", precision="float32"),
    AuditVariant("airbench's details together", "all the details together", AIRBENCH_DETAILS,
                 data=ALL_TRAINING_IMAGES, read_as="test_accuracy_airbench_tta"),
)


# airbench's own files, replicated by the port: every detail, size, batch and length theirs, on all 50,000
# images of this copy, read with their test-time augmentation. airbench94 trains 9.9 epochs; the port trains
# whole epochs, so its replica trains 10 (1% more steps, in airbench's favour).
AIRBENCH_REPLICAS = (
    AuditVariant("airbench93's own settings", "airbench93: widths 64/128/128, 11 epochs",
                 {**AIRBENCH_DETAILS, **AIRBENCH_BATCH}, data=ALL_TRAINING_IMAGES,
                 read_as="test_accuracy_airbench_tta", epochs=11, published=AIRBENCH93_ACCURACY),
    AuditVariant("airbench94's own settings", "airbench94: widths 64/256/256, 10 epochs (airbench: 9.9)",
                 {**AIRBENCH_DETAILS, **AIRBENCH_BATCH, "widths": (64, 256, 256)}, data=ALL_TRAINING_IMAGES,
                 read_as="test_accuracy_airbench_tta", epochs=10, published=AIRBENCH94_ACCURACY),
)

# airbench94's replica trained as long as the 20-minute target lets the wide network train on the machine that
# measured the shipped target rows: ``python -m tools.bench fast-cifar-widths`` measured the wide network at
# 0.51x the narrow one's images per second (shipped: 0.507, five rounds; 0.512 in an earlier four-round run whose
# fastest rounds read 0.56), which turns the shipped 20-minute rows' speed into 15.2 epochs of 50,000 images (16.8
# at 0.56); 17 epochs gives the wide network the benefit of the doubt.
# Its rows say whether the wide network reaches 92% in 20 minutes on this copy (:func:`ceiling_table`).
WIDE_AT_20_MINUTES = dataclasses.replace(
    AIRBENCH_REPLICAS[1], name="airbench94's settings, 17 epochs",
    difference="airbench94 trained as long as 20 minutes allow the wide network (17 epochs)", epochs=17,
    published=None)


def jpeg_round_trip(images: np.ndarray, quality: int = JPEG_QUALITY, subsampling: int = JPEG_SUBSAMPLING,
                    offset: int = JPEG_GRID_OFFSET) -> np.ndarray:
    """``images`` (uint8, N x H x W x 3) encoded as JPEG with Pillow and decoded again, the grid moved ``offset``.

    Compressing a decoded JPEG again on its own 8 x 8 block grid and 2 x 2 colour pairs changes little: the
    same blocks lose the same detail twice. Reflect-padding ``offset`` pixels on the top and left (and the rest
    of a block on the bottom and right) before encoding, and cropping after decoding, lays the new blocks and
    colour pairs across the old ones, so the second pass damages the images afresh.
    """
    from PIL import Image

    after = (-offset) % 8
    padding = ((offset, after), (offset, after), (0, 0))
    height, width = images.shape[1:3]

    def once(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(np.pad(image, padding, mode="reflect")).save(buffer, format="JPEG", quality=quality,
                                                                   subsampling=subsampling)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        return decoded[offset:offset + height, offset:offset + width]

    return np.stack([once(image) for image in images])


def read_audit_reference() -> pd.DataFrame:
    """The shipped audit rows, ``results/reference/fast_cifar_audit_lesson.csv`` (empty if none)."""
    return reference.read_reference(f"{AUDIT_TABLE}_lesson", required=()).rows


def audit_length_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The audit rows of the audit's own length (:data:`AUDIT_EPOCHS`); longer ones are length-matched extras."""
    return rows[rows["epochs"].astype(float) == AUDIT_EPOCHS] if "epochs" in rows.columns else rows


def _paired_changes(rows: pd.DataFrame, name: str, column: str, base_column: str, base_name: str) -> pd.Series:
    """Per seed, in points: ``column`` of the rows named ``name`` minus ``base_column`` of ``base_name``'s rows.

    Empty when either side has no rows (or the table has no such columns: nothing shipped yet).
    """
    if not {"name", "seed", column, base_column} <= set(rows.columns):
        return pd.Series(dtype=float)
    variant = _named(rows, name).drop_duplicates("seed", keep="last").set_index("seed")[column].astype(float)
    base = _named(rows, base_name).drop_duplicates("seed", keep="last").set_index("seed")[base_column].astype(float)
    seeds = sorted(set(variant.index) & set(base.index))
    return (100 * (variant.loc[seeds] - base.loc[seeds])).round(2)


def _changes_text(changes: pd.Series, listed: int = 4) -> str:
    """Each run's change (``+0.22 / +0.59``), or the range when there are more than ``listed`` runs."""
    if changes.empty:
        return "-"
    if len(changes) > listed:
        return f"from {changes.min():+.2f} to {changes.max():+.2f}"
    return " / ".join(f"{value:+.2f}" for value in changes)


def _noise_points(accuracy: float, images: int) -> float:
    """Two standard errors, in points, of a difference of two test accuracies near ``accuracy`` (NaN: no images)."""
    from utils import transfer

    return 200 * transfer.accuracy_noise(accuracy, accuracy, images) if images else float("nan")


def _change_verdict(change: float, noise: float) -> str:
    """"higher/lower by X points (beyond noise)" when a change in points exceeds the noise, else "within noise"."""
    if abs(change) > noise:
        return f"{'higher' if change > 0 else 'lower'} by {abs(change):.2f} points (beyond noise)"
    return "within noise"


def _audit_line(difference: str, measured_by: str, changes: pd.Series, base: float, images: int) -> dict[str, Any]:
    """One audit line: the change per run, its mean, the test set's sampling noise and a verdict."""
    noise = _noise_points(base, images)
    mean = float(changes.mean()) if len(changes) else float("nan")
    if changes.empty:
        verdict = NOT_MEASURED
    else:
        verdict = _change_verdict(mean, noise)
        if verdict == "within noise" and len(changes) < 2:
            verdict += ": one seed so far"
    return {"difference": difference, "measured by": measured_by, "runs": len(changes),
            "change per run (points)": _changes_text(changes),
            "mean change (points)": round(mean, 2), "noise (points)": round(noise, 2), "verdict": verdict}


def audit_table(rows: pd.DataFrame) -> pd.DataFrame:
    """What each audited difference changes, from the audit rows: test accuracy, the variant's minus the port's.

    A positive change means airbench's way scores higher (the port's way costs that much); the data line's
    variant is the same recipe on a copy compressed once more, so its change is what one more JPEG pass costs.
    The last recipe line makes every detail airbench's way in one run (its fields, all 50,000 images, read with
    airbench's weighted logits) but keeps the port's widths, batch and data: those are sizes, not details.
    Each variant is paired with the port's run of the same seed (same data order and initialisation);
    ``noise`` is two standard errors of the difference of two accuracies on the test set (sampling noise
    only). The test-time-augmentation line compares the two ways of combining the views on the *same*
    networks, every audit run's, so it needs no training of its own.
    """
    lines = []
    rows = audit_length_rows(rows)
    base_rows = _named(rows, PORT_AS_SHIPPED)
    base = float(base_rows["test_accuracy"].mean()) if len(base_rows) else float("nan")
    images = int(base_rows["test_images"].iloc[0]) if len(base_rows) else 0
    for variant in AUDIT_VARIANTS[1:]:
        changes = _paired_changes(rows, variant.name, variant.read_as, "test_accuracy", PORT_AS_SHIPPED)
        lines.append(_audit_line(variant.difference, variant.name, changes, base, images))
    tta = pd.Series(dtype=float)
    if {"test_accuracy_airbench_tta", "test_accuracy"} <= set(rows.columns):
        measured = rows.dropna(subset=["test_accuracy_airbench_tta"])
        tta = (100 * (measured["test_accuracy_airbench_tta"] - measured["test_accuracy"])).round(2)
    lines.append(_audit_line(AIRBENCH_TTA, "airbench's weighted logits against our mean probabilities, on every "
                             "audit run's network", tta, base, images))
    return pd.DataFrame(lines).set_index("difference")


def length_matched_table(audit_rows: pd.DataFrame, shipped_rows: pd.DataFrame) -> pd.DataFrame:
    """Audit runs longer than the audit's 5 epochs, each beside the shipped run of the same seed and length.

    ``python -m tools.audit --epochs 16`` trains a variant, with no clock, as long as the shipped 10-minute rows
    trained (the replicas of :data:`AIRBENCH_REPLICAS` have their own table, :func:`replica_table`); a shipped
    ``modern`` row that finished all its epochs within its budget ran exactly that schedule, so
    it is the port's run of the same seed and length. The variant is read as its audit line reads it
    (``AuditVariant.read_as``). Empty (with its columns) when no longer run is shipped.
    """
    columns = ["variant", "epochs", "seed", "variant's test", "port's shipped test", "change (points)",
               "noise (points)", "verdict"]
    if audit_rows.empty or "epochs" not in audit_rows.columns:
        return pd.DataFrame(columns=columns)
    read_as = {variant.name: variant.read_as for variant in AUDIT_VARIANTS}
    port = _named(shipped_rows, modern_recipe().name)
    longer = audit_rows[(audit_rows["epochs"].astype(float) != AUDIT_EPOCHS) & audit_rows["name"].isin(read_as)]
    lines = []
    for _, row in longer.iterrows():
        finished = port[(port["seed"] == row["seed"]) & (port["epochs"] == row["epochs"])
                        & (port["epochs_done"].astype(float) == float(row["epochs"]))].dropna(subset=["test_accuracy"])
        variant_test = float(row[read_as.get(row["name"], "test_accuracy")])
        line = {"variant": f"{row['name']} ({int(row['train_images']):,} training images)",
                "epochs": int(row["epochs"]), "seed": int(row["seed"]), "variant's test": f"{variant_test:.2%}"}
        if finished.empty:
            lines.append({**line, "port's shipped test": NOT_MEASURED, "verdict": NOT_MEASURED})
            continue
        port_test = float(finished["test_accuracy"].iloc[-1])
        change = 100 * (variant_test - port_test)
        noise = _noise_points(port_test, int(row["test_images"]))
        lines.append({**line, "port's shipped test": f"{port_test:.2%} ({int(finished['train_images'].iloc[-1]):,} "
                      "training images)", "change (points)": round(change, 2), "noise (points)": round(noise, 2),
                      "verdict": _change_verdict(change, noise)})
    return pd.DataFrame(lines, columns=columns)


def data_cost(audit: pd.DataFrame) -> float | None:
    """What one JPEG pass costs in test accuracy (a fraction), from the audit's data line; None if not measured."""
    line = audit.loc["data"]
    return None if line["runs"] == 0 else -float(line["mean change (points)"]) / 100


def expected_on_this_copy(audit: pd.DataFrame) -> pd.Series:
    """airbench's published accuracies less what one JPEG pass costs (the audit's data line), and how.

    The shared copy went through JPEG once; the original images are not here, so the first pass's cost is
    estimated by the second's: the same compression, its block grid moved so that it damages afresh. The
    estimate assumes the two passes cost alike and that a cost measured on the port's 5-epoch recipe carries
    over to airbench's; both are assumptions, and the result says so.
    """
    cost = data_cost(audit)
    if cost is None:
        return pd.Series({"data cost of one JPEG pass": NOT_MEASURED}, name="value")
    line = audit.loc["data"]
    return pd.Series({
        "data cost of one JPEG pass (test, points)": f"{100 * cost:.2f} ({int(line['runs'])} seed(s), "
                                                      f"noise {line['noise (points)']:.2f})",
        "airbench94 on this copy, expected": f"{AIRBENCH94_ACCURACY - cost:.2%} (published {AIRBENCH94_ACCURACY:.2%})",
        "airbench93 (this port's widths) on this copy, expected": f"{AIRBENCH93_ACCURACY - cost:.2%} "
                                                                  f"(published {AIRBENCH93_ACCURACY:.2%})",
        "how": "published accuracy minus the measured cost of one more JPEG pass; assumes the copy's first pass "
               "cost as much as a second, and that the cost carries over from the 5-epoch port to airbench",
    }, name="value")


def replica_accuracies(rows: pd.DataFrame, replica: AuditVariant) -> pd.Series:
    """Test accuracy by seed of a replica's shipped runs, read as airbench reads (empty when none is shipped)."""
    if rows.empty or "name" not in rows.columns:
        return pd.Series(dtype=float)
    runs = _named(rows, replica.name)
    runs = runs[runs["epochs"].astype(float) == replica.epochs].drop_duplicates("seed", keep="last")
    return runs.set_index("seed")[replica.read_as].astype(float).sort_index()


def replica_table(rows: pd.DataFrame, audit: pd.DataFrame) -> pd.DataFrame:
    """airbench93 and airbench94 replicated on this copy (:data:`AIRBENCH_REPLICAS`), beside what was published.

    ``rows`` are the shipped audit rows, ``audit`` the :func:`audit_table`. Each replica trains the port with
    every setting of one airbench file, so, the audit having found the port faithful, its test accuracy is the
    best measurement of what that file reaches on this copy; "published minus measured" is then what the copy
    costs airbench's own recipe, to set beside the second-pass estimate (:func:`expected_on_this_copy`).
    """
    cost = data_cost(audit)
    lines = []
    for replica in AIRBENCH_REPLICAS:
        accuracies = replica_accuracies(rows, replica)
        mean = float(accuracies.mean()) if len(accuracies) else float("nan")
        expected = float("nan") if cost is None else replica.published - cost
        measured = bool(len(accuracies))
        lines.append({
            "replica": replica.name, "settings": replica.difference, "runs": len(accuracies),
            "test per seed (airbench's TTA)": " / ".join(f"{value:.2%} ({seed})" for seed, value in accuracies.items())
            or NOT_MEASURED,
            "mean test": f"{mean:.2%}" if measured else NOT_MEASURED,
            "published (original CIFAR-10)": f"{replica.published:.2%}",
            "published minus measured (points)": round(100 * (replica.published - mean), 2) if measured
            else NOT_MEASURED,
            "expected on this copy (second-pass estimate)": NOT_MEASURED if cost is None else f"{expected:.2%}",
            "measured minus expected (points)": round(100 * (mean - expected), 2) if measured and cost is not None
            else NOT_MEASURED,
        })
    return pd.DataFrame(lines).set_index("replica")


FRONTIER_TARGETS = {10.0: 0.91, 20.0: 0.92}  # the suite's targets: test accuracy within minutes of CPU training


def replica_verdicts(rows: pd.DataFrame) -> list[str]:
    """One line per target: does the best airbench file replicated on this copy reach it, at the file's length?

    ``rows`` are the shipped audit rows. A replica trains airbench's own length with no clock, so the line says
    what airbench's recipes reach on this copy, not what fits a budget here; nothing is said of a replica not run.
    """
    means = {replica.name: replica_accuracies(rows, replica).mean() for replica in AIRBENCH_REPLICAS}
    measured = {name: mean for name, mean in means.items() if not np.isnan(mean)}
    if not measured:
        return [f"airbench's files replicated on this copy: {NOT_MEASURED}"]
    best = max(measured, key=measured.get)
    lines = []
    for minutes, target in FRONTIER_TARGETS.items():
        reached = "reaches" if measured[best] >= target else "stays under"
        lines.append(f"{target:.0%} (the {minutes:g}-minute target): the best airbench file replicated on this copy, "
                     f"{best}, {reached} it at its own length ({measured[best]:.2%})")
    return lines


def frontier_table(rows: pd.DataFrame, audit: pd.DataFrame, replicas: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each target beside the shipped rows' test accuracy at that budget and airbench's figures on this copy.

    ``rows`` are notebook 08's shipped rows (:func:`read_reference`), ``audit`` the :func:`audit_table`,
    ``replicas`` the :func:`replica_table` (its measured means become two more columns). The expected columns
    and how far the port's shipped mean sits from airbench93 (the port's widths, 11 epochs) rest on the
    second-pass estimate of the data's cost. A budget with no shipped test row says "not measured yet"; nothing
    is extrapolated.
    """
    headline = reference_headline(rows)
    cost = data_cost(audit)
    replicated = {} if replicas is None else replicas["mean test"].to_dict()
    lines = []
    for minutes, target in FRONTIER_TARGETS.items():
        measured = headline.loc[minutes] if minutes in headline.index else None
        lines.append({
            "budget (minutes)": minutes, "target (test)": f"{target:.0%}",
            "shipped reference (test)": NOT_MEASURED if measured is None else
            f"{_mean_and_spread(measured)} ({int(measured['runs'])} seed(s))",
            "target reached": NOT_MEASURED if measured is None else ("yes" if measured["mean"] >= target else "no"),
            "airbench94, published": f"{AIRBENCH94_ACCURACY:.2%} (1,000 runs, original images, one GPU)",
            "airbench94 on this copy, expected": NOT_MEASURED if cost is None else f"{AIRBENCH94_ACCURACY - cost:.2%}",
            "airbench93 on this copy, expected": NOT_MEASURED if cost is None else f"{AIRBENCH93_ACCURACY - cost:.2%}",
            "port minus airbench93 expected (points)": NOT_MEASURED if cost is None or measured is None else
            f"{100 * (measured['mean'] - (AIRBENCH93_ACCURACY - cost)):+.2f}",
            **{f"{replica.name}, on this copy (measured)": replicated.get(replica.name, NOT_MEASURED)
               for replica in AIRBENCH_REPLICAS if replicas is not None},
        })
    return pd.DataFrame(lines).set_index("budget (minutes)")


# --- Is there a ceiling? The targets against both networks at the length each budget allows -------------------

WIDTHS_TABLE = "fast_cifar_widths"  # ``python -m tools.bench fast-cifar-widths``: wide against narrow speed
WIDE_RUNS = (AIRBENCH_REPLICAS[1], WIDE_AT_20_MINUTES)  # the wide network's measured lengths, shortest first
ALL_TRAINING_IMAGE_COUNT = course.CIFAR10_TRAIN_IMAGES  # what the wide runs train on per epoch


def read_widths_benchmark() -> pd.DataFrame:
    """The shipped speed ratio of the wide network (64/256/256) to the narrow one (empty when none is shipped)."""
    return reference.read_reference(WIDTHS_TABLE, required=()).rows


def shipped_images_per_second(minutes: float, rows: pd.DataFrame) -> float | None:
    """Mean training images per second of the shipped ``modern`` test rows at a budget (None when there are none)."""
    tested = _named(rows, "modern")
    if tested.empty:
        return None
    at_budget = tested[(tested["time_budget_seconds"].astype(float) == minutes * 60)
                       & (tested["evaluate_test"].astype(str) == "True")]
    return None if at_budget.empty else float(at_budget["images_per_second"].astype(float).mean())


def wide_epochs_within(minutes: float, rows: pd.DataFrame, widths: pd.DataFrame) -> float | None:
    """Epochs of 50,000 images the wide network trains in ``minutes`` on the machine that measured ``rows``.

    The shipped narrow rows at that budget record their images per second on the measuring machine; the wide
    network was never trained there, so its speed is theirs times the ratio :data:`WIDTHS_TABLE` measured
    (the largest ratio shipped, in the wide network's favour). None when either is missing: nothing is guessed.
    """
    narrow_speed = shipped_images_per_second(minutes, rows)
    if narrow_speed is None or widths.empty or "ratio" not in widths.columns:
        return None
    return minutes * 60 * narrow_speed * float(widths["ratio"].astype(float).max()) / ALL_TRAINING_IMAGE_COUNT


def _wide_bound(audit_rows: pd.DataFrame, length: float | None) -> tuple[AuditVariant, pd.Series] | None:
    """The shortest measured wide run at least ``length`` epochs long, with its test accuracy by seed."""
    if length is None:
        return None
    for variant in WIDE_RUNS:
        accuracies = replica_accuracies(audit_rows, variant)
        if variant.epochs >= length and len(accuracies):
            return variant, accuracies
    return None


def ceiling_table(rows: pd.DataFrame, audit_rows: pd.DataFrame, widths: pd.DataFrame) -> pd.DataFrame:
    """Per target: the narrow network's shipped runs at that budget and the wide network run at least as long.

    A run longer than a budget allows scores, in every pair of lengths measured here, no lower than the shorter
    run, so a wide run at least as long as the budget allows is an upper bound on what the wide network reaches
    within it. When both networks stay under a target, that target is out of reach of airbench's two networks on
    this copy; when the wide bound reaches it, the bound proves nothing and the table says so.
    """
    headline = reference_headline(rows)
    lines = []
    for minutes, target in FRONTIER_TARGETS.items():
        narrow = headline.loc[minutes] if minutes in headline.index else None
        length = wide_epochs_within(minutes, rows, widths)
        bound = _wide_bound(audit_rows, length)
        line = {"budget (minutes)": minutes, "target (test)": f"{target:.0%}",
                "narrow 64/128/128, shipped at this budget": NOT_MEASURED if narrow is None else
                f"{_mean_and_spread(narrow)} ({int(narrow['runs'])} seed(s))",
                "wide 64/256/256: epochs this budget allows": NOT_MEASURED if length is None else f"{length:.1f}",
                "wide, trained at least that long (no clock)": NOT_MEASURED if bound is None else
                f"{bound[1].mean():.2%} ({bound[0].epochs} epochs, {len(bound[1])} seed(s))"}
        line["verdict"] = _ceiling_verdict(target, narrow, bound)
        lines.append(line)
    return pd.DataFrame(lines).set_index("budget (minutes)")


def _ceiling_verdict(target: float, narrow: pd.Series | None,
                     bound: tuple[AuditVariant, pd.Series] | None) -> str:
    """What the two networks' measurements establish about one target."""
    if narrow is not None and narrow["mean"] >= target:
        return "reached by the shipped rows"
    if narrow is None or bound is None:
        return f"not established ({NOT_MEASURED})"
    if bound[1].mean() >= target:
        return "not established: the wide run longer than the budget reaches it"
    return f"out of reach: both networks stay under (best {max(narrow['mean'], bound[1].mean()):.2%})"
