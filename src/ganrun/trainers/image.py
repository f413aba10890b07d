"""`AdversarialTrainer`: the image GAN's training state and compiled K-step function.

Per call of the compiled function (`train_steps(n)`), n adversarial steps run on the device
with no Python in between. One adversarial step is `d_steps` discriminator updates followed
by one generator update. Real batches are drawn uniformly with replacement from the training
set held on the device; latents are N(0, 1). All randomness comes from one
`keras.random.SeedGenerator`, whose state is checkpointed with the models, both optimizers
and the step counter, so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from ganrun import augment, distribute, penalties, sampling, summaries
from ganrun.data.spec import DataSpec
from ganrun.ema import GeneratorEMA
from ganrun.errors import ConfigError
from ganrun.losses import generator_reads_real
from ganrun.models.image import pixel_range as pixel_range_of
from ganrun.regularization import Regularization
from ganrun.trainers.loop import run_steps, update
from ganrun.trainers.options import TrainOptions
from ganrun.trainers.policy import resolve_fuse_d_pass, resolve_jit_compile

log = logging.getLogger(__name__)

METRIC_NAMES = ("loss/d", "loss/g", "logits/real", "logits/fake")
PENALTY_METRIC = "loss/d_penalty"  # returned too when a penalty is on (regularize:)


class AdversarialTrainer:
    """The training state (models, optimizers, RNG, step) and the compiled K-step function.

    Args:
      generator: z (B, latent_dim) -> images (B, H, W, C) in the range of `output_activation`;
        conditional models take [z, labels int32 (B,)]: real batches are then drawn with their
        labels (data.y_train) and the fakes of a step use the same labels.
      discriminator: images -> logits (B, 1); conditional: [images, labels] -> logits.
      generator_optimizer, discriminator_optimizer: Keras optimizers (built here, before the
        first call, so the function traces once).
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)`, see `ganrun.losses`.
      data: the training data; its x_train (uint8 (N, H, W, C)) is copied to the device once.
      options: TrainOptions.
      regularization: the discriminator's penalties, augmentation and noise (default: none).
      strategy: the tf.distribute strategy of `options.strategy` (None: the default one); the
        models and optimizers must have been made, and this must be called, in its scope.
      output_activation: the generator's output activation (tanh: pixels in [-1, 1], sigmoid:
        [0, 1]); real pixels are mapped to that range. None for a generator whose outputs
        are not pixels (LatentTextTrainer overrides `_to_real` and `write_samples`).
    """

    example_dtype = tf.uint8  # of data.x_train, held on the device

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, data, options: TrainOptions,
                 regularization: Regularization | None = None, strategy=None,
                 output_activation: str | None = "tanh"):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.distributed = options.strategy != "default"
        self.replicas = self.strategy.num_replicas_in_sync
        if options.batch_size % self.replicas:
            raise ConfigError(f"train.batch_size={options.batch_size} must be a multiple of the "
                              f"{self.replicas} replicas of train.strategy={options.strategy}.")
        self.generator, self.discriminator, self.data = generator, discriminator, data
        self.models = (generator, discriminator)
        self.g_optimizer, self.d_optimizer = generator_optimizer, discriminator_optimizer
        self.optimizers = {"g_optimizer": generator_optimizer,
                           "d_optimizer": discriminator_optimizer}
        self.loss_fn, self.options = loss_fn, options
        self.pixel_range = pixel_range_of(output_activation) if output_activation else None
        self.latent_dim = sampling.latent_dim(generator)
        self.reads_real = generator_reads_real(loss_fn)
        self.examples = tf.convert_to_tensor(data.x_train, self.example_dtype)
        self.regularization = regularization or Regularization()
        # Conditional exactly when the generator takes labels (model.conditional, resolved by
        # ganrun.build): real batches are then drawn with their labels.
        self.num_classes = sampling.num_classes(generator)
        self.labels = (tf.convert_to_tensor(data.y_train, tf.int32) if self.num_classes
                       else None)
        self.fuse_d_pass = resolve_fuse_d_pass(options.fuse_d_pass, discriminator,
                                               self.regularization)
        self.metric_names = METRIC_NAMES + ((PENALTY_METRIC,) if self.regularization.has_penalty
                                            else ())
        self.ema = (GeneratorEMA(generator, options.ema_decay, options.ema_rampup)
                    if options.ema_decay else None)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = keras.random.SeedGenerator(options.seed)
        self.batch_rng = self.rng  # the batch's draws; see ganrun.distribute.ReplicaSeeds
        self.g_optimizer.build(generator.trainable_variables)
        self.d_optimizer.build(discriminator.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(
            generator=generator, discriminator=discriminator,
            generator_optimizer=generator_optimizer,
            discriminator_optimizer=discriminator_optimizer,
            step=self.step, rng=self.rng.state,
            **({"generator_ema": self.ema.model} if self.ema else {}))
        self._compile(options)

    @staticmethod
    def check(options: TrainOptions, regularization: Regularization, spec: DataSpec,
              loss_name: str) -> None:
        """Image data, no MLE phase, a label-smoothing loss that is BCE (see Trainer)."""
        if spec.kind != "image":
            raise ConfigError(f"data {spec.name} is text; choose a text model (model=relgan or "
                              "model=wgan_char).")
        if options.pretrain_steps:
            raise ConfigError("train.pretrain_steps is the MLE pre-training of model=relgan; "
                              "this model has none, set it to 0.")
        regularization.check_loss(loss_name)

    def _compile(self, options: TrainOptions) -> None:
        # TPUs always compile. Under mirrored/multi_worker the function spans several devices,
        # which one XLA cluster cannot ("Trying to access resource ... located in device
        # CPU:1 from device CPU:0"), so XLA stays off there.
        self.jit_compile = options.strategy == "tpu" or (
            resolve_jit_compile(options.jit_compile, self.models) and not self.distributed)
        if options.jit_compile is True and self.distributed and options.strategy != "tpu":
            log.warning("train.jit_compile=true is ignored under train.strategy=%s (XLA cannot "
                        "compile a function spanning several devices).", options.strategy)
        # Off TPU, XLA compiles one adversarial step and the K-step loop stays in TF's
        # runtime: faster than one XLA program for the whole loop (docs/speed.md, "XLA per
        # step"), and still one program for every K.
        step_xla = self.jit_compile and not self.distributed
        if step_xla:
            self._adversarial_step = tf.function(self._adversarial_step, jit_compile=True)
        self.train_steps = tf.function(
            self._train_steps, jit_compile=self.jit_compile and not step_xla,
            input_signature=[tf.TensorSpec([], tf.int32)])

    def _train_steps(self, num_steps):
        """Run `num_steps` adversarial steps; return the metrics averaged over them."""
        step_fn = (distribute.replicated_step(self, self._adversarial_step) if self.distributed
                   else self._adversarial_step)
        return run_steps(step_fn, num_steps, self.step, self.metric_names)

    def _adversarial_step(self, step):
        """d_steps discriminator updates, then one generator update (and the EMA's);
        returns the (len(metric_names),) metrics. `step`: int64, steps done before this one."""
        noise = self._noise_stddev(step)
        for d_index in range(self.options.d_steps):
            real, labels = self._real_batch()
            update_index = step * self.options.d_steps + d_index
            d_loss, penalty, real_logits, fake_logits = self._discriminator_update(
                real, labels, noise, update_index)
        g_loss = self._generator_update(real, labels, noise)
        if self.ema:
            latents = self._latents()
            self.ema.update(latents if labels is None else [latents, labels], step)
        metrics = [d_loss, g_loss, tf.reduce_mean(real_logits), tf.reduce_mean(fake_logits)]
        return tf.stack(metrics + ([penalty] if self.regularization.has_penalty else []))

    def _real_batch(self):
        """D's float32 real batch (this replica's slice) and its int32 (B,) labels (None when
        unconditional)."""
        count = tf.shape(self.examples)[0]
        indices = distribute.shard(keras.random.randint((self.options.batch_size,), 0, count,
                                                        seed=self.batch_rng), self.replicas)
        labels = tf.gather(self.labels, indices) if self.num_classes else None
        return self._to_real(tf.gather(self.examples, indices)), labels

    def _to_real(self, rows):
        """uint8 pixels (B, H, W, C) -> float32 in the generator's pixel range, per batch."""
        low, high = self.pixel_range
        return tf.cast(rows, tf.float32) * ((high - low) / 255.0) + low

    def _latents(self):
        """This replica's slice of the global batch's latents."""
        return distribute.shard(keras.random.normal((self.options.batch_size, self.latent_dim),
                                                    seed=self.batch_rng), self.replicas)

    def _generate(self, labels, training=True):
        """A fresh batch of fakes (for the labels of a conditional GAN)."""
        inputs = self._latents() if labels is None else [self._latents(), labels]
        return self.generator(inputs, training=training)

    def _critic(self, labels, augmented=False, noise=None):
        """D as a function of images alone (labels bound), optionally behind DiffAugment
        and instance noise, which D sees on real and fake alike."""
        def critic(images):
            if augmented:
                images = augment.diff_augment(images, self.regularization.augment, self.rng)
                if noise is not None:
                    images = augment.instance_noise(images, noise, self.rng)
            inputs = images if labels is None else [images, labels]
            return self.discriminator(inputs, training=True)
        return critic

    def _noise_stddev(self, step):
        """Instance noise's std at `step`: linear from regularize.instance_noise to 0."""
        if not self.regularization.instance_noise:
            return None
        left = 1.0 - tf.cast(step, tf.float32) / float(self.options.steps)
        return self.regularization.instance_noise * tf.maximum(left, 0.0)

    def _discriminator_update(self, real, labels, noise, update_index):
        fake = self._generate(labels)

        def loss():
            real_logits, fake_logits = self._real_and_fake_logits(real, fake, labels, noise)
            d_loss, _ = self.loss_fn(real_logits, fake_logits)
            penalty = self.regularization.penalty(self._critic(labels), real, fake, real_logits,
                                                  self.rng, update_index)
            return d_loss + penalty, d_loss, penalty, real_logits, fake_logits

        variables = self.discriminator.trainable_variables
        _, *results = update(self.d_optimizer, variables, loss, self.replicas)
        if self.regularization.clip_weights:
            penalties.clip_weights(variables, self.regularization.clip_weights)
        return results

    def _real_and_fake_logits(self, real, fake, labels, noise):
        """D's (B, 1) logits on the real and on the fake batch (augmented and noised if
        asked): one pass over the 2B images when `fuse_d_pass`, else two."""
        if not self.fuse_d_pass:
            critic = self._critic(labels, augmented=True, noise=noise)
            return critic(real), critic(fake)
        both = None if labels is None else tf.concat([labels, labels], 0)
        logits = self._critic(both, augmented=True, noise=noise)(tf.concat([real, fake], 0))
        return tf.split(logits, 2)

    def _generator_update(self, real, labels, noise):
        critic = self._critic(labels, augmented=True, noise=noise)

        def loss():
            fake_logits = critic(self._generate(labels))
            real_logits = (critic(real) if self.reads_real
                           else tf.zeros_like(fake_logits))  # unused by the loss
            return (self.loss_fn(real_logits, fake_logits)[1],)

        return update(self.g_optimizer, self.generator.trainable_variables, loss,
                      self.replicas)[0]

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator samples and generator.keras come from: the EMA one when enabled."""
        return self.ema.model if self.ema else self.generator

    def metric_definitions(self, averaged: str) -> dict[str, str]:
        return {
            "loss/d_penalty": "the discriminator's regularization terms (regularize.*) added "
                              f"to loss/d for its update, {averaged}"}

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """The fixed-latent grid of train.seed (a row per class when conditional) as
        samples/step_N.png and the TensorBoard image `samples`."""
        latents, labels, columns = sampling.grid_inputs(
            self.options.sample_grid, self.latent_dim, self.options.seed, self.num_classes)
        inputs = latents if labels is None else [latents, tf.convert_to_tensor(labels)]
        images = sampling.to_unit(self.sampling_generator(inputs, training=False),
                                  self.pixel_range)
        grid = summaries.image_grid(images, columns)
        summaries.write_png(Path(run_dir) / "samples" / f"step_{step:07d}.png", grid)
        summaries.write_image(writer, "samples", grid, step)
