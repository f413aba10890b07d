"""The WGAN-GP character-level language model (Gulrajani et al. 2017, arXiv:1704.00028,
section 5.2; their `gan_language.py`): a non-autoregressive convolutional generator that emits
a softmax over the vocabulary at every position at once, and a convolutional critic that reads
(soft) one-hot sequences.

Both are functional Keras models of stock layers (Dense, Reshape, ReLU, Conv1D, Rescaling, Add,
Softmax, Flatten), so `generator.keras` loads with `safe_mode=True`. They train as an image
GAN does (`ganrun.trainers.latent_text`): real batches are the one-hot encodings of the
training id sequences, fakes are G's softmax; the gradient penalty interpolates between
the two in (B, L, V) space, as in the paper.

Shapes (L = spec.shape[0] = data.max_len, V = spec.vocab_size, d = dim):
  generator: z float32 (B, latent_dim) -> probabilities float32 (B, L, V), each row summing to 1.
  critic:    one-hot or softmax float32 (B, L, V) in [0, 1] -> critic values (B, 1), unbounded.
"""

from __future__ import annotations

import keras

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError


def _check_sizes(dim: int, blocks: int, kernel_size: int) -> None:
    for name, value in (("dim", dim), ("blocks", blocks), ("kernel_size", kernel_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"model.*.{name}={value!r} must be a positive integer.")


def _residual_blocks(x, dim: int, blocks: int, kernel_size: int, scale: float, prefix: str):
    """`blocks` times x + scale * Conv(ReLU(Conv(ReLU(x)))) on (B, L, dim), 'same' padding,
    as gan_language.py's ResBlock (no normalisation: the critic's penalty is per example)."""
    for block in range(blocks):
        name = f"{prefix}_block{block + 1}"
        h = x
        for index in (1, 2):
            h = keras.layers.ReLU(name=f"{name}_relu{index}")(h)
            h = keras.layers.Conv1D(dim, kernel_size, padding="same", name=f"{name}_conv{index}")(h)
        h = keras.layers.Rescaling(scale, name=f"{name}_scale")(h)
        x = keras.layers.Add(name=f"{name}_add")([x, h])
    return x


def wgan_char_generator(spec: DataSpec, latent_dim: int = 128, dim: int = 512, blocks: int = 5,
                        kernel_size: int = 5, residual_scale: float = 0.3) -> keras.Model:
    """z (B, latent_dim) -> Dense(L * dim) -> (B, L, dim) -> `blocks` residual blocks ->
    Conv1D(V, 1) -> softmax over the V characters at each position: (B, L, V)."""
    length, vocab = spec.text_shape("model=wgan_char")
    _check_sizes(dim, blocks, kernel_size)
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(length * dim, name="project")(z)
    x = keras.layers.Reshape((length, dim), name="to_sequence")(x)
    x = _residual_blocks(x, dim, blocks, kernel_size, residual_scale, "g")
    x = keras.layers.Conv1D(vocab, 1, name="to_vocabulary")(x)
    probabilities = keras.layers.Softmax(axis=-1, name="softmax")(x)
    return keras.Model(z, probabilities, name="wgan_char_generator")


def wgan_char_critic(spec: DataSpec, dim: int = 512, blocks: int = 5, kernel_size: int = 5,
                     residual_scale: float = 0.3) -> keras.Model:
    """(soft) one-hot (B, L, V) -> Conv1D(dim, 1) -> `blocks` residual blocks -> flatten ->
    Dense(1): one unbounded critic value per sequence, (B, 1)."""
    length, vocab = spec.text_shape("model=wgan_char")
    _check_sizes(dim, blocks, kernel_size)
    sequence = keras.Input((length, vocab), name="one_hot")
    x = keras.layers.Conv1D(dim, 1, name="embed")(sequence)
    x = _residual_blocks(x, dim, blocks, kernel_size, residual_scale, "d")
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(sequence, keras.layers.Dense(1, name="critic")(x), name="wgan_char_critic")
