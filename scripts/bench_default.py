"""The default experiment's step (`bench.py --parts default`): `experiment=mnist_dcgan` as
`make train` builds it (class-conditional DCGAN with a projection discriminator, hinge loss,
EMA of G with standing batch-norm statistics, batch 64, the preset's train.precision, XLA off
and D fused by `auto` on a CPU), its steps/s and its share of the per-core convolution peak,
and the speed levers measured on that same step, all variants interleaved in one set of
windows:

  precision        the other one of float32 / mixed_bfloat16 (bf16 maths through oneDNN)
  XLA per step     `train.jit_compile=true`, at K=1 against the default at K=1 (one XLA
                   call per step is the slow part on CPU convolutions, so K stays small)
  two-pass D       `train.fuse_d_pass=false`: what `auto`'s fusing gains, inverted
  no EMA           `train.ema_decay=0`: what EMA's averaging and standing-statistics pass
                   cost (not a lever to pull: EMA is worth FID; the ratio is its price)

The layout lever (NCHW) is measured on the peak convolution only (bench_system.conv_peak):
ganrun's image models are NHWC throughout. Each variant is built from the same seed, so its
first step's metrics are compared with the default's (the numerics note).
"""

from __future__ import annotations

import time

import bench_loops as loops
import numpy as np
import tensorflow as tf

from ganrun import build
from ganrun.losses import generator_reads_real
from ganrun.precision import bf16_hardware
from ganrun.precision import resolve as resolve_precision

K = 10  # steps per call; the default trains with 50: the per-step CPU was the same within
# noise at K=10 and 50 (93.7 and 93.7 ms, loaded smoke run), and shorter calls fit short windows
PEAK_OF = {"float32": "float32", "mixed_bfloat16": "bfloat16"}  # precision -> conv_peak key


def variants(precision: str, bf16_units: bool = True) -> list[tuple[str, tuple, int, str | None]]:
    """(label, overrides, steps per call, the baseline's label) of every timed variant,
    given the default's resolved train.precision (the precision lever is the other one).
    Without bf16 units (`bf16_units`) the bf16 lever is left out: emulated bf16 ran the
    step at 0.11 steps/s against float32's 0.95 on an AVX2-only CPU (docs/speed.md), so one
    timed window would take minutes and the answer is known."""
    other = "float32" if precision != "float32" else "mixed_bfloat16"
    levers = [] if other == "mixed_bfloat16" and not bf16_units else [
        (other, (f"train.precision={other}",), K, "default")]
    return [("default", (), K, None),
            ("default K=1", (), 1, None),
            *levers,
            ("XLA per step K=1", ("train.jit_compile=true",), 1, "default K=1"),
            ("two-pass D", ("train.fuse_d_pass=false",), K, "default"),
            ("no EMA", ("train.ema_decay=0",), K, "default")]


def _first_metrics(trainer) -> np.ndarray:
    """The first step's metrics (the compiling call), from the trainer's seeded state."""
    return np.array([float(v) for v in trainer.train_steps(tf.constant(1)).values()])


def build_runners(compose, dataset) -> tuple[list[dict], dict]:
    """Every `variants()` entry compiled and warmed up; returns (runners, step FLOP info)."""
    runners, trainers = [], {}
    for label, overrides, k, baseline in variants(resolve_precision(
            compose("default").train.precision), bf16_hardware()):
        key = tuple(overrides)
        started = time.perf_counter()
        if key not in trainers:  # "default K=1" reuses the default's trainer (K is an input)
            trainer = build.trainer(compose("default", *overrides), dataset)
            trainers[key] = (trainer, _first_metrics(trainer))
        trainer, first = trainers[key]
        chunk = loops.ganrun_chunk(trainer, k)
        chunk()  # warm-up call
        runners.append({"variant": label, "chunk": chunk, "steps": k, "overrides": list(key),
                        "baseline": baseline, "first_metrics": first,
                        "precision": trainer.options.precision, "xla": trainer.jit_compile,
                        "fused_d": trainer.fuse_d_pass, "ema": bool(trainer.ema),
                        "setup_s": round(time.perf_counter() - started, 1)})
        print(f"  default {label:18s} built, compiled and warmed up in "
              f"{runners[-1]['setup_s']} s", flush=True)
    base = trainers[()][0]
    ema_pass = bool(base.ema and base.ema.has_batch_norm)
    reads_real = generator_reads_real(base.loss_fn)
    flops = loops.adversarial_step_flops(base.generator, base.discriminator,
                                         base.options.batch_size, ema_pass, reads_real)
    no_ema = loops.adversarial_step_flops(base.generator, base.discriminator,
                                          base.options.batch_size, False, reads_real)
    info = {"step_flops": flops, "step_flops_no_ema": no_ema, "precision": base.options.precision,
            "batch": base.options.batch_size, "conditional": bool(base.num_classes),
            "fused_d": base.fuse_d_pass, "xla": base.jit_compile, "ema_forward": ema_pass,
            "g_reads_real": reads_real}
    return runners, info


