"""Tests for utils.fast_cifar: every ingredient of the modern recipe does what it says.

Everything runs on a few dozen tiny random images with a narrow network, so the file
takes well under a minute on a 2-core CPU; accuracy is never the point.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from page_code import notebook_08_time_plots
from tools import reference as reference_tools
from utils import data, fast_cifar, recording, reference, results, runtime

TINY = fast_cifar.modern_recipe(name="tiny", widths=(4, 8, 8), epochs=2, batch_size=16)


def tiny_splits(train: int = 40) -> data.Splits:
    """Random 32x32 colour images, 10 classes; ``train`` is not a multiple of the tiny batch size."""
    generator = np.random.default_rng(0)

    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        return generator.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), np.arange(count) % 10

    names = [f"class {index}" for index in range(10)]
    return data.Splits(*part(train), *part(20), *part(20), "holdout", data.VALIDATION_PROTOCOLS["holdout"],
                       names, "synthetic (test fixture)")


# --- porting the records' settings -------------------------------------------------------


def test_learning_rate_and_weight_decay_follow_the_summed_loss_conversion():
    # airbench: lr = 11.5 / (1024 * (1 + 1 / 0.15)) per example of a summed loss.
    kilostep = 1024 * (1 + 1 / 0.15)
    per_example = 11.5 / kilostep
    assert fast_cifar.keras_learning_rate(1024) == pytest.approx(per_example * 1024)
    assert fast_cifar.keras_learning_rate(512) == pytest.approx(fast_cifar.keras_learning_rate(1024) / 2)
    # airbench hands PyTorch wd / lr with wd = 0.0153 * batch / kilostep, so each step shrinks a
    # weight by wd / (1 - momentum) whatever the learning rate; Keras's decoupled decay must match.
    for batch_size in (256, 512, 1024):
        airbench_shrink = 0.0153 * batch_size / kilostep / 0.15
        keras_shrink = fast_cifar.keras_learning_rate(batch_size) * fast_cifar.keras_weight_decay(batch_size)
        assert keras_shrink == pytest.approx(airbench_shrink)
    assert fast_cifar.modern_recipe().weight_decay == pytest.approx(0.0153 / (11.5 * 0.15))


def test_identity_init_passes_channels_through_and_keeps_pytorch_bounds_elsewhere():
    kernel = keras.ops.convert_to_numpy(fast_cifar.PartialIdentity(seed=1)((3, 3, 4, 6)))
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)
    conv.build(images.shape)
    conv.set_weights([kernel])
    outputs = keras.ops.convert_to_numpy(conv(images))
    assert np.allclose(outputs[..., :4], images, atol=1e-6)  # the first four filters copy their channel
    limit = 1 / np.sqrt(3 * 3 * 4)  # PyTorch's default: uniform in +-1/sqrt(fan_in)
    assert 0 < np.abs(kernel[..., 4:]).max() <= limit
    plain = keras.ops.convert_to_numpy(fast_cifar.PartialIdentity(identity=False, seed=1)((3, 3, 4, 6)))
    assert np.abs(plain).max() <= limit and not np.allclose(plain[1, 1, 0, 0], 1.0)


def test_lookahead_follows_early_then_averages_and_ends_on_the_slow_weights():
    assert fast_cifar.lookahead_decay(0, 100) == 0.0
    assert fast_cifar.lookahead_decay(50, 100) == pytest.approx(0.95 ** 5 / 8)
    assert fast_cifar.lookahead_decay(100, 100) == fast_cifar.lookahead_decay(150, 100) == pytest.approx(0.95 ** 5)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.ones((8, 3), np.float32), np.full((8, 1), 5.0, np.float32)

    class Weights(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.last = model.get_weights()[0].copy()

    seen = Weights()
    lookahead = fast_cifar.lookahead_callback(total_steps=4, every_steps=2, final_decay=0.5)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[seen, lookahead])
    slow = lookahead.slow[0].numpy()
    assert lookahead.pulled_at == [2, 4]
    assert np.allclose(model.get_weights()[0], slow)  # training ends on the slow weights
    assert not np.allclose(slow, seen.last)  # which at the last step lag behind the fast ones


def legacy_pull(weights: list[np.ndarray], slow: list[np.ndarray], decay: float) -> None:
    """The former NumPy lookahead update (kept only here, as the reference the compiled pull must equal)."""
    for average, weight in zip(slow, weights):
        average += (1.0 - decay) * (weight - average)
        weight[...] = average


def test_compiled_lookahead_pull_is_bit_identical_to_the_numpy_update():
    import tensorflow as tf

    generator = np.random.default_rng(7)
    shapes = [(3, 3, 4, 8), (8,), (17, 5)]
    weights = [(generator.normal(size=shape) * 10.0 ** generator.integers(-3, 3)).astype(np.float32)
               for shape in shapes]  # several magnitudes, so rounding differences would show
    slow = [(weight + generator.normal(size=weight.shape).astype(np.float32)).astype(np.float32) for weight in weights]
    variables = [keras.Variable(weight) for weight in weights]
    averages = [tf.Variable(average) for average in slow]
    pull = fast_cifar.lookahead_pull(variables, averages)
    reference_weights, reference_slow = [w.copy() for w in weights], [a.copy() for a in slow]
    decays = [0.0, 1e-7, fast_cifar.lookahead_decay(37, 100), 0.3, fast_cifar.LOOKAHEAD_FINAL_DECAY, 1.0]
    for decay in decays:
        for variable, weight in zip(variables, reference_weights):  # the fast weights move between pulls
            step = generator.normal(size=weight.shape).astype(np.float32)
            variable.assign(weight + step)
            weight += step
        pull(decay)
        legacy_pull(reference_weights, reference_slow, decay)
        for variable, average, weight, reference in zip(variables, averages, reference_weights, reference_slow):
            assert np.array_equal(keras.ops.convert_to_numpy(variable), weight)
            assert np.array_equal(average.numpy(), reference)


def test_lookahead_pulls_where_optimizer_iterations_did_without_overflow():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")

    class Iterations(keras.callbacks.Callback):  # the former count, read before the lookahead runs
        def on_train_batch_end(self, batch, logs=None):
            self.steps = getattr(self, "steps", []) + [int(model.optimizer.iterations.numpy())]

    counted, lookahead = Iterations(), fast_cifar.lookahead_callback(total_steps=21, every_steps=3)
    x, y = np.ones((14, 3), np.float32), np.zeros((14, 2), np.float32)
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[counted, lookahead])
    assert lookahead.pulled_at == [step for step in counted.steps if step % 3 == 0] == list(range(3, 22, 3))


def test_lookahead_counts_batches_when_mixed_float16_skips_overflowing_steps():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        # 2**40 overflows float16 gradients: the first steps are skipped and halve the scale each time.
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=2.0 ** 40)
        model.compile(optimizer=optimizer, loss="mse")
        lookahead = fast_cifar.lookahead_callback(total_steps=20, every_steps=5)
        x, y = np.ones((20, 3), np.float32), np.full((20, 1), 3.0, np.float32)
        model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[lookahead])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert int(optimizer.iterations.numpy()) < 20  # some steps overflowed and were skipped
    assert lookahead.pulled_at == [5, 10, 15, 20]  # one pull every 5 batches, never twice at one step


def test_per_batch_callbacks_refuse_several_steps_per_execution():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    for name, callback in (("lookahead_callback", fast_cifar.lookahead_callback(total_steps=4)),
                           ("time_budget_callback", fast_cifar.time_budget_callback(10.0))):
        with pytest.raises(ValueError, match=f"{name}.*steps_per_execution=2.*steps_per_execution=1"):
            model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])


def test_batch_norm_is_ported_with_keras_momentum_explicit_epsilon_and_frozen_scale():
    recipe = fast_cifar.modern_recipe()
    assert fast_cifar.keras_batch_norm_momentum(0.4) == pytest.approx(0.6)
    assert recipe.batch_norm_momentum == pytest.approx(0.6)
    model = fast_cifar.build_network(TINY, tiny_splits().x_train)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6
    for layer in norms:
        assert layer.momentum == pytest.approx(0.6) and layer.epsilon == pytest.approx(1e-12)
        assert not layer.scale and not layer.center  # scale frozen at 1; the bias lives in a ScaledBias
        assert not layer.trainable_weights
    assert sum(isinstance(layer, fast_cifar.ScaledBias) for layer in model.layers) == 6
    plain = fast_cifar.build_network(TINY.changed(bias_lr_scale=1.0), tiny_splits().x_train)
    assert all(layer.center for layer in plain.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_scaled_bias_learns_lr_scale_times_faster():
    layer = fast_cifar.ScaledBias(64.0)
    inputs = keras.ops.zeros((2, 3))
    layer(inputs)
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer(inputs))  # d loss / d bias = 2 per channel
    optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights))
    effective_bias = keras.ops.convert_to_numpy(layer(inputs))[0]
    assert np.allclose(effective_bias, -0.01 * 2 * 64, rtol=1e-5)  # a plain bias would move by -0.02


# --- augmentation ----------------------------------------------------------------------------


def test_flip_mirrors_exactly_the_chosen_images_and_alternates_between_epochs():
    images = np.random.default_rng(1).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    recipe = fast_cifar.modern_recipe(translate_pixels=0)
    first, second = (fast_cifar.augment_epoch(images, recipe, epoch, seed=3) for epoch in (0, 1))
    assert first.shape == images.shape and first.dtype == np.uint8
    flipped_first = fast_cifar.flip_mask(len(images), 0, 3, alternating=True)
    assert 0 < flipped_first.sum() < len(images)
    assert np.array_equal(first[flipped_first], images[flipped_first][:, :, ::-1])
    assert np.array_equal(first[~flipped_first], images[~flipped_first])
    assert np.array_equal(second[flipped_first], images[flipped_first])  # flipped back in epoch 1
    assert np.array_equal(second[~flipped_first], images[~flipped_first][:, :, ::-1])


def test_translation_shifts_each_image_by_at_most_the_padding_with_reflected_edges():
    image = np.arange(32 * 32 * 3, dtype=np.int64).reshape(1, 32, 32, 3) % 251
    images = np.repeat(image.astype(np.uint8), 60, axis=0)
    shifted = fast_cifar.translate_images(images, 2, np.random.default_rng(0))
    padded = np.pad(images[0], ((2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = {(row, column): padded[row:row + 32, column:column + 32] for row in range(5) for column in range(5)}
    offsets = set()
    for picture in shifted:
        matches = [offset for offset, window in windows.items() if np.array_equal(picture, window)]
        assert matches, "a translated image is not a 32x32 window of the reflect-padded image"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets are drawn per image, not once for the batch
    assert np.array_equal(fast_cifar.translate_images(images, 0, np.random.default_rng(0)), images)


def test_augmentation_is_reproducible_per_epoch_and_off_when_switched_off():
    images = np.random.default_rng(2).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    again = fast_cifar.augment_epoch(images, TINY, 4, seed=9)
    assert np.array_equal(again, fast_cifar.augment_epoch(images, TINY, 4, seed=9))
    plain = TINY.changed(flip=False, alternating_flip=False, translate_pixels=0)
    assert np.array_equal(fast_cifar.augment_epoch(images, plain, 4, seed=9), images)


def batches_of(batches: fast_cifar.EpochBatches) -> list[tuple[np.ndarray, np.ndarray]]:
    """The prepared epoch of ``batches`` as NumPy (images, one-hot labels) pairs, read from its tf.data pipeline."""
    return [(x.numpy(), y.numpy()) for x, y in batches.dataset]


def legacy_training_batches(images: np.ndarray, labels: np.ndarray, recipe: fast_cifar.Recipe, num_classes: int,
                            seed: int) -> keras.utils.PyDataset:
    """The former single-worker PyDataset (kept only here, as the reference the tf.data pipeline must equal)."""

    class AugmentedEpochs(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.one_hot = np.eye(num_classes, dtype=np.float32)
            self.start_epoch(0)

        def start_epoch(self, epoch: int) -> None:
            order = np.random.default_rng([seed, epoch, 2]).permutation(len(labels))
            self.images = fast_cifar.augment_epoch(images, recipe, epoch, seed)[order]
            self.labels = np.asarray(labels)[order]
            self.epoch = epoch

        def __len__(self) -> int:
            return -(-len(labels) // recipe.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            batch = slice(index * recipe.batch_size, (index + 1) * recipe.batch_size)
            return self.images[batch].astype(np.float32) / 255.0, self.one_hot[self.labels[batch]]

    return AugmentedEpochs()


def test_training_batches_cover_every_image_once_per_epoch_in_unit_range():
    splits = tiny_splits(train=40)
    batches = fast_cifar.EpochBatches(splits.x_train, splits.y_train, TINY, 10, seed=0)
    assert len(batches) == 3 and int(batches.dataset.cardinality()) == 3  # 40 images in batches of 16
    parts = batches_of(batches)
    assert [len(x) for x, _ in parts] == [16, 16, 8]
    labels = np.concatenate([y.argmax(axis=1) for _, y in parts])
    assert sorted(labels) == sorted(splits.y_train)
    assert all(0.0 <= x.min() and x.max() <= 1.0 and x.dtype == np.float32 for x, _ in parts)


def test_tf_data_batches_are_bit_identical_to_the_former_pydataset_for_each_epoch():
    splits = tiny_splits(train=40)
    for recipe in (TINY, TINY.changed(alternating_flip=False, translate_pixels=1)):
        new = fast_cifar.EpochBatches(splits.x_train, splits.y_train, recipe, 10, seed=5)
        old = legacy_training_batches(splits.x_train, splits.y_train, recipe, 10, seed=5)
        for epoch in (0, 1):
            new.start_epoch(epoch)
            old.start_epoch(epoch)
            got, expected = batches_of(new), [old[index] for index in range(len(old))]
            assert len(got) == len(expected) == 3
            for (x, y), (x_old, y_old) in zip(got, expected):
                assert x.dtype == x_old.dtype and y.dtype == y_old.dtype
                assert np.array_equal(x, x_old) and np.array_equal(y, y_old)


class BatchChecksums(keras.Model):
    """A model whose training step only reports the sum of each batch's images, to see what fit fed it."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 32 * 32 * 3)))

    def train_step(self, data):
        return {"image_sum": keras.ops.sum(data[0])}


