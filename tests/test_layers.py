"""utils.layers.FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils import layers, runtime


def paired_layers(momentum: float = 0.9, **options) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """A Keras batch-norm layer and a fused one, built alike with the same non-trivial scale and offset."""
    reference = keras.layers.BatchNormalization(momentum=momentum, **options)
    fused = layers.FusedBatchNormalization(momentum=momentum, **options)
    for layer in (reference, fused):
        layer.build((None, 6, 6, 5))
        if layer.scale:
            layer.gamma.assign(np.linspace(0.5, 1.5, 5))
        if layer.center:
            layer.beta.assign(np.linspace(-1.0, 1.0, 5))
    return reference, fused


def feature_maps(seed: int = 0) -> np.ndarray:
    """Eight 6x6 maps of five channels, far from zero mean and unit variance so normalising matters."""
    return np.random.default_rng(seed).normal(2.0, 3.0, size=(8, 6, 6, 5)).astype("float32")


@pytest.fixture(params=["float32", "mixed_bfloat16"])
def policy(request):
    runtime.apply_precision(request.param)
    yield request.param
    runtime.apply_precision("float32")


def as_float(value) -> np.ndarray:
    return np.asarray(tf.cast(value, "float32"))


def test_training_step_matches_keras_outputs_statistics_and_gradients(policy):
    reference, fused = paired_layers()
    inputs = tf.constant(feature_maps())
    weights = tf.constant(np.random.default_rng(1).normal(size=inputs.shape).astype("float32"))
    gradients = []
    outputs = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.cast(output, "float32") * weights)
        outputs.append(as_float(output))
        gradients.append([as_float(g) for g in tape.gradient(loss, [inputs, layer.gamma, layer.beta])])
    tolerance = 1e-5 if policy == "float32" else 2e-2
    np.testing.assert_allclose(outputs[1], outputs[0], atol=tolerance * 10)
    for ours, theirs in zip(gradients[1], gradients[0]):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * np.abs(theirs).max())
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(), rtol=1e-5)
    # Keras keeps the population variance (divided by n), not the n - 1 the fused kernel returns.
    np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(), rtol=1e-5)
    assert not np.allclose(fused.moving_variance.numpy(), 1.0)  # the statistics really moved


def test_inference_uses_the_moving_statistics(policy):
    reference, fused = paired_layers()
    for layer in (reference, fused):
        layer.moving_mean.assign(np.arange(5, dtype="float32"))
        layer.moving_variance.assign(np.arange(1, 6, dtype="float32"))
    inputs = feature_maps(2)
    np.testing.assert_allclose(as_float(fused(inputs, training=False)), as_float(reference(inputs, training=False)),
                               atol=1e-5 if policy == "float32" else 5e-2)


def test_a_frozen_layer_stays_in_inference_mode_during_training():
    _, fused = paired_layers()
    fused.trainable = False
    before = fused.moving_mean.numpy().copy()
    fused(feature_maps(), training=True)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_without_scale_or_centre_it_still_matches():
    reference, fused = paired_layers(scale=False, center=False, epsilon=1e-5)
    inputs = feature_maps(3)
    np.testing.assert_allclose(as_float(fused(inputs, training=True)), as_float(reference(inputs, training=True)),
                               atol=1e-5)


def test_other_shapes_fall_back_to_the_keras_computation():
    reference = keras.layers.BatchNormalization()
    fused = layers.FusedBatchNormalization()
    inputs = np.random.default_rng(4).normal(size=(16, 7)).astype("float32")
    np.testing.assert_allclose(as_float(fused(inputs, training=True)), as_float(reference(inputs, training=True)),
                               atol=1e-6)


def test_saves_and_loads_with_its_statistics(tmp_path: Path):
    model = keras.Sequential([keras.Input((6, 6, 5)), layers.FusedBatchNormalization(name="bn")])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(feature_maps(), feature_maps(5), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.get_layer("bn"), layers.FusedBatchNormalization)
    np.testing.assert_array_equal(reloaded.get_layer("bn").moving_mean.numpy(),
                                  model.get_layer("bn").moving_mean.numpy())
    np.testing.assert_allclose(reloaded.predict(feature_maps(6), verbose=0), model.predict(feature_maps(6), verbose=0))


def test_builders_use_the_fused_layer_only_where_it_measured_faster():
    assert layers.fused_batch_norm_is_faster(gpu_count=0)
    assert not layers.fused_batch_norm_is_faster(gpu_count=1)
