"""The speed levers `bench.py` measures on ganrun's own loop, each against the same
configuration without the lever, interleaved in the same run:

  fused D        `train.fuse_d_pass=true` against false: the discriminator's real and fake
                 batches in one pass (the same maths: these discriminators have no batch
                 norm); numerics compared from the same weights and seed.
  mixed_bfloat16 `train.precision=mixed_bfloat16` (float32 variables, bf16 maths, float32
                 outputs; ganrun.precision); first-step metrics checked against float32.
  threads        (`bench.py --parts threads`, not in `make bench`: ~3 min) tf.config.threading
                 intra/inter-op thread counts and XLA CPU flags, each in its own process
                 (they must be set before TF starts), against a process with TF's defaults.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import bench_loops as loops
import numpy as np
import tensorflow as tf

from ganrun import build


def _trainer(compose, model, batch, dataset, jit, *overrides):
    cfg = compose(model, f"train.batch_size={batch}", f"train.jit_compile={str(jit).lower()}",
                  *overrides)
    return build.trainer(cfg, dataset)


def _pair(compose, dataset, model, batch, jit, k, lever, make, windows, window_s, note="",
          baseline=()):
    base = _trainer(compose, model, batch, dataset, jit, *baseline)
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
        trainer = _trainer(compose, model, batch, dataset, False, f"train.precision={precision}")
        values.append(np.array([float(v) for v in trainer.train_steps(tf.constant(1)).values()]))
    error = np.max(np.abs(values[1] - values[0]) / (np.abs(values[0]) + 1e-3))
    return f"first-step metrics differ from float32 by <= {100 * error:.1f}% (relative)"


def fused_check(compose, dataset, model, batch, jit, steps=20) -> str:
    """Fused and two-pass D from the same weights and seed: first-step metrics, and G's
    weights after `steps` steps (float summation order differs, so not bit-identical)."""
    metrics, weights = [], []
    for fused in ("false", "true"):
        trainer = _trainer(compose, model, batch, dataset, jit, f"train.fuse_d_pass={fused}")
        metrics.append(np.array([float(v) for v in trainer.train_steps(tf.constant(1)).values()]))
        trainer.train_steps(tf.constant(steps - 1))
        weights.append(np.concatenate([v.numpy().ravel()
                                       for v in trainer.generator.trainable_variables]))
    first = np.max(np.abs(metrics[1] - metrics[0]) / (np.abs(metrics[0]) + 1e-3))
    drift = np.max(np.abs(weights[1] - weights[0])) / np.max(np.abs(weights[0]))
    return (f"first-step metrics differ by <= {first:.1e} (relative), G weights after {steps} "
            f"steps by <= {drift:.1e} of the largest weight"
            + (" (bit-identical)" if first == 0 and drift == 0 else ""))


def run(args) -> list[dict]:
    from bench_system import compose

    dataset = build.data(compose("mlp"))
    windows, window_s = args.windows, args.window_s * 2
    results = []

    for model, batch, jit, k in (("mlp", 32, True, 100), ("mlp", 1024, False, 10),
                                 ("dcgan", 32, False, 10)):
        make = functools.partial(_trainer, compose, model, batch, dataset, jit,
                                 "train.fuse_d_pass=true")
        results.append(_pair(compose, dataset, model, batch, jit, k, "fused D", make, windows,
                             window_s, fused_check(compose, dataset, model, batch, jit),
                             baseline=("train.fuse_d_pass=false",)))
    # (MLP at 1024 with XLA: 0.93-0.97x in earlier runs, dropped to keep make bench short)
    for model, batch, jit, k in (("mlp", 32, True, 100), ("mlp", 1024, False, 10),
                                 ("dcgan", 32, False, 10)):
        if "precision" not in compose(model).train:
            print("  lever mixed_bfloat16: this ganrun has no train.precision; skipped")
            break
        try:  # not yet run end to end here: a failure is reported, not fatal
            note = bf16_check(compose, dataset, model, batch)
            make = functools.partial(_trainer, compose, model, batch, dataset, jit,
                                     "train.precision=mixed_bfloat16")
            results.append(_pair(compose, dataset, model, batch, jit, k, "mixed_bfloat16",
                                 make, windows, window_s, note))
        except Exception as exc:  # noqa: BLE001
            print(f"  lever mixed_bfloat16 {model} b{batch}: failed ({exc!r:.200})", flush=True)
    return results


# Thread settings and XLA CPU flags take effect only before TF starts, so each is timed in a
# fresh process: (label, intra-op threads, inter-op threads, XLA_FLAGS); 0 = TF's default
# (the core count). The default runs first and last, to show how far the load drifted.
THREADS = (("TF default (0/0)", 0, 0, ""), ("intra 1, inter 1", 1, 1, ""),
           ("intra 1, inter 2", 1, 2, ""), ("intra 2, inter 1", 2, 1, ""),
           ("XLA_FLAGS thunk runtime off", 0, 0, "--xla_cpu_use_thunk_runtime=false"),
           ("TF default again", 0, 0, ""))
THREAD_CELLS = (("mlp", 32, True, 100), ("mlp", 1024, False, 10), ("dcgan", 32, False, 10))


def thread_settings(args) -> list[dict]:
    """Every THREADS setting in its own process, THREAD_CELLS interleaved inside each;
    ratios against the first default run."""
    runs = []
    for label, intra, inter, flags in THREADS:
        env = {**os.environ, "XLA_FLAGS": flags} if flags else dict(os.environ)
        command = [sys.executable, __file__, "--threads", f"{intra},{inter}",
                   "--windows", str(args.windows), "--window-s", str(args.window_s)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                              cwd=Path(__file__).parent)
        if done.returncode:
            print(f"  lever threads {label}: failed\n{done.stderr[-1500:]}", flush=True)
            continue
        runs.append((label, intra, inter, flags, json.loads(done.stdout.splitlines()[-1])))
    results = []
    for label, intra, inter, flags, cells in runs[1:] if runs else ():
        for cell, base in zip(cells, runs[0][4], strict=True):
            results.append({
                "lever": f"threads: {label}", "model": cell["model"], "batch": cell["batch"],
                "xla": cell["xla"], "k": cell["k"], "intra_op": intra, "inter_op": inter,
                "xla_flags": flags, "steps_per_s": cell["steps_per_s"],
                "windows": cell["windows"], "baseline_steps_per_s": base["steps_per_s"],
                "baseline_windows": base["windows"],
                "ratio": round(cell["steps_per_s"] / base["steps_per_s"], 2),
                "cpu_ms_per_step": cell["cpu_ms_per_step"],
                "baseline_cpu_ms_per_step": base["cpu_ms_per_step"],
                "cpu_ratio": round(base["cpu_ms_per_step"] / cell["cpu_ms_per_step"], 2),
                "note": "own process; baseline: the first TF-default process"})
            print(f"  lever threads {label:32s} {cell['model']} b{cell['batch']}: "
                  f"{results[-1]['ratio']}x wall, {results[-1]['cpu_ratio']}x CPU "
                  f"({cell['steps_per_s']:.1f} vs {base['steps_per_s']:.1f})", flush=True)
    return results


def _thread_worker(intra: int, inter: int, windows: int, window_s: float) -> None:
    """Times THREAD_CELLS under the given thread counts; prints them as one JSON line."""
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    from bench_system import compose

    dataset = build.data(compose("mlp"))
    runners = []
    for model, batch, jit, k in THREAD_CELLS:
        chunk = loops.ganrun_chunk(_trainer(compose, model, batch, dataset, jit), k)
        loops.warm_up(chunk)
        runners.append({"model": model, "batch": batch, "xla": jit, "k": k, "chunk": chunk,
                        "steps": k})
    loops.interleaved_windows(runners, windows, window_s)
    print(json.dumps([{key: value for key, value in runner.items() if key != "chunk"}
                      for runner in runners]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one thread setting (bench_levers.THREADS)")
    parser.add_argument("--threads", required=True)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=1.0)
    options = parser.parse_args()
    _thread_worker(*map(int, options.threads.split(",")), options.windows, options.window_s)
