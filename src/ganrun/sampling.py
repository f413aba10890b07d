"""Drawing from a generator: fixed latents, sample-grid inputs, images in [0, 1], and text
(autoregressive rollouts or argmax decoding of a latent text model).

Everything here takes a Keras generator and plain arguments, so the trainers (sample grids
during training), the evaluation and `ganrun sample` share one way of drawing, and the same
weights and seed always give the same samples. Restoring a generator from a run directory is
`ganrun.sample.load_generator` (it needs `ganrun.build`, which sits above this module).
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from ganrun.errors import ConfigError
from ganrun.sample_output import image_chunks

CHUNK = 500  # images generated per forward pass, to bound memory for large n


def fixed_latents(count: int, latent_dim: int, seed: int) -> tf.Tensor:
    """The same (count, latent_dim) N(0, 1) latents for a given seed, on any machine."""
    return tf.random.stateless_normal((count, latent_dim), seed=[seed, 0x5EED])


def latent_dim(generator: keras.Model) -> int:
    """The width of a latent generator's z input (its first input)."""
    return int(generator.inputs[0].shape[-1])


def grid_inputs(count: int, latent_dim: int, seed: int, num_classes: int = 0):
    """Fixed inputs of a sample grid: (latents, labels or None, columns or None).

    Unconditional: `count` latents in a square-ish grid. Conditional: one row per class,
    max(1, count // num_classes) columns, so the grid holds that many images of each class.
    """
    if not num_classes:
        return fixed_latents(count, latent_dim, seed), None, None
    labels, columns = grid_labels(count, num_classes)
    return fixed_latents(len(labels), latent_dim, seed), labels, columns


def grid_labels(count: int, num_classes: int) -> tuple[np.ndarray, int]:
    """int32 labels of a grid with one row per class and max(1, count // num_classes)
    columns, and that column count."""
    columns = max(1, count // num_classes)
    return np.repeat(np.arange(num_classes, dtype=np.int32), columns), columns


def num_classes(generator: keras.Model) -> int:
    """The class count of a conditional generator (ganrun.models.image), 0 otherwise."""
    return generator.get_layer("label_embedding").input_dim if len(generator.inputs) > 1 else 0


def proportional_labels(count: int, frequencies) -> np.ndarray:
    """int32 (count,) labels, class k repeated in proportion to frequencies[k] (largest
    remainders, so the counts are exact to one image), in a fixed shuffled order: metrics
    computed over splits of the samples (the classifier score) need every split mixed."""
    shares = np.asarray(frequencies, np.float64) / np.sum(frequencies) * count
    counts = np.floor(shares).astype(np.int64)
    counts[np.argsort(counts - shares)[: count - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return np.random.default_rng(0).permutation(labels)


def class_labels(generator: keras.Model, count: int, label: int | None = None,
                 frequencies=()) -> np.ndarray | None:
    """int32 (count,) labels for a conditional generator: all `label`; without one, in the
    training data's class proportions (`frequencies`, DataSpec.class_frequencies) when
    known, else 0..K-1 in turn. None for an unconditional generator."""
    classes = num_classes(generator)
    if not classes:
        if label is not None:
            raise ConfigError(f"label={label} needs a class-conditional run "
                              "(model.conditional=true); drop label=.")
        return None
    if label is not None and not 0 <= int(label) < classes:
        raise ConfigError(f"label={label} is not a class of this run; use 0..{classes - 1}.")
    if label is not None:
        return np.full(count, int(label), np.int32)
    if len(frequencies) == classes:
        return proportional_labels(count, frequencies)
    return (np.arange(count) % classes).astype(np.int32)


def to_unit(images, pixel_range: tuple[float, float]) -> np.ndarray:
    """float32 images mapped from the generator's `pixel_range` (low, high) to [0, 1]."""
    low, high = pixel_range
    return ((np.asarray(images) - low) / (high - low)).astype(np.float32)


def generate(generator: keras.Model, pixel_range, count: int, seed: int,
             labels: np.ndarray | None = None, frequencies=()) -> np.ndarray:
    """float32 (count, H, W, C) images in [0, 1] from latents fixed by `seed` (drawn block by
    block as ganrun.sample_output draws them, so a streamed .npz holds the same images); a
    conditional generator gets `labels` (default: see class_labels, with the data's
    `frequencies`)."""
    if labels is None:
        labels = class_labels(generator, count, frequencies=frequencies)
    chunks = image_chunks(generator, pixel_range, count, seed, CHUNK,
                          lambda start, stop: None if labels is None else labels[start:stop])
    return np.concatenate(list(chunks))


_ROLLOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sample_ids(generator, count: int, seed: int, temperature: float = 1.0,
               chunk: int = 1000) -> np.ndarray:
    """int32 (count, L) ids of an autoregressive generator (ganrun.models.text) sampled at
    `temperature`, in chunks, seeded by (seed, chunk index)."""
    rollout = _ROLLOUTS.get(generator)
    if rollout is None:  # one compiled sampler per generator (shapes vary only in batch)
        rollout = tf.function(lambda batch, seed, t: generator.rollout(
            batch, seed, temperature=t, soft=False)[0])
        _ROLLOUTS[generator] = rollout
    parts = []
    for index, start in enumerate(range(0, count, chunk)):
        size = min(chunk, count - start)
        parts.append(rollout(tf.constant(size), tf.constant([seed, index]),
                             tf.constant(temperature, tf.float32)).numpy())
    return np.concatenate(parts).astype(np.int32)


def argmax_ids(generator: keras.Model, count: int, seed: int, chunk: int = 1000) -> np.ndarray:
    """int32 (count, L) ids of a latent text generator (model=wgan_char, softmax (B, L, V)):
    the most probable token at each position (gan_language.py's decoding) for the fixed
    latents of `seed`."""
    latents = fixed_latents(count, latent_dim(generator), seed)
    parts = [tf.argmax(generator(latents[start:start + chunk], training=False), axis=-1)
             for start in range(0, count, chunk)]
    return np.concatenate([part.numpy() for part in parts]).astype(np.int32)


def autoregressive(generator) -> bool:
    """Whether the generator samples token by token (relgan: it has NLL-gen and temperatures)
    rather than emitting every position from a latent at once (model=wgan_char)."""
    return hasattr(generator, "rollout")


def draw_ids(generator, n: int, seed: int, temperature: float = 1.0) -> tuple[np.ndarray, str]:
    """int32 (n, L) ids and how they were drawn. An autoregressive generator (relgan) samples
    at `temperature`; a latent one (model=wgan_char) emits all positions at once and is decoded
    by argmax per position (as Gulrajani et al.'s gan_language.py), where no temperature applies."""
    if autoregressive(generator):
        return sample_ids(generator, n, seed, temperature), (
            f"{n} sequences sampled at temperature {temperature} (seed {seed}), decoded up to "
            "<eos>")
    if temperature != 1.0:
        raise ConfigError("temperatures apply to autoregressive generators (model=relgan); this "
                          "run's generator is decoded by argmax, so drop temperatures=.")
    return argmax_ids(generator, n, seed), (
        f"{n} sequences: the most probable token at each position of the generator's softmax, "
        f"for the fixed latents of seed {seed}, decoded up to <eos>")