def _row(runner: dict, flops: int, conv: dict) -> dict:
    """One variant's figures: % of the float32 conv peak, and of its own precision's peak
    (bf16's for mixed_bfloat16; None when that peak was not measured)."""
    gflop_cpu = flops / runner["cpu_ms_per_step"] / 1e6
    own = conv.get(PEAK_OF.get(runner["precision"], ""))
    row = {"variant": runner["variant"], "overrides": runner["overrides"], "k": runner["steps"],
           "precision": runner["precision"], "xla": runner["xla"], "fused_d": runner["fused_d"],
           "ema": runner["ema"],
           "steps_per_s": runner["steps_per_s"], "windows": runner["windows"],
           "cpu_ms_per_step": runner["cpu_ms_per_step"], "step_gflop": round(flops / 1e9, 3),
           "gflops": round(runner["steps_per_s"] * flops / 1e9, 1),
           "gflop_per_cpu_s": round(gflop_cpu, 1),
           "pct_conv_peak": round(100 * gflop_cpu / conv["float32"]["gflop_per_cpu_s"], 1),
           "pct_own_conv_peak": round(100 * gflop_cpu / own["gflop_per_cpu_s"], 1) if own
           else None, "setup_s": runner["setup_s"]}
    return row


def _lever(runner: dict, base: dict) -> dict:
    """The variant against its baseline: wall and CPU ratios (> 1: the variant is faster),
    and how far its first-step metrics are from the baseline's (relative)."""
    error = np.max(np.abs(runner["first_metrics"] - base["first_metrics"])
                   / (np.abs(base["first_metrics"]) + 1e-3))
    note = (f"first-step metrics differ from the baseline's by <= {100 * error:.2g}% "
            "(relative; same seed)")
    if runner["xla"] != base["xla"]:  # measured: keras.random under XLA draws other numbers
        note = ("first-step metrics not comparable: under XLA the same seed draws other "
                "batches and latents (another RNG algorithm)")
    return {"lever": runner["variant"], "baseline": base["variant"],
            "steps_per_s": runner["steps_per_s"], "baseline_steps_per_s": base["steps_per_s"],
            "ratio": round(runner["steps_per_s"] / base["steps_per_s"], 2),
            "cpu_ratio": round(base["cpu_ms_per_step"] / runner["cpu_ms_per_step"], 2),
            "first_step_rel_diff": float(f"{error:.2g}"),
            "note": note}


def run(args, compose, conv: dict) -> dict:
    """Times every variant in interleaved windows (2 x args.window_s each); returns the
    default's row, every variant's row, the levers (ratios) and the step's FLOP count."""
    dataset = build.data(compose("default"))
    runners, info = build_runners(compose, dataset)
    # One more untimed call each, in timing order: building and compiling the later variants
    # evicts the earlier ones' caches, and the first window timed after that (the default's)
    # came out 1.4x slower than its K=1 twin on the same trainer in two smoke runs.
    for runner in runners:
        runner["chunk"]()
    loops.interleaved_windows(runners, args.windows, 2 * args.window_s)
    by_label = {runner["variant"]: runner for runner in runners}
    rows = []
    for runner in runners:
        flops = info["step_flops"] if runner["ema"] else info["step_flops_no_ema"]
        rows.append(_row(runner, flops, conv))
        print(f"  default {runner['variant']:18s} {rows[-1]['steps_per_s']:7.2f} steps/s "
              f"{rows[-1]['cpu_ms_per_step']:8.2f} CPU ms/step, % of its precision's conv "
              f"peak {rows[-1]['pct_own_conv_peak']} (float32's {rows[-1]['pct_conv_peak']})"
              f"  windows {runner['windows']}", flush=True)
    levers = [_lever(runner, by_label[runner["baseline"]]) for runner in runners
              if runner["baseline"]]
    for lever in levers:
        print(f"  default lever {lever['lever']:18s} {lever['ratio']}x wall, "
              f"{lever['cpu_ratio']}x CPU; {lever['note']}", flush=True)
    return {"step": info, "row": rows[0], "rows": rows, "levers": levers}


def markdown(result: dict, conv: dict) -> str:
    """The default's row, then every variant and lever of its step."""
    info = result["step"]
    peaks = ", ".join(f"{name} {value['gflop_per_cpu_s']:.0f}" for name, value in conv.items()
                      if isinstance(value, dict))
    lines = [f"Conv peak ({conv['shape']}, GFLOP per CPU-second): {peaks}", "",
             f"Default experiment (mnist_dcgan, batch {info['batch']}, {info['precision']}, "
             f"conditional "
             f"{info['conditional']}, D fused {info['fused_d']}, XLA {info['xla']}, EMA "
             f"standing-statistics pass {info['ema_forward']}): "
             f"{info['step_flops'] / 1e9:.3f} GFLOP per step", "",
             "| experiment | variant | precision | K | steps/s | CPU ms/step | GFLOP/s | "
             "GFLOP/CPU-s | % of its precision's conv peak (per core) | % of float32's | "
             "windows (steps/s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| mnist_dcgan | {r['variant']} | {r['precision']} | {r['k']} | "
                     f"{r['steps_per_s']:.2f} | {r['cpu_ms_per_step']:.2f} | {r['gflops']} | "
                     f"{r['gflop_per_cpu_s']} | {r['pct_own_conv_peak']} | "
                     f"{r['pct_conv_peak']} | {r['windows']} |")
    lines += ["", "| lever on the default's step | against | ratio | ratio (CPU) | note |",
              "|---|---|---|---|---|"]
    lines += [f"| {lv['lever']} | {lv['baseline']} | {lv['ratio']} | {lv['cpu_ratio']} | "
              f"{lv['note']} |" for lv in result["levers"]]
    nchw = conv.get("float32_nchw")
    if isinstance(nchw, dict):
        lines.append(f"| layout NCHW (peak conv only) | NHWC | "
                     f"{nchw['gflops'] / conv['float32']['gflops']:.2f} | "
                     f"{nchw['gflop_per_cpu_s'] / conv['float32']['gflop_per_cpu_s']:.2f} | "
                     "float32 Conv2D forward alone, not the step (ganrun's models are NHWC) |")
    return "\n".join(lines)
