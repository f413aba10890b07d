"""Where the MLP GAN's step time goes at batch 32 (issue 7's profile), by ablation:

    python scripts/bench_profile.py [--batch 32] [--windows 5] [--window-s 2]

Times, interleaved in one process (CPU ms per step; see bench_loops.interleaved_windows):
ganrun's compiled step as `ganrun train experiment=seed` runs it (XLA per step, fused D,
K=100 steps per call); the same step's matmuls alone (the same shapes, forward, input and
weight gradients, with ReLUs, no loss or optimizer); the Adam updates of both networks
alone; and a near-empty XLA step in the same K-step while loop (the runtime's per-step cost).
If matmuls + Adam account for the step, per-op overhead and Python are not where time goes.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_loops as loops  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench import compose  # noqa: E402

from ganrun import build  # noqa: E402


def _k_step_loop(step_fn, steps: int = 100):
    """`steps` calls of an XLA-compiled `step_fn` in a TF while loop, as ganrun runs them."""
    step = tf.function(step_fn, jit_compile=True)

    @tf.function
    def run(count):
        def body(index, total):
            return index + 1, total + step()
        return tf.while_loop(lambda index, _: index < count, body,
                             (tf.constant(0), tf.constant(0.0)))[1]

    count = tf.constant(steps)
    return lambda: float(run(count))


def _dense_stack(x, weights):
    for weight in weights:
        x = tf.nn.relu(tf.matmul(x, weight))
    return x


def _matmuls_only(generator, discriminator, batch: int):
    """The step's matmul shapes: G forward on B, D forward/backward on 2B (fused), then G and
    D forward and backward on B for the G update; weights shaped like the models' kernels."""
    def kernels(model):
        return [tf.Variable(layer.kernel * 1.0) for layer in model.layers
                if isinstance(layer, keras.layers.Dense)]
    g_w, d_w = kernels(generator), kernels(discriminator)
    latent, pixels = int(g_w[0].shape[0]), int(d_w[0].shape[0])

    def step():
        with tf.GradientTape() as tape:
            fake = _dense_stack(tf.random.normal((batch, latent)), g_w)
            both = tf.concat([tf.random.uniform((batch, pixels)), tf.stop_gradient(fake)], 0)
            d_loss = tf.reduce_mean(_dense_stack(both, d_w))
        d_grads = tape.gradient(d_loss, d_w)
        with tf.GradientTape() as tape:
            g_loss = tf.reduce_mean(_dense_stack(_dense_stack(
                tf.random.normal((batch, latent)), g_w), d_w))
        g_grads = tape.gradient(g_loss, g_w)
        return tf.add_n([tf.reduce_sum(grad) for grad in d_grads + g_grads])
    return step


def _adam_only(generator, discriminator):
    """Adam (2e-4, beta_1 0.5) on copies of both networks' variables, constant gradients."""
    updates = []
    for model in (discriminator, generator):
        variables = [tf.Variable(v * 1.0) for v in model.trainable_variables]
        gradients = [tf.fill(v.shape, 1e-3) for v in variables]
        optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)
        optimizer.build(variables)
        updates.append((optimizer, gradients, variables))

    def step():
        for optimizer, gradients, variables in updates:
            optimizer.apply_gradients(zip(gradients, variables))
        return tf.constant(0.0)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=2.0)
    args = parser.parse_args()
    cfg = compose("mlp", f"train.batch_size={args.batch}", "train.jit_compile=true")
    trainer = build.trainer(cfg, build.data(cfg))
    g, d = trainer.generator, trainer.discriminator
    counter = tf.Variable(0.0)

    def near_empty():
        counter.assign_add(1.0)
        return counter.read_value()

    runners = [{"variant": "ganrun step (XLA per step, fused D, K=100)",
                "chunk": loops.ganrun_chunk(trainer, 100), "steps": 100},
               {"variant": "its matmuls alone (same shapes)",
                "chunk": _k_step_loop(_matmuls_only(g, d, args.batch)), "steps": 100},
               {"variant": "Adam on G and D alone",
                "chunk": _k_step_loop(_adam_only(g, d)), "steps": 100},
               {"variant": "near-empty XLA step (loop + launch)",
                "chunk": _k_step_loop(near_empty), "steps": 100}]
    for runner in runners:
        loops.warm_up(runner["chunk"])
    loops.interleaved_windows(runners, args.windows, args.window_s)
    flops = loops.adversarial_step_flops(g, d, args.batch)
    print(f"load average {os.getloadavg()}; step FLOPs {flops / 1e6:.1f} M")
    for runner in runners:
        print(f"  {runner['variant']:44s} {runner['cpu_ms_per_step']:7.3f} CPU ms/step  "
              f"{runner['steps_per_s']:9.1f} steps/s  windows {runner['windows']}")


if __name__ == "__main__":
    main()
