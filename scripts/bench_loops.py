"""The training loops `bench.py` compares, each on the same Keras models and the same data.

  seed_eager_loop   the seed document's loop: eager, one GradientTape per network and step,
                    batches sliced from a NumPy array in Python, latents from NumPy.
  KerasFitGAN       Keras with a `train_step` override (the keras-io DCGAN pattern: real
                    and generated images concatenated into one discriminator batch),
                    `jit_compile` and `steps_per_execution` as given, driven two ways:
                    `model.fit` itself on keras-io's tf.data pipeline, timed by a callback
                    over whole epochs (keras_model_fit), and fit's compiled train function
                    called directly, without fit's loop and callbacks (keras_fit_chunk: an
                    upper bound for Keras, not what a user runs).
  ganrun            `ganrun.build.trainer` on the composed config; `train_steps(K)` is called
                    exactly as `ganrun.fit` calls it (metrics fetched to the host per call).

Every loop is driven the same way: one compiling call, one warm-up call, then timed windows
of at least `window_s` seconds, interleaved round-robin across the variants of one (model,
batch) cell; the figure is the median of a variant's windows. One "step" is one
discriminator update and one generator update.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf


def warm_up(run_chunk) -> tuple[float, float]:
    """One compiling call, then one warm-up call; returns both durations in seconds."""
    started = time.perf_counter()
    run_chunk()
    first_call_s = time.perf_counter() - started
    run_chunk()  # warm-up: caches, allocator, thread pools
    return first_call_s, time.perf_counter() - started - first_call_s


def one_window(run_chunk, steps_per_chunk: int, window_s: float) -> tuple[float, float]:
    """Steps per wall-clock second, and this process's CPU milliseconds (all threads) per
    step, over whole calls of `run_chunk` lasting at least `window_s`. CPU time counts the
    work done rather than the waiting, so it moves less when other jobs share the cores."""
    steps, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while True:
        run_chunk()
        steps += steps_per_chunk
        elapsed = time.perf_counter() - started
        if elapsed >= window_s:
            return steps / elapsed, 1000 * (time.process_time() - cpu_started) / steps


def interleaved_windows(runners: list[dict], windows: int, window_s: float) -> None:
    """Time every runner ({"chunk", "steps"}) in `windows` rounds, one window each per round,
    so load changes on a shared machine hit all variants alike; adds "steps_per_s" and
    "cpu_ms_per_step" (medians) and the per-window lists to each runner."""
    for runner in runners:
        runner["windows"], runner["cpu_windows"] = [], []
    for _ in range(windows):
        for runner in runners:
            if "window" in runner:  # a variant that times itself (keras_model_fit)
                rate, cpu_ms = runner["window"](window_s)
            else:
                rate, cpu_ms = one_window(runner["chunk"], runner["steps"], window_s)
            runner["windows"].append(round(rate, 2))
            runner["cpu_windows"].append(round(cpu_ms, 3))
    for runner in runners:
        runner["steps_per_s"] = statistics.median(runner["windows"])
        runner["cpu_ms_per_step"] = statistics.median(runner["cpu_windows"])


def seed_eager_loop(generator, discriminator, loss_fn, images: np.ndarray, batch_size: int,
                    pixel_range: tuple[float, float]):
    """The seed's loop, one step per call of the returned function (eager, host data)."""
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    latent_dim = int(generator.input_shape[-1])
    low, high = pixel_range
    position = [0]
    rng = np.random.default_rng(0)

    def step():
        start = position[0]
        if start + batch_size > len(images):
            start = 0
        position[0] = start + batch_size
        real = images[start:start + batch_size].astype("float32") * ((high - low) / 255) + low
        z = rng.normal(size=(batch_size, latent_dim)).astype("float32")
        with tf.GradientTape() as tape:
            fake = generator(z, training=True)
            d_loss, _ = loss_fn(discriminator(real, training=True),
                                discriminator(fake, training=True))
        grads = tape.gradient(d_loss, discriminator.trainable_variables)
        d_opt.apply_gradients(zip(grads, discriminator.trainable_variables))
        z = rng.normal(size=(batch_size, latent_dim)).astype("float32")
        with tf.GradientTape() as tape:
            fake_logits = discriminator(generator(z, training=True), training=True)
            _, g_loss = loss_fn(tf.zeros_like(fake_logits), fake_logits)
        grads = tape.gradient(g_loss, generator.trainable_variables)
        g_opt.apply_gradients(zip(grads, generator.trainable_variables))
        return float(d_loss), float(g_loss)  # the seed prints the losses

    return step


class KerasFitGAN(keras.Model):
    """keras-io's DCGAN `train_step`: D on concat(fake, real), then G through D."""

    def __init__(self, generator, discriminator, loss_fn):
        super().__init__()
        self.generator, self.discriminator, self.loss_fn = generator, discriminator, loss_fn
        self.latent_dim = int(generator.input_shape[-1])
        self.seed_generator = keras.random.SeedGenerator(0)

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def train_step(self, real):
        batch = tf.shape(real)[0]
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            logits = self.discriminator(tf.concat([real, fake], 0), training=True)
            real_logits, fake_logits = tf.split(logits, 2)
            d_loss, _ = self.loss_fn(real_logits, fake_logits)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z, training=True), training=True)
            _, g_loss = self.loss_fn(tf.zeros_like(fake_logits), fake_logits)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def keras_io_dataset(images: np.ndarray, batch_size: int, pixel_range) -> tf.data.Dataset:
    """keras-io's MNIST GAN input: the images scaled to float32 in NumPy, then
    from_tensor_slices -> shuffle(1024) -> batch -> prefetch. `repeat` (not in keras-io, which
    runs whole passes) lets an epoch have any steps_per_epoch without running dry."""
    low, high = pixel_range
    scaled = images.astype(np.float32) * ((high - low) / 255.0) + low
    return (tf.data.Dataset.from_tensor_slices(scaled).shuffle(1024)
            .batch(batch_size, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE))


