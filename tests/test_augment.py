"""DiffAugment: shapes, what each policy does, differentiability, determinism."""

import keras
import numpy as np
import tensorflow as tf

from ganrun import augment


def _images():
    return tf.reshape(tf.range(2 * 16 * 16 * 1, dtype=tf.float32) + 1.0, (2, 16, 16, 1))


def test_translation_shifts_whole_images_with_zero_fill():
    images = _images()
    moved = augment.translation(images, keras.random.SeedGenerator(3)).numpy()
    assert moved.shape == (2, 16, 16, 1)
    for original, shifted in zip(images.numpy(), moved, strict=True):
        kept = shifted[shifted > 0]
        assert set(kept) <= set(original.ravel())
        # a shift by (dy, dx) keeps a (16 - |dy|) x (16 - |dx|) block: at least 14 x 14
        assert kept.size >= 14 * 14


def test_cutout_zeroes_one_square_at_most():
    images = tf.ones((64, 16, 16, 1))
    cut = augment.cutout(images, keras.random.SeedGenerator(0)).numpy()
    zeros = (cut == 0).reshape(64, -1).sum(axis=1)
    assert zeros.max() == 8 * 8 and zeros.min() > 0  # 8x8 square, possibly clipped at a border


def test_augmentation_is_differentiable_and_seeded():
    images = _images()
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment.diff_augment(images, ("translation", "cutout"),
                                                   keras.random.SeedGenerator(5)))
    gradient = tape.gradient(total, images).numpy()
    assert set(np.unique(gradient)) <= {0.0, 1.0} and gradient.sum() > 0
    again = augment.diff_augment(images, ("translation", "cutout"), keras.random.SeedGenerator(5))
    first = augment.diff_augment(images, ("translation", "cutout"), keras.random.SeedGenerator(5))
    np.testing.assert_array_equal(first.numpy(), again.numpy())
