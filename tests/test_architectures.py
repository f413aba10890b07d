"""The SNGAN-style ResNet, spectral normalisation and the class-conditional models: pinned
parameter counts (checked by hand where noted), shapes, and what the layers do."""

import numpy as np
import pytest
import tensorflow as tf

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.models import image, resnet

MNIST = DataSpec("image", "mnist", (28, 28, 1), 10, 60000, "test")
COLOUR32 = DataSpec("image", "colour", (32, 32, 3), 10, 100, "test")
UNLABELLED = DataSpec("image", "plain", (28, 28, 1), 0, 100, "test")


@pytest.mark.parametrize("spec, g_params, d_params, ups", [
    # G 28x28: dense 128->7*7*64 (404,544) + 2 up-blocks of 78,272 + out BN 128 + conv 577.
    (MNIST, 561_793, 263_489, 2),
    (COLOUR32, 368_771, 264_769, 3),
])
def test_resnet_sizes_follow_the_data(spec, g_params, d_params, ups):
    g = resnet.resnet_generator(spec, 128, channels=64)
    d = resnet.resnet_discriminator(spec, channels=64)
    assert image.parameter_count(g) == g_params
    assert image.parameter_count(d) == d_params
    assert sum(layer.name.endswith("_add") for layer in g.layers) == ups
    images = np.asarray(g(tf.random.normal((3, 128))))
    assert images.shape == (3, *spec.shape) and images.min() >= -1 and images.max() <= 1
    assert d(images).shape == (3, 1)


def test_conditional_models_take_labels():
    g = image.dcgan_generator(MNIST, 100, [128, 64], conditional=True)
    d = image.dcgan_discriminator(MNIST, [64, 128], conditional=True)
    # + label embedding 10x32 and the projection's 32 extra inputs (32 x 7*7*128).
    assert image.parameter_count(g) == 771_969 + 320 + 32 * 6272
    # + the projection's class embedding, 10 x 6272 features.
    assert image.parameter_count(d) == 138_561 + 10 * 6272
    labels = tf.constant([0, 3, 9])
    images = g([tf.random.normal((3, 100)), labels], training=False)
    assert images.shape == (3, 28, 28, 1)
    assert d([images, labels]).shape == (3, 1)


def test_projection_term_is_the_class_embedding_dot_features():
    d = image.mlp_discriminator(MNIST, [16], conditional=True)
    images, labels = tf.random.normal((4, 28, 28, 1)), tf.constant([1, 2, 1, 7])
    hidden = tf.nn.relu(tf.matmul(tf.reshape(images, (4, -1)), d.get_layer("dense_0").kernel)
                        + d.get_layer("dense_0").bias)
    embedding = tf.gather(d.get_layer("class_embedding").embeddings, labels)
    expected = (tf.matmul(hidden, d.get_layer("logit").kernel) + d.get_layer("logit").bias
                + tf.reduce_sum(embedding * hidden, axis=1, keepdims=True))
    np.testing.assert_allclose(d([images, labels]).numpy(), expected.numpy(), rtol=1e-5,
                               atol=1e-5)


def test_conditional_needs_labels():
    with pytest.raises(ConfigError, match="labelled data"):
        image.dcgan_generator(UNLABELLED, 100, [128, 64], conditional=True)


def test_spectral_norm_bounds_the_largest_singular_value_and_keeps_u():
    d = image.mlp_discriminator(MNIST, [64], spectral_norm=True)
    assert image.parameter_count(d) == image.parameter_count(image.mlp_discriminator(MNIST, [64]))
    assert sorted(w.name for w in d.non_trainable_weights) == ["vector_u", "vector_u"]
    layer = d.get_layer("dense_0_sn")
    layer.kernel.assign(layer.kernel * 50.0)  # far from normalised
    for _ in range(30):  # each training call runs one power iteration and rescales the kernel
        d(tf.random.normal((2, 28, 28, 1)), training=True)
    sigma = np.linalg.svd(layer.kernel.numpy(), compute_uv=False)[0]
    assert sigma == pytest.approx(1.0, abs=0.02)