def fed_sums(batches: fast_cifar.EpochBatches, epochs: int, initial_epoch: int = 0) -> dict[int, list[float]]:
    """Per epoch, the image sums of the batches ``fit`` trained on (through the epoch augmenter)."""
    seen: dict[int, list[float]] = {}

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            seen.setdefault(self.epoch, []).append(float(logs["image_sum"]))

    model = BatchChecksums()
    model.compile(optimizer="sgd")
    model.fit(batches.dataset, epochs=epochs, initial_epoch=initial_epoch, verbose=0, shuffle=False,
              callbacks=[fast_cifar.epoch_augmenter(batches), Recorder()])
    return seen


def test_fit_trains_each_epoch_and_a_resumed_epoch_on_that_epochs_batches():
    splits = tiny_splits(train=40)
    old = legacy_training_batches(splits.x_train, splits.y_train, TINY, 10, seed=3)

    def expected(epoch: int) -> list[float]:
        old.start_epoch(epoch)
        return [float(old[index][0].sum()) for index in range(len(old))]

    batches = fast_cifar.EpochBatches(splits.x_train, splits.y_train, TINY, 10, seed=3)
    seen = fed_sums(batches, epochs=3)
    assert sorted(seen) == [0, 1, 2]
    for epoch in seen:
        assert seen[epoch] == pytest.approx(expected(epoch), rel=1e-5)
    assert seen[0] != pytest.approx(seen[1], rel=1e-3)  # the epochs really differ, so the test can fail
    resumed = fed_sums(fast_cifar.EpochBatches(splits.x_train, splits.y_train, TINY, 10, seed=3), epochs=3,
                       initial_epoch=2)  # what BackupAndRestore does: fit starts at the epoch it restored
    assert sorted(resumed) == [2] and resumed[2] == pytest.approx(expected(2), rel=1e-5)


# --- label smoothing, schedule, TTA --------------------------------------------------------------


def test_smoothed_targets_match_what_keras_label_smoothing_uses():
    targets = fast_cifar.smoothed_targets(np.array([2, 0]), 10, 0.2)
    assert targets[0, 2] == pytest.approx(0.82) and targets[0, 0] == pytest.approx(0.02)
    assert np.allclose(targets.sum(axis=1), 1.0)
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), size=2).astype(np.float32)
    one_hot = np.eye(10, dtype=np.float32)[[2, 0]]
    keras_loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(one_hot, probabilities)
    ours = np.mean(-np.sum(targets * np.log(probabilities), axis=1))
    assert float(keras_loss) == pytest.approx(ours, rel=1e-4)


def test_schedule_warms_up_then_decays_linearly_to_its_end_factor():
    schedule = fast_cifar.WarmupLinearDecay(total_steps=100, peak=2.0, warmup_fraction=0.25,
                                            start_factor=0.2, end_factor=0.1)
    values = {step: float(schedule(step)) for step in (0, 12.5, 25, 62.5, 100, 150)}
    assert values[0] == pytest.approx(0.4)  # 0.2 * peak
    assert values[12.5] == pytest.approx(1.2)  # half way up
    assert values[25] == pytest.approx(2.0)  # the peak
    assert values[62.5] == pytest.approx(1.1)  # half way down to 0.1 * peak
    assert values[100] == pytest.approx(0.2) and values[150] == pytest.approx(0.2)
    restored = fast_cifar.WarmupLinearDecay.from_config(schedule.get_config())
    assert float(restored(40)) == pytest.approx(float(schedule(40)))
    constant = fast_cifar.WarmupLinearDecay(total_steps=10, peak=0.5, warmup_fraction=0.0, start_factor=1.0,
                                            end_factor=1.0)
    assert [float(constant(step)) for step in (0, 5, 10)] == pytest.approx([0.5, 0.5, 0.5])


