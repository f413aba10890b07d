"""ganrun's speed benchmark (`make bench`): ganrun's loop against the seed's eager loop and
Keras `fit`, on the same models, batches and machine, measured in the same run; then the
default experiment's own step with its levers (scripts/bench_default.py).

    python scripts/bench.py [--out scripts/bench_results.json] [--parts default,...]

The grid's "dcgan" is the plain unconditional DCGAN (`experiment=base`: non-saturating loss,
no EMA), the model the loop comparison has always used, so its rows stay comparable with
earlier runs; the default experiment (conditional, hinge, EMA) has its own section.

Prints Markdown tables and writes every number, with its definition, to a JSON file. Data:
MNIST from $GANRUN_DATA_DIR when it holds mnist.npz, otherwise ganrun's fake images (60k);
speed does not depend on which. Throughput is the median of timed windows after one
compiling call and one warm-up call (see bench_loops.interleaved_windows); on a shared machine the
ratios measured in one run are the figures that count, not absolute steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_loops as loops  # noqa: E402
import bench_system as system  # noqa: E402
import keras  # noqa: E402
from bench_system import MODELS, compose  # noqa: E402

from ganrun import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (32, 256, 1024)
KS = (1, 10, 100)
MAX_CALL_S = 5.0  # a K that would make one call longer than this is skipped (stated)
FIT, DIRECT = "keras fit", "keras direct"  # model.fit / its train function called directly


class Grid:
    """One (model, batch) cell: builds every variant, warms each up, then times them all
    in interleaved windows."""

    def __init__(self, model: str, batch: int, dataset):
        self.model, self.batch, self.dataset = model, batch, dataset
        self.cfg = compose(model, f"train.batch_size={batch}")
        self.runners, self.skipped = [], []
        g, d = self.models()
        self.flops = loops.adversarial_step_flops(g, d, batch)

    def models(self):
        keras.utils.set_random_seed(0)
        spec = self.dataset.spec
        return build.generator(self.cfg, spec), build.discriminator(self.cfg, spec)

    def add(self, variant: str, chunk, steps: int, window=None, **details) -> float:
        """Warm a variant up and queue it for timing; returns one warm call's seconds.
        `window`: the variant's own timer (bench_loops.keras_model_fit), else calls of
        `chunk` (`steps` steps each) are timed."""
        first_call_s, warm_s = loops.warm_up(chunk)
        self.runners.append({"variant": variant, "chunk": chunk, "steps": steps,
                             "first_call_s": round(first_call_s, 2), **details,
                             **({"window": window} if window else {})})
        print(f"  {self.model:5s} b{self.batch:<5d} {variant:26s} first call "
              f"{first_call_s:6.1f} s, warm call {warm_s:.3f} s", flush=True)
        return warm_s

    def skip(self, variant: str, reason: str):
        self.skipped.append({"model": self.model, "batch": self.batch, "variant": variant,
                             "reason": reason})
        print(f"  {self.model:5s} b{self.batch:<5d} {variant:26s} skipped: {reason}", flush=True)

    def seed_eager(self):
        g, d = self.models()
        loss_fn, _ = build.loss(self.cfg)
        step = loops.seed_eager_loop(g, d, loss_fn, self.dataset.x_train, self.batch,
                                     build.generator_pixel_range(self.cfg))
        self.add("seed eager loop", step, 1)

    def keras_fit(self, jit: bool, k: int):
        """Keras's `fit` itself, and its compiled train function called directly (an upper
        bound for Keras); fresh models for each, from the same seed."""
        loss_fn, _ = build.loss(self.cfg)
        pixels = build.generator_pixel_range(self.cfg)
        setting = f"{'XLA' if jit else 'no XLA'} K={k}"
        chunk, window = loops.keras_model_fit(*self.models(), loss_fn, self.dataset.x_train,
                                              self.batch, pixels, jit, k)
        self.add(f"{FIT} {setting}", chunk, k, window=window, xla=jit, k=k)
        chunk = loops.keras_fit_chunk(*self.models(), loss_fn, self.dataset.x_train,
                                      self.batch, pixels, jit, k)
        self.add(f"{DIRECT} {setting}", chunk, k, xla=jit, k=k)

    def ganrun(self, jit: bool, ks=KS, label="ganrun", patch=None, overrides=()):
        """ganrun's trainer built from the composed config; one trainer serves every K
        (K is an argument of the compiled function, so no retracing)."""
        cfg = compose(self.model, f"train.batch_size={self.batch}",
                      f"train.jit_compile={str(jit).lower()}", *overrides)
        trainer = build.trainer(cfg, self.dataset)
        if patch:
            patch(trainer)
        per_step = None
        for k in ks:
            variant = f"{label} {'XLA' if jit else 'no XLA'} K={k}"
            if per_step and k * per_step > MAX_CALL_S:
                self.skip(variant, f"one call would take ~{k * per_step:.0f} s")
                continue
            per_step = self.add(variant, loops.ganrun_chunk(trainer, k), k, xla=jit, k=k) / k
        return trainer

    def measure(self, windows: int, window_s: float) -> list[dict]:
        loops.interleaved_windows(self.runners, windows, window_s)
        rows = []
        for runner in self.runners:
            row = {"model": self.model, "batch": self.batch,
                   **{k: v for k, v in runner.items() if k not in ("chunk", "window")},
                   "gflops": round(runner["steps_per_s"] * self.flops / 1e9, 1),
                   "gflop_per_cpu_s": round(self.flops / runner["cpu_ms_per_step"] / 1e6, 1)}
            rows.append(row)
            print(f"  {self.model:5s} b{self.batch:<5d} {row['variant']:26s} "
                  f"{row['steps_per_s']:9.2f} steps/s {row['cpu_ms_per_step']:8.2f} CPU ms/step"
                  f"  windows {row['windows']}", flush=True)
        self.runners = []  # free the models
        return rows


def run_grid(args) -> tuple[list, list, dict]:
    rows, skipped, flops = [], [], {}
    dataset = build.data(compose("mlp"))
    xla_loop = ("kept short: at batch 32 XLA only ties oneDNN on these convolutions, and "
                "Keras's XLA DCGAN ran 4x slower than oneDNN at batch 256")
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            if model == "dcgan" and batch > 256:
                print(f"  dcgan b{batch}: skipped (about 1 step/s on 2 cores: the eager and "
                      "fit variants alone would take minutes)", flush=True)
                skipped.append({"model": model, "batch": batch, "variant": "all",
                                "reason": "about 1 step/s on 2 cores; keeps make bench short"})
                continue
            grid = Grid(model, batch, dataset)
            flops[f"{model}/{batch}"] = grid.flops
            grid.seed_eager()
            k_fit = 100 if model == "mlp" and batch <= 256 else 10
            if model == "mlp" or batch == 32:
                grid.keras_fit(True, k_fit)
            else:  # measured once: 38 s per 10 steps at batch 256 on 2 busy cores
                grid.skip(f"keras fit XLA K={k_fit}", "XLA's CPU convolutions are several "
                          "times slower than oneDNN's at this batch")
            if model == "dcgan":
                grid.keras_fit(False, k_fit)
            grid.ganrun(False)
            if model == "mlp":
                grid.ganrun(True)
            elif batch == 32:
                grid.ganrun(True, ks=(1,))
            else:
                grid.skip("ganrun XLA", xla_loop)
            slow = model == "dcgan" and batch >= 256 or batch >= 1024
            rows += grid.measure(args.windows, args.window_s * (2 if slow else 1))
            skipped += grid.skipped
    return rows, skipped, flops


def _best(cell: list[dict], prefix: str, cpu: bool = False) -> dict:
    """The family's fastest variant: by median steps/s, or (cpu) by least CPU per step."""
    family = [r for r in cell if r["variant"].startswith(prefix)]
    if cpu:
        return min(family, key=lambda r: r["cpu_ms_per_step"])
    return max(family, key=lambda r: r["steps_per_s"])


