"""Image generators and discriminators, each built from the data's `DataSpec`.

Conventions shared by every builder here:
  generator:      z float32 (B, latent_dim) ~ N(0, 1)  ->  images float32 (B, H, W, C) in the
                  range of its output activation: [0, 1] for "sigmoid", [-1, 1] for "tanh".
  discriminator:  images float32 (B, H, W, C) in that same range  ->  logits float32 (B, 1).
  conditional (model.conditional=true, labelled data): the generator takes [z, labels] and
                  concatenates a learned label embedding to z; the discriminator takes
                  [images, labels] and adds a projection term <embed(y), features> to its
                  logit (Miyato & Koyama 2018, arXiv:1802.05637). labels: int32 (B,).
  spectral_norm:  discriminator layers wrapped in keras.layers.SpectralNormalization
                  (Miyato et al. 2018, arXiv:1802.05957). Keras's layer divides the stored
                  kernel by its power-iteration estimate of the largest singular value on
                  every training call (a projection; no gradient flows through sigma, unlike
                  the paper's reparameterisation); its vector `u` is a weight, so it is
                  checkpointed.
  minibatch_std:  (dcgan discriminator) ProGAN's minibatch standard deviation before the
                  logit, one extra feature channel computed over groups of examples
                  (MinibatchStdDev); 0 = off.
Discriminators have no batch normalisation; without minibatch_std, real and fake batches
may be evaluated together or apart with the same result (with it, the trainer runs them
apart). Models are functional Keras models of stock layers and the registered
MinibatchStdDev, so `generator.keras` and `discriminator.keras` load in Keras's safe mode.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
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


def _num_classes(spec: DataSpec, conditional: bool) -> int:
    if conditional and spec.num_classes < 2:
        raise ConfigError(f"model.conditional=true needs labelled data, but data '{spec.name}' "
                          "has no class labels; set model.conditional=false or use labelled data.")
    return spec.num_classes if conditional else 0


def generator_inputs(spec: DataSpec, latent_dim: int, conditional: bool,
                     embedding_dim: int = 32):
    """(model inputs, the (B, latent_dim [+ embedding_dim]) tensor the generator starts from)."""
    z = keras.Input((latent_dim,), name="z")
    classes = _num_classes(spec, conditional)
    if not classes:
        return z, z
    labels = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(classes, embedding_dim, name="label_embedding")(labels)
    return [z, labels], layers.Concatenate(name="z_and_label")([z, embedded])


def sn(layer: layers.Layer, spectral_norm: bool) -> layers.Layer:
    """`layer`, wrapped in Keras's SpectralNormalization when asked."""
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer


def discriminator_head(images, features, spec: DataSpec, conditional: bool,
                       spectral_norm: bool) -> keras.Model:
    """features (B, F) -> one logit, plus the projection term for a conditional model."""
    logits = sn(layers.Dense(1, name="logit"), spectral_norm)(features)
    classes = _num_classes(spec, conditional)
    if not classes:
        return keras.Model(images, logits, name="discriminator")
    labels = keras.Input((), dtype="int32", name="label")
    # Not spectrally normalised: Keras's wrapper casts its output to the input's dtype,
    # which for integer labels would truncate the projection and cut its gradient.
    embedded = layers.Embedding(classes, features.shape[-1], name="class_embedding")(labels)
    projection = layers.Dot(axes=1, name="projection")([embedded, features])
    logits = layers.Add(name="logit_with_projection")([logits, projection])
    return keras.Model([images, labels], logits, name="discriminator")


def mlp_generator(spec: DataSpec, latent_dim: int, units: list[int], activation: str = "relu",
                  output_activation: str = "sigmoid", conditional: bool = False) -> keras.Model:
    """Fully connected generator: z -> units... -> H*W*C -> image (the seed's 100→256→512→784).
    `activation` is any Keras name: relu (the seed's), leaky_relu (slope 0.2), ..."""
    height, width, channels = _require_image(spec)
    pixel_range(output_activation)
    z, x = generator_inputs(spec, latent_dim, conditional)
    for index, width_ in enumerate(units):
        x = layers.Dense(width_, activation=activation, name=f"dense_{index}")(x)
    x = layers.Dense(height * width * channels, activation=output_activation, name="pixels")(x)
    images = layers.Reshape((height, width, channels), name="image")(x)
    return keras.Model(z, images, name="generator")


