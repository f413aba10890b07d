"""Quality at a budget: train presets under `train.max_time` and tabulate their final metrics.

    python scripts/quality.py                                  # the README's preset table
    python scripts/quality.py --presets mnist_dcgan --seeds 0 1 2   # the default, 3 seeds
    python scripts/quality.py --variant "bf16=experiment=mnist_dcgan train.precision=mixed_bfloat16"

Each row is one real `ganrun train` process (the console script, as a user runs it) with
`train.max_time` (default 9m, so that start-up plus the final evaluation fit in 10 minutes),
timed end to end. Its final evaluation is ganrun's own: `train.eval_final_n` (10,000)
samples of the final (EMA, where on) generator against the 10,000 MNIST test images in the
feature space of ganrun's MNIST classifier (README "Image metrics"), beside the floors (the
same metrics for 10,000 real training images). Writes `<out>.json` (every number with its
definition, the seed, the load average before and after) and `<out>.md` (the table).
Quality runs need the machine to themselves: the load average is recorded to show it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["mnist_dcgan", "mnist_conditional", "mnist_hinge_sn", "mnist_wgan_gp", "mnist_mlp"]
METRICS = ("fid", "kid", "precision", "recall", "classifier_score")


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run_one(name: str, overrides: list[str], seed: int, budget: str, out_dir: Path) -> dict:
    """Train one preset under the budget in a fresh process; return its row."""
    run_dir = out_dir / f"{name}_seed{seed}"
    command = [str(Path(sys.executable).with_name("ganrun")), "train", *overrides,
               f"train.seed={seed}", f"train.max_time={budget}", f"hydra.run.dir={run_dir}"]
    load_before, started = load_average(), time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (out_dir / f"{name}_seed{seed}.log").write_text(process.stdout + process.stderr)
    row = {"name": name, "overrides": overrides, "seed": seed, "max_time": budget,
           "exit_code": process.returncode, "wall_s": round(wall, 1),
           "load_before": load_before, "load_after": load_average(), "run_dir": str(run_dir)}
    metrics_path = run_dir / "metrics.json"
    if process.returncode or not metrics_path.is_file():
        row["error"] = (process.stderr or process.stdout).strip().splitlines()[-3:]
        return row
    metrics = json.loads(metrics_path.read_text())
    evaluation = metrics.get("eval", {})
    row.update(step=metrics["step"], stopped_by=metrics.get("stopped_by"),
               steps_per_sec=metrics.get("perf/steps_per_sec", {}).get("value"),
               definition=evaluation.get("definition"))
    for metric in METRICS:
        if metric in evaluation:
            row[metric] = evaluation[metric]["value"]
            row[f"{metric}_floor"] = evaluation[metric]["floor"]
    if "class_coverage" in evaluation:
        row["classes_covered"] = evaluation["class_coverage"]["classes_covered"]
    return row


def _cell(value, digits=3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
    head = ("| preset | seed | FID (floor) | KID (floor) | precision (floor) | "
            "recall (floor) | classes | steps reached | steps/s | wall | load before→after |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | {row['seed']} | failed (exit "
                         f"{row['exit_code']}) |" + " |" * 8)
            continue
        lines.append(
            f"| {row['name']} | {row['seed']} | {_cell(row.get('fid'))} "
            f"({_cell(row.get('fid_floor'))}) | {_cell(row.get('kid'))} "
            f"({_cell(row.get('kid_floor'))}) | "
            f"{_cell(row.get('precision'), 2)} ({_cell(row.get('precision_floor'), 2)}) | "
            f"{_cell(row.get('recall'), 2)} ({_cell(row.get('recall_floor'), 2)}) | "
            f"{_cell(row.get('classes_covered'))}/10 | {row.get('step')} | "
            f"{_cell(row.get('steps_per_sec'), 3)} | {row['wall_s']:.0f} s | "
            f"{row['load_before'][0]}→{row['load_after'][0]} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> dict:
    """Median and spread (min, max) of FID per preset over its seeds."""
    by_name: dict[str, list[float]] = {}
    for row in rows:
        if "fid" in row:
            by_name.setdefault(row["name"], []).append(row["fid"])
    return {name: {"median_fid": statistics.median(values), "min_fid": min(values),
                   "max_fid": max(values), "seeds": len(values)}
            for name, values in by_name.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="*", default=PRESETS,
                        help="experiment presets (each runs as experiment=<name>)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=override override ... (an extra row, e.g. a candidate)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-time", default="9m")
    parser.add_argument("--out", default=str(ROOT / "scripts" / "quality_results"))
    args = parser.parse_args()
    jobs = [(name, [f"experiment={name}"]) for name in args.presets]
    for variant in args.variant:
        name, _, overrides = variant.partition("=")
        jobs.append((name, overrides.split()))
    out = Path(args.out)
    runs = out.parent / (out.name + "_runs")
    runs.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, overrides in jobs:
        for seed in args.seeds:
            rows.append(run_one(name, overrides, seed, args.max_time, runs))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
            result = {"definition": __doc__, "budget": args.max_time, "rows": rows,
                      "summary": summary(rows), "cpu_count": os.cpu_count()}
            out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
            out.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))
    print(json.dumps(summary(rows), indent=2))


if __name__ == "__main__":
    main()
