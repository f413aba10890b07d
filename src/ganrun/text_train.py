"""Text-GAN training: MLE pre-training, then the Gumbel-softmax adversarial phase (RelGAN).

`TextTrainer` has the interface `ganrun.fit.fit` drives (options, checkpoint, step,
train_steps(n) returning a metrics dict, write_samples), so the host loop, logging,
checkpoints and resume are fit's. Steps 0..pretrain_steps-1 are maximum-likelihood steps
(teacher forcing, metric `mle/nll`); the remaining ones adversarial (metrics `loss/d`,
`loss/g`, `logits/*`, `gumbel/beta`). fit never lets a compiled call cross the phase
boundary, so each phase is one compiled function, traced once.

An adversarial step: the generator samples sequences with the Gumbel-max trick and emits
relaxed one-hot tokens softmax(beta * (logits + g)); the discriminator scores them against
real id sequences. beta (the inverse temperature) rises from 1 to `beta_max` over the
adversarial steps (RelGAN: exponential beta_max ** (n / N), or linear).
"""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganrun.data.corpora import TextData
from ganrun.errors import ConfigError
from ganrun.losses import generator_reads_real
from ganrun.train import TrainOptions, resolve_jit_compile

SCHEDULES = ("exponential", "linear")
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


def text_jit_compile(setting: bool | str) -> dict[str, bool]:
    """XLA per phase. "auto" on a CPU: on for MLE (teacher forcing on COCO: 1.2x less CPU
    per step than oneDNN at load 7-10, 2.2x the steps/s on the quiet machine, measured) and
    off for the adversarial phase (there XLA's CPU kernels for the Gumbel noise and the
    convolutions made a RelGAN iteration 3-5x slower); with a GPU both on."""
    if setting == "auto":
        gpu = resolve_jit_compile("auto")
        return {"mle": True, "adversarial": gpu}
    return {"mle": bool(setting), "adversarial": bool(setting)}


def beta_at(progress, options: GumbelOptions):
    """Inverse temperature for `progress` in [0, 1] of the adversarial phase (tensor)."""
    beta_max = tf.constant(float(options.beta_max))  # YAML may give an int
    if options.schedule == "exponential":
        return tf.pow(beta_max, progress)
    return 1.0 + (beta_max - 1.0) * progress


class TextTrainer:
    """Training state (models, three optimizers, RNG, step) and the two compiled phases.

    Args:
      generator: `LSTMGenerator` (ids (B, L) -> logits (B, L, V); `rollout`).
      discriminator: ids (B, L) or soft one-hot (B, L, V) -> logits (B, R).
      generator_optimizer, discriminator_optimizer: the adversarial phase's optimizers.
      mle_optimizer: the pre-training optimizer (its own Adam state).
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)`.
      data: the TextData; its training ids are copied to the device once.
    """

    latent_dim = 1  # fit's image-grid latents are unused: samples come from write_samples
    num_classes = 0

    @property
    def sampling_generator(self):
        """The generator fit saves as generator.keras."""
        return self.generator

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 mle_optimizer, loss_fn, data: TextData, options: TrainOptions,
                 gumbel: GumbelOptions):
        self.generator, self.discriminator, self.data = generator, discriminator, data
        self.g_optimizer, self.d_optimizer = generator_optimizer, discriminator_optimizer
        self.mle_optimizer, self.loss_fn = mle_optimizer, loss_fn
        self.options, self.gumbel = options, gumbel
        self.reads_real = generator_reads_real(loss_fn)
        self.strategy = tf.distribute.get_strategy()  # text runs: the default strategy only
        self.ids = tf.convert_to_tensor(data.x_train, tf.int32)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = keras.random.SeedGenerator(options.seed)
        for optimizer, model in ((generator_optimizer, generator), (mle_optimizer, generator),
                                 (discriminator_optimizer, discriminator)):
            optimizer.build(model.trainable_variables)  # before the first call: trace once
        self.checkpoint = tf.train.Checkpoint(
            generator=generator, discriminator=discriminator,
            generator_optimizer=generator_optimizer, mle_optimizer=mle_optimizer,
            discriminator_optimizer=discriminator_optimizer, step=self.step, rng=self.rng.state)
        self.jit_compile_by_phase = text_jit_compile(options.jit_compile)
        self.jit_compile = any(self.jit_compile_by_phase.values())  # fit logs "XLA on"
        signature = [tf.TensorSpec([], tf.int32)]
        self.mle_steps = tf.function(self._mle_steps, input_signature=signature,
                                     jit_compile=self.jit_compile_by_phase["mle"])
        self.adversarial_steps = tf.function(
            self._adversarial_steps, input_signature=signature,
            jit_compile=self.jit_compile_by_phase["adversarial"])

    def train_steps(self, num_steps) -> dict:
        """Run `num_steps` steps of the current phase (fit stops calls at the boundary)."""
        if int(self.step.numpy()) < self.options.pretrain_steps:
            return self.mle_steps(num_steps)
        return self.adversarial_steps(num_steps)

    # -- the compiled bodies ---------------------------------------------------------------

    def _real_batch(self):
        """int32 (B, L) training sequences drawn uniformly with replacement."""
        count = tf.shape(self.ids)[0]
        indices = keras.random.randint((self.options.batch_size,), 0, count, seed=self.rng)
        return tf.gather(self.ids, indices)

    def _apply(self, optimizer, tape, loss, model):
        variables = model.trainable_variables
        # Embedding gradients arrive as IndexedSlices; made dense here (a sorted segment sum)
        # so the update does not depend on the scatter order of threads: resume stays exact.
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        gradients, _ = tf.clip_by_global_norm(gradients, self.gumbel.clip_norm)
        optimizer.apply_gradients(zip(gradients, variables))

    def _mle_steps(self, num_steps):
        total = tf.constant(0.0)
        for _ in tf.range(num_steps):
            ids = self._real_batch()
            with tf.GradientTape() as tape:
                logits = self.generator(ids, training=True)
                # Mean over every position, padding included: the model must learn to pad.
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits))
            self._apply(self.mle_optimizer, tape, loss, self.generator)
            total += loss
        self.step.assign_add(tf.cast(num_steps, tf.int64))
        return {"mle/nll": total / tf.cast(num_steps, tf.float32)}

    def _beta(self):
        adversarial = self.options.steps - self.options.pretrain_steps
        done = tf.cast(self.step - self.options.pretrain_steps, tf.float32)
        return beta_at(tf.minimum(done / max(adversarial, 1), 1.0), self.gumbel)

    def _fake(self, beta):
        seed = keras.random.randint((2,), 0, 2**31 - 1, seed=self.rng)
        return self.generator.rollout(self.options.batch_size, seed, beta=beta)[1]

    def _adversarial_steps(self, num_steps):
        totals = tf.zeros([len(ADVERSARIAL_METRICS)])
        for _ in tf.range(num_steps):
            beta = self._beta()
            for _ in range(self.options.d_steps):
                real, fake = self._real_batch(), self._fake(beta)
                with tf.GradientTape() as tape:
                    real_logits = self.discriminator(real, training=True)
                    fake_logits = self.discriminator(fake, training=True)
                    d_loss, _ = self.loss_fn(real_logits, fake_logits)
                self._apply(self.d_optimizer, tape, d_loss, self.discriminator)
            with tf.GradientTape() as tape:
                fake_logits = self.discriminator(self._fake(beta), training=True)
                real_logits = (self.discriminator(real, training=True) if self.reads_real
                               else tf.zeros_like(fake_logits))  # unused by the loss
                _, g_loss = self.loss_fn(real_logits, fake_logits)
            self._apply(self.g_optimizer, tape, g_loss, self.generator)
            self.step.assign_add(1)
            totals += tf.stack([d_loss, g_loss, tf.reduce_mean(real_logits),
                                tf.reduce_mean(fake_logits), beta])
        means = totals / tf.cast(num_steps, tf.float32)
        return {name: means[i] for i, name in enumerate(ADVERSARIAL_METRICS)}

    # -- host-side hooks fit calls ------------------------------------------------------------

    def sample_ids(self, count: int, seed: int, temperature: float = 1.0) -> np.ndarray:
        """int32 (count, L) sampled ids; the same seed always gives the same sequences."""
        return sample_ids(self.generator, count, seed, temperature)

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """`sample_grid` sentences (fixed seed, temperature 1) to TensorBoard text and a file."""
        ids = self.sample_ids(self.options.sample_grid, self.options.seed)
        write_text_samples(self.data, ids, writer, run_dir, step)

    def metric_definitions(self, averaged: str) -> dict[str, str]:
        return {
            "mle/nll": "MLE pre-training loss: mean per-token cross-entropy (nats) on training "
                       f"batches, all {self.data.spec.shape[0]} positions (padding included), "
                       f"{averaged}",
            "gumbel/beta": f"Gumbel-softmax inverse temperature ({self.gumbel.schedule} "
                           f"schedule to {self.gumbel.beta_max}), {averaged}",
        }


