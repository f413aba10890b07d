"""The pieces every trainer's compiled function is made of: the K-step loop, one optimizer
update ("gradients of this loss -> clip -> apply") and the metrics dict it returns.

Call these inside a `tf.function`; they add no Python to the per-step path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf


def run_steps(step_fn: Callable[[tf.Tensor], tf.Tensor], num_steps: tf.Tensor,
              step: tf.Variable, metric_names: Sequence[str]) -> dict[str, tf.Tensor]:
    """Run `step_fn` `num_steps` times and return its metrics averaged over the calls.

    Args:
      step_fn: int64 step (steps done before this one) -> float32 (len(metric_names),).
      num_steps: int32 scalar tensor, how many steps this call runs.
      step: the trainer's int64 step counter; advanced by `num_steps` at the end.
      metric_names: the names of step_fn's metrics, in order.
    """
    def body(index, totals):
        return index + 1, totals + step_fn(step + tf.cast(index, tf.int64))

    # A plain while_loop, not `for _ in tf.range(num_steps)`: autograph gives that loop
    # maximum_iterations=num_steps, which XLA treats as a compile-time constant, so every
    # distinct call length would be compiled anew. This form compiles once for every length.
    _, totals = tf.while_loop(lambda index, _: index < num_steps, body,
                              (tf.constant(0), tf.zeros([len(metric_names)])))
    step.assign_add(tf.cast(num_steps, tf.int64))
    return metrics_dict(metric_names, totals / tf.cast(num_steps, tf.float32))


def metrics_dict(names: Sequence[str], values: tf.Tensor) -> dict[str, tf.Tensor]:
    """{name: values[i]}: the dict a compiled call returns to the host (ganrun.fit)."""
    return {name: values[index] for index, name in enumerate(names)}


def update(optimizer, variables, compute_loss: Callable[[], tuple], replicas: int = 1,
           clip_norm: float | None = None) -> tuple:
    """One optimizer step on `variables`: differentiate the loss, clip, apply.

    Args:
      optimizer: a Keras optimizer (a LossScaleOptimizer multiplies the loss by its scale
        here and divides the gradients by it when applying).
      variables: the trainable variables to update.
      compute_loss: () -> (loss, *extras): the float32 scalar to minimise, computed under the
        tape, and anything else the caller wants back (logits for the metrics, say).
      replicas: under a distribution strategy the replica's mean loss is divided by the
        replica count, since the optimizer sums the replicas' gradients.
      clip_norm: when set, the gradients are made dense and clipped to this global norm.
        Dense: embeddings' IndexedSlices become a sorted segment sum, so the update does not
        depend on the threads' scatter order and resume stays exact.
    Returns:
      compute_loss's full result (loss, *extras).
    """
    with tf.GradientTape() as tape:
        result = compute_loss()
        loss = result[0] / replicas if replicas > 1 else result[0]
        scaled = optimizer.scale_loss(loss)  # identity unless a LossScaleOptimizer
    gradients = tape.gradient(scaled, variables)
    if clip_norm:
        gradients = [tf.convert_to_tensor(gradient) for gradient in gradients]
        gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
    optimizer.apply_gradients(zip(gradients, variables))
    return result