def test_tta_averages_the_predictions_of_the_flipped_and_shifted_views():
    images = np.random.default_rng(3).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    scaled = images.astype(np.float32) / 255.0
    plain = model.predict(scaled, verbose=0)
    mirrored = model.predict(scaled[:, :, ::-1], verbose=0)
    assert not np.allclose(plain, mirrored)  # the model is not symmetric, so the test can fail
    assert np.allclose(fast_cifar.predict_with_tta(model, images, flip=False), plain, atol=1e-6)
    assert np.allclose(fast_cifar.predict_with_tta(model, images, flip=True), (plain + mirrored) / 2, atol=1e-6)
    views = fast_cifar.tta_views(scaled, flip=True, shift_pixels=1)
    assert len(views) == 6 and all(view.shape == scaled.shape for view in views)
    assert np.array_equal(views[2][:, 1:, 1:], scaled[:, :-1, :-1])  # shifted one pixel down-right
    expected = np.mean([model.predict(view, verbose=0) for view in views], axis=0)
    assert np.allclose(fast_cifar.predict_with_tta(model, images, flip=True, shift_pixels=1), expected, atol=1e-6)


def test_airbench_tta_weighs_the_logits_a_quarter_per_unshifted_view_and_an_eighth_per_shifted_one():
    assert list(fast_cifar.airbench_view_weights(6, 1)) == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    assert list(fast_cifar.airbench_view_weights(2, 0)) == [0.5, 0.5]
    assert list(fast_cifar.airbench_view_weights(3, 1)) == [0.5, 0.25, 0.25]  # no flip: the image, two shifts
    generator = np.random.default_rng(5)
    logits = generator.normal(scale=4.0, size=(6, 500, 10))  # six views of 500 images
    probabilities = [keras.ops.convert_to_numpy(keras.ops.softmax(view)) for view in logits]
    by_logits = np.tensordot(fast_cifar.airbench_view_weights(6, 1), logits, axes=1)  # what airbench computes
    combined = fast_cifar.combine_views(probabilities, "logits", shift_pixels=1)
    assert np.array_equal(np.argmax(combined, axis=1), np.argmax(by_logits, axis=1))
    by_mean = fast_cifar.combine_views(probabilities)
    assert not np.array_equal(np.argmax(by_mean, axis=1), np.argmax(by_logits, axis=1))  # the two ways differ
    with pytest.raises(ValueError, match="logits"):
        fast_cifar.combine_views(probabilities, "votes")


def momentum_trajectory(optimizer: keras.optimizers.Optimizer, rates: list[float]) -> list[float]:
    """A weight's values under ``optimizer`` with gradient 1, 2, 3, ... and the learning rate set per step."""
    weight = keras.Variable(np.zeros(1, dtype=np.float32))
    values = []
    for step, rate in enumerate(rates, start=1):
        optimizer.learning_rate = rate
        optimizer.apply_gradients([(keras.ops.full((1,), float(step)), weight)])
        values.append(float(keras.ops.convert_to_numpy(weight)[0]))
    return values


def test_pytorch_momentum_form_matches_keras_at_a_constant_rate_and_rescales_the_past_when_it_changes():
    def both(rates: list[float]) -> tuple[list[float], list[float]]:
        return (momentum_trajectory(keras.optimizers.SGD(0.1, momentum=0.85, nesterov=True), rates),
                momentum_trajectory(fast_cifar.TorchFormSGD(0.1, momentum=0.85, nesterov=True), rates))

    keras_form, torch_form = both([0.1] * 5)
    assert np.allclose(keras_form, torch_form, rtol=1e-6)
    changing = [0.1, 0.2, 0.4, 0.8]
    keras_form, torch_form = both(changing)
    velocity, weight, by_hand = 0.0, 0.0, []  # PyTorch: v = m v + g; w -= lr (g + m v)
    for gradient, rate in zip([1.0, 2.0, 3.0, 4.0], changing):
        velocity = 0.85 * velocity + gradient
        weight -= rate * (gradient + 0.85 * velocity)
        by_hand.append(weight)
    assert np.allclose(torch_form, by_hand, rtol=1e-5)
    assert not np.allclose(keras_form, torch_form, rtol=1e-3)  # the forms differ once the rate moves
    recipe = TINY.changed(momentum_form="pytorch")
    model = fast_cifar.compile_recipe(fast_cifar.build_network(recipe, tiny_splits().x_train), recipe, 3)
    assert isinstance(model.optimizer, fast_cifar.TorchFormSGD)
    with pytest.raises(ValueError, match="momentum_form"):
        TINY.changed(momentum_form="adam")


# --- network -------------------------------------------------------------------------------------


def test_airbench_details_are_off_by_default_and_built_as_airbench_has_them_when_asked():
    images = tiny_splits().x_train
    default = fast_cifar.build_network(TINY, images)
    assert fast_cifar.WHITENING_BIAS not in [layer.name for layer in default.layers]
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        recipe = TINY.changed(whitening_bias_epochs=3, head_init="pytorch", whitening_dtype="float32")
        model = fast_cifar.build_network(recipe, images)
        mixed = fast_cifar.build_network(TINY, images)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for name in ("normalise", "whiten", fast_cifar.WHITENING_BIAS, "first_act"):
        assert model.get_layer(name).compute_dtype == "float32"
    assert mixed.get_layer("whiten").compute_dtype == "bfloat16"
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    fan_in = recipe.widths[-1]
    head = model.get_layer("logits").get_weights()[0]
    assert np.abs(head).max() <= 1 / np.sqrt(fan_in) and np.abs(head).max() > 0.8 / np.sqrt(fan_in)
    glorot = default.get_layer("logits").get_weights()[0]
    assert np.abs(glorot).max() > 1 / np.sqrt(fan_in)  # Keras's default is wider: the difference is real
    with pytest.raises(ValueError, match="whitening_bias_epochs"):
        TINY.changed(whitening=False, whitening_bias_epochs=3)
    with pytest.raises(ValueError, match="head_init"):
        TINY.changed(head_init="he")


def test_the_whitening_bias_trains_for_its_epochs_then_stays_put_while_the_rest_trains():
    splits = tiny_splits(64)
    recipe = TINY.changed(epochs=3, whitening_bias_epochs=2, lookahead=False)
    batches = fast_cifar.EpochBatches(splits.x_train, splits.y_train, recipe, 10, seed=0)
    model = fast_cifar.compile_recipe(fast_cifar.build_network(recipe, splits.x_train), recipe, len(batches))
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.append((model.get_layer(fast_cifar.WHITENING_BIAS).get_weights()[0].copy(),
                         model.get_layer("logits").get_weights()[0].copy()))

    callbacks = fast_cifar.training_callbacks(recipe, batches, fast_cifar.time_budget_callback(None)) + [Snapshot()]
    model.fit(batches.dataset, epochs=3, verbose=0, callbacks=callbacks)
    (bias_1, head_1), (bias_2, head_2), (bias_3, head_3) = seen
    assert np.abs(bias_1).sum() > 0 and not np.array_equal(bias_1, bias_2)  # trains in epochs 1 and 2
    assert np.array_equal(bias_2, bias_3) and not np.array_equal(head_2, head_3)  # frozen; the rest trains on


def test_a_second_jpeg_pass_on_a_moved_grid_damages_afresh_where_an_aligned_one_barely_changes():
    # Synthetic smooth colour images (a test fixture), compressed once as the shared copy was.
    rows, columns = np.mgrid[0:32, 0:32]
    generator = np.random.default_rng(2)
    images = np.stack([np.stack([128 + 100 * np.sin(rows / (3 + k) + phase) * np.cos(columns / (4 + k))
                                 for phase in generator.uniform(0, 3, 3)], axis=-1) for k in range(8)])
    copy = fast_cifar.jpeg_round_trip(np.clip(images, 0, 255).astype(np.uint8), offset=0)
    aligned = fast_cifar.jpeg_round_trip(copy, offset=0)
    moved = fast_cifar.jpeg_round_trip(copy)
    assert moved.shape == copy.shape and moved.dtype == np.uint8
    from skimage.metrics import peak_signal_noise_ratio

    assert peak_signal_noise_ratio(copy, aligned) > peak_signal_noise_ratio(copy, moved) + 5


def test_whitening_kernel_decorrelates_patches_to_unit_variance():
    generator = np.random.default_rng(4)
    base = generator.normal(size=(30, 32, 32, 1))
    images = np.concatenate([base, 0.5 * base + 0.1 * generator.normal(size=base.shape),
                             generator.normal(size=base.shape)], axis=-1)  # correlated channels
    kernel = fast_cifar.whitening_kernel(images, epsilon=0.0)
    assert kernel.shape == (2, 2, 3, 24)
    assert np.allclose(kernel[..., 12:], -kernel[..., :12])
    patches = fast_cifar.image_patches(images)
    outputs = (patches - patches.mean(axis=0)) @ kernel[..., :12].reshape(12, 12)
    assert np.allclose(np.cov(outputs, rowvar=False, bias=True), np.eye(12), atol=1e-6)
    conv = keras.layers.Conv2D(24, 2, use_bias=False)
    conv.build((None, 32, 32, 3))
    conv.set_weights([kernel])
    keras_outputs = keras.ops.convert_to_numpy(conv(images.astype(np.float32)))[..., :12].reshape(-1, 12)
    assert np.allclose(keras_outputs, patches @ kernel[..., :12].reshape(12, 12), atol=1e-3)


