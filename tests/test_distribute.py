"""train.strategy and train.precision on CPU: mirrored over 2 logical CPU devices equals the
default strategy, two local workers train and resume, mixed precision keeps float32 edges."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
# Observed here after 6 steps (float sums over 2 replicas instead of 1 batch): MLP metrics
# and weights within 2.4e-7; DCGAN (synchronized batch norm, whose variance formula differs
# too) metrics within 2e-6, weights within 2.4e-5 (Adam's first steps amplify tiny gradient
# differences). The tolerances leave ~10x room without hiding a wrong batch or loss scale
# (those show up at 1e-3 and above).
TOLERANCE = 1e-5
# With oneDNN on an AVX2-only CPU (2026-12-02), 6 of the DCGAN's 627,200 weights differed by
# up to 5.6e-4 after the same 6 steps, all others within 2e-4: Adam's step on gradients that
# are ~0. A share of 1e-4 of the weights may do that, within 6 steps x 2 x Adam's lr 2e-4 ~
# 2.4e-3; a wrong batch or loss scale moves most weights, so it still fails.
OUTLIER_SHARE, OUTLIER_BOUND = 1e-4, 2.4e-3


def _mirrored_job(tmp_path, *overrides):
    out = tmp_path / "result.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(HERE / "mirrored_job.py"), str(out),
                           str(tmp_path), *overrides], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _assert_close(first, second, tolerance, outliers=0.0):
    """Weights within `tolerance`, except at most a share `outliers` of them, which must stay
    within OUTLIER_BOUND: where a gradient is ~0, Adam's normalised step turns a rounding
    difference into a move of up to the learning rate, in either direction."""
    for a, b in zip(first, second, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        far = ~np.isclose(a, b, rtol=tolerance, atol=tolerance)
        assert far.mean() <= outliers, f"{far.sum()} of {far.size} weights differ"
        np.testing.assert_allclose(a, b, rtol=0, atol=OUTLIER_BOUND if outliers else tolerance)


@pytest.mark.parametrize("overrides,tolerance", [
    (["model=mlp"], TOLERANCE),
    pytest.param(["model=mlp", "loss=hinge", "train.d_steps=2"], TOLERANCE,
                 marks=pytest.mark.slow),
    pytest.param(["model=dcgan"], 2e-4, marks=pytest.mark.slow),
], ids=["mlp", "hinge_two_d_steps", "dcgan_batch_norm"])
def test_mirrored_on_two_cpus_equals_default_and_resumes(tmp_path, overrides, tolerance):
    result = _mirrored_job(tmp_path, *overrides)
    default, mirrored = result["default"], result["mirrored"]
    assert (default["replicas"], mirrored["replicas"]) == (1, 2)
    assert mirrored["traces"] == 1
    for a, b in zip(default["metrics"], mirrored["metrics"], strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=tolerance,
                                   atol=tolerance)
    _assert_close(default["weights"], mirrored["weights"], tolerance,
                  OUTLIER_SHARE if "model=dcgan" in overrides else 0.0)
    # Resume under the strategy: 2 steps, a new process-state, 2 more == 4 at once, exactly.
    assert result["resumed"]["step"] == result["uninterrupted"]["step"] == 4
    _assert_close(result["resumed"]["weights"], result["uninterrupted"]["weights"], 0.0)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(run_dir, steps):
    """Two `ganrun train` processes of one MultiWorkerMirroredStrategy cluster on loopback."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    args = ["train", "model=mlp", "data=fake", f"train.steps={steps}", "train.batch_size=8",
            "train.log_every=2", "train.sample_every=100", "train.checkpoint_every=2",
            "train.steps_per_call=2", "train.sample_grid=4", "train.eval_every=0",
            "train.eval_final_n=0", "train.strategy=multi_worker", f"hydra.run.dir={run_dir}"]
    script = Path(sys.executable).with_name("ganrun")
    processes = [subprocess.Popen(
        [str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


@pytest.mark.slow  # four training processes
def test_two_local_workers_train_checkpoint_on_the_chief_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    _two_workers(run_dir, 4)
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "ckpt-4.index").is_file()
    scratch = Path(tempfile.gettempdir()) / "ganrun-workers" / "run-worker-1"
    assert (scratch / "checkpoints" / "ckpt-4.index").is_file()  # worker 1 wrote elsewhere
    outputs = _two_workers(run_dir, 6)
    assert all("at step 4" in output for output in outputs), outputs[0][-2000:]
    assert (checkpoints / "ckpt-6.index").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["step"] == 6
    assert len(list((run_dir / "tb" / "hparams").glob("events.*"))) == 2  # chief, 2 runs


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_outputs(compose, precision):
    import keras
    import tensorflow as tf

    from ganrun import build

    cfg = compose("model=dcgan", f"train.precision={precision}")
    trainer = build.trainer(cfg, build.data(cfg))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after build
    assert trainer.discriminator.layers[-2].compute_dtype == precision.split("_")[1]
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16")
    metrics = trainer.train_steps(tf.constant(2))
    assert all(np.isfinite(float(value)) for value in metrics.values())
    images = tf.zeros((2, *trainer.examples.shape[1:]))
    assert trainer.discriminator(images).dtype == tf.float32
    assert trainer.generator(tf.zeros((2, trainer.latent_dim))).dtype == tf.float32


def test_auto_precision_is_bf16_only_on_bf16_hardware(monkeypatch):
    from ganrun import cpu, precision
    from ganrun.trainers.options import TrainOptions

    assert cpu.has_bf16_units("flags : fpu avx2 avx512f avx512_bf16 sse4_2")
    assert cpu.has_bf16_units("flags : fpu avx2 amx_bf16 amx_tile")
    assert not cpu.has_bf16_units("flags : fpu avx avx2 fma avx512f")
    for hardware, expected in ((True, "mixed_bfloat16"), (False, "float32")):
        monkeypatch.setattr(precision, "bf16_hardware", lambda hardware=hardware: hardware)
        assert precision.resolve("auto") == expected
        assert TrainOptions(steps=1, batch_size=8, precision="auto").precision == expected
        assert precision.resolve("mixed_float16") == "mixed_float16"  # explicit wins


def test_auto_precision_follows_this_machine(monkeypatch):
    from ganrun import cpu, precision

    precision.bf16_hardware.cache_clear()
    try:
        expected = cpu.has_bf16_units()  # no GPU here: the CPU's flags decide
        assert precision.resolve("auto") == ("mixed_bfloat16" if expected else "float32")
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # bf16 maths needs oneDNN on a CPU
        precision.bf16_hardware.cache_clear()
        assert precision.resolve("auto") == "float32"
    finally:
        precision.bf16_hardware.cache_clear()


def test_slurm_environment_becomes_tf_config(monkeypatch):
    from ganrun import slurm

    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[07-08]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "1(x2)")
    assert slurm.in_job_step()
    assert slurm.tf_config(base_port=9000) == {
        "cluster": {"worker": ["gpu07:9000", "gpu08:9000"]},
        "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("field,value", [("strategy", "horovod"), ("precision", "float16")])
def test_unknown_strategy_or_precision_is_a_config_error(field, value):
    from ganrun.errors import ConfigError
    from ganrun.trainers.options import TrainOptions

    with pytest.raises(ConfigError, match=f"train.{field}"):
        TrainOptions(steps=1, batch_size=8, **{field: value})