def summarize(rows: list, peak: float, cpu_peak: float) -> list[dict]:
    """Per (model, batch): the best of each family and the ratios the issue asks for."""
    summary = []
    for model in MODELS:
        for batch in BATCHES:
            cell = [r for r in rows if r["model"] == model and r["batch"] == batch]
            if not cell:
                continue

            eager, ours = _best(cell, "seed"), _best(cell, "ganrun")
            fit, direct = _best(cell, FIT), _best(cell, DIRECT)
            fit_cpu, ours_cpu = _best(cell, FIT, True), _best(cell, "ganrun", True)
            summary.append({
                "model": model, "batch": batch,
                "seed_eager": eager["steps_per_s"], "keras_fit_best": fit["steps_per_s"],
                "keras_fit_variant": fit["variant"],
                "keras_direct_best": direct["steps_per_s"],
                "keras_direct_variant": direct["variant"], "ganrun_best": ours["steps_per_s"],
                "ganrun_variant": ours["variant"],
                "x_seed": round(ours["steps_per_s"] / eager["steps_per_s"], 1),
                "x_keras_fit": round(ours["steps_per_s"] / fit["steps_per_s"], 2),
                "x_keras_direct": round(ours["steps_per_s"] / direct["steps_per_s"], 2),
                "ganrun_variant_cpu": ours_cpu["variant"],
                "x_seed_cpu": round(eager["cpu_ms_per_step"] / ours_cpu["cpu_ms_per_step"], 1),
                "x_keras_fit_cpu": round(fit_cpu["cpu_ms_per_step"]
                                         / ours_cpu["cpu_ms_per_step"], 2),
                "gflops": ours["gflops"], "pct_peak": round(100 * ours["gflops"] / peak, 1),
                "gflop_per_cpu_s": ours_cpu["gflop_per_cpu_s"],
                "pct_cpu_peak": round(100 * ours_cpu["gflop_per_cpu_s"] / cpu_peak, 1)})
    return summary


def _setting(variant: str) -> str:
    """ "ganrun XLA K=100" -> "XLA K=100": the variant without its family's name."""
    return re.search(r"(no )?XLA K=\d+", variant).group()