def test_network_shapes_widths_and_frozen_whitening():
    images = tiny_splits().x_train
    model = fast_cifar.build_network(TINY, images)
    assert model.output_shape == (None, 10)
    assert model.get_layer("block3_conv2").filters == 8
    assert not model.get_layer("whiten").trainable
    unwhitened = fast_cifar.build_network(TINY.changed(whitening=False), images)
    assert unwhitened.get_layer("first_conv").trainable
    probabilities = keras.ops.convert_to_numpy(model(images[:4].astype(np.float32) / 255.0))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_recipe_with_a_bad_field_gets_a_clear_error():
    with pytest.raises(ValueError, match="widths"):
        fast_cifar.modern_recipe(widths=(64, 128))
    with pytest.raises(ValueError, match="label_smoothing"):
        TINY.changed(label_smoothing=1.5)
    with pytest.raises(ValueError, match="Unknown ablation"):
        fast_cifar.ablated_recipes(TINY, ["no such thing"])


def test_ablations_change_only_their_own_fields():
    for name, recipe in fast_cifar.ablated_recipes(TINY).items():
        changed = {field.name for field in dataclasses.fields(recipe)
                   if getattr(recipe, field.name) != getattr(TINY, field.name)}
        assert changed == {"name", *fast_cifar.ABLATIONS[name]} - {
            field for field, value in fast_cifar.ABLATIONS[name].items() if getattr(TINY, field) == value}


# --- running and recording ------------------------------------------------------------------------


def key_of(recipe: fast_cifar.Recipe, splits: data.Splits, **settings) -> dict:
    """The run key run_recipe uses for these settings."""
    return recording.run_key(**fast_cifar.run_settings(recipe, splits, **settings))


def test_every_recipe_field_is_in_the_run_key():
    splits = tiny_splits()
    key = key_of(TINY, splits, seed=1, profile="quick", precision="float32",
                             time_budget_seconds=None, evaluate_test=False)
    for field in dataclasses.fields(fast_cifar.Recipe):
        assert field.name in key
    assert key["replicas"] == 1 and key["hardware"] == runtime.hardware_name()
    two = key_of(TINY, splits, seed=1, profile="quick", precision="float32", time_budget_seconds=None,
                             evaluate_test=False, replicas=2)
    elsewhere = key_of(TINY, splits, seed=1, profile="quick", precision="float32",
                                   time_budget_seconds=None, evaluate_test=False, hardware="another machine")
    assert len({recording.key_digest(k) for k in (key, two, elsewhere)}) == 3
    other = key_of(TINY.changed(lookahead_final_decay=0.5), splits, seed=1, profile="quick",
                               precision="float32", time_budget_seconds=None, evaluate_test=False)
    assert recording.key_digest(other) != recording.key_digest(key)


def test_run_recipe_trains_records_and_reuses_its_row(own_outputs):
    splits = tiny_splits()
    first = fast_cifar.run_recipe(TINY, splits, seed=1, profile="quick", evaluate_test=True, save_model=True)
    assert not first.reused and sorted(first.epoch_log) == [0, 1]
    row = first.row
    assert 0.0 <= row["val_accuracy"] <= 1.0 and 0.0 <= row["test_accuracy"] <= 1.0
    assert row["epochs_done"] == 2 and not row["stopped_by_budget"]
    assert row["seconds"] >= row["train_seconds"] > 0
    assert len(first.curve()) == 2
    again = fast_cifar.run_recipe(TINY, splits, seed=1, profile="quick", evaluate_test=True)
    assert again.reused and len(results.read_results(fast_cifar.RESULTS_TABLE)) == 1
    assert Path(first.row["model_path"]).exists()


