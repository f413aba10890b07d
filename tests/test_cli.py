"""The command line as a user runs it: `ganrun train`, resume, `ganrun sample`, bad inputs."""

import hashlib

import numpy as np
import pytest

from tests.conftest import TINY, run_ganrun


def _digest(directory):
    """A hash of every file under `directory` (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run trained through the CLI (4 steps on fake data)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = run_ganrun("train", *TINY, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_writes_the_documented_run_directory(trained_run):
    for name in (".hydra/config.yaml", "train.log", "metrics.json", "generator.keras",
                 "experiment.yaml", "data_spec.json", "checkpoints/checkpoint",
                 "samples/step_0000004.png"):
        assert (trained_run / name).is_file(), name
    assert list((trained_run / "tb").glob("events.out.tfevents.*"))
    assert "Run directory" in (trained_run / "train.log").read_text()


def test_generator_keras_loads_in_safe_mode(trained_run):
    import keras

    generator = keras.saving.load_model(trained_run / "generator.keras", safe_mode=True)
    z = np.zeros((1, generator.inputs[0].shape[-1]), np.float32)
    inputs = z if len(generator.inputs) == 1 else [z, np.zeros((1,), np.int32)]  # conditional
    assert generator(inputs).shape == (1, 28, 28, 1)


def test_sample_is_deterministic_and_documented(trained_run, tmp_path):
    for name in ("a.npz", "b.npz"):
        result = run_ganrun("sample", f"run={trained_run}", "n=5", f"out={tmp_path / name}",
                            "seed=3")
        assert result.returncode == 0, result.stderr[-3000:]
    a, b = (np.load(tmp_path / name)["images"] for name in ("a.npz", "b.npz"))
    assert a.shape == (5, 28, 28) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    result = run_ganrun("sample", f"run={trained_run}", "n=4", f"out={tmp_path / 'g.png'}")
    assert result.returncode == 0 and (tmp_path / "g.png").stat().st_size > 0


def test_resume_continues_to_the_new_step_count(trained_run):
    result = run_ganrun("train", *TINY, "train.steps=6", f"hydra.run.dir={trained_run}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from" in result.stderr and "at step 4" in result.stderr
    assert '"step": 6' in (trained_run / "metrics.json").read_text()


def test_help_lists_groups_and_options():
    result = run_ganrun("train", "--help")
    assert result.returncode == 0
    section = result.stdout.split("== Config groups")[1].split("==")[1]
    groups = dict(line.split(":", 1) for line in section.splitlines() if ":" in line)
    for group, options in (("model", "dcgan"), ("model", "mlp"), ("experiment", "seed"),
                           ("experiment", "mnist_dcgan"), ("loss", "minimax"), ("data", "mnist")):
        assert options in groups.get(group, ""), (group, options)


def test_cfg_job_prints_the_composed_config():
    result = run_ganrun("train", "experiment=seed", "--cfg", "job")
    assert result.returncode == 0
    assert "batch_size: 32" in result.stdout and "ganrun.losses.minimax" in result.stdout


BAD_TRAIN_ARGS = [
    (["model=nope"], "model/nope"),
    (["train.stepz=5"], "stepz"),
    (["train.steps=-1"], "train.steps=-1 must be a positive integer"),
    (["train.batch_size=0"], "train.batch_size=0 must be a positive integer"),
    (["optimizer.generator.learning_rate=0"], "learning_rate=0 must be a positive number"),
    (["data=mnist", "data.path=/no/such/mnist.npz"], "does not exist"),
    (["train.jit_compile=maybe"], "train.jit_compile"),
]


@pytest.mark.parametrize("args, message", BAD_TRAIN_ARGS)
def test_bad_train_input_exits_2_with_one_message(tmp_path, args, message):
    result = run_ganrun("train", *TINY, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_data_file_exits_2(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip file")
    result = run_ganrun("train", *TINY, "data=mnist", f"data.path={bad}", "data.sha256=null",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "not a readable .npz" in result.stderr


def test_other_experiment_in_a_run_dir_is_refused_and_nothing_changes(trained_run):
    before = _digest(trained_run / "checkpoints") + (trained_run / "experiment.yaml").read_text()
    result = run_ganrun("train", *TINY, "model=mlp", f"hydra.run.dir={trained_run}")
    assert result.returncode == 2 and "different experiment" in result.stderr
    after = _digest(trained_run / "checkpoints") + (trained_run / "experiment.yaml").read_text()
    assert before == after


def test_sample_without_a_run_exits_2(tmp_path):
    result = run_ganrun("sample", f"run={tmp_path}", "n=2", f"out={tmp_path / 'x.npz'}")
    assert result.returncode == 2 and "not a ganrun run directory" in result.stderr


def test_unknown_command_exits_2():
    result = run_ganrun("trian")
    assert result.returncode == 2 and "unknown command 'trian'" in result.stderr
