"""Trust and integrity (issue 14) through the real `ganrun` command: each defect of the issue
reproduced as a user (or a shared run directory) would trigger it, and the new behaviour.

Every test starts real processes (TensorFlow's start-up each), on fake data with a few steps.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ganrun import rundir
from tests.conftest import TINY, run_ganrun

pytestmark = pytest.mark.slow
MLP = [*TINY, "model=mlp"]


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        digest.update(str(path.relative_to(directory)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _one_error(result) -> str:
    """The single `ganrun: error:` line of a failed command (and check there is one)."""
    errors = [line for line in result.stderr.splitlines() if "ganrun: error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return errors[0].split("ganrun: error: ", 1)[1]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trust") / "run"
    result = run_ganrun("train", *MLP, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def _copy(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    copy = tmp_path / name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def _replace_node(run_dir: Path, node: str, text: str) -> None:
    """Replace the top-level `node:` block of experiment.yaml with `text`."""
    path = run_dir / "experiment.yaml"
    content = re.sub(rf"(?ms)^{node}:.*?(?=^\S)", text, path.read_text())
    path.write_text(content)


def test_sample_refuses_a_file_writing_target_and_writes_nothing(good_run, tmp_path):
    run_dir, victim = _copy(good_run, tmp_path), tmp_path / "written_by_the_yaml"
    _replace_node(run_dir, "model", (
        "model:\n  latent_dim: 100\n  generator:\n    _target_: ganrun.models.image.mlp_generator\n"
        "    units:\n    - _target_: pathlib.Path.write_text\n      _args_:\n"
        f"      - {{_target_: pathlib.Path, _args_: [{victim}]}}\n      - pwned\n"
        "  discriminator:\n    _target_: ganrun.models.image.mlp_discriminator\n"))
    result = run_ganrun("sample", f"run={run_dir}", "n=2", f"out={tmp_path / 's.png'}")
    assert result.returncode == 2
    assert _one_error(result).startswith(
        "model.generator.units[0]._target_: 'pathlib.Path.write_text' in "
        f"{run_dir / 'experiment.yaml'} is not a ganrun builder")
    assert not victim.exists() and not (tmp_path / "s.png").exists()


def test_eval_refuses_a_file_creating_data_node(good_run, tmp_path):
    run_dir, victim = _copy(good_run, tmp_path), tmp_path / "touched"
    _replace_node(run_dir, "data", f"data:\n  _target_: pathlib.Path.touch\n  self: {victim}\n")
    before = _digest(run_dir)
    result = run_ganrun("eval", f"run={run_dir}", "n=100")
    assert result.returncode == 2
    assert _one_error(result).startswith("data._target_: 'pathlib.Path.touch' in")
    assert not victim.exists() and _digest(run_dir) == before


def test_damaged_metadata_is_one_sentence(good_run, tmp_path):
    spec = _copy(good_run, tmp_path, "spec")
    (spec / "data_spec.json").write_text((good_run / "data_spec.json").read_text()[:30])
    result = run_ganrun("sample", f"run={spec}", "n=2", f"out={tmp_path / 'a.png'}")
    assert result.returncode == 2
    assert _one_error(result).startswith(f"{spec / 'data_spec.json'} is damaged (JSONDecodeError")
    not_data = _copy(good_run, tmp_path, "not_data")
    _replace_node(not_data, "data", "data:\n  _target_: ganrun.losses.hinge\n  _partial_: true\n")
    result = run_ganrun("eval", f"run={not_data}", "n=100")
    assert result.returncode == 2
    message = _one_error(result)
    assert message.startswith("data: ganrun.losses.hinge built a ") and "not a dataset" in message


def test_two_writers_one_waits_out_and_a_kill_9_lock_does_not_block(tmp_path):
    """Two real `ganrun train` processes race for one directory: the second exits 2 at once
    naming the first; then the first is killed with SIGKILL and its lock blocks nobody."""
    run_dir = tmp_path / "run"
    script = Path(sys.executable).with_name("ganrun")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([str(script), "train", *MLP, "train.steps=100000",
                              f"hydra.run.dir={run_dir}"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while rundir.holder(run_dir) != first.pid:  # the first process holds the lock
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.2)
        started = time.time()
        second = run_ganrun("train", *MLP, f"hydra.run.dir={run_dir}")
        assert second.returncode == 2 and time.time() - started < 30
        assert _one_error(second) == (f"{run_dir.resolve()} is in use by process {first.pid}; "
                                      "wait for it to finish, or train into another "
                                      "hydra.run.dir.")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (run_dir / ".lock").is_file() and rundir.holder(run_dir) is None  # left behind
    third = run_ganrun("train", *MLP, f"hydra.run.dir={run_dir}")
    assert third.returncode == 0, third.stderr[-3000:]
    assert (run_dir / "checkpoints" / "checkpoint").is_file()


def test_a_foreign_folder_is_not_trained_into_and_not_touched(tmp_path):
    folder = tmp_path / "someones"
    (folder / "samples").mkdir(parents=True)
    for name in ("experiment.yaml", "metrics.json", "generator.keras", "samples/step_0000004.png"):
        (folder / name).write_text("someone's\n")
    before = _digest(folder)
    result = run_ganrun("train", *MLP, f"hydra.run.dir={folder}")
    assert result.returncode == 2
    assert _one_error(result).startswith(f"{folder} holds files but no ganrun run")
    assert _digest(folder) == before  # not even .lock or .hydra/


def test_deleting_experiment_yaml_does_not_let_another_experiment_resume(good_run, tmp_path):
    run_dir = _copy(good_run, tmp_path)
    (run_dir / "experiment.yaml").unlink()
    result = run_ganrun("train", *MLP, "loss=least_squares", "train.steps=6",
                        f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert _one_error(result) == (f"{run_dir} holds checkpoints of a different experiment "
                                  "(data, model, loss or optimizer differ from its "
                                  "checkpoints); train into a new hydra.run.dir.")
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.index")) == \
        ["ckpt-2.index", "ckpt-4.index"]
    # The same experiment resumes, and writes experiment.yaml back.
    result = run_ganrun("train", *MLP, "train.steps=6", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0 and "at step 4" in result.stderr, result.stderr[-3000:]
    assert "ganrun_fingerprint" in (run_dir / "experiment.yaml").read_text()


def test_a_stray_label_id_is_named_before_any_allocation(tmp_path):
    labels = np.zeros(16, np.int64)
    labels[5] = 10**9
    np.savez(tmp_path / "x.npz", x_train=np.zeros((16, 8, 8), np.uint8), y_train=labels)
    result = run_ganrun("train", *MLP, "data=npz", f"data.path={tmp_path / 'x.npz'}",
                        "model.conditional=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert "'y_train' has class id 1000000000 at index 5" in _one_error(result)


def test_sample_refuses_an_output_that_cannot_fit_and_streams_large_n(good_run, tmp_path):
    started = time.time()
    result = run_ganrun("sample", f"run={good_run}", "n=1000000000", f"out={tmp_path / 'x.npz'}")
    assert result.returncode == 2 and time.time() - started < 60
    assert re.match(r"n=1000000000 images of 28x28x1 float32 need 29\d\d\.\d GiB, but .* GiB free",
                    _one_error(result))
    result = run_ganrun("sample", f"run={good_run}", "n=5000", f"out={tmp_path / 'x.png'}")
    assert result.returncode == 2 and "at most 4096" in _one_error(result)
    # Quiet: no TensorFlow start-up lines, no "Value in checkpoint could not be found".
    result = run_ganrun("sample", f"run={good_run}", "n=1200", f"out={tmp_path / 'x.npz'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "" and result.stdout.startswith("Wrote 1200 samples")
    images = np.load(tmp_path / "x.npz")["images"]
    assert images.shape == (1200, 28, 28) and images.dtype == np.float32


def test_hydra_overrides_get_one_sentence():
    result = run_ganrun("train", *MLP, "hydra.run.dir=/tmp/é")
    assert result.returncode == 2
    assert _one_error(result).startswith("an override could not be parsed")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_runaway_run_stops_with_exit_1_and_keeps_its_last_good_checkpoint(good_run, tmp_path):
    run_dir = _copy(good_run, tmp_path)
    generator = (run_dir / "generator.keras").read_bytes()
    result = run_ganrun("train", *MLP, "train.steps=8", "train.steps_per_call=1",
                        "optimizer.generator.learning_rate=1e5",
                        "optimizer.discriminator.learning_rate=1e5", f"hydra.run.dir={run_dir}")
    assert result.returncode == 1, result.stderr[-3000:]
    message = _one_error(result)
    # The first call (step 5) may still show the metrics from before its updates.
    assert re.match(r"training diverged in the steps ending at [56]: ", message), message
    assert "beyond train.divergence_bound=10000" in message or "nan" in message
    assert "the last good checkpoint (" in message and "ckpt-4) is kept" in message
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*.index")) == \
        ["ckpt-2.index", "ckpt-4.index"]
    assert (run_dir / "generator.keras").read_bytes() == generator