def _summary_line(s: dict) -> str:
    return (f"| {s['model']} | {s['batch']} | {s['seed_eager']:.1f} | {s['keras_fit_best']:.1f}"
            f" ({_setting(s['keras_fit_variant'])}) | {s['keras_direct_best']:.1f} "
            f"({_setting(s['keras_direct_variant'])}) | {s['ganrun_best']:.1f} "
            f"({_setting(s['ganrun_variant'])}) | {s['x_seed']} | {s['x_keras_fit']} | "
            f"{s['x_keras_direct']} | {s['gflops']} | {s['pct_peak']} | "
            f"{_setting(s['ganrun_variant_cpu'])} | {s['x_seed_cpu']} | "
            f"{s['x_keras_fit_cpu']} | {s['gflop_per_cpu_s']} | {s['pct_cpu_peak']} |")


def markdown(rows, summary, peak, cpu_peak, startup, levers, default=None) -> str:
    lines = []
    if rows:  # the grid (--parts grid)
        lines += ["| model | batch | variant | steps/s | CPU ms/step | GFLOP/s | "
                  "windows (steps/s) |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['batch']} | {r['variant']} | {r['steps_per_s']:.1f} | "
                  f"{r['cpu_ms_per_step']:.2f} | {r['gflops']} | {r['windows']} |"
                  for r in rows] + [""]
    lines += [f"Matmul peak (float32 4096x4096, best of TF and NumPy): {peak:.0f} GFLOP/s "
              f"wall, {cpu_peak:.0f} GFLOP per CPU-second (TF)"]
    if summary:
        lines += ["", "| model | batch | seed eager | Keras `fit` | Keras train fn direct | "
                  "best ganrun | × seed | × fit | × direct | GFLOP/s | % of peak | "
                  "least-CPU ganrun | × seed (CPU) | × fit (CPU) | GFLOP/CPU-s | "
                  "% of per-core peak |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_summary_line(s) for s in summary]
    if default:
        import bench_default

        lines += ["", bench_default.markdown(default, default["conv_peak"])]
    if levers:
        lines += ["", "| lever | model | batch | XLA, K | steps/s | without | ratio | "
                  "ratio (CPU) | note |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {lv['lever']} | {lv['model']} | {lv['batch']} | {lv['xla']}, {lv['k']} | "
                  f"{lv['steps_per_s']:.1f} | {lv['baseline_steps_per_s']:.1f} | {lv['ratio']} | "
                  f"{lv['cpu_ratio']} | {lv.get('note', '')} |" for lv in levers]
    if startup:
        lines += ["", "| `ganrun train` (subprocess) | set-up done (s) | first step done (s) | "
                  "peak RSS (MB) |", "|---|---|---|---|"]
        lines += [f"| {s['command']} | {s['setup_done_s']} | {s['first_step_s']} | "
                  f"{s['peak_rss_mb']} |" for s in startup]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "scripts" / "bench_results.json"))
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=1.0)
    parser.add_argument("--parts", default="grid,default,levers,startup,text")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    args = parser.parse_args()
    parts = args.parts.split(",")
    started = time.time()
    machine = system.machine()
    print(f"machine: {machine}", flush=True)
    peak = system.matmul_peak()
    print(f"matmul peak: {peak}", flush=True)
    rows, skipped, flops, levers, startup, default = [], [], {}, [], [], None
    if "grid" in parts:
        rows, skipped, flops = run_grid(args)
    if "default" in parts:  # the default experiment's step and its levers, ~2 min
        import bench_default

        conv = system.conv_peak()
        print(f"conv peak: {conv}", flush=True)
        default = {**bench_default.run(args, compose, conv), "conv_peak": conv}
    if "levers" in parts:
        import bench_levers
        levers = bench_levers.run(args)
    if "threads" in parts:  # opt-in: one process per setting, ~3 min
        import bench_levers
        levers += bench_levers.thread_settings(args)
    if "startup" in parts:
        startup = system.startup_runs()
    text = None
    if "text" in parts:  # the text GANs (scripts/bench_text.py), shorter windows here
        import bench_text
        text = bench_text.run(argparse.Namespace(windows=2, window_s=2.0, no_eager=False,
                                                 quick=True))
    best_peak = max(peak["tf_gflops"], peak["numpy_gflops"])
    summary = summarize(rows, best_peak, peak["tf_gflops_per_cpu_s"])
    machine["load_average_end"] = os.getloadavg()
    table = markdown(rows, summary, best_peak, peak["tf_gflops_per_cpu_s"], startup,
                     levers, default)
    if text:
        table += "\n\n" + bench_text.markdown(text)
    print("\n" + table)
    results = {
        "machine": machine, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S",
                                                          time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "definitions": system.DEFINITIONS, "matmul_peak": peak, "step_flops": flops,
        "rows": rows, "skipped": skipped, "summary": summary, "levers": levers,
        "default_experiment": default, "startup": startup, "text": text, "markdown": table}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {args.out} in {results['duration_s']} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
