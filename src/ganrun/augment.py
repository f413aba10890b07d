"""Differentiable augmentation (DiffAugment) and instance noise for the discriminator's input.

DiffAugment (Zhao et al. 2020, arXiv:2006.10738): the *same kind* of random transform is
applied to real and fake images, in both the discriminator's and the generator's update, and
it is differentiable so the generator's gradient passes through it. This keeps D from
memorising a small training set without the augmentations leaking into the samples.
Instance noise (Sønderby et al. 2016, arXiv:1610.04490): Gaussian noise on D's inputs, real
and fake alike, annealed to zero, so the two distributions overlap early in training.

Images are float32 (B, H, W, C) in the generator's pixel range; randomness comes from the
trainer's SeedGenerator, a fresh draw per call.
"""

from __future__ import annotations

import keras
import tensorflow as tf

POLICIES = ("translation", "cutout")


def translation(images: tf.Tensor, rng, ratio: float = 0.125) -> tf.Tensor:
    """Shift each image by up to ratio·size pixels along each axis, filling with zeros."""
    height, width = images.shape[1], images.shape[2]
    pad_h, pad_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    batch = tf.shape(images)[0]
    shift_h = keras.random.randint((batch, 1), -pad_h, pad_h + 1, seed=rng)
    shift_w = keras.random.randint((batch, 1), -pad_w, pad_w + 1, seed=rng)
    padded = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = tf.range(height)[None, :] + pad_h + shift_h          # (B, H) rows of `padded`
    columns = tf.range(width)[None, :] + pad_w + shift_w        # (B, W)
    picked = tf.gather(padded, rows, axis=1, batch_dims=1)      # (B, H, W + 2 pad_w, C)
    return tf.gather(picked, columns, axis=2, batch_dims=1)     # (B, H, W, C)


def cutout(images: tf.Tensor, rng, ratio: float = 0.5) -> tf.Tensor:
    """Zero one square of side ratio·size at a random position per image (may overlap the
    border, as in DiffAugment)."""
    height, width = images.shape[1], images.shape[2]
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    batch = tf.shape(images)[0]
    top = keras.random.randint((batch, 1, 1), 0, height + (1 - size_h % 2), seed=rng)
    left = keras.random.randint((batch, 1, 1), 0, width + (1 - size_w % 2), seed=rng)
    rows = tf.range(height)[None, :, None] - top + size_h // 2   # (B, H, 1)
    columns = tf.range(width)[None, None, :] - left + size_w // 2  # (B, 1, W)
    inside = ((rows >= 0) & (rows < size_h)) & ((columns >= 0) & (columns < size_w))
    return images * tf.cast(~inside, images.dtype)[..., None]


def diff_augment(images: tf.Tensor, policies: tuple[str, ...], rng) -> tf.Tensor:
    """Apply each policy in order (no-op for an empty tuple)."""
    for policy in policies:
        images = {"translation": translation, "cutout": cutout}[policy](images, rng)
    return images


def instance_noise(images: tf.Tensor, stddev: tf.Tensor, rng) -> tf.Tensor:
    """images + N(0, stddev²) per pixel."""
    return images + stddev * keras.random.normal(tf.shape(images), seed=rng)
