"""The adversarial training loop: options, the compiled K-step function, and `fit`.

Nothing here sees a Hydra config: `TrainOptions` is a plain dataclass and `fit` takes built
objects, so tests and notebooks call it directly.

Per call of the compiled function (`AdversarialTrainer.train_steps(n)`), n adversarial steps
run on the device with no Python in between. One adversarial step is `d_steps`
discriminator updates followed by one generator update. Real batches are drawn uniformly
with replacement from the uint8 training set held on the device; latents are N(0, 1). All
randomness comes from one `keras.random.SeedGenerator`, whose state is checkpointed with the
models, both optimizers and the step counter, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf

from ganrun.errors import ConfigError, GanrunError
from ganrun.losses import generator_reads_real

log = logging.getLogger(__name__)

METRIC_NAMES = ("loss/d", "loss/g", "logits/real", "logits/fake")


class TrainingDiverged(GanrunError):
    """A loss or weight became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How long and how to train; the `train:` node of the config.

    Attributes:
      steps: total adversarial steps (a resumed run trains up to this count).
      batch_size: real and fake examples per discriminator update.
      seed: seeds the models' initial weights, the batch sampler and the latents.
      log_every, sample_every, checkpoint_every: host-side actions, in steps.
      jit_compile: "auto" (XLA on a GPU, and on CPU for dense-only models), true or false.
      steps_per_call: adversarial steps per compiled call (K).
      d_steps: discriminator updates per generator update.
      keep_checkpoints: how many recent checkpoints to keep.
      sample_grid: number of images in the fixed-latent sample grid.
      on_nonfinite: "stop" (raise TrainingDiverged) or "rollback" (restore the last good
        checkpoint and multiply the learning rates by rollback_lr_factor, at most
        max_rollbacks times) when a loss or weight becomes NaN or infinite; see ganrun.guard.
      eval_every: image metrics of `eval_n` samples every this many steps and at the end,
        keeping the best-FID generator in checkpoints/best (0 = off); see
        ganrun.evaluate.during_training.
      eval_n: samples (and test images) per periodic evaluation; cheap, so noisier.
      eval_final_n: samples of the full evaluation after the last step (0 = none).
      pretrain_steps: text models only: the first this many of `steps` are maximum-likelihood
        (teacher-forcing) steps of the generator, the rest adversarial; see ganrun.text_train.
    """

    steps: int
    batch_size: int
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    jit_compile: bool | str = "auto"
    steps_per_call: int = 50
    d_steps: int = 1
    keep_checkpoints: int = 3
    sample_grid: int = 64
    on_nonfinite: str = "stop"
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    eval_every: int = 0
    eval_n: int = 2000
    eval_final_n: int = 0
    pretrain_steps: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("seed", "jit_compile", "on_nonfinite", "rollback_lr_factor"):
                continue
            if field.name in ("eval_every", "eval_final_n", "pretrain_steps") and value == 0:
                continue  # 0 turns that evaluation (or MLE pre-training) off
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"train.{field.name}={value!r} must be a positive integer.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"train.seed={self.seed!r} must be a non-negative integer.")
        if self.jit_compile not in ("auto", True, False):
            raise ConfigError(f"train.jit_compile={self.jit_compile!r} must be auto, true or "
                              "false.")
        if self.on_nonfinite not in ("stop", "rollback"):
            raise ConfigError(f"train.on_nonfinite={self.on_nonfinite!r} must be stop or "
                              "rollback.")
        factor = self.rollback_lr_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ConfigError(f"train.rollback_lr_factor={factor!r} must be a number between 0 "
                              "and 1 (exclusive).")


# Layers whose XLA CPU code is at least as fast as TF's oneDNN kernels (scripts/bench.py:
# the dense-only MLP GAN gains at small batches and ties at large ones); convolutions do
# not (transposed ones are ~30x slower), so `auto` keeps XLA off on CPU for anything else.
_XLA_FRIENDLY_ON_CPU = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.Flatten,
                        keras.layers.Reshape, keras.layers.Activation, keras.layers.ReLU,
                        keras.layers.LeakyReLU, keras.layers.Dropout)


def resolve_jit_compile(setting: bool | str, models=()) -> bool:
    """XLA on or off. "auto": on where a GPU is visible; on a CPU only when `models` are
    given and made of dense layers alone (`_XLA_FRIENDLY_ON_CPU`)."""
    if setting == "auto":
        if tf.config.list_physical_devices("GPU"):
            return True
        return bool(models) and all(isinstance(layer, _XLA_FRIENDLY_ON_CPU)
                                    for model in models for layer in model.layers)
    return bool(setting)


class AdversarialTrainer:
    """The training state (models, optimizers, RNG, step) and the compiled K-step function.

    Args:
      generator: z (B, latent_dim) -> images (B, H, W, C) in `pixel_range`.
      discriminator: images -> logits (B, 1).
      generator_optimizer, discriminator_optimizer: Keras optimizers (built here, before the
        first call, so the function traces once).
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)`, see `ganrun.losses`.
      images: uint8 (N, H, W, C) training set; copied to the device once.
      pixel_range: (low, high) the generator produces; real images are mapped there.
      options: TrainOptions.
    """

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, images: np.ndarray, pixel_range: tuple[float, float],
                 options: TrainOptions):
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = generator_optimizer, discriminator_optimizer
        self.loss_fn, self.options, self.pixel_range = loss_fn, options, pixel_range
        self.latent_dim = int(generator.input_shape[-1])
        self.reads_real = generator_reads_real(loss_fn)
        self.images = tf.convert_to_tensor(images, dtype=tf.uint8)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = keras.random.SeedGenerator(options.seed)
        self.g_optimizer.build(generator.trainable_variables)
        self.d_optimizer.build(discriminator.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(
            generator=generator, discriminator=discriminator,
            generator_optimizer=generator_optimizer,
            discriminator_optimizer=discriminator_optimizer,
            step=self.step, rng=self.rng.state)
        self.jit_compile = resolve_jit_compile(options.jit_compile, (generator, discriminator))
        self.train_steps = tf.function(
            self._train_steps, jit_compile=self.jit_compile,
            input_signature=[tf.TensorSpec([], tf.int32)])

    def _train_steps(self, num_steps):
        """Run `num_steps` adversarial steps; return the metrics averaged over them."""
        def body(index, totals):
            return index + 1, totals + self._adversarial_step()

        # A plain while_loop, not `for _ in tf.range(num_steps)`: autograph gives that loop
        # maximum_iterations=num_steps, which XLA treats as a compile-time constant, so every
        # distinct call length was compiled anew (and rounded differently; scripts/bench.py).
        _, totals = tf.while_loop(lambda index, _: index < num_steps, body,
                                  (tf.constant(0), tf.zeros([len(METRIC_NAMES)])))
        self.step.assign_add(tf.cast(num_steps, tf.int64))
        means = totals / tf.cast(num_steps, tf.float32)
        return {name: means[index] for index, name in enumerate(METRIC_NAMES)}

    def _adversarial_step(self):
        """d_steps discriminator updates, then one generator update; (4,) metrics."""
        for _ in range(self.options.d_steps):
            real = self._real_batch()
            d_loss, real_logits, fake_logits = self._discriminator_update(real)
        g_loss = self._generator_update(real)
        return tf.stack([d_loss, g_loss, tf.reduce_mean(real_logits),
                         tf.reduce_mean(fake_logits)])

    def _real_batch(self):
        """float32 (B, H, W, C) real images in the generator's pixel range."""
        count = tf.shape(self.images)[0]
        indices = keras.random.randint((self.options.batch_size,), 0, count, seed=self.rng)
        low, high = self.pixel_range
        pixels = tf.cast(tf.gather(self.images, indices), tf.float32)
        return pixels * ((high - low) / 255.0) + low

    def _latents(self, batch_size=None):
        return keras.random.normal((batch_size or self.options.batch_size, self.latent_dim),
                                   seed=self.rng)

    def _discriminator_update(self, real):
        fake = self.generator(self._latents(), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss, _ = self.loss_fn(real_logits, fake_logits)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        return d_loss, real_logits, fake_logits

    def _generator_update(self, real):
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(self._latents(), training=True),
                                             training=True)
            real_logits = (self.discriminator(real, training=True) if self.reads_real
                           else tf.zeros_like(fake_logits))  # unused by the loss
            _, g_loss = self.loss_fn(real_logits, fake_logits)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return g_loss

    def generate(self, latents) -> np.ndarray:
        """Images in [0, 1], float32 (B, H, W, C), from latents (B, latent_dim)."""
        images = self.generator(latents, training=False)
        low, high = self.pixel_range
        return ((np.asarray(images) - low) / (high - low)).astype(np.float32)


def fixed_latents(count: int, latent_dim: int, seed: int) -> tf.Tensor:
    """The same (count, latent_dim) N(0, 1) latents for a given seed, on any machine."""
    return tf.random.stateless_normal((count, latent_dim), seed=[seed, 0x5EED])