class SlowBatches(keras.callbacks.Callback):
    """Makes every training batch take at least 0.2 s, so a time budget is reached predictably."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.2)


def test_time_budget_stops_training_and_records_how_far_it_got(own_outputs):
    budget = fast_cifar.time_budget_callback(0.5)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    slow = SlowBatches()
    model.fit(np.zeros((64, 4)), np.zeros((64, 1)), batch_size=4, epochs=5, verbose=0, callbacks=[slow, budget])
    # Only what no machine load can change: it stopped, not before the budget was spent, and
    # inside the first of five 16-step epochs (each step takes at least 0.2 s of sleep).
    assert budget.stopped and budget.spent >= 0.5
    assert 1 <= budget.steps_in_epoch < 16 and len(model.history.history["loss"]) == 1

    splits = tiny_splits()
    run = fast_cifar.run_recipe(TINY.changed(epochs=5), splits, seed=1, profile="quick", time_budget_seconds=0.01)
    assert run.row["stopped_by_budget"] and run.row["epochs_done"] < 1.0
    assert run.row["time_budget_seconds"] == repr(0.01)


def test_step_time_is_the_marginal_cost_not_the_fit_start_up(own_outputs, monkeypatch):
    """A 1 s start-up in every fit (a callback sleeping in on_train_begin) and 50 ms of known cost per step.

    Dividing one 4-step fit by its steps would charge each step with 1 s / 4 on top of its cost.
    """
    step_cost, start_up, steps = 0.05, 1.0, 4

    class SlowStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            time.sleep(start_up)

        def on_train_batch_end(self, batch, logs=None):
            time.sleep(step_cost)

    monkeypatch.setattr(fast_cifar, "lookahead_callback", lambda *args, **kwargs: SlowStart())
    seconds = fast_cifar.measure_seconds_per_step(TINY, tiny_splits(train=16 * 2 * steps), steps=steps, repeats=3)
    assert 0.6 * step_cost < seconds < step_cost + 0.5 * start_up / steps, f"{seconds:.3f} s per step"


def test_marginal_step_time_falls_back_to_the_long_fit_when_the_difference_is_noise():
    def fit_steps(count: int) -> None:
        time.sleep(0.2 if count == 8 else 0.25)  # the short fit is slower: a negative difference

    assert runtime.marginal_seconds_per_step(fit_steps, 4, 8, repeats=1) == pytest.approx(0.2 / 8, rel=0.5)


def test_one_disturbed_timing_pair_does_not_inflate_the_step_time():
    """Three pairs of fits, 4 extra steps costing 40 ms; another program slows one long fit by 120 ms."""
    long_fits = []

    def fit_steps(count: int) -> None:
        if count == 8:
            long_fits.append(count)
        disturbed = count == 8 and len(long_fits) == 3  # the warm-up, then the second timed long fit
        time.sleep((0.08 if count == 8 else 0.04) + (0.12 if disturbed else 0.0))

    seconds = runtime.marginal_seconds_per_step(fit_steps, 4, 8, repeats=3)
    assert seconds == pytest.approx(0.04 / 4, rel=0.5), f"{seconds:.4f} s per step"


def test_two_disturbed_long_fits_cannot_make_a_step_cost_more_than_a_whole_fits_average():
    """Three pairs, 4 extra steps costing 40 ms; two long fits slowed by 200 ms: the median pair is disturbed."""
    long_fits = []

    def fit_steps(count: int) -> None:
        if count == 8:
            long_fits.append(count)
        disturbed = count == 8 and len(long_fits) in (2, 3)  # after the warm-up: the first two timed long fits
        time.sleep((0.08 if count == 8 else 0.04) + (0.2 if disturbed else 0.0))

    seconds = runtime.marginal_seconds_per_step(fit_steps, 4, 8, repeats=3)
    assert seconds < 0.2 / 4, f"{seconds:.4f} s per step: the disturbed median was kept"
    assert seconds == pytest.approx(0.08 / 8, rel=0.5)  # the undisturbed long fit's average step


def test_old_results_without_replicas_are_migrated_and_reused(own_outputs):
    splits = tiny_splits()
    first = fast_cifar.run_recipe(TINY.changed(epochs=1), splits, seed=2, profile="quick")
    assert first.row["replicas"] == 1 and first.row["hardware"] == runtime.hardware_name()
    path = results.results_path(fast_cifar.RESULTS_TABLE)
    added_later = ["replicas", "whitening_bias_epochs", "head_init", "whitening_dtype", "momentum_form"]
    pd.read_csv(path).drop(columns=added_later).to_csv(path, index=False)  # a table from before the columns
    again = fast_cifar.run_recipe(TINY.changed(epochs=1), splits, seed=2, profile="quick")
    migrated = pd.read_csv(path)
    assert again.reused and list(migrated["replicas"]) == [1]
    assert list(migrated["head_init"]) == ["glorot"] and list(migrated["whitening_bias_epochs"]) == [0]


def test_shipped_reference_rows_carry_replicas_and_hardware():
    rows = fast_cifar.read_reference("lesson")
    if rows.empty:
        pytest.skip("no lesson reference rows shipped")
    assert "replicas" in pd.read_csv(reference.reference_dir() / "fast_cifar_lesson.csv").columns  # in the file itself
    assert (rows["replicas"] == 1).all() and rows["hardware"].notna().all()


def test_training_with_tf_data_and_compiled_lookahead_equals_the_former_code_bit_for_bit(own_outputs):
    """Two epochs of the tiny recipe in float32: the former PyDataset and NumPy lookahead against the new code."""
    splits = tiny_splits(train=40)
    recipe = TINY.changed(lookahead_every_steps=2)

    class LegacyLookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.variables = [v for v in self.model.weights if "float" in str(v.dtype)]
            self.slow = [np.array(v.numpy()) for v in self.variables]

        def _pull(self, decay):
            for slow, variable in zip(self.slow, self.variables):
                slow += (1.0 - decay) * (variable.numpy() - slow)
                variable.assign(slow)

        def on_train_batch_end(self, batch, logs=None):
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            if step % recipe.lookahead_every_steps == 0:
                self._pull(fast_cifar.lookahead_decay(step, 6, recipe.lookahead_final_decay))

        def on_train_end(self, logs=None):
            self._pull(1.0)

    def trained(legacy: bool) -> list[np.ndarray]:
        runtime.clear_session_keeping_precision()
        runtime.set_seed(4)
        maker = legacy_training_batches if legacy else fast_cifar.EpochBatches
        batches = maker(splits.x_train, splits.y_train, recipe, 10, 4)
        model = fast_cifar.compile_recipe(fast_cifar.build_model(recipe, splits.x_train), recipe, len(batches))
        lookahead = LegacyLookahead() if legacy else fast_cifar.lookahead_callback(
            6, recipe.lookahead_every_steps, recipe.lookahead_final_decay, batches_per_epoch=len(batches))
        model.fit(batches if legacy else batches.dataset, epochs=2, verbose=0, shuffle=False,
                  callbacks=[fast_cifar.epoch_augmenter(batches), lookahead])
        return model.get_weights()

    old, new = trained(legacy=True), trained(legacy=False)
    assert len(old) == len(new) and all(np.array_equal(a, b) for a, b in zip(old, new))


def test_course_recipe_is_the_course_settings():
    recipe = fast_cifar.course_recipe()
    assert (recipe.batch_size, recipe.learning_rate, recipe.momentum) == (32, 0.01, 0.0)
    assert not (recipe.flip or recipe.lookahead or recipe.identity_init or recipe.tta_flip or recipe.label_smoothing)
    model = fast_cifar.build_model(recipe, tiny_splits().x_train)
    assert model.name == "cifar10_VI"


def test_reference_export_copies_only_recorded_real_data_rows(own_outputs):
    target = own_outputs / "reference" / "fast_cifar_lesson.csv"
    with pytest.raises(FileNotFoundError, match="Run notebook 08 first: python -m tools.reference fast_cifar"):
        reference_tools.export_reference("lesson", target.parent)
    results.append_result(fast_cifar.RESULTS_TABLE, {"profile": "lesson", "data_source": "synthetic (x)",
                                                     "val_accuracy": 0.5})
    with pytest.raises(FileNotFoundError):
        reference_tools.export_reference("lesson", target.parent)  # synthetic rows are never reference rows
    results.append_result(fast_cifar.RESULTS_TABLE, {"profile": "lesson", "data_source": "JPEG folders",
                                                     "val_accuracy": 0.9, "train_images": 45000, "epochs_done": 2,
                                                     "train_seconds": 60.0, "model_path": "/here/model.keras"})
    assert reference_tools.export_reference("lesson", target.parent) == target
    shipped = pd.read_csv(target)
    assert list(shipped["val_accuracy"]) == [0.9]
    assert list(shipped["images_per_second"]) == [1500.0]
    assert "model_path" not in shipped.columns  # a file on this machine, meaningless elsewhere


def test_planned_training_minutes_add_up_every_budgeted_run():
    # lesson profile: 10 min x 3 seeds, 20 min once, the course at 10, 8 ablations + full + course at 3.
    assert fast_cifar.planned_training_minutes([10, 20], 3, 1, 3, 8) == 30 + 20 + 10 + 8 * 3 + 2 * 3
    # ablations on the headline's clock reuse its full and course runs.
    assert fast_cifar.planned_training_minutes([0.5], 1, 1, 0.5, 3) == 0.5 + 0.5 + 3 * 0.5


def test_headline_sits_beside_the_reference_runs_and_says_what_is_not_measured():
    this_run = pd.DataFrame({"mean": [0.5], "runs": [1]}, index=[0.5])
    reference = pd.DataFrame({"name": ["modern", "modern", "course (experiment VI)"], "evaluate_test": [True, True, False],
                              "test_accuracy": [0.89, 0.91, float("nan")], "time_budget_seconds": [600, 600, 600],
                              "seconds": [610.0] * 3, "hardware": ["AMD EPYC (2 cores)"] * 3})
    table = fast_cifar.headline_beside_reference(this_run, {"lesson": reference, "full": pd.DataFrame()}, 0.84)
    assert list(table.index) == [0.5, 10.0]
    assert table.loc[10.0, "lesson reference"].startswith("90.00% ± 1.41% (2 seed(s)")
    assert table.loc[10.0, "this run"] == table.loc[0.5, "lesson reference"] == fast_cifar.NOT_MEASURED
    assert (table["full reference"] == fast_cifar.NOT_MEASURED).all()
    assert (table["course's best (50 epochs)"] == "84%").all()


# --- the shipped reference rows, read in every profile ----------------------------------------------


def shipped_rows() -> pd.DataFrame:
    """A small shipped table: a 3-minute ablation (seed 42) with its full and course rows, and races at 3 and 10 min."""
    common = {"seed": 42, "precision": "mixed_bfloat16", "hardware": "AMD EPYC (2 cores)", "profile": "lesson",
              "time_budget_seconds": 180, "evaluate_test": False, "test_accuracy": float("nan"),
              "train_seconds": 170.0, "seconds": 185.0, "epochs_done": 5.0, "stopped_by_budget": False,
              "val_images": 5000}

    def row(name: str, accuracy: float, **changes) -> dict:
        return {**common, "name": name, "val_accuracy": accuracy, "val_accuracy_no_tta": accuracy - 0.01, **changes}

    return pd.DataFrame([
        row("modern", 0.80, time_budget_seconds=600, train_seconds=530.0, seconds=560.0, evaluate_test=True,
            test_accuracy=0.81),
        row("course (experiment VI)", 0.70, time_budget_seconds=600, train_seconds=590.0, stopped_by_budget=True),
        row("modern", 0.79, seed=43, time_budget_seconds=600, evaluate_test=True, test_accuracy=0.83),
        row("modern", 0.60),
        row("course (experiment VI)", 0.50, train_seconds=178.0),
        row("no label smoothing", 0.61),
        row("constant learning rate, no warm-up", 0.55),
        row("Keras batch-norm defaults (not ported)", 0.10),
        row("no lookahead (weight averaging)", 0.70, seed=43),  # no full recipe with seed 43 at 3 min: left out
    ])


def test_shipped_ablation_compares_each_row_with_its_own_full_recipe():
    table = fast_cifar.shipped_ablation_table(shipped_rows())
    assert list(table.index) == [fast_cifar.FULL_RECIPE, fast_cifar.NO_TTA, "no label smoothing",
                                 "constant learning rate, no warm-up", "Keras batch-norm defaults (not ported)",
                                 "course (experiment VI)"]
    assert table.loc["no label smoothing", "change_points"] == pytest.approx(1.0)
    assert table.loc["Keras batch-norm defaults (not ported)", "change_points"] == pytest.approx(-50.0)
    assert table.loc[fast_cifar.NO_TTA, "change_points"] == pytest.approx(-1.0)  # the full run, without TTA
    assert table.loc[fast_cifar.FULL_RECIPE, "change_points"] == 0
    # "no TTA" is the full run read again, so the table has one row more than it has sources.
    assert table["source_row"].nunique() == len(table) - 1 == 5
    assert fast_cifar.describe_rows(table) == ("5 shipped rows; hardware AMD EPYC (2 cores), precision mixed_bfloat16, "
                                               "budget 3 min, seed 42")


def test_an_ingredient_the_clocked_setting_lacks_may_come_from_a_run_of_the_same_epochs_without_a_clock():
    alike = {"epochs": 5, "widths": "64x128x128", "train_images": 45000, "data_fingerprint": "ec0a"}
    rows = shipped_rows().assign(**alike)
    no_clock = {**rows.iloc[3].to_dict(), "time_budget_seconds": float("nan"), "train_seconds": 343.0}  # like the base
    rows = pd.concat([rows, pd.DataFrame([
        {**no_clock, "name": "plain momentum, not Nesterov", "val_accuracy": 0.58},
        {**no_clock, "name": "ReLU instead of GELU", "val_accuracy": 0.59, "epochs": 4, "epochs_done": 4.0},  # other plan
        {**no_clock, "name": "no label smoothing", "val_accuracy": 0.99},  # the clocked row of this ingredient wins
    ])], ignore_index=True)
    table = fast_cifar.shipped_ablation_table(rows)
    assert "ReLU instead of GELU" not in table.index
    assert table.loc["no label smoothing", "val_accuracy"] == 0.61
    assert table.loc["plain momentum, not Nesterov", "change_points"] == pytest.approx(-2.0)
    assert table.loc["plain momentum, not Nesterov", "compared_on"] == "same 5 epochs, no clock"
    assert table.loc["no label smoothing", "compared_on"] == "same 3-min clock"
    assert "budget 3 min / no clock" in fast_cifar.describe_rows(table)
    rows.loc[(rows["name"] == "modern") & (rows["time_budget_seconds"] == 180), "stopped_by_budget"] = True
    assert "plain momentum, not Nesterov" not in fast_cifar.shipped_ablation_table(rows).index  # base cut short


def test_ingredient_costs_rank_costliest_first_without_the_full_or_course_rows():
    costs = fast_cifar.ingredient_costs(fast_cifar.shipped_ablation_table(shipped_rows()), validation_images=5000)
    assert list(costs.index) == ["Keras batch-norm defaults (not ported)", "constant learning rate, no warm-up",
                                 fast_cifar.NO_TTA, "no label smoothing"]
    assert "course (experiment VI)" not in costs.index and fast_cifar.FULL_RECIPE not in costs.index
    # two standard errors of a difference of two accuracies on 5,000 images, in points
    assert costs.loc["no label smoothing", "noise_points"] == pytest.approx(
        200 * np.sqrt((0.6 * 0.4 + 0.61 * 0.39) / 5000), abs=0.01)
    assert costs["beyond_noise"].tolist() == [True, True, False, False]
    assert "noise_points" not in fast_cifar.ingredient_costs(fast_cifar.shipped_ablation_table(shipped_rows())).columns


def test_same_clock_race_pairs_the_recipes_at_each_budget_and_seed():
    race = fast_cifar.same_clock_race(shipped_rows())
    assert race[["budget_minutes", "recipe", "val_accuracy"]].values.tolist() == [
        [3.0, "modern", 0.60], [3.0, "course (experiment VI)", 0.50],
        [10.0, "modern", 0.80], [10.0, "course (experiment VI)", 0.70]]  # seed 43 had no course run: not a race
    summary = fast_cifar.race_summary(race)
    assert summary["modern lead (points)"].tolist() == pytest.approx([10.0, 10.0])
    assert fast_cifar.describe_rows(race).startswith("4 shipped rows") and "budget 3 min / 10 min" in fast_cifar.describe_rows(race)
    axes = notebook_08_time_plots()["plot_same_clock_race"](race, 0.84)
    assert axes.get_lines()[0].get_xdata().tolist() == pytest.approx([170 / 60, 530 / 60])  # whole runs' final points


def test_reference_headline_key_numbers_and_verdicts_come_from_the_rows():
    rows = shipped_rows()
    headline = fast_cifar.reference_headline(rows)
    assert list(headline.index) == [10.0] and headline.loc[10.0, "runs"] == 2
    assert headline.loc[10.0, "mean"] == pytest.approx(0.82)
    label = fast_cifar.reference_label(rows)
    assert label == "shipped reference run (lesson profile, AMD EPYC (2 cores), mixed_bfloat16)"
    costs = fast_cifar.ingredient_costs(fast_cifar.shipped_ablation_table(rows))
    race = fast_cifar.same_clock_race(rows)
    numbers = fast_cifar.key_numbers(0.84, race, headline, costs, label)
    assert numbers["ingredient whose removal cost most (validation)"] == "Keras batch-norm defaults (not ported) (-50.00 points)"
    assert numbers["course's recipe, validation within 10 min (seed 42)"] == "70.00% (5.00 epochs)"
    assert numbers["modern recipe, test within 10 min (2 seed(s))"].startswith("82.00% ± 1.41%")
    assert numbers["measured by"] == label
    smoke = fast_cifar.key_numbers(0.84, race, headline, costs, "this run", verdicts=False)
    assert smoke["ingredient whose removal cost most (validation)"] == "no verdict: smoke test"
    assert fast_cifar.headline_verdicts(headline, 0.84, label) == [
        f"{label}: within 10 min the modern recipe did not reach the course's 84% on the test set: "
        "82.00% mean over 2 seed(s) in 372 s."]


def test_costs_beside_keeps_the_shipped_ranking_and_marks_rows_not_run():
    shipped = fast_cifar.ingredient_costs(fast_cifar.shipped_ablation_table(shipped_rows()))
    own = pd.DataFrame({"val_accuracy": [0.2, 0.3], "change_points": [-5.0, 3.0]},
                       index=["no label smoothing", "ReLU instead of GELU"])
    beside = fast_cifar.costs_beside(shipped, own, "this run")
    assert list(beside.index) == [*shipped.index, "ReLU instead of GELU"]
    assert beside.loc["no label smoothing", "this run: change (points)"] == -5.0
    assert np.isnan(beside.loc[fast_cifar.NO_TTA, "this run: validation"])


def test_shipped_reference_file_gives_the_ablation_and_race_it_is_documented_for():
    rows = fast_cifar.read_reference("lesson")
    if rows.empty:
        pytest.skip("no lesson reference rows shipped")
    table = fast_cifar.shipped_ablation_table(rows)
    assert len(table) == 13 and table["source_row"].nunique() == 12  # "no TTA" reads the full run again
    assert (table["compared_on"] == "same 5 epochs, no clock").sum() == 2  # two rows from a slower machine
    assert fast_cifar.ingredient_costs(table).index[0] == "Keras batch-norm defaults (not ported)"
    assert len(fast_cifar.race_summary(fast_cifar.same_clock_race(rows))) >= 1


def test_empty_reference_gives_empty_tables_not_errors():
    empty = pd.DataFrame()
    assert fast_cifar.shipped_ablation_table(empty).empty and fast_cifar.same_clock_race(empty).empty
    assert fast_cifar.reference_headline(empty).empty and fast_cifar.race_summary(fast_cifar.same_clock_race(empty)).empty
    assert fast_cifar.describe_rows(empty) == fast_cifar.NOT_MEASURED
    numbers = fast_cifar.key_numbers(0.84, fast_cifar.same_clock_race(empty), fast_cifar.reference_headline(empty),
                                     fast_cifar.ingredient_costs(fast_cifar.shipped_ablation_table(empty)), "x")
    assert numbers["ingredient whose removal cost most (validation)"] == fast_cifar.NOT_MEASURED


def test_the_course_target_line_says_it_is_a_test_figure_from_50_epochs_on_50000_images():
    import matplotlib.pyplot as plt

    race = fast_cifar.same_clock_race(shipped_rows())
    curves = pd.DataFrame({"recipe": ["modern"] * 2, "epoch": [1, 2], "training_minutes": [0.5, 1.0],
                           "val_accuracy": [0.4, 0.5]})
    page = notebook_08_time_plots()
    for ax in (page["plot_same_clock_race"](race, 0.84), page["plot_accuracy_against_time"](curves, 0.84)):
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "course's best: 84% test accuracy (test set used as validation), 50 epochs on 50,000 images" in labels
        plt.close(ax.figure)


# --- notebook 08 trains the modern recipe's race run with its own Keras compile and fit -----------


def race_cell() -> str:
    """The source of notebook 08's code cell that writes out the modern recipe's compile and fit."""
    import nbformat

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "08_cifar10_in_minutes.ipynb"
    cells = [cell.source for cell in nbformat.read(notebook, as_version=4).cells
             if cell.cell_type == "code" and "fast_cifar.recipe_spec(" in cell.source]
    assert len(cells) == 1, f"{len(cells)} cells of notebook 08 call fast_cifar.recipe_spec"
    return cells[0]


def run_race_cell(source: str, splits: data.Splits) -> recording.Record:
    """Run the cell on ``splits`` with TINY as the recipe, retraining although run_recipe's row is recorded."""
    context = type("Context", (), {"strategy": runtime.distribution_strategy()})()
    namespace = {"keras": keras, "fast_cifar": fast_cifar, "recording": recording, "dataclasses": dataclasses,
                 "Path": Path, "recipe": TINY, "splits": splits, "seeds": [3], "budgets": [10.0],
                 "profile": type("Profile", (), {"name": "quick"})(), "FORCE": True, "context": context}
    exec(source, namespace)
    return namespace["modern_run"]


