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

from ganrun import augment, penalties
from ganrun.budget import parse_duration
from ganrun.distribute import STRATEGIES, distributed_train_steps, shard
from ganrun.ema import GeneratorEMA
from ganrun.errors import ConfigError, GanrunError
from ganrun.losses import generator_reads_real
from ganrun.precision import PRECISIONS
from ganrun.regularization import Regularization

log = logging.getLogger(__name__)

METRIC_NAMES = ("loss/d", "loss/g", "logits/real", "logits/fake")
PENALTY_METRIC = "loss/d_penalty"  # returned too when a penalty is on (regularize:)


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
      on_divergence: "stop" (raise TrainingDiverged) or "rollback" (restore the last good
        checkpoint and multiply the learning rates by rollback_lr_factor, at most
        max_rollbacks times) when a loss or weight becomes NaN or infinite, or a loss or mean
        logit passes divergence_bound; see ganrun.guard.
      on_nonfinite: the old name of on_divergence; when set (not None) it wins, and after
        construction both hold the policy in force.
      divergence_bound: |loss/*| or |logits/*| (means over a compiled call) above this counts
        as divergence; None or 0 turns the bound off (NaN and inf still count).
      ema_decay: 0 (off) or the decay of an exponential moving average of the generator's
        weights (e.g. 0.999), used for samples and generator.keras; see ganrun.ema.
      lr_schedule: "constant" or "linear" (both learning rates decay linearly to 0 at `steps`).
      eval_every: image metrics of `eval_n` samples every this many steps and at the end,
        keeping the best-FID generator in checkpoints/best (0 = off); see
        ganrun.evaluate.during_training.
      eval_n: samples (and test images) per periodic evaluation; cheap, so noisier.
      eval_final_n: samples of the full evaluation after the last step (0 = none).
      best_metric: the periodic metric that picks checkpoints/best (auto: FID for images,
        NLL-gen for text), see ganrun.evaluate.best.
      pretrain_steps: text models only: the first this many of `steps` are maximum-likelihood
        (teacher-forcing) steps of the generator, the rest adversarial; see ganrun.text_train.
      strategy: default | mirrored | multi_worker | tpu, see ganrun.distribute; batch_size is
        the global batch, split evenly over the replicas.
      precision: float32 | mixed_bfloat16 | mixed_float16 (loss-scaled), see ganrun.precision.
      fuse_d_pass: "auto" (fused where the maths is the same, see resolve_fuse_d_pass), true
        or false: the discriminator update runs D once on concat(real, fake) instead of
        twice, on real and on fake.
      max_time: a wall-clock budget for this process's training loop (e.g. "10m", "90s",
        600) or None; training stops at the first compiled-call boundary after it, see
        ganrun.budget. Whichever of `steps` and `max_time` comes first ends the run.
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
    on_divergence: str = "stop"
    on_nonfinite: str | None = None
    divergence_bound: float | None = 1e4
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    ema_decay: float = 0.0
    lr_schedule: str = "constant"
    eval_every: int = 0
    eval_n: int = 2000
    eval_final_n: int = 0
    best_metric: str = "auto"
    pretrain_steps: int = 0
    strategy: str = "default"
    precision: str = "float32"
    fuse_d_pass: bool | str = "auto"
    max_time: str | float | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("seed", "jit_compile", "on_nonfinite", "on_divergence",
                              "divergence_bound", "rollback_lr_factor",
                              "ema_decay", "lr_schedule", "strategy", "precision",
                              "best_metric", "fuse_d_pass", "max_time"):
                continue  # checked below, or by the evaluation
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
        if self.fuse_d_pass not in ("auto", True, False):
            raise ConfigError(f"train.fuse_d_pass={self.fuse_d_pass!r} must be auto, true or "
                              "false.")
        for name in ("on_nonfinite", "on_divergence"):
            value = getattr(self, name)
            if value not in ("stop", "rollback") and (value is not None or name != "on_nonfinite"):
                raise ConfigError(f"train.{name}={value!r} must be stop or rollback.")
        policy = self.on_nonfinite or self.on_divergence  # the old name wins when set
        object.__setattr__(self, "on_nonfinite", policy)
        object.__setattr__(self, "on_divergence", policy)
        bound = self.divergence_bound
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)
                                  or not bound >= 0):
            raise ConfigError(f"train.divergence_bound={bound!r} must be a positive number "
                              "(e.g. 1e4), or 0 or null for no bound.")
        factor = self.rollback_lr_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ConfigError(f"train.rollback_lr_factor={factor!r} must be a number between 0 "
                              "and 1 (exclusive).")
        decay = self.ema_decay
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
            raise ConfigError(f"train.ema_decay={decay!r} must be 0 (off) or in (0, 1), e.g. "
                              "0.999.")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"train.strategy={self.strategy!r} must be one of "
                              f"{', '.join(STRATEGIES)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision!r} must be one of "
                              f"{', '.join(PRECISIONS)}.")
        parse_duration(self.max_time)  # raises ConfigError on a malformed budget
        if self.lr_schedule not in ("constant", "linear"):
            raise ConfigError(f"train.lr_schedule={self.lr_schedule!r} must be constant or "
                              "linear.")


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


# Layers that map each example on its own and change nothing when called in training, so D
# on concat(real, fake) gives the two passes' logits and gradients (up to float summation
# order). Not here: batch norm (batch statistics), dropout (its draws), spectral norm (one
# power iteration per call), and any layer not listed (auto then keeps two passes).
_PER_EXAMPLE_LAYERS = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.Conv2D,
                       keras.layers.Flatten, keras.layers.Reshape, keras.layers.Activation,
                       keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.Embedding,
                       keras.layers.Dot, keras.layers.Add, keras.layers.AveragePooling2D,
                       keras.layers.GlobalAveragePooling2D)


def resolve_fuse_d_pass(setting: bool | str, discriminator, regularization) -> bool:
    """One D pass over concat(real, fake) or two. "auto": fused when D is made of
    `_PER_EXAMPLE_LAYERS` alone and no augmentation or instance noise draws per call (fused,
    one draw would cover both halves). See scripts/bench.py, lever "fused D"."""
    if setting == "auto":
        return (not regularization.augment and not regularization.instance_noise
                and all(isinstance(layer, _PER_EXAMPLE_LAYERS)
                        for layer in discriminator.layers))
    return bool(setting)


class AdversarialTrainer:
    """The training state (models, optimizers, RNG, step) and the compiled K-step function.

    Args:
      generator: z (B, latent_dim) -> images (B, H, W, C) in `pixel_range`; conditional
        models take [z, labels int32 (B,)].
      discriminator: images -> logits (B, 1); conditional: [images, labels] -> logits.
      generator_optimizer, discriminator_optimizer: Keras optimizers (built here, before the
        first call, so the function traces once).
      loss_fn: `(real_logits, fake_logits) -> (d_loss, g_loss)`, see `ganrun.losses`.
      images: uint8 (N, H, W, C) training set; copied to the device once.
      pixel_range: (low, high) the generator produces; real images are mapped there.
      options: TrainOptions.
      regularization: the discriminator's penalties, augmentation and noise (default: none).
      labels: int32 (N,) class ids of `images`, for a class-conditional GAN (else None);
        real batches are drawn with their labels and the fakes of a step use the same labels.
      num_classes: the label count of a conditional GAN, 0 for an unconditional one.
      strategy: the tf.distribute strategy of `options.strategy` (None: the default one); the
        models and optimizers must have been made, and this must be called, in its scope.
      real_transform: None (images: uint8 pixels mapped to `pixel_range`), or a function from
        the gathered rows of `images` (kept on the device in their own dtype) to D's float32
        real batch, e.g. int32 ids (B, L) -> one-hot (B, L, V) for ganrun.text_wgan.
    """

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, images: np.ndarray, pixel_range: tuple[float, float],
                 options: TrainOptions, regularization: Regularization | None = None,
                 labels: np.ndarray | None = None, num_classes: int = 0, strategy=None,
                 real_transform=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.distributed = options.strategy != "default"
        self.replicas = self.strategy.num_replicas_in_sync
        if options.batch_size % self.replicas:
            raise ConfigError(f"train.batch_size={options.batch_size} must be a multiple of the "
                              f"{self.replicas} replicas of train.strategy={options.strategy}.")
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = generator_optimizer, discriminator_optimizer
        self.loss_fn, self.options, self.pixel_range = loss_fn, options, pixel_range
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.reads_real = generator_reads_real(loss_fn)
        self.real_transform = real_transform
        self.images = tf.convert_to_tensor(images, dtype=None if real_transform else tf.uint8)
        self.regularization = regularization or Regularization()
        self.num_classes = num_classes
        self.labels = tf.convert_to_tensor(labels, tf.int32) if num_classes else None
        self.fuse_d_pass = resolve_fuse_d_pass(options.fuse_d_pass, discriminator,
                                               self.regularization)
        self.metric_names = METRIC_NAMES + ((PENALTY_METRIC,) if self.regularization.has_penalty
                                            else ())
        self.ema = GeneratorEMA(generator, options.ema_decay) if options.ema_decay else None
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
        # TPUs always compile. Under mirrored/multi_worker the function spans several devices,
        # which one XLA cluster cannot ("Trying to access resource ... located in device
        # CPU:1 from device CPU:0"), so XLA stays off there.
        self.jit_compile = options.strategy == "tpu" or (
            resolve_jit_compile(options.jit_compile, (generator, discriminator))
            and not self.distributed)
        if options.jit_compile is True and self.distributed and options.strategy != "tpu":
            log.warning("train.jit_compile=true is ignored under train.strategy=%s (XLA cannot "
                        "compile a function spanning several devices).", options.strategy)
        # Off TPU, XLA compiles one adversarial step and the K-step loop stays in TF's
        # runtime: 1.3x the steps/s of one XLA program for the whole loop (MLP, batch 32,
        # scripts/bench.py "XLA per step"); still one program for every K.
        step_xla = self.jit_compile and not self.distributed
        if step_xla:
            self._adversarial_step = tf.function(self._adversarial_step, jit_compile=True)
        self.train_steps = tf.function(
            self._train_steps, jit_compile=self.jit_compile and not step_xla,
            input_signature=[tf.TensorSpec([], tf.int32)])

    def _train_steps(self, num_steps):
        """Run `num_steps` adversarial steps; return the metrics averaged over them."""
        if self.distributed:
            return distributed_train_steps(self, num_steps)
        def body(index, totals):
            return index + 1, totals + self._adversarial_step(self.step + tf.cast(index, tf.int64))

        # A plain while_loop, not `for _ in tf.range(num_steps)`: autograph gives that loop
        # maximum_iterations=num_steps, which XLA treats as a compile-time constant, so every
        # distinct call length was compiled anew (and rounded differently; scripts/bench.py).
        _, totals = tf.while_loop(lambda index, _: index < num_steps, body,
                                  (tf.constant(0), tf.zeros([len(self.metric_names)])))
        self.step.assign_add(tf.cast(num_steps, tf.int64))
        means = totals / tf.cast(num_steps, tf.float32)
        return {name: means[index] for index, name in enumerate(self.metric_names)}

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
            self.ema.update(latents if labels is None else [latents, labels])
        metrics = [d_loss, g_loss, tf.reduce_mean(real_logits), tf.reduce_mean(fake_logits)]
        return tf.stack(metrics + ([penalty] if self.regularization.has_penalty else []))

    def _real_batch(self):
        """float32 (B, H, W, C) real images in the generator's pixel range, and their int32
        (B,) labels (None when unconditional)."""
        count = tf.shape(self.images)[0]
        indices = shard(keras.random.randint((self.options.batch_size,), 0, count,
                                             seed=self.batch_rng), self.replicas)
        low, high = self.pixel_range
        labels = tf.gather(self.labels, indices) if self.num_classes else None
        if self.real_transform is not None:  # converted per batch, like the pixels below
            return self.real_transform(tf.gather(self.images, indices)), labels
        pixels = tf.cast(tf.gather(self.images, indices), tf.float32)
        return pixels * ((high - low) / 255.0) + low, labels

    def _latents(self, batch_size=None):
        if batch_size is None:  # this replica's slice of the global batch's latents
            return shard(keras.random.normal((self.options.batch_size, self.latent_dim),
                                             seed=self.batch_rng), self.replicas)
        return keras.random.normal((batch_size, self.latent_dim), seed=self.rng)

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
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self._real_and_fake_logits(real, fake, labels, noise)
            d_loss, _ = self.loss_fn(real_logits, fake_logits)
            penalty = self.regularization.penalty(self._critic(labels), real, fake, real_logits,
                                                  self.rng, update_index)
            total = self._gradient_loss(d_loss + penalty, self.d_optimizer)
        variables = self.discriminator.trainable_variables
        gradients = tape.gradient(total, variables)
        self.d_optimizer.apply_gradients(zip(gradients, variables))
        if self.regularization.clip_weights:
            penalties.clip_weights(variables, self.regularization.clip_weights)
        return d_loss, penalty, real_logits, fake_logits

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
        with tf.GradientTape() as tape:
            fake_logits = critic(self._generate(labels))
            real_logits = (critic(real) if self.reads_real
                           else tf.zeros_like(fake_logits))  # unused by the loss
            _, g_loss = self.loss_fn(real_logits, fake_logits)
            scaled = self._gradient_loss(g_loss, self.g_optimizer)
        variables = self.generator.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(gradients, variables))
        return g_loss

    def _gradient_loss(self, loss, optimizer):
        """What to differentiate: the replica's mean loss / replicas (the optimizer sums
        replicas' gradients, giving the global-batch mean's), times the float16 loss scale."""
        if self.replicas > 1:
            loss = loss / self.replicas
        return optimizer.scale_loss(loss)  # identity unless a LossScaleOptimizer

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator samples and generator.keras come from: the EMA one when enabled."""
        return self.ema.model if self.ema else self.generator

    def generate(self, latents, labels=None) -> np.ndarray:
        """Images in [0, 1], float32 (B, H, W, C), from latents (B, latent_dim) and, for a
        conditional GAN, int32 labels (B,)."""
        inputs = latents if labels is None else [latents, tf.convert_to_tensor(labels, tf.int32)]
        images = self.sampling_generator(inputs, training=False)
        low, high = self.pixel_range
        return ((np.asarray(images) - low) / (high - low)).astype(np.float32)


def fixed_latents(count: int, latent_dim: int, seed: int) -> tf.Tensor:
    """The same (count, latent_dim) N(0, 1) latents for a given seed, on any machine."""
    return tf.random.stateless_normal((count, latent_dim), seed=[seed, 0x5EED])


def grid_inputs(count: int, latent_dim: int, seed: int, num_classes: int = 0):
    """Fixed inputs of a sample grid: (latents, labels or None, columns or None).

    Unconditional: `count` latents in a square-ish grid. Conditional: one row per class,
    max(1, count // num_classes) columns, so the grid holds that many images of each class.
    """
    if not num_classes:
        return fixed_latents(count, latent_dim, seed), None, None
    columns = max(1, count // num_classes)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), columns)
    return fixed_latents(len(labels), latent_dim, seed), labels, columns
