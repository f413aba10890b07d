"""SNGAN-style ResNet generator and discriminator (Miyato et al. 2018, arXiv:1802.05957,
appendix B; the CIFAR-10 models of Gulrajani et al. 2017), sized from the data's DataSpec.

Generator: z -> Dense to (S, S, channels) -> k up-blocks -> BN, ReLU, 3x3 conv -> image,
  where S = side / 2^k is the smallest size >= 4 reachable by halving: 28x28 -> 7x7 and k = 2,
  32x32 -> 4x4 and k = 3.
  Up-block: BN, ReLU, 2x nearest upsampling, 3x3 conv, BN, ReLU, 3x3 conv, plus a shortcut
  of upsampling and a 1x1 conv.
Discriminator: an "optimized" first down-block, a second down-block, two plain blocks
  (28x28 -> 14 -> 7; 32x32 -> 16 -> 8), ReLU, global average pooling (the paper sums; the
  mean only rescales the last layer's weights), one linear logit (+ projection when
  conditional). Spectral normalisation on every conv/dense layer when asked (the SNGAN recipe).
Shapes and ranges as in `ganrun.models.image`.
"""

from __future__ import annotations

import keras
from keras import layers

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.models.image import (
    _require_image,
    discriminator_head,
    generator_inputs,
    pixel_range,
    sn,
)


def _upsamplings(height: int, width: int) -> int:
    """How many 2x upsamplings take the generator from its start size (>= 4) to the image."""
    count = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= 4:
        height, width, count = height // 2, width // 2, count + 1
    if count == 0:
        raise ConfigError(f"the resnet generator needs image sides divisible by 2 with a start "
                          f"size >= 4, got {height}x{width}; use model=dcgan or model=mlp.")
    return count


def _up_block(x, channels: int, name: str):
    shortcut = layers.UpSampling2D(name=f"{name}_skip_up")(x)
    shortcut = layers.Conv2D(channels, 1, name=f"{name}_skip_conv")(shortcut)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_act1")(x)
    x = layers.UpSampling2D(name=f"{name}_up")(x)
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = layers.ReLU(name=f"{name}_act2")(x)
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(x)
    return layers.Add(name=f"{name}_add")([x, shortcut])


def resnet_generator(spec: DataSpec, latent_dim: int, channels: int = 128,
                     output_activation: str = "tanh", conditional: bool = False) -> keras.Model:
    """SNGAN ResNet generator; `channels` per block (the paper: 256 for CIFAR-10)."""
    height, width, image_channels = _require_image(spec)
    pixel_range(output_activation)
    ups = _upsamplings(height, width)
    inputs, x = generator_inputs(spec, latent_dim, conditional)
    start_h, start_w = height // 2 ** ups, width // 2 ** ups
    x = layers.Dense(start_h * start_w * channels, name="project")(x)
    x = layers.Reshape((start_h, start_w, channels), name="reshape")(x)
    for index in range(ups):
        x = _up_block(x, channels, f"up_{index}")
    x = layers.BatchNormalization(name="out_bn")(x)
    x = layers.ReLU(name="out_act")(x)
    images = layers.Conv2D(image_channels, 3, padding="same", activation=output_activation,
                           name="image")(x)
    return keras.Model(inputs, images, name="generator")


def _down_block(x, channels: int, name: str, spectral_norm: bool, downsample: bool,
                first: bool = False):
    """Residual block; `first` is SNGAN's optimized block (no ReLU before the first conv,
    shortcut pools before its 1x1 conv)."""
    def conv(size, suffix):
        return sn(layers.Conv2D(channels, size, padding="same", name=f"{name}_{suffix}"),
                  spectral_norm)

    shortcut = x
    if first:
        shortcut = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
        shortcut = conv(1, "skip_conv")(shortcut)
    elif downsample or x.shape[-1] != channels:
        shortcut = conv(1, "skip_conv")(shortcut)
        if downsample:
            shortcut = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
    if not first:
        x = layers.ReLU(name=f"{name}_act0")(x)
    x = conv(3, "conv1")(x)
    x = layers.ReLU(name=f"{name}_act1")(x)
    x = conv(3, "conv2")(x)
    if downsample:
        x = layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    return layers.Add(name=f"{name}_add")([x, shortcut])


def resnet_discriminator(spec: DataSpec, channels: int = 128, spectral_norm: bool = True,
                         conditional: bool = False) -> keras.Model:
    """SNGAN ResNet discriminator: 2 down-blocks, 2 plain blocks, `channels` each."""
    height, width, _ = _require_image(spec)
    if height % 4 or width % 4:
        raise ConfigError(f"the resnet discriminator halves the image twice and needs sides "
                          f"divisible by 4, got {height}x{width}; use model=dcgan.")
    images = keras.Input(spec.shape, name="image")
    x = _down_block(images, channels, "block_0", spectral_norm, downsample=True, first=True)
    x = _down_block(x, channels, "block_1", spectral_norm, downsample=True)
    x = _down_block(x, channels, "block_2", spectral_norm, downsample=False)
    x = _down_block(x, channels, "block_3", spectral_norm, downsample=False)
    x = layers.ReLU(name="out_act")(x)
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    return discriminator_head(images, features, spec, conditional, spectral_norm)