def write_text_samples(data: TextData, ids: np.ndarray, writer, run_dir: Path, step: int) -> None:
    """Decoded int ids (N, L) as `samples/step_N.txt` (one sentence a line) and TensorBoard
    text `samples`; shared by every text trainer."""
    lines = [data.text(row) for row in ids]
    path = Path(run_dir) / "samples" / f"step_{step:07d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with writer.as_default(step=step):
        tf.summary.text("samples", "\n".join(f"{i + 1}. `{line}`"
                                             for i, line in enumerate(lines)))


_ROLLOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sample_ids(generator, count: int, seed: int, temperature: float = 1.0,
               chunk: int = 1000) -> np.ndarray:
    """int32 (count, L) ids sampled at `temperature`, in chunks, seeded by (seed, chunk)."""
    rollout = _ROLLOUTS.get(generator)
    if rollout is None:  # one compiled sampler per generator (shapes vary only in batch)
        rollout = tf.function(lambda batch, seed, t: generator.rollout(
            batch, seed, temperature=t, soft=False)[0])
        _ROLLOUTS[generator] = rollout
    parts = []
    for index, start in enumerate(range(0, count, chunk)):
        size = min(chunk, count - start)
        parts.append(rollout(tf.constant(size), tf.constant([seed, index]),
                             tf.constant(temperature, tf.float32)).numpy())
    return np.concatenate(parts).astype(np.int32)


def check_text_options(options: TrainOptions) -> None:
    if options.pretrain_steps > options.steps:
        raise ConfigError(f"train.pretrain_steps={options.pretrain_steps} exceeds "
                          f"train.steps={options.steps} (the total); raise train.steps.")
    if getattr(options, "strategy", "default") != "default":
        raise ConfigError("text models run with train.strategy=default only; remove the "
                          "train.strategy override.")
    # Options of the image trainer that TextTrainer does not implement: refuse, never ignore.
    if options.ema_decay:
        raise ConfigError("the text GAN keeps no EMA generator; remove train.ema_decay (the "
                          "default experiment sets it for images: start text runs from a text "
                          "preset such as experiment=coco_relgan, or from experiment=base).")
    if options.lr_schedule != "constant":
        raise ConfigError("the text GAN trains with constant learning rates; remove "
                          "train.lr_schedule.")
    if options.fuse_d_pass is True:  # its D reads ids and soft one-hots: two inputs, two passes
        raise ConfigError("the text GAN runs D's real and fake passes separately; remove "
                          "train.fuse_d_pass.")
