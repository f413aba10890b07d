"""Image generators and discriminators, each built from the data's `DataSpec`.

Conventions shared by every builder here:
  generator:      z float32 (B, latent_dim) ~ N(0, 1)  ->  images float32 (B, H, W, C) in the
                  range of its output activation: [0, 1] for "sigmoid", [-1, 1] for "tanh".
  discriminator:  images float32 (B, H, W, C) in that same range  ->  logits float32 (B, 1).
Discriminators have no batch normalisation, so real and fake batches may be evaluated
together or apart with the same result. Models are functional Keras models made of stock
layers only, so `generator.keras` loads in Keras's safe mode.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError

PIXEL_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def pixel_range(output_activation: str) -> tuple[float, float]:
    """The (low, high) pixel range a generator with this output activation produces."""
    if output_activation not in PIXEL_RANGES:
        raise ConfigError(f"output_activation={output_activation!r} is not supported; use one "
                          f"of {sorted(PIXEL_RANGES)}.")
    return PIXEL_RANGES[output_activation]


def _require_image(spec: DataSpec) -> tuple[int, int, int]:
    if spec.kind != "image" or len(spec.shape) != 3:
        raise ConfigError(f"this model needs image data (H, W, C) but data '{spec.name}' is "
                          f"{spec.kind} {spec.shape}; choose a text model for text data.")
    return spec.shape


def mlp_generator(spec: DataSpec, latent_dim: int, units: list[int], activation: str = "relu",
                  output_activation: str = "sigmoid") -> keras.Model:
    """Fully connected generator: z -> units... -> H*W*C -> image (the seed's 100→256→512→784)."""
    height, width, channels = _require_image(spec)
    pixel_range(output_activation)
    z = keras.Input((latent_dim,), name="z")
    x = z
    for index, width_ in enumerate(units):
        x = layers.Dense(width_, activation=activation, name=f"dense_{index}")(x)
    x = layers.Dense(height * width * channels, activation=output_activation, name="pixels")(x)
    images = layers.Reshape((height, width, channels), name="image")(x)
    return keras.Model(z, images, name="generator")


def mlp_discriminator(spec: DataSpec, units: list[int], activation: str = "relu") -> keras.Model:
    """Fully connected discriminator: image -> H*W*C -> units... -> 1 logit (784→512→256→1)."""
    images = keras.Input(_require_image(spec), name="image")
    x = layers.Flatten(name="flatten")(images)
    for index, width_ in enumerate(units):
        x = layers.Dense(width_, activation=activation, name=f"dense_{index}")(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(images, logits, name="discriminator")


def dcgan_generator(spec: DataSpec, latent_dim: int, channels: list[int],
                    kernel_size: int = 4, output_activation: str = "tanh") -> keras.Model:
    """DCGAN generator (Radford et al. 2015, arXiv:1511.06434), sized by the data.

    z -> Dense to (H/2^k, W/2^k, channels[0]) -> k stride-2 transposed convolutions, the
    first k-1 with channels[1:] and batch norm + LeakyReLU(0.2), the last to the image's
    channel count with the output activation; k = len(channels).
    """
    height, width, image_channels = _require_image(spec)
    pixel_range(output_activation)
    factor = 2 ** len(channels)
    if height % factor or width % factor:
        raise ConfigError(f"dcgan with {len(channels)} upsamplings needs image sides divisible "
                          f"by {factor}, got {height}x{width}; shorten model.generator.channels.")
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(height // factor * width // factor * channels[0], use_bias=False,
                     name="project")(z)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((height // factor, width // factor, channels[0]), name="reshape")(x)
    for index, filters in enumerate(channels[1:]):
        x = layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same",
                                   use_bias=False, name=f"up_{index}")(x)
        x = layers.BatchNormalization(name=f"up_{index}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"up_{index}_act")(x)
    images = layers.Conv2DTranspose(image_channels, kernel_size, strides=2, padding="same",
                                    activation=output_activation, name="image")(x)
    return keras.Model(z, images, name="generator")


def dcgan_discriminator(spec: DataSpec, channels: list[int], kernel_size: int = 4) -> keras.Model:
    """DCGAN discriminator without batch norm: stride-2 convolutions with LeakyReLU(0.2),
    flatten, one linear logit."""
    height, width, _ = _require_image(spec)
    if min(height, width) < 2 ** len(channels):
        raise ConfigError(f"dcgan discriminator with {len(channels)} stride-2 layers needs "
                          f"images of at least {2 ** len(channels)} pixels a side.")
    images = keras.Input(spec.shape, name="image")
    x = images
    for index, filters in enumerate(channels):
        x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", name=f"down_{index}")(x)
        x = layers.LeakyReLU(0.2, name=f"down_{index}_act")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(images, logits, name="discriminator")


def parameter_count(model: keras.Model) -> int:
    """Number of trainable scalars in a model."""
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))
