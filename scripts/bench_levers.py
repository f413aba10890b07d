"""The speed levers `bench.py` measures on ganrun's own loop, each against the same
configuration without the lever, interleaved in the same run:

  fused D        the discriminator's real and fake batches in one pass (exact: the
                 discriminators have no batch norm); a patch of the trainer, measured here
                 before it is made the default.
  mixed_bfloat16 `train.precision=mixed_bfloat16` (float32 variables, bf16 maths, float32
                 outputs; ganrun.precision); first-step metrics checked against float32.
  XLA per step   the K-step loop left to TF, each adversarial step one XLA program (what
                 Keras `fit` does with jit_compile and steps_per_execution).
  no remapper    grappler's remapper off (it logs "remapper failed" for the DCGAN graph).
"""

from __future__ import annotations

import functools

import bench_loops as loops
import numpy as np
import tensorflow as tf

from ganrun import build


def fuse_discriminator_passes(trainer) -> None:
    """Replace the trainer's D update by one that runs D once on concat(real, fake), with
    the same penalties, augmentation and noise as `AdversarialTrainer._discriminator_update`."""
    def update(real, labels, noise, update_index):
        fake = trainer._generate(labels)
        both = None if labels is None else tf.concat([labels, labels], 0)
        critic = trainer._critic(both, augmented=True, noise=noise)
        with tf.GradientTape() as tape:
            real_logits, fake_logits = tf.split(critic(tf.concat([real, fake], 0)), 2)
            d_loss, _ = trainer.loss_fn(real_logits, fake_logits)
            penalty = trainer.regularization.penalty(trainer._critic(labels), real, fake,
                                                     real_logits, trainer.rng, update_index)
            total = d_loss + penalty
        variables = trainer.discriminator.trainable_variables
        gradients = tape.gradient(trainer._gradient_loss(total, trainer.d_optimizer), variables)
        trainer.d_optimizer.apply_gradients(zip(gradients, variables))
        return d_loss, penalty, real_logits, fake_logits

    trainer._discriminator_update = update


def _trainer(compose, model, batch, dataset, jit, precision="float32"):
    cfg = compose(model, f"train.batch_size={batch}", f"train.jit_compile={str(jit).lower()}",
                  *([f"train.precision={precision}"] if precision != "float32" else []))
    return build.trainer(cfg, dataset)


def _pair(compose, dataset, model, batch, jit, k, lever, make, windows, window_s, note=""):
    base = _trainer(compose, model, batch, dataset, jit)
    runners = [{"chunk": loops.ganrun_chunk(base, k), "steps": k}]
    loops.warm_up(runners[0]["chunk"])  # instantiated before `make` changes global settings
    runners.append({"chunk": loops.ganrun_chunk(make(), k), "steps": k})
    loops.warm_up(runners[1]["chunk"])
    loops.interleaved_windows(runners, windows, window_s)
    result = {"lever": lever, "model": model, "batch": batch, "xla": jit, "k": k,
              "steps_per_s": runners[1]["steps_per_s"], "windows": runners[1]["windows"],
              "baseline_steps_per_s": runners[0]["steps_per_s"],
              "baseline_windows": runners[0]["windows"],
              "ratio": round(runners[1]["steps_per_s"] / runners[0]["steps_per_s"], 2),
              "cpu_ms_per_step": runners[1]["cpu_ms_per_step"],
              "baseline_cpu_ms_per_step": runners[0]["cpu_ms_per_step"],
              "cpu_ratio": round(runners[0]["cpu_ms_per_step"] / runners[1]["cpu_ms_per_step"],
                                 2),
              "note": note}
    print(f"  lever {lever:12s} {model} b{batch} XLA {jit} K={k}: {result['ratio']}x wall, "
          f"{result['cpu_ratio']}x CPU "
          f"({result['steps_per_s']:.1f} vs {result['baseline_steps_per_s']:.1f})", flush=True)
    return result


def bf16_check(compose, dataset, model, batch) -> str:
    """First-step losses of float32 and bf16 trainers from the same weights and seed."""
    values = []
    for precision in ("float32", "mixed_bfloat16"):
        trainer = _trainer(compose, model, batch, dataset, False, precision)
        values.append(np.array([float(v) for v in trainer.train_steps(tf.constant(1)).values()]))
    error = np.max(np.abs(values[1] - values[0]) / (np.abs(values[0]) + 1e-3))
    return f"first-step metrics differ from float32 by <= {100 * error:.1f}% (relative)"


def run(args) -> list[dict]:
    from bench import compose

    dataset = build.data(compose("mlp"))
    windows, window_s = args.windows, args.window_s * 2
    results = []

    def fused(model, batch, jit):
        trainer = _trainer(compose, model, batch, dataset, jit)
        fuse_discriminator_passes(trainer)
        return trainer

    def xla_step(model, batch):
        trainer = _trainer(compose, model, batch, dataset, False)
        trainer._adversarial_step = tf.function(trainer._adversarial_step, jit_compile=True)
        return trainer

    for model, batch, jit, k in (("mlp", 32, True, 100), ("dcgan", 32, False, 10)):
        results.append(_pair(compose, dataset, model, batch, jit, k, "fused D",
                             functools.partial(fused, model, batch, jit), windows, window_s,
                             "D on concat(real, fake)"))
    for model, batch, k in (("mlp", 32, 100), ("dcgan", 32, 10)):
        results.append(_pair(compose, dataset, model, batch, False, k, "XLA per step",
                             functools.partial(xla_step, model, batch), windows, window_s,
                             "the loop in TF, each step one XLA program (as Keras fit does)"))
    for model, batch, jit, k in (("mlp", 1024, False, 10), ("mlp", 1024, True, 10),
                                 ("dcgan", 32, False, 10)):
        if "precision" not in compose(model).train:
            print("  lever mixed_bfloat16: this ganrun has no train.precision; skipped")
            break
        try:  # not yet run end to end here: a failure is reported, not fatal
            note = bf16_check(compose, dataset, model, batch)
            make = functools.partial(_trainer, compose, model, batch, dataset, jit,
                                     "mixed_bfloat16")
            results.append(_pair(compose, dataset, model, batch, jit, k, "mixed_bfloat16",
                                 make, windows, window_s, note))
        except Exception as exc:  # noqa: BLE001
            print(f"  lever mixed_bfloat16 {model} b{batch}: failed ({exc!r:.200})", flush=True)
    results.append(_remapper(compose, dataset, windows, window_s))
    return results


def _remapper(compose, dataset, windows, window_s):
    def without_remapper():
        tf.config.optimizer.set_experimental_options({"remapping": False})
        return _trainer(compose, "dcgan", 32, dataset, False)

    try:
        return _pair(compose, dataset, "dcgan", 32, False, 10, "no remapper", without_remapper,
                     windows, window_s, "grappler remapping off for the lever's function")
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": True})
