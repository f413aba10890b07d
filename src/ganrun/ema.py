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
"""

from __future__ import annotations

import keras


class GeneratorEMA:
    """`model` tracks decay·model + (1 - decay)·generator after every `update()`."""

    def __init__(self, generator: keras.Model, decay: float):
        self.generator, self.decay = generator, decay
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())  # the average starts at the init
        self.has_batch_norm = any(isinstance(layer, keras.layers.BatchNormalization)
                                  for layer in self.model.layers)

    def update(self, inputs=None) -> None:
        """One averaging step (call after each generator update, inside tf.function).

        inputs: the generator's inputs for the standing statistics, z float32
        (B, latent_dim) or [z, labels int32 (B,)]; needed when the generator has batch norm.
        """
        for average, current in zip(self.model.trainable_weights,
                                    self.generator.trainable_weights, strict=True):
            average.assign(self.decay * average + (1.0 - self.decay) * current)
        if self.has_batch_norm:
            self.model(inputs, training=True)  # updates the average's own moving statistics
