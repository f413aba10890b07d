"""GAN losses: pure functions with one signature, chosen by config (`configs/loss/`).

Every loss takes the discriminator's logits on a real and a fake batch and returns the
discriminator's and the generator's loss (scalars, float32). Logits are unbounded real numbers
(D's output before any sigmoid); working on logits keeps the log-sigmoid terms numerically
stable (`softplus(-x) = -log(sigmoid(x))` never takes the log of 0).

    d_loss, g_loss = loss(real_logits, fake_logits)   # logits: float32 (B, 1) or (B,)

Only the relativistic losses read `real_logits` in the generator's loss; for the others the
generator step skips the discriminator's pass over real images (`generator_reads_real`).
Penalties (gradient penalty, R1, ...) are separate functions with their own weight.
Shapes and formulas follow google/compare_gan `loss_lib.py` and tensorflow/gan `losses_impl.py`.
"""

from __future__ import annotations

import tensorflow as tf


def _mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(x, tf.float32))


def minimax(real_logits, fake_logits):
    """The original GAN's value function (Goodfellow et al. 2014, arXiv:1406.2661).

    D maximises log D(x) + log(1 - D(G(z))), i.e. minimises binary cross-entropy with labels
    1 for real and 0 for fake. G minimises log(1 - D(G(z))) = -softplus(fake_logits): the
    *saturating* form, whose gradient vanishes when D confidently rejects fakes.
    """
    d_loss = _mean(tf.nn.softplus(-real_logits)) + _mean(tf.nn.softplus(fake_logits))
    g_loss = -_mean(tf.nn.softplus(fake_logits))
    return d_loss, g_loss


def nonsaturating(real_logits, fake_logits):
    """Goodfellow et al.'s practical variant: G maximises log D(G(z)).

    Same D loss as `minimax`; G minimises softplus(-fake_logits) = BCE(1, D(G(z))), which is
    what most "binary cross-entropy" GAN code trains.
    """
    d_loss = _mean(tf.nn.softplus(-real_logits)) + _mean(tf.nn.softplus(fake_logits))
    g_loss = _mean(tf.nn.softplus(-fake_logits))
    return d_loss, g_loss


def wasserstein(real_logits, fake_logits):
    """WGAN critic loss (Arjovsky et al. 2017, arXiv:1701.07875): D (the critic) minimises
    E[D(fake)] - E[D(real)], G minimises -E[D(fake)]. Needs a Lipschitz constraint: weight
    clipping, a gradient penalty or spectral normalisation."""
    d_loss = _mean(fake_logits) - _mean(real_logits)
    g_loss = -_mean(fake_logits)
    return d_loss, g_loss


def hinge(real_logits, fake_logits):
    """Hinge loss (Lim & Ye 2017, arXiv:1705.02894; used by SNGAN, SAGAN, BigGAN):
    D minimises E[relu(1 - D(real))] + E[relu(1 + D(fake))], G minimises -E[D(fake)]."""
    d_loss = _mean(tf.nn.relu(1.0 - real_logits)) + _mean(tf.nn.relu(1.0 + fake_logits))
    g_loss = -_mean(fake_logits)
    return d_loss, g_loss


def least_squares(real_logits, fake_logits):
    """LSGAN (Mao et al. 2017, arXiv:1611.04076) with targets a=0 (fake), b=c=1 (real):
    D minimises ½E[(D(real) - 1)²] + ½E[D(fake)²], G minimises ½E[(D(fake) - 1)²]."""
    d_loss = 0.5 * _mean(tf.square(real_logits - 1.0)) + 0.5 * _mean(tf.square(fake_logits))
    g_loss = 0.5 * _mean(tf.square(fake_logits - 1.0))
    return d_loss, g_loss


def relativistic(real_logits, fake_logits):
    """Relativistic standard GAN, RSGAN (Jolicoeur-Martineau 2018, arXiv:1807.00734):
    D estimates the probability that a real sample is more realistic than a paired fake one:
    D minimises E[softplus(-(C(real) - C(fake)))], G the same with the roles swapped."""
    difference = real_logits - fake_logits
    return _mean(tf.nn.softplus(-difference)), _mean(tf.nn.softplus(difference))


def relativistic_average(real_logits, fake_logits):
    """Relativistic average standard GAN, RaGAN (Jolicoeur-Martineau 2018): each sample is
    compared with the *mean* logit of the other kind, and G's loss is symmetric to D's."""
    real_vs_fake = real_logits - tf.reduce_mean(fake_logits)
    fake_vs_real = fake_logits - tf.reduce_mean(real_logits)
    d_loss = _mean(tf.nn.softplus(-real_vs_fake)) + _mean(tf.nn.softplus(fake_vs_real))
    g_loss = _mean(tf.nn.softplus(-fake_vs_real)) + _mean(tf.nn.softplus(real_vs_fake))
    return d_loss, g_loss


def generator_reads_real(loss_fn) -> bool:
    """Whether `loss_fn`'s generator loss depends on the real logits (the relativistic ones)."""
    function = getattr(loss_fn, "func", loss_fn)  # unwrap a functools.partial from the config
    return function in (relativistic, relativistic_average)
