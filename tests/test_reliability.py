"""Reliability: checkpoints that survive crashes, the divergence guard, graceful stop.

The real-process versions (SIGKILL chaos, SIGTERM / Ctrl-C) start `ganrun train`; the
rest call `fit` in-process on the shrunk real configs.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganrun import guard
from ganrun.checkpoints import Checkpoints
from ganrun.errors import ConfigError, GanrunError, TrainingDiverged
from ganrun.fit import fit
from ganrun.trainers.options import TrainOptions
from tests.conftest import ROOT, TINY, make_trainer, training_state


def _checkpoint_names(run_dir: Path) -> list[str]:
    return [Path(p).name for p in tf.train.get_checkpoint_state(
        str(run_dir / "checkpoints")).all_model_checkpoint_paths]


# --- checkpoints that survive crashes -------------------------------------------------------


def test_corrupt_newest_checkpoint_falls_back_and_still_resumes_exactly(compose, tmp_path,
                                                                         caplog):
    overrides = ["model=mlp", "train.checkpoint_every=3", "train.steps=8"]
    reference = make_trainer(compose(*overrides))
    fit(reference, tmp_path / "reference")

    fit(make_trainer(compose(*overrides[:-1], "train.steps=6")), tmp_path / "run")  # ckpt-3, -6
    data_file = next((tmp_path / "run" / "checkpoints").glob("ckpt-6.data-*"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    resumed = make_trainer(compose(*overrides))
    with caplog.at_level(logging.INFO):
        fit(resumed, tmp_path / "run")
    assert "ckpt-6 could not be restored" in caplog.text
    assert "Resumed from" in caplog.text and "ckpt-3 at step 3" in caplog.text
    for expected, actual in zip(training_state(reference), training_state(resumed), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_a_failing_write_keeps_the_previous_checkpoint_latest_and_readable(
        compose, tmp_path, monkeypatch):
    cfg = compose("model=mlp", "train.checkpoint_every=2", "train.steps=2")
    fit(make_trainer(cfg), tmp_path)
    state_file = tmp_path / "checkpoints" / "checkpoint"
    before = state_file.read_bytes()

    trainer = make_trainer(compose("model=mlp", "train.checkpoint_every=2", "train.steps=4"))

    def disk_full(prefix, options=None):  # writes part of the data, then the disk is full
        temp = Path(f"{prefix}_temp")
        temp.mkdir(parents=True, exist_ok=True)
        (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 1000)
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(trainer.checkpoint, "_write", disk_full)
    with pytest.raises(GanrunError, match="could not write checkpoint ckpt-4.*No space left"
                                          ".*free disk space.*ckpt-2"):
        fit(trainer, tmp_path)
    assert state_file.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]  # partial files removed
    fresh = make_trainer(cfg)
    restored = Checkpoints(fresh.checkpoint, tmp_path / "checkpoints").restore_latest()
    assert Path(restored).name == "ckpt-2" and int(fresh.step.numpy()) == 2


# --- the divergence guard -------------------------------------------------------------------

ABSURD = ["model=mlp", "optimizer.discriminator.learning_rate=1e30",
          "optimizer.generator.learning_rate=1e30", "train.steps=8"]


def test_nan_stops_with_the_step_and_keeps_only_finite_checkpoints(compose, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"steps ending at \d+: .*(loss|weights)"):
        fit(make_trainer(compose(*ABSURD)), tmp_path)
    for name in _checkpoint_names(tmp_path) if (tmp_path / "checkpoints").is_dir() else []:
        reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / name))
        for key in reader.get_variable_to_shape_map():
            value = reader.get_tensor(key)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert np.isfinite(value).all(), (name, key)


def test_rollback_restores_lowers_learning_rates_logs_and_finishes(compose, tmp_path, caplog):
    # 1e30 * 1e-33 = 1e-3: one rollback brings the learning rates back to sane values.
    cfg = compose(*ABSURD, "train.on_nonfinite=rollback", "train.rollback_lr_factor=1e-33")
    trainer = make_trainer(cfg)
    with caplog.at_level(logging.WARNING):
        metrics = fit(trainer, tmp_path)
    assert caplog.text.count("rolled back to") == 1
    assert "rollback 1 of 3" in caplog.text and "ckpt-0 (step 0)" in caplog.text
    assert int(trainer.step.numpy()) == 8 and np.isfinite(metrics["loss/d"]["value"])
    assert float(trainer.d_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert not guard.WeightCheck([trainer.generator, trainer.discriminator]).nonfinite()


def test_resume_keeps_the_checkpoints_rates_unless_the_config_changes_them(compose, tmp_path,
                                                                          caplog):
    def resume(*overrides):  # the rates the resumed run trained with
        trainer = make_trainer(compose("model=mlp", *overrides))
        fit(trainer, tmp_path)
        return {"g": float(trainer.g_optimizer.learning_rate.numpy()),
                "d": float(trainer.d_optimizer.learning_rate.numpy())}

    assert resume("train.steps=2") == pytest.approx({"g": 2e-4, "d": 2e-4})
    # Training lowered D's rate (as a rollback does); the checkpoint holds it.
    trainer = make_trainer(compose("model=mlp"))
    checkpoints = Checkpoints(trainer.checkpoint, tmp_path / "checkpoints")
    trainer.checkpoint.configured_learning_rates = tf.Variable([2e-4, 2e-4])
    checkpoints.restore_latest()
    trainer.d_optimizer.learning_rate.assign(1e-5)
    checkpoints.save(2)
    # The same config: the checkpoint's rates hold, the lowered one included.
    assert resume("train.steps=4") == pytest.approx({"g": 2e-4, "d": 1e-5})
    # A new rate on the command line replaces the restored one, and says so.
    with caplog.at_level(logging.INFO):
        assert resume("train.steps=6", "optimizer.generator.learning_rate=5e-5") == \
            pytest.approx({"g": 5e-5, "d": 1e-5})
    assert "g_optimizer learning rate: the config changed it from 0.0002 to 5e-05" in caplog.text
    assert "d_optimizer" not in caplog.text
    # Asking for the first rate again is a change too (from the last launch's 5e-5).
    assert resume("train.steps=8") == pytest.approx({"g": 2e-4, "d": 1e-5})


def test_checkpoints_from_before_the_rate_record_still_resume(compose, tmp_path):
    # Checkpoints written before ganrun recorded the configured learning rates lack that
    # record; they resume (keeping their rates) and later checkpoints carry it.
    trainer = make_trainer(compose("model=mlp", "train.steps=2"))
    Checkpoints(trainer.checkpoint, tmp_path / "checkpoints").save(0)
    assert "configured_learning_rates" not in str(tf.train.list_variables(
        str(tmp_path / "checkpoints" / "ckpt-0")))
    resumed = make_trainer(compose("model=mlp", "train.steps=2"))
    fit(resumed, tmp_path)
    assert int(resumed.step.numpy()) == 2
    assert any("configured_learning_rates" in name for name, _ in tf.train.list_variables(
        str(tmp_path / "checkpoints" / "ckpt-2")))


def test_rollback_gives_up_after_max_rollbacks(compose, tmp_path, caplog):
    cfg = compose(*ABSURD, "train.on_nonfinite=rollback", "train.max_rollbacks=2")
    with caplog.at_level(logging.WARNING), pytest.raises(TrainingDiverged,
                                                         match="after 2 rollbacks"):
        fit(make_trainer(cfg), tmp_path)
    assert caplog.text.count("rolled back to") == 2


def test_non_finite_weights_are_caught_even_when_losses_are_finite(compose, tmp_path):
    trainer = make_trainer(compose("model=mlp"))
    fit(trainer, tmp_path / "a")
    checkpoints = Checkpoints(trainer.checkpoint, tmp_path / "a" / "checkpoints")
    divergence = guard.DivergenceGuard(trainer, checkpoints)
    assert divergence.check({"loss/d": 0.5}, 4) is None
    weight = trainer.discriminator.trainable_variables[0]
    weight.assign(tf.tensor_scatter_nd_update(weight, [[0, 0]], [np.inf]))
    with pytest.raises(TrainingDiverged, match="non-finite weights in .*kernel"):
        divergence.check({"loss/d": 0.5}, 4)


@pytest.mark.parametrize("field, value", [("on_nonfinite", "retry"),
                                          ("rollback_lr_factor", 1.5),
                                          ("rollback_lr_factor", 0), ("max_rollbacks", 0)])
def test_bad_guard_options_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=f"train.{field}"):
        TrainOptions(**{"steps": 10, "batch_size": 8, field: value})


# --- graceful stop --------------------------------------------------------------------------


def test_stop_request_checkpoints_flushes_and_says_how_to_resume(compose, tmp_path,
                                                                 monkeypatch):
    trainer = make_trainer(compose("model=mlp", "train.steps=40", "train.checkpoint_every=1000"))
    real_steps = trainer.train_steps

    def steps_then_signal(count):  # the signal arrives during the third compiled call
        result = real_steps(count)
        if int(trainer.step.numpy()) == 6:
            signal.raise_signal(signal.SIGTERM)
        return result

    monkeypatch.setattr(trainer, "train_steps", steps_then_signal)
    handler_before = signal.getsignal(signal.SIGTERM)
    with guard.StopRequest(), pytest.raises(guard.TrainingStopped) as stopped:
        fit(trainer, tmp_path)
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step 6" in str(stopped.value)
    assert f"hydra.run.dir={tmp_path}" in str(stopped.value)
    assert _checkpoint_names(tmp_path)[-1] == "ckpt-6"
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handlers restored


def _start(*args: str) -> subprocess.Popen:
    script = Path(sys.executable).with_name("ganrun")
    return subprocess.Popen([str(script), "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_real_run_gracefully_and_it_resumes_exactly(compose, tmp_path, signum):
    long_run = [*TINY, "model=mlp", "train.steps=100000", "train.checkpoint_every=100000",
                "train.log_every=100000", "train.sample_every=100000", "train.steps_per_call=3"]
    process = _start(*long_run, f"hydra.run.dir={tmp_path / 'run'}")
    output = []
    for line in process.stdout:  # wait until the training loop runs
        output.append(line)
        if "First compiled call" in line:
            break
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signum)
    rest, _ = process.communicate(timeout=60)
    text = "".join(output) + rest
    assert time.monotonic() - sent < 30, text[-2000:]
    assert process.returncode == 128 + signum, text[-3000:]
    assert "Traceback" not in text
    found = re.search(r"stopped by (\w+) at step (\d+) after writing \S+ckpt-(\d+); resume by "
                      r"running the same command with hydra.run.dir=", text)
    assert found and found.group(1) == signal.Signals(signum).name, text[-2000:]
    step = int(found.group(2))
    assert step % 3 == 0 and found.group(3) == str(step)  # the current call was finished
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))

    target = step + 5  # resume in-process and compare with a run never interrupted
    overrides = ("model=mlp", f"train.steps={target}", "train.steps_per_call=3")
    resumed = make_trainer(compose(*overrides))
    fit(resumed, tmp_path / "run")
    reference = make_trainer(compose(*overrides))
    fit(reference, tmp_path / "reference")
    for expected, actual in zip(training_state(reference), training_state(resumed), strict=True):
        np.testing.assert_array_equal(actual, expected)


# --- kill -9 at random moments (scripts/chaos.py, the short form) ---------------------------


@pytest.mark.slow
def test_chaos_three_sigkills_resume_bit_exactly(tmp_path):
    overrides = [*TINY, "model=mlp", "train.steps=300", "train.checkpoint_every=10",
                 "train.log_every=10", "train.sample_every=100", "train.steps_per_call=5"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--kills", "3", "--workdir",
         str(tmp_path), "--", *overrides], capture_output=True, text=True, timeout=1200)
    assert "kills survived: 3/3" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "identical: yes" in result.stdout, result.stdout
    assert result.returncode == 0


# --- safety: nothing loads with pickle ------------------------------------------------------


def test_no_pickle_and_keras_files_load_in_safe_mode():
    """Checkpoints are TensorFlow's, vocabularies JSON, .npz read without pickle, .keras in
    safe mode, TensorBoard on localhost. A static check over the package's source."""
    sources = {p: p.read_text() for p in (ROOT / "src" / "ganrun").rglob("*.py")}
    for path, text in sources.items():
        assert not re.search(r"^\s*(import|from) (pickle|cloudpickle|dill)\b", text, re.M), path
        assert "allow_pickle=True" not in text and "safe_mode=False" not in text, path
        for call in re.findall(r"load_model\([^)]*\)", text):
            assert "safe_mode=True" in call, (path, call)
    assert "--host 127.0.0.1" in (ROOT / "Makefile").read_text()
