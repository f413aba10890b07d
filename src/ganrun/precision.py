"""`train.precision`: float32, or Keras mixed precision with float32 at the models' edges.

- `mixed_bfloat16` / `mixed_float16`: layers compute in 16 bits and keep float32 variables
  (Keras's `mixed_*` dtype policies, set only while the models are built, so nothing else in
  the process changes). Both models end in a float32 linear activation, so the discriminator's
  logits, the losses, the penalties and the generator's images stay float32.
- `mixed_float16` also wraps both optimizers in `keras.optimizers.LossScaleOptimizer` (dynamic
  loss scaling: float16 gradients underflow otherwise); the trainer multiplies each loss by
  `optimizer.scale_loss` and the optimizer unscales before the update. Gradients that the
  penalties take with respect to the inputs (WGAN-GP, R1, DRAGAN) are not loss-scaled.

- `auto`: `mixed_bfloat16` where the hardware computes in bfloat16 (a GPU of compute
  capability 8.0 or newer, or a CPU with AVX-512 BF16 or AMX through oneDNN), else float32.
  `resolve` turns it into one of the three above before any model is built.

bfloat16 is fast on TPUs, Ampere+ GPUs and CPUs with bf16 units; float16 on Volta+ GPUs. On
a CPU without bf16 units bfloat16 is emulated and far slower: the default experiment's step
ran at 1/9 of its float32 speed on an AVX2-only AMD EPYC (docs/speed.md), which is why
the presets ask for `auto`.
"""

from __future__ import annotations

import contextlib
import functools
import os

import keras
import tensorflow as tf

from ganrun import cpu

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
CHOICES = ("auto", *PRECISIONS)


def resolve(precision: str) -> str:
    """`auto` -> mixed_bfloat16 or float32 for this machine (module docstring); others as is."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if bf16_hardware() else "float32"


@functools.cache
def bf16_hardware() -> bool:
    """Whether this process computes bfloat16 natively: a visible GPU of compute capability
    >= 8.0, or (no GPU) a CPU with AVX-512 BF16 or AMX-BF16 and oneDNN not switched off
    (TensorFlow turns oneDNN on by default on such CPUs; TF_ENABLE_ONEDNN_OPTS=0 turns it off).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0)) >= (8, 0) for gpu in gpus)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        return False
    return cpu.has_bf16_units()


@contextlib.contextmanager
def policy(precision: str):
    """Build models inside this: Keras layers take the global dtype policy when made."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_outputs(model: keras.Model, precision: str) -> keras.Model:
    """`model` with a float32 output (unchanged under float32): the same layers and weights
    plus a final `linear` activation whose dtype policy is float32."""
    if precision == "float32":
        return model
    output = keras.layers.Activation("linear", dtype="float32", name="float32_output")(
        model.outputs[0])
    inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
    return keras.Model(inputs, output, name=model.name)


def wrap_optimizer(optimizer: keras.optimizers.Optimizer,
                   precision: str) -> keras.optimizers.Optimizer:
    """A LossScaleOptimizer around `optimizer` for float16, else `optimizer` itself."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