def mlp_discriminator(spec: DataSpec, units: list[int], activation: str = "relu",
                      spectral_norm: bool = False, conditional: bool = False) -> keras.Model:
    """Fully connected discriminator: image -> H*W*C -> units... -> 1 logit (784→512→256→1)."""
    images = keras.Input(_require_image(spec), name="image")
    x = layers.Flatten(name="flatten")(images)
    for index, width_ in enumerate(units):
        x = sn(layers.Dense(width_, activation=activation, name=f"dense_{index}"),
               spectral_norm)(x)
    return discriminator_head(images, x, spec, conditional, spectral_norm)


def dcgan_generator(spec: DataSpec, latent_dim: int, channels: list[int],
                    kernel_size: int = 4, output_activation: str = "tanh",
                    conditional: bool = False) -> keras.Model:
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
    z, x = generator_inputs(spec, latent_dim, conditional)
    x = layers.Dense(height // factor * width // factor * channels[0], use_bias=False,
                     name="project")(x)
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


def dcgan_discriminator(spec: DataSpec, channels: list[int], kernel_size: int = 4,
                        spectral_norm: bool = False, conditional: bool = False,
                        minibatch_std: int = 0) -> keras.Model:
    """DCGAN discriminator without batch norm: stride-2 convolutions with LeakyReLU(0.2),
    (the minibatch standard deviation channel over groups of `minibatch_std`, if > 0),
    flatten, one linear logit."""
    if isinstance(minibatch_std, bool) or not isinstance(minibatch_std, int) \
            or minibatch_std < 0 or minibatch_std == 1:
        raise ConfigError(f"model.discriminator.minibatch_std={minibatch_std!r} must be 0 (off) "
                          "or a group size of at least 2 (ProGAN: 4).")
    height, width, _ = _require_image(spec)
    if min(height, width) < 2 ** len(channels):
        raise ConfigError(f"dcgan discriminator with {len(channels)} stride-2 layers needs "
                          f"images of at least {2 ** len(channels)} pixels a side.")
    images = keras.Input(spec.shape, name="image")
    x = images
    for index, filters in enumerate(channels):
        x = sn(layers.Conv2D(filters, kernel_size, strides=2, padding="same",
                             name=f"down_{index}"), spectral_norm)(x)
        x = layers.LeakyReLU(0.2, name=f"down_{index}_act")(x)
    if minibatch_std:
        x = MinibatchStdDev(minibatch_std, name="minibatch_std")(x)
    x = layers.Flatten(name="flatten")(x)
    return discriminator_head(images, x, spec, conditional, spectral_norm)


@keras.saving.register_keras_serializable("ganrun")
class MinibatchStdDev(layers.Layer):
    """ProGAN's minibatch standard deviation (Karras et al. 2018, arXiv:1710.10196, sec. 3):
    appends one channel with the standard deviation of every feature over a group of
    `group_size` examples, averaged over the features, so the discriminator sees how varied
    a batch is and can penalise a generator whose samples look alike (low recall).

    x (B, H, W, C) -> (B, H, W, C + 1). Example i is in group i mod (B / group_size), as in
    StyleGAN's reshape; a batch that `group_size` does not divide is one group (all B).
    The statistic couples the examples of a batch: real and fake must not share a pass.
    """

    mixes_examples = True  # read by ganrun.trainers.policy.resolve_fuse_d_pass

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)

    def call(self, x):
        shape = tf.shape(x)
        batch = shape[0]
        groups = tf.where(batch % self.group_size == 0, self.group_size, batch)
        y = tf.reshape(tf.cast(x, tf.float32), tf.concat([[groups, batch // groups],
                                                          shape[1:]], 0))  # (G, B/G, H, W, C)
        y = tf.sqrt(tf.math.reduce_variance(y, axis=0) + 1e-8)  # (B/G, H, W, C)
        y = tf.reduce_mean(y, axis=[1, 2, 3], keepdims=True)  # (B/G, 1, 1, 1)
        y = tf.tile(tf.cast(y, x.dtype), tf.stack([groups, shape[1], shape[2], 1]))
        return tf.concat([x, y], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def parameter_count(model: keras.Model) -> int:
    """Number of trainable scalars in a model."""
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))
