"""An exponential moving average of the generator's weights (Yazıcı et al. 2019,
arXiv:1806.04498; used by ProGAN, StyleGAN, BigGAN): samples from the averaged weights are
usually smoother and better than from the last iterate.

The average is a second Keras model of the same architecture, so it is checkpointed as
`generator_ema`, saved as `generator.keras` and drawn from by `ganrun sample` when enabled.

Batch-norm moving statistics are not weights to average: the live generator's statistics
describe the live weights' activations, not the average's, and copying them (as ganrun
did first) left the averaged generator normalising with the wrong means and variances,
which cancelled EMA's gain on the DCGAN (final FID 74.1 with EMA vs 70.1 without, 10k
steps). So the average keeps "standing statistics" (Brock et al. 2019, BigGAN, sec. 3.1 and
appendix C): after each averaging step it runs once in training mode on the step's latents,
which updates its own moving statistics from its own activations (one extra forward pass of
G per step, no gradients). A generator without batch norm skips that pass.

The average starts at the initial weights, so a slow decay keeps it near them for a long
time: at decay 0.9995 the initial weights still carry 0.9995^2000 = 37 % of the average
after 2,000 steps (the default's periodic FID there was 70-85, its final 12-14). A ramp-up
(Karras et al. 2020, StyleGAN2-ADA's `ema_rampup`) caps the average's half-life at a
fraction of the steps done so far: half-life(t) = min(H, rampup * t), with H the half-life
of `decay` (ln 0.5 / ln decay steps, 1,386 at 0.9995). Early on the average follows G
closely; once rampup * t passes H, the decay is `decay` again.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class GeneratorEMA:
    """`model` tracks decay_t·model + (1 - decay_t)·generator after every `update()`, where
    decay_t = decay, or with `rampup` the decay of half-life min(H, rampup·(t + 1)) steps."""

    def __init__(self, generator: keras.Model, decay: float, rampup: float | None = None):
        self.generator, self.decay, self.rampup = generator, decay, rampup
        self.half_life = math.log(0.5) / math.log(decay)  # steps, H
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())  # the average starts at the init
        self.has_batch_norm = any(isinstance(layer, keras.layers.BatchNormalization)
                                  for layer in self.model.layers)

    def decay_at(self, step) -> tf.Tensor:
        """The float32 scalar decay of the averaging step after `step` (int, steps done)."""
        if not self.rampup:
            return tf.constant(self.decay, tf.float32)
        ramp = self.rampup * (tf.cast(step, tf.float32) + 1.0)
        half_life = tf.minimum(tf.constant(self.half_life, tf.float32), ramp)
        return tf.minimum(tf.constant(self.decay, tf.float32), tf.pow(0.5, 1.0 / half_life))

    def update(self, inputs=None, step=0) -> None:
        """One averaging step (call after each generator update, inside tf.function).

        inputs: the generator's inputs for the standing statistics, z float32
        (B, latent_dim) or [z, labels int32 (B,)]; needed when the generator has batch norm.
        step: int64 scalar, the steps done before this one (for the ramp-up).
        """
        decay = self.decay_at(step)
        for average, current in zip(self.model.trainable_weights,
                                    self.generator.trainable_weights, strict=True):
            rate = tf.cast(decay, average.dtype)
            average.assign(rate * average + (1.0 - rate) * current)
        if self.has_batch_norm:
            self.model(inputs, training=True)  # updates the average's own moving statistics
