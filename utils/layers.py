"""Keras layers the suite adds: a batch normalisation that runs TensorFlow's fused kernel.

Keras 3 computes ``BatchNormalization`` from separate operations, each a pass over the feature map;
TensorFlow's *fused* kernel (used by Keras 2) reads it once in each direction. On a CPU batch norm is
memory-bound, so the passes decide its cost.

:class:`FusedBatchNormalization` is a drop-in replacement: same constructor, variables, momentum and epsilon
semantics and inference rules, saved and loaded like any Keras layer; it falls back to the Keras computation
where the fused kernel does not apply. ``tests/test_layers.py`` checks it against Keras's layer.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="cnn_notebooks")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by TensorFlow's fused batch-norm kernel.

    Use it exactly like the Keras layer; only 4-D channels-last maps on the TensorFlow backend are fused.
    """

    def _can_fuse(self, inputs: Any, mask: Any) -> bool:
        """True when the fused kernel computes exactly what the Keras layer would."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not getattr(self, "synchronized", False)
            and not getattr(self, "renorm", False)
        )

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Normalise with the fused kernel: batch statistics in training, moving ones otherwise."""
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones([channels], dtype=self.variable_dtype)
        offset = self.beta if self.center else tf.zeros([channels], dtype=self.variable_dtype)
        # Keras treats a frozen BN layer as being in inference mode even inside fit().
        if training and self.trainable:
            return self._normalise_with_batch_statistics(inputs, scale, offset)
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs

    def _normalise_with_batch_statistics(self, inputs: Any, scale: Any, offset: Any) -> Any:
        """Training step: normalise by this batch's mean and variance and update the moving ones.

        The fused kernel's batch variance has Bessel's correction (n - 1); (n - 1) / n gives back the population
        variance Keras keeps.
        """
        import tensorflow as tf

        outputs, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, epsilon=self.epsilon, is_training=True,
        )
        values_per_channel = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), batch_variance.dtype)
        population_variance = batch_variance * (values_per_channel - 1.0) / tf.maximum(values_per_channel, 1.0)
        momentum = tf.cast(self.momentum, batch_mean.dtype)
        self.moving_mean.assign(self.moving_mean * momentum + batch_mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + population_variance * (1.0 - momentum))
        return outputs


def fused_batch_norm_is_faster(gpu_count: int | None = None) -> bool:
    """Whether the suite's builders should use :class:`FusedBatchNormalization` on this machine.

    Faster on CPUs; not measured on a GPU yet, so GPUs keep Keras's own layer.
    """
    from utils import runtime

    if gpu_count is None:
        gpu_count = len(runtime.gpu_names())
    return keras.backend.backend() == "tensorflow" and gpu_count == 0


def batch_normalization(**options: Any) -> keras.layers.BatchNormalization:
    """A batch-norm layer for the suite's models: the fused one where it measured faster, else Keras's."""
    if fused_batch_norm_is_faster():
        return FusedBatchNormalization(**options)
    return keras.layers.BatchNormalization(**options)