def saved_weights(record: recording.Record) -> list[np.ndarray]:
    return [np.asarray(weight) for weight in keras.saving.load_model(record.model_path).weights]


def test_notebook_08s_race_run_is_run_recipes_run_bit_for_bit(own_outputs):
    """The on-page compile and fit give run_recipe's run key, weights and accuracies bit for bit."""
    splits = tiny_splits()
    helper = fast_cifar.run_recipe(TINY, splits, seed=3, profile="quick", time_budget_seconds=600.0,
                                   evaluate_test=True, save_model=True)
    helper_weights = saved_weights(helper)
    source = race_cell()
    on_page = run_race_cell(source, splits)
    key = recording.run_key(**fast_cifar.run_settings(TINY, splits, seed=3, profile="quick", precision="float32",
                                                      time_budget_seconds=600.0, evaluate_test=True))
    assert recording.key_digest({name: on_page.row[name] for name in key}) == recording.key_digest(key)
    assert {name: on_page.row[name] for name in key} == {name: helper.row[name] for name in key}
    assert on_page.folder == helper.folder and not on_page.reused and on_page.model_path == helper.model_path
    for column in ("val_accuracy", "val_accuracy_no_tta", "test_accuracy", "train_accuracy", "train_loss",
                   "epochs_done", "stopped_by_budget", "params"):
        assert on_page.row[column] == helper.row[column], column
    assert on_page.epoch_log.keys() == helper.epoch_log.keys()
    assert all(on_page.epoch_log[epoch][name] == helper.epoch_log[epoch][name]
               for epoch in helper.epoch_log for name in ("loss", "accuracy", "val_loss", "val_accuracy"))
    on_page_weights = saved_weights(on_page)
    assert len(on_page_weights) == len(helper_weights)
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(on_page_weights, helper_weights))
    assert len(results.read_results(fast_cifar.RESULTS_TABLE)) == 2  # the forced retrain's row, and no third run

    # The comparison notices a page whose optimizer drifts from the recipe its run key records.
    assert source.count("momentum=recipe.momentum,") == 1
    drifted = run_race_cell(source.replace("momentum=recipe.momentum,", "momentum=0.9,"), splits)
    assert not all(np.array_equal(ours, theirs) for ours, theirs in zip(saved_weights(drifted), helper_weights))
    keras.backend.clear_session()


