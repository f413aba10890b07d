"""`train.precision`: float32, or Keras mixed precision with float32 at the models' edges.

- `mixed_bfloat16` / `mixed_float16`: layers compute in 16 bits and keep float32 variables
  (Keras's `mixed_*` dtype policies, set only while the models are built, so nothing else in
  the process changes). Both models end in a float32 linear activation, so the discriminator's
  logits, the losses, the penalties and the generator's images stay float32.
- `mixed_float16` also wraps both optimizers in `keras.optimizers.LossScaleOptimizer` (dynamic
  loss scaling: float16 gradients underflow otherwise); the trainer multiplies each loss by
  `optimizer.scale_loss` and the optimizer unscales before the update. Gradients that the
  penalties take with respect to the inputs (WGAN-GP, R1, DRAGAN) are not loss-scaled.

bfloat16 is fast on TPUs and Ampere+ GPUs; float16 on Volta+ GPUs; on CPUs neither is faster.
"""

from __future__ import annotations

import contextlib

import keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


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
