"""The text-GAN speed benchmark (issue 7, "Text speed"): seconds per RelGAN-style iteration
and MLE steps per second, ganrun's TextGAN with XLA off/on against a plain eager loop.

    python scripts/bench_text.py [--out scripts/bench_text_results.json] [--windows 3]

Also run by `scripts/bench.py` (its "text" section). The measured units:

  adversarial  one RelGAN iteration = 5 discriminator steps + 1 generator step, each on a
               fresh generator rollout (6 rollouts), batch 64, length 20, the oracle's
               vocabulary of 5,000 (`experiment=oracle_relgan`, adversarial phase only).
  mle          one teacher-forcing step on COCO captions (batch 64, length 32, vocabulary
               4,663; `experiment=coco_mle`).

Variants: `ganrun` = `ganrun.build.trainer` on the composed config, `train_steps(K)` called
as `ganrun.fit` calls it, `train.jit_compile` false / true (the default, auto, picks one of
the two per phase: the `auto` column); `eager` = the same trainer body run op by op without
`tf.function` (a plain eager TensorFlow/Keras loop: a GradientTape per update, same maths).
Every variant gets a compiling call and a warm-up call, then timed windows interleaved
round-robin (`bench_loops.interleaved_windows`); figures are medians, with the CPU time per
step (all threads) beside wall time, since the machine is shared. Data: the SeqGAN oracle
and COCO from $GANRUN_DATA_DIR when present, else a random oracle (speed depends only on
the shapes); the oracle draws only 1,000 training sequences here (speed does not depend on
how many).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_loops as loops  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrun import build  # noqa: E402
from ganrun.trainers.loop import run_steps  # noqa: E402
from ganrun.trainers.policy import text_jit_compile  # noqa: E402
from ganrun.trainers.text_gan import ADVERSARIAL_METRICS, MLE_METRICS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AUTO = text_jit_compile("auto")  # what train.jit_compile=auto picks per phase here
TARGET_S_PER_ITERATION = 0.5  # issue 7; a plain Keras version measured 1.1 s there
PHASES = {
    "adversarial": {"experiment": "oracle_relgan", "k": 1,
                    "overrides": ["train.pretrain_steps=0", "train.steps=100000",
                                  "data.num_examples=1000", "data.test_examples=100",
                                  "train.d_steps=5"]},
    "mle": {"experiment": "coco_mle", "k": 10,
            "overrides": ["train.steps=100000", "train.pretrain_steps=100000"]},
}
DEFINITIONS = {
    "s_per_iteration": "adversarial: wall seconds per RelGAN iteration (5 D + 1 G updates, "
                       "6 rollouts), median over windows",
    "steps_per_s": "median over windows of steps (adversarial: iterations) per wall second",
    "cpu_ms_per_step": "median over windows of this process's CPU ms (all threads) per step",
    "first_call_s": "the compiling (first) call, seconds, for K steps",
}


def compose(experiment: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    data_dir = os.environ.get("GANRUN_DATA_DIR")
    have = {"oracle_relgan": "text/oracle/seqgan_target_params.npz",
            "coco_mle": "text/coco/train.txt"}
    fallback = []
    if not (data_dir and (Path(data_dir) / have[experiment]).is_file()):
        if experiment != "oracle_relgan":
            return None  # no stand-in corpus for COCO: the MLE rows are skipped (stated)
        fallback = ["data.random_oracle_seed=0"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=[f"experiment={experiment}", *fallback,
                                                 *overrides])


def eager_chunk(trainer, phase: str, steps: int):
    """The trainer's step body run eagerly (no tf.function): the plain-loop baseline."""
    step_fn, names = ((trainer._adversarial_step, ADVERSARIAL_METRICS) if phase == "adversarial"
                      else (trainer._mle_step, MLE_METRICS))
    count = tf.constant(steps, tf.int32)

    def body(n):
        return run_steps(step_fn, n, trainer.step, names)

    def run():
        return {name: float(value) for name, value in body(count).items()}

    return run


def phase_runners(phase: str, jits=("false", "true"), eager=True) -> list[dict]:
    spec = PHASES[phase]
    runners, data = [], None
    for jit in (*jits, *(["eager"] if eager else [])):
        cfg = compose(spec["experiment"], *spec["overrides"],
                      f"train.jit_compile={'false' if jit == 'eager' else jit}")
        if cfg is None:
            print(f"  {phase}: skipped (no COCO captions under $GANRUN_DATA_DIR)", flush=True)
            return []
        data = data or build.data(cfg)
        trainer = build.trainer(cfg, data)
        k = 1 if jit == "eager" else spec["k"]
        chunk = (eager_chunk(trainer, phase, k) if jit == "eager"
                 else loops.ganrun_chunk(trainer, k))
        xla = trainer.jit_compile_by_phase[phase]
        variant = "eager loop" if jit == "eager" else f"ganrun jit_compile={jit}"
        first_call_s, warm_s = loops.warm_up(chunk)
        runners.append({"phase": phase, "variant": variant, "xla": xla and jit != "eager",
                        "auto": jit != "eager" and xla == AUTO[phase], "k": k, "steps": k,
                        "chunk": chunk,
                        "first_call_s": round(first_call_s, 1)})
        print(f"  {phase:11s} {variant:28s} XLA {str(runners[-1]['xla']):5s} first call "
              f"{first_call_s:6.1f} s, warm call {warm_s / k:.3f} s/step", flush=True)
    return runners