def _keras_gan(generator, discriminator, loss_fn, jit_compile, steps_per_execution):
    gan = KerasFitGAN(generator, discriminator, loss_fn)
    gan.compile(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return gan


class _EpochTimer(keras.callbacks.Callback):
    """Wall and CPU seconds of the last finished epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.last = (time.perf_counter() - self.started[0],
                     time.process_time() - self.started[1])


def keras_model_fit(generator, discriminator, loss_fn, images: np.ndarray, batch_size: int,
                    pixel_range, jit_compile: bool, steps_per_execution: int):
    """Keras `fit` as a user runs it: `gan.fit(dataset, steps_per_epoch=S, epochs=2)` on
    keras_io_dataset, callbacks and all. Returns (chunk, window): `chunk` is one fit of one
    execution (compiling, warm-up); `window(seconds)` runs one fit of two epochs of about
    seconds/2 each and returns (steps/s, CPU ms per step) of the second epoch, so fit's
    per-call set-up (callbacks, a new iterator, the shuffle buffer) stays out, as it does in
    a long run, while its per-execution callbacks and the tf.data pipeline stay in."""
    dataset = keras_io_dataset(images, batch_size, pixel_range)
    gan = _keras_gan(generator, discriminator, loss_fn, jit_compile, steps_per_execution)
    timer = _EpochTimer()
    rate = [0.0]  # steps/s of the last timed epoch, to size the next window's epochs

    def fit(steps: int, epochs: int):
        gan.fit(dataset, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[timer])

    def chunk():
        fit(steps_per_execution, 1)
        rate[0] = steps_per_execution / timer.last[0]

    def window(seconds: float) -> tuple[float, float]:
        executions = max(1, round(rate[0] * seconds / 2 / steps_per_execution))
        steps = executions * steps_per_execution
        fit(steps, 2)
        wall, cpu = timer.last
        rate[0] = steps / wall
        return rate[0], 1000 * cpu / steps

    return chunk, window


def keras_fit_chunk(generator, discriminator, loss_fn, images: np.ndarray, batch_size: int,
                    pixel_range, jit_compile: bool, steps_per_execution: int):
    """One execution of the train function `KerasFitGAN.fit` builds (`steps_per_execution`
    steps from keras_io_dataset), called directly as fit's loop does, without fit's
    callbacks and epoch loop: an upper bound for Keras (see keras_model_fit)."""
    gan = _keras_gan(generator, discriminator, loss_fn, jit_compile, steps_per_execution)
    gan.make_train_function()
    iterator = iter(keras_io_dataset(images, batch_size, pixel_range))

    def run():
        logs = gan.train_function(iterator)
        if isinstance(logs, tf.experimental.Optional):
            logs = logs.get_value()
        return {name: float(value) for name, value in logs.items()}

    return run


def ganrun_chunk(trainer, steps: int):
    """One call of ganrun's compiled function, fetched to the host as `ganrun.fit` does."""
    count = tf.constant(steps, tf.int32)

    def run():
        return {name: float(value) for name, value in trainer.train_steps(count).items()}

    return run


def forward_flops(model: keras.Model) -> int:
    """Multiply-add FLOPs (2 per MAC) of one example through the model's Dense/Conv layers
    and a projection discriminator's `Dot` (<embed(y), features>: F MACs). Not counted:
    embeddings (a lookup), batch norm, activations, concatenation, the optimizers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kh, kw, a, b = (int(d) for d in layer.kernel.shape)
            # Conv2D: every output pixel reads kh*kw*cin; transposed: every input pixel
            # writes kh*kw*cout. kernel is (kh, kw, cin, cout) / (kh, kw, cout, cin).
            if isinstance(layer, keras.layers.Conv2DTranspose):
                _, height, width, _ = layer.input.shape
            else:
                _, height, width, _ = layer.output.shape
            total += 2 * height * width * kh * kw * a * b
        elif isinstance(layer, keras.layers.Dot):
            total += 2 * int(layer.input[0].shape[-1])
    return total


def adversarial_step_flops(generator, discriminator, batch_size: int, ema_forward=False,
                           reads_real=False) -> int:
    """Matmul/conv FLOPs of one adversarial step (d_steps=1), backward = 2 x forward.

    D update: G forward (B) + D forward and backward on 2B = F_G + 6 F_D (fused or not).
    G update: G forward and backward + D forward and input-gradient (B) = 3 F_G + 2 F_D.
    ema_forward: the EMA generator's standing-statistics pass (ganrun.ema), + F_G.
    reads_real: a relativistic loss's D forward on the real batch in the G update, + F_D.
    """
    f_g, f_d = forward_flops(generator), forward_flops(discriminator)
    return batch_size * ((4 + ema_forward) * f_g + (8 + reads_real) * f_d)
