"""Machine-level measurements for `bench.py`: the matmul and convolution peaks, start-up time
and peak memory of `ganrun train` subprocesses, and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf

from ganrun.cpu import flags as cpu_flags
from ganrun.cpu import has_bf16_units

DEFINITIONS = {
    "steps_per_s": "adversarial steps (one D update + one G update, batch B each) per second; "
                   "median of timed windows of >= window_s seconds after one compiling call "
                   "and one warm-up call",
    "cpu_ms_per_step": "this process's CPU time (all threads, user + system) per step, "
                       "median over the same windows; ratios of it ('CPU' columns) count "
                       "work done and move less than wall time when other jobs share the cores",
    "gflops": "steps_per_s x matmul/conv FLOPs of one adversarial step (2 per multiply-add, "
              "backward counted as 2x forward: B*(4 F_G + 8 F_D)), in GFLOP/s",
    "matmul_peak": "float32 4096x4096 matmul, 2*4096^3 FLOPs per product, median of 5 "
                   "timed products after one warm-up, in this process (TF oneDNN and NumPy)",
    "tf_gflops_per_cpu_s": "the same TF matmul's FLOPs per second of this process's CPU "
                           "time (all threads): the per-core peak, which holds up on a busy "
                           "machine; compare with a step's gflop_per_cpu_s",
    "gflop_per_cpu_s": "matmul/conv FLOPs of one step / CPU time per step",
    "conv_peak": "the per-core convolution peak: FLOPs per second of this process's CPU time "
                 "(all threads) of one large Conv2D forward through TF (oneDNN), NHWC, batch "
                 "64, 32x32 pixels, 3x3 kernel, 256 -> 256 channels, stride 1, SAME padding "
                 "(2*64*32*32*9*256*256 = 77.3 GFLOP), median of 5 timed calls after one "
                 "warm-up; in float32, in bfloat16 (inputs and kernel bf16) where the CPU has "
                 "AVX-512 BF16 or AMX, and in float32 NCHW (the layout lever, conv alone)",
    "pct_conv_peak": "a step's gflop_per_cpu_s / the float32 conv_peak's GFLOP per "
                     "CPU-second, in %: how much of what one core does on a large convolution "
                     "the step's matmuls and convolutions get, all other work counted as lost",
    "setup_done_s": "seconds from launching `ganrun train` to its 'Training from step' log line "
                    "(imports, Hydra, data, model build)",
    "first_step_s": "seconds from launching `ganrun train` to the end of its first compiled call "
                    "of one step (train.steps_per_call=1 for this measurement)",
    "peak_rss_mb": "peak resident set size (VmHWM) of the `ganrun train` process, read at each "
                   "of its log lines, the last being 'Done'",
}


def mnist_available() -> bool:
    value = os.environ.get("GANRUN_DATA_DIR")
    return bool(value) and (Path(value) / "mnist.npz").is_file()


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines()
             if line.startswith("model name")]
    flags = cpu_flags()
    return {"cpu": names[0] if names else platform.processor() or "unknown",
            "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU")),
            "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags,
            "load_average_start": os.getloadavg(),
            "data": "mnist" if mnist_available() else "fake (60k)"}


def matmul_peak(size: int = 4096, repeats: int = 5) -> dict:
    """float32 GFLOP/s of a large square matmul, with TF (oneDNN) and NumPy (its BLAS)."""
    flops = 2 * size**3
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    tf_times, tf_cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        product(a, b).numpy()
        tf_times.append(time.perf_counter() - started)
        tf_cpu.append(time.process_time() - cpu_started)
    a_np, b_np = a.numpy(), b.numpy()
    a_np @ b_np
    np_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a_np @ b_np
        np_times.append(time.perf_counter() - started)
    return {"tf_gflops": round(flops / statistics.median(tf_times) / 1e9, 1),
            "tf_gflops_per_cpu_s": round(flops / statistics.median(tf_cpu) / 1e9, 1),
            "numpy_gflops": round(flops / statistics.median(np_times) / 1e9, 1),
            "size": size}


def conv_peak(batch: int = 64, side: int = 32, channels: int = 256, kernel: int = 3,
              repeats: int = 5) -> dict:
    """GFLOP per CPU-second (and per wall second) of a large Conv2D forward (DEFINITIONS
    "conv_peak"): float32 NHWC, bfloat16 NHWC where supported, float32 NCHW (a string
    saying why where this TensorFlow build cannot run it)."""
    flops = 2 * batch * side * side * kernel * kernel * channels * channels
    result = {"shape": f"{batch}x{side}x{side}x{channels} * {kernel}x{kernel}x{channels}x"
                       f"{channels}", "gflop": round(flops / 1e9, 1)}
    settings = [("float32", tf.float32, "NHWC"), ("float32_nchw", tf.float32, "NCHW")]
    if has_bf16_units():
        settings.insert(1, ("bfloat16", tf.bfloat16, "NHWC"))
    for name, dtype, layout in settings:
        shape = (batch, side, side, channels) if layout == "NHWC" else (batch, channels, side,
                                                                        side)
        x = tf.cast(tf.random.normal(shape), dtype)
        w = tf.cast(tf.random.normal((kernel, kernel, channels, channels)) * 0.05, dtype)
        conv = tf.function(lambda x, w, layout=layout: tf.reduce_sum(tf.cast(
            tf.nn.conv2d(x, w, 1, "SAME", data_format=layout), tf.float32)))
        try:
            conv(x, w).numpy()  # warm-up: oneDNN picks and caches its kernel
        except tf.errors.UnimplementedError as error:
            # TF's own (Eigen) kernels, used where oneDNN is off (by default on CPUs without
            # AVX-512), have no NCHW Conv2D: record why instead of a figure.
            result[name] = f"unsupported: {error.message.splitlines()[0][:120]}"
            continue
        wall, cpu = [], []
        for _ in range(repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            conv(x, w).numpy()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        result[name] = {"gflop_per_cpu_s": round(flops / statistics.median(cpu) / 1e9, 1),
                        "gflops": round(flops / statistics.median(wall) / 1e9, 1)}
    return result


def _run_ganrun(overrides: list[str], label: str) -> dict:
    """Launch `ganrun train`, time its log lines, and read its peak RSS from wait4."""
    script = Path(sys.executable).with_name("ganrun")
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        started = time.perf_counter()
        process = subprocess.Popen([str(script), "train", f"hydra.run.dir={run_dir}",
                                    *overrides], stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True, env=env)
        setup_done = first_step = None
        lines, peak_kb = [], 0
        for line in process.stderr:
            lines.append(line)
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            now = time.perf_counter() - started
            if setup_done is None and "Training from step" in line:
                setup_done = now
            if first_step is None and "First compiled call" in line:
                first_step = now
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{''.join(lines[-20:])}")
    return {"command": f"ganrun train {' '.join(overrides)}", "label": label,
            "setup_done_s": round(setup_done, 1), "first_step_s": round(first_step, 1),
            "peak_rss_mb": round(peak_kb / 1024), "total_s": round(now, 1)}


def _high_water_kb(pid: int) -> int:
    """VmHWM (peak RSS) of a live process. wait4's ru_maxrss is not used: a child forked
    from this large process can report this process's RSS as its own high-water mark."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def startup_runs() -> list[dict]:
    """The default experiment and the seed preset on MNIST, 100 steps each."""
    if not mnist_available():
        print("startup: GANRUN_DATA_DIR has no mnist.npz; skipped", flush=True)
        return []
    common = ["train.steps=100", "train.steps_per_call=1", "train.log_every=50",
              "train.sample_every=100", "train.checkpoint_every=100"]
    results = []
    no_eval = ["train.eval_every=0", "train.eval_final_n=0"]  # the loop alone, no metrics
    for label, extra in (("default (mnist_dcgan), with its final evaluation", []),
                         ("default (mnist_dcgan), evaluation off", no_eval),
                         ("seed preset (mlp), evaluation off", ["experiment=seed", *no_eval])):
        result = _run_ganrun([*extra, *common], label)
        print(f"  startup {label}: {result}", flush=True)
        results.append(result)
    return results



ROOT = Path(__file__).resolve().parents[1]
# The loop grid's models. "dcgan" is the plain unconditional DCGAN (experiment=base:
# non-saturating loss, no EMA), the model the grid has always timed, so its rows stay
# comparable with earlier runs; the default experiment has its own section (bench_default).
MODELS = {"mlp": ["experiment=seed"], "dcgan": ["experiment=base"]}
PRESETS = {**MODELS, "default": ["experiment=mnist_dcgan"]}


def compose(model: str, *overrides: str):
    """The benchmark's config of `model` (PRESETS): real MNIST when present, else fake data of
    the same size. Here, not in bench.py, so bench_levers can use it without a circle."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    data = (["data=mnist"] if mnist_available()
            else ["data=fake", "data.num_examples=60000"])
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=[*PRESETS[model], *data, *overrides])
