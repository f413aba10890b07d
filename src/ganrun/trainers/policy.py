"""Where XLA and the fused discriminator pass are worth it: the `auto` of `train.jit_compile`
and `train.fuse_d_pass`, resolved from the device and the models' layers.

The measurements behind each rule are in scripts/bench.py and docs/speed.md.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ganrun import cpu
from ganrun.errors import ConfigError

# Layers whose XLA CPU code is at least as fast as TF's oneDNN kernels (the dense-only MLP GAN
# gains at small batches and ties at large ones). Convolutions depend on the CPU: with
# AVX-512, oneDNN's kernels beat XLA's (the DCGAN step ran at 0.43x and 0.8x under XLA on two
# such AMD EPYCs); with AVX2 alone, XLA's won (1.57x). docs/speed.md has the numbers.
_XLA_FRIENDLY_ON_CPU = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.Flatten,
                        keras.layers.Reshape, keras.layers.Activation, keras.layers.ReLU,
                        keras.layers.LeakyReLU, keras.layers.Dropout)

# Layers that map each example on its own and change nothing when called in training, so D
# on concat(real, fake) gives the two passes' logits and gradients (up to float summation
# order). Not here: batch norm (batch statistics), dropout (its draws), spectral norm (one
# power iteration per call), and any layer not listed (auto then keeps two passes).
_PER_EXAMPLE_LAYERS = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.Conv2D,
                       keras.layers.Flatten, keras.layers.Reshape, keras.layers.Activation,
                       keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.Embedding,
                       keras.layers.Dot, keras.layers.Add, keras.layers.AveragePooling2D,
                       keras.layers.GlobalAveragePooling2D)


def resolve_jit_compile(setting: bool | str, models=()) -> bool:
    """XLA on or off. "auto": on where a GPU is visible; on a CPU when `models` are given and
    are either made of dense layers alone (`_XLA_FRIENDLY_ON_CPU`) or this CPU has no AVX-512
    (ganrun.cpu)."""
    if setting == "auto":
        if tf.config.list_physical_devices("GPU"):
            return True
        dense_only = all(isinstance(layer, _XLA_FRIENDLY_ON_CPU)
                         for model in models for layer in model.layers)
        return bool(models) and (dense_only or not cpu.has_avx512())
    return bool(setting)


def text_jit_compile(setting: bool | str) -> dict[str, bool]:
    """XLA per phase of the text GAN. "auto" on a CPU: on for MLE (teacher forcing on COCO
    takes less CPU per step under XLA than under oneDNN) and off for the adversarial phase
    (XLA's CPU kernels for the Gumbel noise and the convolutions are slower there; numbers
    in docs/speed.md); with a GPU both on."""
    if setting == "auto":
        gpu = resolve_jit_compile("auto")
        return {"mle": True, "adversarial": gpu}
    return {"mle": bool(setting), "adversarial": bool(setting)}


def resolve_fuse_d_pass(setting: bool | str, discriminator, regularization) -> bool:
    """One D pass over concat(real, fake) or two. "auto": fused when D is made of
    `_PER_EXAMPLE_LAYERS` alone and no augmentation or instance noise draws per call (fused,
    one draw would cover both halves). See scripts/bench.py, lever "fused D"."""
    if setting is True and any(getattr(layer, "mixes_examples", False)
                               for layer in discriminator.layers):
        raise ConfigError("train.fuse_d_pass=true would let the discriminator's minibatch "
                          "statistic mix real and fake examples; use auto or false.")
    if setting == "auto":
        return (not regularization.augment and not regularization.instance_noise
                and all(isinstance(layer, _PER_EXAMPLE_LAYERS)
                        for layer in discriminator.layers))
    return bool(setting)
