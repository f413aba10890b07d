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


def test_dcgan_rejects_sizes_it_cannot_reach():
    odd = DataSpec("image", "odd", (30, 30, 1), 0, 10, "test")
    with pytest.raises(ConfigError, match="divisible by 4"):
        image.dcgan_generator(odd, 100, [128, 64])


def test_unknown_output_activation_is_a_config_error():
    with pytest.raises(ConfigError, match="output_activation"):
        image.mlp_generator(MNIST, 100, [8], output_activation="relu")
