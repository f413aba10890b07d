"""`TextGAN` (model=relgan): MLE pre-training, then the Gumbel-softmax adversarial phase.

Steps 0..pretrain_steps-1 are maximum-likelihood steps (teacher forcing, metric `mle/nll`);
the remaining ones adversarial (metrics `loss/d`, `loss/g`, `logits/*`, `gumbel/beta`).
`ganrun.fit` never lets a compiled call cross the phase boundary, so each phase is one
compiled function, traced once.

An adversarial step: the generator samples sequences with the Gumbel-max trick and emits
relaxed one-hot tokens softmax(beta * (logits + g)); the discriminator scores them against
real id sequences. beta (the inverse temperature) rises from 1 to `beta_max` over the
adversarial steps (RelGAN: exponential beta_max ** (n / N), or linear).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import tensorflow as tf

from ganrun import sampling, summaries
from ganrun.data.corpora import TextData
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.losses import generator_reads_real
from ganrun.regularization import Regularization
from ganrun.trainers.latent_text import check_text_data
from ganrun.trainers.loop import run_steps, update
from ganrun.trainers.options import TrainOptions
from ganrun.trainers.policy import text_jit_compile

SCHEDULES = ("exponential", "linear")
MLE_METRICS = ("mle/nll",)
ADVERSARIAL_METRICS = ("loss/d", "loss/g", "logits/real", "logits/fake", "gumbel/beta")


@dataclasses.dataclass(frozen=True)
class GumbelOptions:
    """The adversarial phase's Gumbel-softmax: inverse temperature schedule and grad clip."""

    beta_max: float = 100.0
    schedule: str = "exponential"
    clip_norm: float = 5.0  # RelGAN clips every gradient's global norm at 5

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"model.gumbel.schedule={self.schedule!r} must be one of "
                              f"{', '.join(SCHEDULES)}.")
        if not self.beta_max >= 1.0:
            raise ConfigError(f"model.gumbel.beta_max={self.beta_max} must be at least 1.")


def beta_at(progress, options: GumbelOptions):
    """Inverse temperature for `progress` in [0, 1] of the adversarial phase (tensor)."""
    beta_max = tf.constant(float(options.beta_max))  # YAML may give an int
    if options.schedule == "exponential":
        return tf.pow(beta_max, progress)
    return 1.0 + (beta_max - 1.0) * progress