def run(args) -> dict:
    """Both phases, every variant; returns the rows, the summary and the load."""
    load_start = os.getloadavg()
    print(f"text bench, load average {load_start[0]:.2f}", flush=True)
    rows = []
    for phase in PHASES:
        quick = getattr(args, "quick", False) and phase == "adversarial"
        if quick:
            print("  adversarial ganrun jit_compile=true: skipped (--quick: its compile alone "
                  "took 36-92 s, and it ran 3-5x slower than without XLA)", flush=True)
        runners = phase_runners(phase, jits=("false",) if quick else ("false", "true"),
                                eager=not args.no_eager)
        loops.interleaved_windows(runners, args.windows, args.window_s)
        for runner in runners:
            row = {k: v for k, v in runner.items() if k != "chunk"}
            row["s_per_step"] = round(1.0 / row["steps_per_s"], 3)
            rows.append(row)
            print(f"  {phase:11s} {row['variant']:28s} {row['s_per_step']:7.3f} s/step "
                  f"{row['steps_per_s']:7.2f} steps/s {row['cpu_ms_per_step']:8.1f} CPU ms/step"
                  f"  windows {row['windows']}", flush=True)
    summary = {}
    for phase in PHASES:
        cell = [r for r in rows if r["phase"] == phase]
        ours = [r for r in cell if r["variant"].startswith("ganrun")]
        if not ours:
            continue
        best = min(ours, key=lambda r: r["s_per_step"])
        auto = next(r for r in ours if r["auto"])
        eager = next((r for r in cell if r["variant"] == "eager loop"), None)
        summary[phase] = {"best_variant": best["variant"], "best_s": best["s_per_step"],
                          "auto_s": auto["s_per_step"], "auto_xla": auto["xla"],
                          "x_eager": eager and round(eager["s_per_step"] / best["s_per_step"], 1)}
    if "adversarial" in summary:
        summary["adversarial"]["target_s"] = TARGET_S_PER_ITERATION
        summary["adversarial"]["target_met"] = (summary["adversarial"]["best_s"]
                                                <= TARGET_S_PER_ITERATION)
    return {"load_average_start": load_start, "load_average_end": os.getloadavg(),
            "definitions": {**DEFINITIONS, **{p: d for p, d in _UNITS.items()}},
            "rows": rows, "summary": summary}


_UNITS = {"adversarial": __doc__.split("  adversarial  ")[1].split("\n  mle")[0].strip(),
          "mle": __doc__.split("  mle          ")[1].split("\n\n")[0].strip()}


def markdown(results: dict) -> str:
    load = results["load_average_start"][0], results["load_average_end"][0]
    lines = [f"Text (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)", "",
             "| phase | variant | XLA | auto | K | s/step | steps/s | CPU ms/step | × eager |",
             "|---|---|---|---|---|---|---|---|---|"]
    eager = {r["phase"]: r["s_per_step"] for r in results["rows"] if r["variant"] == "eager loop"}
    for r in results["rows"]:
        ratio = round(eager[r["phase"]] / r["s_per_step"], 1) if r["phase"] in eager else ""
        lines.append(f"| {r['phase']} | {r['variant']} | {r['xla']} | "
                     f"{'yes' if r['auto'] else ''} | {r['k']} | "
                     f"{r['s_per_step']} | {r['steps_per_s']:.2f} | {r['cpu_ms_per_step']:.0f} | "
                     f"{ratio} |")
    adversarial = results["summary"].get("adversarial")
    if adversarial:
        lines += ["", f"RelGAN iteration: {adversarial['best_s']} s ({adversarial['best_variant']};"
                      f" the default, auto: {adversarial['auto_s']} s) against the target "
                      f"{adversarial['target_s']} s: "
                      f"{'met' if adversarial['target_met'] else 'NOT met'} at this load."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "scripts" / "bench_text_results.json"))
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=3.0)
    parser.add_argument("--no-eager", action="store_true", help="skip the eager baseline")
    parser.add_argument("--quick", action="store_true",
                        help="skip XLA for the adversarial phase (as make bench does)")
    args = parser.parse_args()
    started = time.time()
    results = run(args)
    table = markdown(results)
    print("\n" + table)
    results.update(started_utc=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
                   duration_s=round(time.time() - started, 1), markdown=table)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {args.out} in {results['duration_s']} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
