"""Architectures: shapes read from the DataSpec, pinned parameter counts, pixel ranges."""

import numpy as np
import pytest

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.models import image

MNIST = DataSpec("image", "mnist", (28, 28, 1), 10, 60000, "test")
COLOUR32 = DataSpec("image", "colour", (32, 32, 3), 0, 100, "test")


def test_seed_mlp_has_the_seed_architecture():
    g = image.mlp_generator(MNIST, 100, [256, 512], "relu", "sigmoid")
    d = image.mlp_discriminator(MNIST, [512, 256], "relu")
    # G 100→256→512→784, D 784→512→256→1 (weights + biases).
    assert image.parameter_count(g) == (100 * 256 + 256) + (256 * 512 + 512) + (512 * 784 + 784)
    assert image.parameter_count(d) == (784 * 512 + 512) + (512 * 256 + 256) + (256 + 1)
    images = np.asarray(g(np.zeros((2, 100), np.float32)))
    assert images.shape == (2, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
    assert d(images).shape == (2, 1)


@pytest.mark.parametrize("spec, g_params, d_params", [
    (MNIST, 771_969, 138_561),  # checked by hand: 627200+12544+131072+128+1025
    (COLOUR32, 969_859, 142_529),
])
def test_dcgan_sizes_follow_the_data(spec, g_params, d_params):
    g = image.dcgan_generator(spec, 100, [128, 64])
    d = image.dcgan_discriminator(spec, [64, 128])
    assert image.parameter_count(g) == g_params
    assert image.parameter_count(d) == d_params
    images = np.asarray(g(np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32)))
    assert images.shape == (3, *spec.shape)
    assert images.min() >= -1 and images.max() <= 1
    assert d(images).shape == (3, 1)


def test_minibatch_std_appends_the_group_standard_deviation():
    x = np.random.default_rng(0).normal(size=(8, 3, 3, 2)).astype(np.float32)
    out = np.asarray(image.MinibatchStdDev(4)(x))
    assert out.shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(out[..., :2], x)
    # Groups of 4 are the rows i mod 2: {0, 2, 4, 6} and {1, 3, 5, 7}.
    for member in range(2):
        expected = np.sqrt(x[member::2].var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(out[member::2, ..., 2], expected, rtol=1e-5)
    # 6 rows are not divisible by 4: one group of all 6.
    odd = np.asarray(image.MinibatchStdDev(4)(x[:6]))
    np.testing.assert_allclose(odd[..., 2], np.sqrt(x[:6].var(axis=0) + 1e-8).mean(), rtol=1e-5)


def test_dcgan_discriminator_with_minibatch_std_saves_and_loads_in_safe_mode(tmp_path):
    import keras  # noqa: PLC0415

    d = image.dcgan_discriminator(MNIST, [64, 128], minibatch_std=4, conditional=True)
    # The extra channel adds 7*7 inputs to the logit and to the projection's embedding.
    plain = image.dcgan_discriminator(MNIST, [64, 128], conditional=True)
    assert image.parameter_count(d) - image.parameter_count(plain) == 49 + 10 * 49
    images = np.random.default_rng(1).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
    labels = np.arange(4, dtype=np.int32)
    d.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded([images, labels])),
                               np.asarray(d([images, labels])), rtol=1e-6)
    with pytest.raises(ConfigError, match="minibatch_std"):
        image.dcgan_discriminator(MNIST, [64, 128], minibatch_std=1)


def test_dcgan_rejects_sizes_it_cannot_reach():
    odd = DataSpec("image", "odd", (30, 30, 1), 0, 10, "test")
    with pytest.raises(ConfigError, match="divisible by 4"):
        image.dcgan_generator(odd, 100, [128, 64])


def test_unknown_output_activation_is_a_config_error():
    with pytest.raises(ConfigError, match="output_activation"):
        image.mlp_generator(MNIST, 100, [8], output_activation="relu")