# --- the audit against airbench94 ---------------------------------------------------------------------


def audit_rows(entries: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """Audit rows from (name, seed, test accuracy, test accuracy with airbench's TTA), 10,000 test images."""
    return pd.DataFrame([{"name": name, "seed": seed, "test_accuracy": test, "test_accuracy_airbench_tta": airbench,
                          "test_images": 10_000} for name, seed, test, airbench in entries])


def test_audit_pairs_each_variant_with_the_port_of_the_same_seed_and_says_what_is_not_measured():
    port, head, data_pass = fast_cifar.PORT_AS_SHIPPED, "PyTorch's initialisation of the head", \
        "CIFAR-10 JPEG-compressed once more"
    rows = audit_rows([(port, 42, 0.860, 0.861), (port, 43, 0.850, 0.850), (head, 43, 0.852, 0.853),
                       (head, 42, 0.861, 0.861), (data_pass, 42, 0.830, 0.831), (data_pass, 43, 0.826, 0.826)])
    table = fast_cifar.audit_table(rows)
    assert list(table.loc["linear head's start", ["runs", "change per run (points)", "mean change (points)"]]) == \
        [2, "+0.10 / +0.20", 0.15]  # seed 42 with seed 42, 43 with 43, whatever the row order
    assert table.loc["linear head's start", "verdict"] == "within noise"
    noise = 200 * np.sqrt(2 * 0.855 * 0.145 / 10_000)
    assert table.loc["data", "noise (points)"] == pytest.approx(noise, abs=0.01)
    assert table.loc["data", "verdict"] == "lower by 2.70 points (beyond noise)"
    assert table.loc["whitening layer", "verdict"] == fast_cifar.NOT_MEASURED
    assert table.loc[fast_cifar.AIRBENCH_TTA, "runs"] == 6  # every network, read both ways
    assert table.loc[fast_cifar.AIRBENCH_TTA, "change per run (points)"] == "from +0.00 to +0.10"  # 6: the range
    assert table.loc[fast_cifar.AIRBENCH_TTA, "mean change (points)"] == pytest.approx(0.05)
    expected = fast_cifar.expected_on_this_copy(table)
    assert expected["airbench94 on this copy, expected"] == "91.31% (published 94.01%)"
    assert "assumes" in expected["how"]
    nothing = fast_cifar.expected_on_this_copy(fast_cifar.audit_table(rows[rows["name"] != data_pass]))
    assert list(nothing) == [fast_cifar.NOT_MEASURED]
    shipped = pd.DataFrame({"name": ["modern"] * 2, "evaluate_test": [True, True], "time_budget_seconds": [600.0] * 2,
                            "test_accuracy": [0.890, 0.894], "seconds": [500.0, 510.0]})
    frontier = fast_cifar.frontier_table(shipped, table)
    assert frontier.loc[10.0, "target reached"] == "no"
    assert frontier.loc[20.0, "target reached"] == fast_cifar.NOT_MEASURED
    assert frontier.loc[10.0, "airbench93 on this copy, expected"] == "90.30%"  # 93.00% less the 2.70-point data cost
    assert frontier.loc[10.0, "port minus airbench93 expected (points)"] == "-1.10"  # 89.20% against 90.30%


def test_the_combined_line_reads_its_runs_with_airbench_tta_against_the_ports_own_reading():
    together = "airbench's details together"
    variant = next(variant for variant in fast_cifar.AUDIT_VARIANTS if variant.name == together)
    assert variant.data == fast_cifar.ALL_TRAINING_IMAGES and variant.changes == fast_cifar.AIRBENCH_DETAILS
    switched = {variant.difference: variant.changes for variant in fast_cifar.AUDIT_VARIANTS[1:]}
    every_single_switch = {field: value for changes in [switched["whitening layer"], switched["linear head's start"],
                           switched["precision"], switched["Nesterov momentum under a changing rate"]]
                           for field, value in changes.items()}
    assert fast_cifar.AIRBENCH_DETAILS == every_single_switch  # every detail the single lines switch, no more
    rows = audit_rows([(fast_cifar.PORT_AS_SHIPPED, 42, 0.860, 0.870), (together, 42, 0.865, 0.868)])
    line = fast_cifar.audit_table(rows).loc["all the details together"]
    assert line["change per run (points)"] == "+0.80"  # 86.8% with airbench's TTA against the port's 86.0%


def test_longer_audit_runs_are_kept_out_of_the_audit_and_set_beside_the_shipped_run_of_their_length():
    together, port = "airbench's details together", fast_cifar.PORT_AS_SHIPPED
    rows = audit_rows([(port, 42, 0.860, 0.860), (together, 42, 0.865, 0.866), (together, 42, 0.905, 0.910),
                       (together, 43, 0.900, 0.901)])
    rows = rows.assign(epochs=[5, 5, 16, 16], train_images=50_000)
    assert fast_cifar.audit_table(rows).loc["all the details together", "change per run (points)"] == "+0.60"
    shipped = pd.DataFrame({"name": ["modern"] * 3, "seed": [42, 42, 43], "epochs": [16, 33, 16],
                            "epochs_done": [16.0, 33.0, 14.5], "test_accuracy": [0.895, 0.903, 0.897],
                            "train_images": [45_000] * 3})
    table = fast_cifar.length_matched_table(rows, shipped)
    assert list(table["seed"]) == [42, 43] and list(table["epochs"]) == [16, 16]
    first, second = table.iloc[0], table.iloc[1]
    assert first["variant's test"] == "91.00%"  # read with airbench's TTA, as the combined audit line reads it
    assert first["port's shipped test"] == "89.50% (45,000 training images)"  # the 16-epoch row, not the 33
    assert first["change (points)"] == pytest.approx(1.5) and first["verdict"] == "higher by 1.50 points (beyond noise)"
    assert second["port's shipped test"] == fast_cifar.NOT_MEASURED  # seed 43's shipped run was cut by its clock
    assert fast_cifar.length_matched_table(rows[rows["epochs"] == 5], shipped).empty
    replica = audit_rows([("airbench93's own settings", 42, 0.90, 0.90)]).assign(epochs=11, train_images=50_000)
    assert len(fast_cifar.length_matched_table(pd.concat([rows, replica]), shipped)) == 2  # replicas: their own table


def replica(name: str) -> fast_cifar.AuditVariant:
    return next(variant for variant in fast_cifar.AIRBENCH_REPLICAS if variant.name == name)


def test_each_replica_is_one_airbench_file_every_setting_its_own():
    narrow, wide = replica("airbench93's own settings"), replica("airbench94's own settings")
    for variant, widths, epochs in ((narrow, (64, 128, 128), 11), (wide, (64, 256, 256), 10)):
        recipe = fast_cifar.modern_recipe(**variant.changes)
        assert {field: getattr(recipe, field) for field in fast_cifar.AIRBENCH_DETAILS} == fast_cifar.AIRBENCH_DETAILS
        assert recipe.batch_size == 1024 and recipe.widths == widths and variant.epochs == epochs
        assert recipe.learning_rate == pytest.approx(11.5 / (1 + 1 / 0.15))  # per example times 1,024
        assert variant.data == fast_cifar.ALL_TRAINING_IMAGES and variant.read_as == "test_accuracy_airbench_tta"
    assert (narrow.published, wide.published) == (fast_cifar.AIRBENCH93_ACCURACY, fast_cifar.AIRBENCH94_ACCURACY)


def test_the_replica_table_reads_each_replicas_own_length_beside_the_published_figure_and_the_estimate():
    narrow, wide = "airbench93's own settings", "airbench94's own settings"
    rows = audit_rows([(fast_cifar.PORT_AS_SHIPPED, 42, 0.860, 0.861), ("CIFAR-10 JPEG-compressed once more", 42,
                       0.840, 0.841), (narrow, 43, 0.899, 0.902), (narrow, 42, 0.900, 0.906),
                       (narrow, 42, 0.950, 0.950)]).assign(epochs=[5, 5, 11, 11, 16])
    audit = fast_cifar.audit_table(rows)  # the data line: one more pass costs 2.00 points
    table = fast_cifar.replica_table(rows, audit)
    assert table.loc[narrow, "runs"] == 2  # the 16-epoch row is not airbench93's length
    assert table.loc[narrow, "test per seed (airbench's TTA)"] == "90.60% (42) / 90.20% (43)"
    assert table.loc[narrow, "mean test"] == "90.40%"
    assert table.loc[narrow, "published minus measured (points)"] == pytest.approx(2.60)
    assert table.loc[narrow, "expected on this copy (second-pass estimate)"] == "91.00%"
    assert table.loc[narrow, "measured minus expected (points)"] == pytest.approx(-0.60)
    assert table.loc[wide, "mean test"] == fast_cifar.NOT_MEASURED and table.loc[wide, "runs"] == 0
    frontier = fast_cifar.frontier_table(pd.DataFrame(), audit, table)
    assert frontier.loc[10.0, f"{narrow}, on this copy (measured)"] == "90.40%"
    assert frontier.loc[20.0, f"{wide}, on this copy (measured)"] == fast_cifar.NOT_MEASURED
    nothing = fast_cifar.replica_table(pd.DataFrame(), fast_cifar.audit_table(pd.DataFrame()))
    assert (nothing["mean test"] == fast_cifar.NOT_MEASURED).all()
    verdicts = fast_cifar.replica_verdicts(rows)
    assert verdicts[0].endswith(f"{narrow}, stays under it at its own length (90.40%)") and "91%" in verdicts[0]
    wider = pd.concat([rows, audit_rows([(wide, 42, 0.91, 0.915)]).assign(epochs=10)])
    assert fast_cifar.replica_verdicts(wider)[0].endswith(f"{wide}, reaches it at its own length (91.50%)")
    assert "stays under" in fast_cifar.replica_verdicts(wider)[1]  # 92% for the 20-minute target
    assert fast_cifar.replica_verdicts(pd.DataFrame()) == [
        f"airbench's files replicated on this copy: {fast_cifar.NOT_MEASURED}"]


def target_rows(images_per_second: tuple[float, float] = (1_000.0, 800.0),
                tests: tuple[float, float] = (0.89, 0.90)) -> pd.DataFrame:
    """Shipped ``modern`` test rows at 10 and 20 minutes, with their speeds, plus a 3-minute row that is ignored."""
    return pd.DataFrame([{"name": "modern", "seed": 42, "time_budget_seconds": seconds, "evaluate_test": True,
                          "test_accuracy": test, "seconds": seconds, "images_per_second": speed}
                         for seconds, test, speed in ((600, tests[0], images_per_second[0]),
                                                      (1200, tests[1], images_per_second[1]),
                                                      (180, 0.85, 5_000.0))])


def test_the_wide_networks_length_per_budget_scales_the_shipped_speed_by_the_largest_measured_ratio():
    rows, widths = target_rows(), pd.DataFrame({"ratio": [0.40, 0.50]})
    assert fast_cifar.shipped_images_per_second(10, rows) == pytest.approx(1_000.0)
    assert fast_cifar.wide_epochs_within(10, rows, widths) == pytest.approx(600 * 1_000 * 0.5 / 50_000)  # 6.0
    assert fast_cifar.wide_epochs_within(20, rows, widths) == pytest.approx(1_200 * 800 * 0.5 / 50_000)  # 9.6
    assert fast_cifar.wide_epochs_within(10, rows, pd.DataFrame()) is None  # no ratio shipped: nothing guessed
    assert fast_cifar.wide_epochs_within(30, rows, widths) is None  # no narrow row at that budget
    assert fast_cifar.shipped_images_per_second(10, pd.DataFrame()) is None


def test_the_ceiling_table_bounds_each_target_with_a_wide_run_at_least_as_long_as_the_budget_allows():
    wide, longer = fast_cifar.AIRBENCH_REPLICAS[1], fast_cifar.WIDE_AT_20_MINUTES
    assert longer.changes == wide.changes and longer.epochs > wide.epochs and longer.read_as == wide.read_as
    audit = audit_rows([(wide.name, 42, 0.905, 0.906), (wide.name, 43, 0.900, 0.902),
                        (longer.name, 42, 0.910, 0.912)]).assign(epochs=[10, 10, longer.epochs])
    widths = pd.DataFrame({"ratio": [0.5]})  # 6.0 epochs in 10 minutes, 9.6 in 20: both within the 10-epoch runs
    table = fast_cifar.ceiling_table(target_rows(), audit, widths)
    assert list(table["wide 64/256/256: epochs this budget allows"]) == ["6.0", "9.6"]
    assert table.loc[10.0, "wide, trained at least that long (no clock)"] == "90.40% (10 epochs, 2 seed(s))"
    assert table.loc[10.0, "narrow 64/128/128, shipped at this budget"] == "89.00% (1 seed(s))"
    assert list(table["verdict"]) == ["out of reach: both networks stay under (best 90.40%)"] * 2
    faster = fast_cifar.ceiling_table(target_rows(), audit, pd.DataFrame({"ratio": [0.9]}))  # 19.4 epochs in 20
    assert faster.loc[10.0, "wide, trained at least that long (no clock)"].startswith(f"91.20% ({longer.epochs} ")
    assert faster.loc[20.0, "verdict"] == f"not established ({fast_cifar.NOT_MEASURED})"  # no run that long
    reaching = fast_cifar.ceiling_table(target_rows(), audit.assign(test_accuracy_airbench_tta=0.915), widths)
    assert reaching.loc[10.0, "verdict"] == "not established: the wide run longer than the budget reaches it"
    assert reaching.loc[20.0, "verdict"].startswith("out of reach")  # 91.50% is under 92%
    shipped_reach = fast_cifar.ceiling_table(target_rows(tests=(0.912, 0.93)), audit, widths)
    assert list(shipped_reach["verdict"]) == ["reached by the shipped rows"] * 2
    nothing = fast_cifar.ceiling_table(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert (nothing["verdict"] == f"not established ({fast_cifar.NOT_MEASURED})").all()
    assert (nothing["wide 64/256/256: epochs this budget allows"] == fast_cifar.NOT_MEASURED).all()


def test_the_shipped_speed_ratio_has_its_measurement_beside_it():
    widths = fast_cifar.read_widths_benchmark()
    assert not widths.empty, "results/reference/fast_cifar_widths.csv is shipped (python -m tools.bench ...)"
    for column in ("hardware", "precision", "tensorflow", "keras", "timestamp", "rounds", "data_source"):
        assert widths[column].notna().all(), column
    assert ((widths["ratio"] > 0) & (widths["ratio"] < 1)).all()  # the wide network is the slower one
    recomputed = (widths["wide_images_per_second"] / widths["narrow_images_per_second"]).round(3)
    assert list(recomputed) == list(widths["ratio"].round(3))
    assert (widths["wide_widths"] == "64/256/256").all() and (widths["narrow_widths"] == "64/128/128").all()


def test_an_audit_with_no_rows_shipped_says_not_measured_yet_everywhere():
    table = fast_cifar.audit_table(pd.DataFrame())  # what a clone without the audit file reads
    assert (table["verdict"] == fast_cifar.NOT_MEASURED).all() and (table["runs"] == 0).all()
    assert list(fast_cifar.expected_on_this_copy(table)) == [fast_cifar.NOT_MEASURED]
    frontier = fast_cifar.frontier_table(pd.DataFrame(), table)
    assert (frontier["shipped reference (test)"] == fast_cifar.NOT_MEASURED).all()


def test_shipped_audit_rows_are_the_audit_variants_at_their_settings():
    rows = fast_cifar.read_audit_reference()
    assert not rows.empty, "results/reference/fast_cifar_audit_lesson.csv is shipped"
    variants = (*fast_cifar.AUDIT_VARIANTS, *fast_cifar.AIRBENCH_REPLICAS, fast_cifar.WIDE_AT_20_MINUTES)
    assert set(rows["name"]) <= {variant.name for variant in variants}
    assert fast_cifar.PORT_AS_SHIPPED in set(rows["name"])
    assert (rows["epochs_done"] == rows["epochs"]).all()  # no clock: every run finished its schedule
    assert fast_cifar.AUDIT_EPOCHS in set(rows["epochs"])  # longer runs are length-matched extras
    assert (rows["time_budget_seconds"].astype(str) == "none").all() and rows["test_accuracy"].notna().all()
    assert rows["test_accuracy_airbench_tta"].notna().all() and "model_path" not in rows.columns
    for variant in variants:
        if variant.epochs:
            assert (_named_rows(rows, variant.name)["epochs"] == variant.epochs).all(), variant.name
        for field, value in variant.changes.items():
            expected = fast_cifar.key_value(value)
            for recorded in _named_rows(rows, variant.name)[field]:
                assert (recorded == expected if isinstance(expected, str) else
                        float(recorded) == pytest.approx(float(expected))), (variant.name, field, recorded)
        if variant.precision:
            assert (_named_rows(rows, variant.name)["precision"] == variant.precision).all()
    whole = _named_rows(rows, "trained on all 50,000 images")
    assert (whole["train_images"] == 50_000).all() and (whole["validation_protocol"] == "course").all()
    again = _named_rows(rows, "CIFAR-10 JPEG-compressed once more")
    assert again["data_source"].str.contains("JPEG-compressed once more").all()


def _named_rows(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    return rows[rows["name"] == name]