class TextGAN:
    """Training state (models, three optimizers, RNG, step) and the two compiled phases.

    Args:
      generator: `LSTMGenerator` (ids (B, L) -> logits (B, L, V); `rollout`).
      discriminator: ids (B, L) or soft one-hot (B, L, V) -> logits (B, R).
      generator_optimizer, discriminator_optimizer: the adversarial phase's optimizers.
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)`.
      data: the TextData; its training ids are copied to the device once.
      options: TrainOptions.
      regularization, strategy: accepted for the common signature; `check` refuses any
        regularization and every strategy but the default one.
      pretrain_learning_rate: the MLE phase's own Adam rate (model.pretrain_learning_rate).
      gumbel: GumbelOptions, or their config values (model.gumbel).
    """

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, data: TextData, options: TrainOptions,
                 regularization: Regularization | None = None, strategy=None,
                 pretrain_learning_rate: float = 1e-2, gumbel: GumbelOptions | dict | None = None):
        self.generator, self.discriminator, self.data = generator, discriminator, data
        self.models = (generator, discriminator)
        self.g_optimizer, self.d_optimizer = generator_optimizer, discriminator_optimizer
        self.mle_optimizer = keras.optimizers.Adam(float(pretrain_learning_rate))
        self.optimizers = {"g_optimizer": generator_optimizer,
                           "d_optimizer": discriminator_optimizer,
                           "mle_optimizer": self.mle_optimizer}
        self.loss_fn, self.options, self.gumbel = loss_fn, options, _gumbel_options(gumbel)
        self.reads_real = generator_reads_real(loss_fn)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.metric_names = MLE_METRICS + ADVERSARIAL_METRICS
        self.ids = tf.convert_to_tensor(data.x_train, tf.int32)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = keras.random.SeedGenerator(options.seed)
        for optimizer, model in ((generator_optimizer, generator),
                                 (self.mle_optimizer, generator),
                                 (discriminator_optimizer, discriminator)):
            optimizer.build(model.trainable_variables)  # before the first call: trace once
        self.checkpoint = tf.train.Checkpoint(
            generator=generator, discriminator=discriminator,
            generator_optimizer=generator_optimizer, mle_optimizer=self.mle_optimizer,
            discriminator_optimizer=discriminator_optimizer, step=self.step, rng=self.rng.state)
        self.jit_compile_by_phase = text_jit_compile(options.jit_compile)
        self.jit_compile = any(self.jit_compile_by_phase.values())  # fit logs "XLA on"
        signature = [tf.TensorSpec([], tf.int32)]
        self.mle_steps = tf.function(
            lambda n: run_steps(self._mle_step, n, self.step, MLE_METRICS),
            input_signature=signature, jit_compile=self.jit_compile_by_phase["mle"])
        self.adversarial_steps = tf.function(
            lambda n: run_steps(self._adversarial_step, n, self.step, ADVERSARIAL_METRICS),
            input_signature=signature, jit_compile=self.jit_compile_by_phase["adversarial"])

    @staticmethod
    def check(options: TrainOptions, regularization: Regularization, spec: DataSpec,
              loss_name: str) -> None:
        """Text data, default strategy, float32, and none of the image trainer's options
        that this trainer does not implement: refused, never ignored."""
        check_text_data(spec, options)
        if options.pretrain_steps > options.steps:
            raise ConfigError(f"train.pretrain_steps={options.pretrain_steps} exceeds "
                              f"train.steps={options.steps} (the total); raise train.steps.")
        if options.ema_decay:
            raise ConfigError("the text GAN keeps no EMA generator; remove train.ema_decay (the "
                              "default experiment sets it for images: start text runs from a "
                              "text preset such as experiment=coco_relgan, or from "
                              "experiment=base).")
        if options.lr_schedule != "constant":
            raise ConfigError("the text GAN trains with constant learning rates; remove "
                              "train.lr_schedule.")
        if options.fuse_d_pass is True:  # its D reads ids and soft one-hots: two passes
            raise ConfigError("the text GAN runs D's real and fake passes separately; remove "
                              "train.fuse_d_pass.")
        if regularization != Regularization():  # they act on images and image trainers only
            raise ConfigError("the text GAN (model=relgan) takes no regularize.* options; "
                              "remove those overrides (it clips gradient norms: "
                              "model.gumbel.clip_norm).")

    def train_steps(self, num_steps) -> dict:
        """Run `num_steps` steps of the current phase (fit stops calls at the boundary)."""
        if int(self.step.numpy()) < self.options.pretrain_steps:
            return self.mle_steps(num_steps)
        return self.adversarial_steps(num_steps)

    @property
    def sampling_generator(self) -> keras.Model:
        return self.generator

    # -- the compiled bodies: one step each, for ganrun.trainers.loop.run_steps ------------

    def _real_batch(self):
        """int32 (B, L) training sequences drawn uniformly with replacement."""
        count = tf.shape(self.ids)[0]
        indices = keras.random.randint((self.options.batch_size,), 0, count, seed=self.rng)
        return tf.gather(self.ids, indices)

    def _mle_step(self, step):
        ids = self._real_batch()

        def loss():
            logits = self.generator(ids, training=True)
            # Mean over every position, padding included: the model must learn to pad.
            return (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits)),)

        return tf.stack(update(self.mle_optimizer, self.generator.trainable_variables, loss,
                               clip_norm=self.gumbel.clip_norm))

    def _beta(self, step):
        adversarial = self.options.steps - self.options.pretrain_steps
        done = tf.cast(step - self.options.pretrain_steps, tf.float32)
        return beta_at(tf.minimum(done / max(adversarial, 1), 1.0), self.gumbel)

    def _fake(self, beta):
        seed = keras.random.randint((2,), 0, 2**31 - 1, seed=self.rng)
        return self.generator.rollout(self.options.batch_size, seed, beta=beta)[1]

    def _adversarial_step(self, step):
        beta = self._beta(step)
        critic = self.discriminator
        for _ in range(self.options.d_steps):
            real, fake = self._real_batch(), self._fake(beta)
            d_loss = update(self.d_optimizer, critic.trainable_variables,
                            lambda real=real, fake=fake: self.loss_fn(
                                critic(real, training=True), critic(fake, training=True))[:1],
                            clip_norm=self.gumbel.clip_norm)[0]

        def g_loss():
            fake_logits = critic(self._fake(beta), training=True)
            real_logits = (critic(real, training=True) if self.reads_real
                           else tf.zeros_like(fake_logits))  # unused by the loss
            return self.loss_fn(real_logits, fake_logits)[1], real_logits, fake_logits

        g, real_logits, fake_logits = update(self.g_optimizer, self.generator.trainable_variables,
                                             g_loss, clip_norm=self.gumbel.clip_norm)
        return tf.stack([d_loss, g, tf.reduce_mean(real_logits), tf.reduce_mean(fake_logits),
                         beta])

    # -- host side ------------------------------------------------------------------------

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """`sample_grid` sentences (fixed seed, temperature 1) to TensorBoard text and a file."""
        ids = sampling.sample_ids(self.generator, self.options.sample_grid, self.options.seed)
        summaries.write_text_samples([self.data.text(row) for row in ids], writer, run_dir, step)

    def metric_definitions(self, averaged: str) -> dict[str, str]:
        return {
            "mle/nll": "MLE pre-training loss: mean per-token cross-entropy (nats) on training "
                       f"batches, all {self.data.spec.shape[0]} positions (padding included), "
                       f"{averaged}",
            "gumbel/beta": f"Gumbel-softmax inverse temperature ({self.gumbel.schedule} "
                           f"schedule to {self.gumbel.beta_max}), {averaged}",
        }


def _gumbel_options(values: GumbelOptions | dict | None) -> GumbelOptions:
    if isinstance(values, GumbelOptions):
        return values
    known = {field.name for field in dataclasses.fields(GumbelOptions)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ConfigError(f"model.gumbel has unknown key(s) {unknown}; known: {sorted(known)}.")
    return GumbelOptions(**(values or {}))
