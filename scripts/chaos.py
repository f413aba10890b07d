"""Chaos test of exact resume: SIGKILL a real `ganrun train` N times, resume, compare weights.

    python scripts/chaos.py --kills 10 [--seed 0] [--workdir DIR] [-- <ganrun train overrides>]

1. A reference run trains uninterrupted (`<workdir>/reference`) and times its training loop
   (from the end of its first compiled call, which includes tracing, to the exit).
2. The chaos run (`<workdir>/chaos`) is started N times on the same run directory; each time,
   once its first compiled call is done, it gets SIGKILL after a random delay drawn uniformly
   from [0, 0.9 * loop time / N] (so kills land anywhere: inside compiled calls, while
   sample grids or checkpoints are being written), or earlier once its logged step passes
   90% of its share of the remaining steps (so a process faster than the reference cannot
   finish before its kill).
   Then it runs once more to the end.
3. The final checkpoints of both runs are compared tensor by tensor (models, optimizer
   state, step counter, RNG state; only the checkpoint's save counter is skipped).

Prints the kills survived and whether the result is identical; exits 0 only if every kill
happened, the last run finished, and every tensor is bit-for-bit equal. Without overrides it
trains the default experiment for 300 steps with a checkpoint every 20 (needs MNIST, e.g.
GANRUN_DATA_DIR). Never imported by the package.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OVERRIDES = ["train.steps=300", "train.checkpoint_every=20", "train.log_every=20",
                     "train.sample_every=100", "train.steps_per_call=10"]
LOOP_STARTED = "First compiled call"  # logged once the first call (and compile) is done
SKIPPED = ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH")


def ganrun_command() -> list[str]:
    script = Path(sys.executable).with_name("ganrun")
    return [str(script)] if script.is_file() else ["ganrun"]


def start(run_dir: Path, overrides: list[str], log_path: Path) -> subprocess.Popen:
    """`ganrun train <overrides> hydra.run.dir=<run_dir>`, both streams into `log_path`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "w") as log:
        return subprocess.Popen([*ganrun_command(), "train", *overrides,
                                 f"hydra.run.dir={run_dir}"], stdout=log,
                                stderr=subprocess.STDOUT, env=env)


def wait_for_loop(process: subprocess.Popen, log_path: Path, timeout: float = 600) -> float | None:
    """Block until the training loop has started; its time, or None if the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if LOOP_STARTED in log_path.read_text(errors="replace"):
            return time.monotonic()
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    raise TimeoutError(f"no '{LOOP_STARTED}' line in {log_path} after {timeout} s")


def reference_run(run_dir: Path, overrides: list[str], workdir: Path) -> float:
    """Train uninterrupted; return the training loop's wall time in seconds."""
    log_path = workdir / "reference.log"
    process = start(run_dir, overrides, log_path)
    loop_started = wait_for_loop(process, log_path)
    if process.wait() != 0 or loop_started is None:
        sys.exit(f"the reference run failed (exit {process.returncode}); see {log_path}")
    return time.monotonic() - loop_started


def wait_to_kill(process: subprocess.Popen, log_path: Path, deadline: float,
                 kills_left: int) -> None:
    """Wait until `deadline`, or less: a process faster than the reference could otherwise
    finish before its kill, so it is also killed once its logged step passes 90% of its
    share of the remaining steps (one share per kill left)."""
    span = re.search(r"Training from step (\d+) to (\d+)", log_path.read_text(errors="replace"))
    first, last = (int(span.group(1)), int(span.group(2))) if span else (0, 1 << 62)
    cap = first + 0.9 * (last - first) / kills_left
    while time.monotonic() < deadline and process.poll() is None:
        logged = re.findall(r"step (\d+)/\d+", log_path.read_text(errors="replace"))
        if logged and int(logged[-1]) >= cap:
            return
        time.sleep(0.05)


def chaos_run(run_dir: Path, overrides: list[str], workdir: Path, kills: int,
              max_delay: float, rng: random.Random) -> tuple[int, list[str]]:
    """Kill N times, then finish; returns (kills done, what each start resumed from)."""
    done, resumed = 0, []
    for attempt in range(kills + 1):
        log_path = workdir / f"chaos_{attempt:02d}.log"
        process = start(run_dir, overrides, log_path)
        loop_started = wait_for_loop(process, log_path)
        text = log_path.read_text(errors="replace")
        found = re.search(r"Resumed from \S+ at step (\d+)", text)
        resumed.append(f"step {found.group(1)}" if found else "scratch")
        if attempt < kills and loop_started is not None:
            wait_to_kill(process, log_path, loop_started + rng.uniform(0, max_delay),
                         kills - attempt)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                done += 1
                print(f"kill {done}: SIGKILL {time.monotonic() - loop_started:.2f} s into the "
                      f"training loop (this start resumed from {resumed[-1]})", flush=True)
                continue
        if process.wait() != 0:
            sys.exit(f"chaos run start {attempt} failed (exit {process.returncode}); see "
                     f"{log_path}")
        if attempt < kills:
            print(f"the run finished before kill {done + 1}; stopping early", flush=True)
            break
    return done, resumed


def compare(reference: Path, candidate: Path) -> tuple[int, list[str]]:
    """(tensors compared, names that differ) between the newest checkpoints of two runs."""
    import numpy as np
    import tensorflow as tf

    paths = [tf.train.latest_checkpoint(str(run / "checkpoints")) for run in (reference,
                                                                               candidate)]
    readers = [tf.train.load_checkpoint(path) for path in paths]
    names = sorted(n for n in readers[0].get_variable_to_shape_map() if n not in SKIPPED)
    other = sorted(n for n in readers[1].get_variable_to_shape_map() if n not in SKIPPED)
    if names != other:
        return len(names), sorted(set(names) ^ set(other))
    differ = [n for n in names if not np.array_equal(readers[0].get_tensor(n),
                                                     readers[1].get_tensor(n))]
    print(f"compared {Path(paths[0]).name} (reference) with {Path(paths[1]).name} (chaos)")
    return len(names), differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the two run directories go (default: a new temp dir)")
    parser.add_argument("--max-delay", type=float, default=None,
                        help="longest delay before a kill, seconds (default: 0.9 loop time / N)")
    parser.add_argument("overrides", nargs="*", help="ganrun train overrides (after --)")
    args = parser.parse_args(argv)
    overrides = args.overrides or DEFAULT_OVERRIDES
    if args.workdir is None:
        import tempfile

        args.workdir = Path(tempfile.mkdtemp(prefix="ganrun_chaos_"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {args.workdir}\noverrides: {' '.join(overrides)}", flush=True)
    started = time.monotonic()
    loop_seconds = reference_run(args.workdir / "reference", overrides, args.workdir)
    max_delay = args.max_delay or 0.9 * loop_seconds / max(args.kills, 1)
    print(f"reference run: training loop {loop_seconds:.1f} s; kill delays uniform in "
          f"[0, {max_delay:.2f}] s", flush=True)
    done, resumed = chaos_run(args.workdir / "chaos", overrides, args.workdir, args.kills,
                              max_delay, random.Random(args.seed))
    count, differ = compare(args.workdir / "reference", args.workdir / "chaos")
    identical = not differ
    print(f"starts resumed from: {', '.join(resumed)}")
    print(f"tensors compared: {count}; differing: {len(differ)} {differ[:5] if differ else ''}")
    print(f"kills survived: {done}/{args.kills}")
    print(f"identical: {'yes' if identical else 'no'}")
    print(f"wall time: {time.monotonic() - started:.0f} s")
    return 0 if identical and done == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
