"""Discriminator regularizers: gradient penalties and weight clipping, each a pure function.

Penalties are separate from the losses (google/compare_gan `penalty_lib.py`): each takes a
`critic` (a callable images (B, H, W, C) -> logits (B, 1), with any labels already bound)
and the batch, and returns one float32 scalar that the trainer multiplies by its weight and
adds to the discriminator's loss. Randomness comes from the trainer's SeedGenerator.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Added under the square root so the norm's gradient is finite at a zero gradient: d sqrt(s)/ds
# is infinite at s = 0, the source of WGAN-GP NaNs (keras-io #624, StudioGAN #175).
NORM_EPSILON = 1e-12


def safe_norm(gradients: tf.Tensor) -> tf.Tensor:
    """Per-example L2 norm of (B, ...) gradients, (B,), finite with a finite gradient at 0."""
    squares = tf.reduce_sum(tf.square(gradients), axis=list(range(1, gradients.shape.rank)))
    return tf.sqrt(squares + NORM_EPSILON)


def _input_gradients(critic, images: tf.Tensor) -> tf.Tensor:
    """d(sum of logits)/d(images), (B, H, W, C): each logit depends only on its own image."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(critic(images))  # inside the tape, or it is not recorded
    return tape.gradient(total, images)


def _unit_norm_penalty(critic, points: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(safe_norm(_input_gradients(critic, points)) - 1.0))


def _uniform_per_example(batch: tf.Tensor, rng) -> tf.Tensor:
    """(B, 1, 1, 1) weights uniform in [0, 1), one per example."""
    shape = [tf.shape(batch)[0]] + [1] * (batch.shape.rank - 1)
    return keras.random.uniform(shape, seed=rng)


def wgan_gp(critic, real: tf.Tensor, fake: tf.Tensor, rng) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028): E[(||∇D(x̂)||₂ - 1)²] at
    x̂ = real + u (fake - real), u ~ uniform[0, 1] per example (not normal: keras-io #143).
    The paper's weight is 10."""
    weight = _uniform_per_example(real, rng)
    fake = tf.stop_gradient(fake)
    return _unit_norm_penalty(critic, real + weight * (fake - real))


def r1(critic, real: tf.Tensor) -> tf.Tensor:
    """R1 (Mescheder et al. 2018, arXiv:1801.04406): ½ E[||∇D(real)||²] on real data only.
    Typical weights γ: 10 for MNIST/CIFAR-sized data, far less at high resolution."""
    gradients = _input_gradients(critic, real)
    return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(gradients),
                                              axis=list(range(1, real.shape.rank))))


def dragan(critic, real: tf.Tensor, rng) -> tf.Tensor:
    """DRAGAN (Kodali et al. 2017, arXiv:1705.07215): E[(||∇D(x̂)||₂ - 1)²] at points near
    the data, x̂ = real + u · 0.5 · std(real) · δ, δ ~ uniform[0, 1) per pixel, u ~ uniform[0, 1]
    per example. The paper's weight is 10."""
    spread = 0.5 * tf.math.reduce_std(real)
    perturbed = real + spread * keras.random.uniform(tf.shape(real), seed=rng)
    return _unit_norm_penalty(critic, real + _uniform_per_example(real, rng) * (perturbed - real))


def clip_weights(variables, limit: float) -> None:
    """The original WGAN's Lipschitz constraint (Arjovsky et al. 2017): clip every
    discriminator variable to [-limit, limit] after each update (the paper's limit: 0.01)."""
    for variable in variables:
        variable.assign(tf.clip_by_value(variable, -limit, limit))


def one_sided_label_smoothing(real_logits: tf.Tensor, smoothing: float) -> tf.Tensor:
    """What one-sided label smoothing (Salimans et al. 2016, arXiv:1606.03498) adds to a
    binary cross-entropy discriminator loss: real targets 1 - s instead of 1.

    BCE(1 - s, x) = softplus(-x) + s · (softplus(x) - softplus(-x)) = softplus(-x) + s · x,
    so the smoothed loss is the loss plus s · E[real logit]; fake targets stay 0.
    """
    return smoothing * tf.reduce_mean(tf.cast(real_logits, tf.float32))
