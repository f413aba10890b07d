"""Sweeps as a user runs them: a parallel joblib multirun with a failing job, the TensorBoard
HParams session of each run, submitit, and `ganrun report` (Optuna studies: test_optuna.py)."""

import csv
import json
import re

import pytest

from tests.conftest import CONFIG_DIR, TINY, run_ganrun

# Sweeps return loss/g: the default objective (eval/fid) needs the evaluation TINY turns off.
SWEEP_TINY = [*TINY, "objective.metric=loss/g"]


def _event_pids(run_dir):
    """Process ids in a run's TensorBoard event file names (events.out.tfevents.T.HOST.PID.N)."""
    return {path.name.split(".")[-3] for path in (run_dir / "tb").glob("events.out.tfevents.*")}


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """Three jobs, two at a time: train.d_steps=1 and 2 train, -1 fails its config check."""
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    result = run_ganrun("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                        *SWEEP_TINY, "train.d_steps=1,2,-1", f"hydra.sweep.dir={sweep_dir}",
                        timeout=600)
    return sweep_dir, result


def test_failed_job_is_reported_and_the_others_finish(grid_sweep):
    sweep_dir, result = grid_sweep
    assert result.returncode == 1, result.stderr[-3000:]  # a failed job, not a bad override
    assert f"ganrun: error in job {sweep_dir / '2'}: train.d_steps=-1" in result.stderr
    assert "Error executing job with overrides" in result.stderr
    for name in ("0", "1"):
        assert json.loads((sweep_dir / name / "metrics.json").read_text())["step"] == 4
    assert not (sweep_dir / "2" / "metrics.json").exists()


def test_jobs_run_in_separate_processes(grid_sweep):
    sweep_dir, _ = grid_sweep
    first, second = _event_pids(sweep_dir / "0"), _event_pids(sweep_dir / "1")
    assert len(first) == 1 and len(second) == 1 and first != second


def test_each_run_writes_an_hparams_session(grid_sweep):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    sweep_dir, _ = grid_sweep
    for name, d_steps in (("0", 1), ("1", 2)):
        log_dir = sweep_dir / name / "tb" / "hparams"
        events = event_accumulator.EventAccumulator(
            str(log_dir), size_guidance={event_accumulator.TENSORS: 0})
        events.Reload()
        content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["train.d_steps"].number_value == d_steps
        assert hparams["loss"].string_value == "nonsaturating"  # TINY: experiment=base
        assert "hydra.sweep.dir" not in hparams
        metrics = json.loads((sweep_dir / name / "metrics.json").read_text())
        (written,) = events.Tensors("loss/g")
        assert written.step == 4
        assert float(tensor_util.make_ndarray(written.tensor_proto)) == pytest.approx(
            metrics["loss/g"]["value"], rel=1e-6)
        assert "generator loss" in events.SummaryMetadata("loss/g").summary_description


def test_report_of_the_sweep(grid_sweep):
    sweep_dir, _ = grid_sweep
    result = run_ganrun("report", str(sweep_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = {name: json.loads((sweep_dir / name / "metrics.json").read_text())["loss/g"]["value"]
              for name in ("0", "1")}
    best = min(losses, key=losses.get)
    assert re.search(rf"^\| ★ \| {best} \| {1 if best == '0' else 2} \| ", result.stdout, re.M)
    assert "Objective: loss/g (minimize): generator loss" in result.stdout
    assert "- 2: ganrun: error in job" in result.stdout
    with (sweep_dir / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == [best, "1" if best == "0" else "0", "2"]
    assert rows[0]["best"] == "★" and float(rows[0]["loss/g"]) == pytest.approx(losses[best])
    assert rows[2]["loss/g"] == "" and "train.d_steps=-1" in rows[2]["error"]
    assert (sweep_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a submitit job process: about 30 s
def test_submitit_local_runs_a_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_ganrun("train", "-m", "hydra/launcher=submitit_local",
                        "hydra.launcher.timeout_min=10", *SWEEP_TINY,
                        f"hydra.sweep.dir={sweep_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((sweep_dir / "0" / "metrics.json").read_text())["step"] == 4
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))


def test_slurm_example_config_composes():
    result = run_ganrun("train", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                        "--cfg", "hydra")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in result.stdout
    assert "partition: gpu" in result.stdout and "gpus_per_node: 1" in result.stdout
    assert (CONFIG_DIR / "hydra" / "launcher" / "slurm.yaml").is_file()


def test_bad_override_in_a_multirun_exits_2():
    result = run_ganrun("train", "-m", "model=nope", "loss=hinge,wasserstein")
    assert result.returncode == 2


def test_every_error_a_job_raises_survives_the_trip_to_the_sweep_process():
    import pickle

    from ganrun.errors import ConfigError
    from ganrun.guard import TrainingStopped

    stopped = pickle.loads(pickle.dumps(TrainingStopped("stopped at step 7", 15)))
    assert str(stopped) == "stopped at step 7" and stopped.exit_code == 143
    assert str(pickle.loads(pickle.dumps(ConfigError("fix it")))) == "fix it"
