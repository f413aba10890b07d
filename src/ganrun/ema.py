"""An exponential moving average of the generator's weights (Yazıcı et al. 2019,
arXiv:1806.04498; used by ProGAN, StyleGAN, BigGAN): samples from the averaged weights are
usually smoother and better than from the last iterate.

The average is a second Keras model of the same architecture, so it is checkpointed as
`generator_ema`, saved as `generator.keras` and drawn from by `ganrun sample` when enabled.
Non-trainable weights (batch-norm moving statistics) are copied, not averaged.
"""

from __future__ import annotations

import keras


class GeneratorEMA:
    """`model` tracks decay·model + (1 - decay)·generator after every `update()`."""

    def __init__(self, generator: keras.Model, decay: float):
        self.generator, self.decay = generator, decay
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())  # the average starts at the init

    def update(self) -> None:
        """One averaging step (call after each generator update, inside tf.function)."""
        for average, current in zip(self.model.trainable_weights,
                                    self.generator.trainable_weights, strict=True):
            average.assign(self.decay * average + (1.0 - self.decay) * current)
        for average, current in zip(self.model.non_trainable_weights,
                                    self.generator.non_trainable_weights, strict=True):
            average.assign(current)
