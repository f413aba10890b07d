"""Optuna studies (hydra/sweeper=ganrun_optuna) as a user runs them: Hydra's sweep syntax as
Optuna distributions, a study whose trials in two worker processes report their periodic FID
to one SQLite storage and get pruned, its report and dashboard, and a study resumed after its
sweep process was killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY, run_ganrun

# A trial trains 8 steps on fake data and scores 32 samples every 2 steps (a cheap feature
# network: tests/test_image_eval.py); its objective is the final FID of 32 samples.
EVALUATED = [*TINY, "train.steps=8", "train.sample_every=8", "train.checkpoint_every=4",
             "train.eval_every=2", "train.eval_n=32", "train.eval_final_n=32",
             "evaluator.epochs=3", "evaluator.batch_size=32", "evaluator.feature_dim=16"]
# The constructed objective. On this fake data, G's learning rate 2e-4 leaves the periodic FID
# near 185 for 8 steps, while 0.5 moves it to about 115 at the first evaluation (measured).
# Optuna 5's random sampler with seed 9 proposes 0.5, 2e-4, 0.5, 2e-4 (asserted below): trials
# 0 and 1 run together and complete (the median pruner waits for 1 finished trial); trial 3's
# FID at step 2 is above the median of trials 0 and 1 there, so it is pruned; trial 2's is not.
LEARNING_RATES, SEED = "choice(0.0002, 0.5)", 9


def _study(sweep_dir: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def _event_pids(run_dir: Path) -> set[str]:
    """Process ids in a run's TensorBoard event file names (events.out.tfevents.T.HOST.PID.N)."""
    return {path.name.split(".")[-3] for path in (run_dir / "tb").glob("events.out.tfevents.*")}


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from hydra_plugins.ganrun_optuna.search_space import SearchSpaceError, parse

    space, fixed = parse([
        "loss=choice(hinge,nonsaturating)", "regularize.augment=choice([],[translation,cutout])",
        "lr=tag(log, interval(5e-5, 1e-3))", "beta=interval(0, 0.9)", "n=int(interval(1, 5))",
        "batch=range(32, 129, 32)", "w=range(0.5, 2.0, 0.5)", "train.steps=100",
        "train.steps=choice(10, 20)", "loss=hinge"])
    assert fixed == {"loss": "loss=hinge"}  # the later override of a key wins
    assert space["regularize.augment"] == CategoricalDistribution(["[]", "[translation,cutout]"])
    assert space["lr"] == FloatDistribution(5e-5, 1e-3, log=True)
    assert space["beta"] == FloatDistribution(0.0, 0.9)
    assert space["n"] == IntDistribution(1, 5)
    assert space["batch"] == IntDistribution(32, 128, step=32)
    assert space["w"] == FloatDistribution(0.5, 1.5, step=0.5)
    assert space["train.steps"] == CategoricalDistribution([10, 20])
    with pytest.raises(SearchSpaceError, match="range is empty"):
        parse(["x=range(5, 1)"])


def test_a_grid_is_every_choice_and_range_step():
    from hydra_plugins.ganrun_optuna.search_space import SearchSpaceError, grid, parse

    space, _ = parse(["train.batch_size=choice(64, 128)", "model.generator.channels="
                      "choice([192,96],[256,128])", "n=range(1, 7, 2)", "w=range(0.5, 2.0, 0.5)"])
    assert grid(space) == {"train.batch_size": [64, 128],
                           "model.generator.channels": ["[192,96]", "[256,128]"],
                           "n": [1, 3, 5], "w": [0.5, 1.0, 1.5]}
    with pytest.raises(SearchSpaceError, match="lr: hydra/sweeper/sampler=grid needs"):
        grid(parse(["lr=tag(log, interval(1e-4, 1e-3))"])[0])


def test_a_failed_grid_point_is_queued_again():
    """GridSampler counts a failed trial's combination as visited; a resumed grid study runs
    it again, once, however often it resumes."""
    import optuna

    from ganrun.study import grid_sampler
    from hydra_plugins.ganrun_optuna.search_space import grid, parse
    from hydra_plugins.ganrun_optuna.sweeper import GanrunOptunaSweeper

    space, _ = parse(["batch=choice(64, 128)"])
    study = optuna.create_study(sampler=grid_sampler(grid(space), seed=0))
    first, second = study.ask(space), study.ask(space)
    study.tell(first, 1.0)
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    for _ in range(2):  # two resumes
        GanrunOptunaSweeper._requeue_failed_grid_points(study)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1
    assert study.ask(space).params == second.params != first.params


@pytest.mark.slow  # 4 short trials: about 30 s
def test_a_grid_study_runs_each_combination_once(tmp_path):
    sweep_dir = tmp_path / "grid"
    result = run_ganrun(
        "train", "hparams_search=mnist_optuna", *TINY, "objective.metric=loss/g",
        "train.steps=4", "hydra/sweeper/sampler=grid", "hydra/sweeper/pruner=none",
        f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.study_name=grid",
        "hydra.sweeper.n_trials=10", "~hydra.sweeper.params",
        "+hydra.sweeper.params={loss: 'choice(hinge, nonsaturating)', "
        "model.latent_dim: 'choice(8, 16)'}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _study(sweep_dir, "grid").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # n_trials cut to the grid's 4
    assert sorted((t.params["loss"], t.params["model.latent_dim"]) for t in trials) == [
        ("hinge", 8), ("hinge", 16), ("nonsaturating", 8), ("nonsaturating", 16)]


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory):
    """4 trials, 2 at a time in joblib worker processes, median pruning (see LEARNING_RATES)."""
    sweep_dir = tmp_path_factory.mktemp("study") / "sweep"
    result = run_ganrun(
        "train", "hparams_search=mnist_optuna", *EVALUATED, f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.study_name=pruned", "hydra.sweeper.n_trials=4",
        "hydra/sweeper/sampler=random", f"hydra.sweeper.sampler.seed={SEED}",
        "hydra.sweeper.pruner.n_startup_trials=1", "~hydra.sweeper.params",
        f"+hydra.sweeper.params={{optimizer.generator.learning_rate: '{LEARNING_RATES}'}}",
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir, result


def test_a_trial_behind_the_median_is_pruned(pruned_study):
    sweep_dir, result = pruned_study
    trials = _study(sweep_dir, "pruned").trials
    assert [t.params["optimizer.generator.learning_rate"] for t in trials] == [
        0.5, 0.0002, 0.5, 0.0002]  # the sampler's proposals this test is built on
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    pruned = trials[3]
    assert list(pruned.intermediate_values) == [2]  # pruned at its first evaluation
    assert pruned.value == pruned.intermediate_values[2]  # its last reported value
    # It stopped like a graceful stop: a checkpoint at that step, a log line, no final metrics.
    run = sweep_dir / "3"
    assert (run / "checkpoints" / "ckpt-2.index").is_file()
    assert not (run / "metrics.json").exists()
    log = (run / "train.log").read_text()
    assert "ganrun: trial 3 pruned by the MedianPruner at step 2 (eval_periodic/fid" in log
    for trial in trials[:3]:  # complete trials report every evaluation; value = final FID
        assert list(trial.intermediate_values) == [2, 4, 6, 8]
        metrics = json.loads((sweep_dir / str(trial.number) / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["eval/fid"]["value"])


def test_trials_in_two_processes_report_to_one_storage(pruned_study):
    sweep_dir, _ = pruned_study
    first, second = _event_pids(sweep_dir / "0"), _event_pids(sweep_dir / "1")
    assert len(first) == 1 and len(second) == 1 and first != second
    trials = _study(sweep_dir, "pruned").trials
    assert all(trials[n].intermediate_values for n in (0, 1))


def test_report_shows_the_pruned_trial(pruned_study):
    import csv

    sweep_dir, _ = pruned_study
    result = run_ganrun("report", str(sweep_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "|  | 3 | PRUNED | 0.0002 |" in result.stdout
    assert "- 3: pruned at step 2 (reported value " in result.stdout
    assert "Optuna study pruned: 4 trials (3 complete, 1 pruned)." in result.stdout
    assert "Parameter importances (Optuna " in result.stdout
    with (sweep_dir / "report.csv").open() as handle:
        states = {row["run"]: row["state"] for row in csv.DictReader(handle)}
    assert states == {"0": "COMPLETE", "1": "COMPLETE", "2": "COMPLETE", "3": "PRUNED"}
    with (sweep_dir / "report_study.csv").open() as handle:
        study = {row["key"]: row["value"] for row in csv.DictReader(handle)}
    assert study["trials/pruned"] == "1" and study["trials/complete"] == "3"
    assert float(study["importance/optimizer.generator.learning_rate"]) == pytest.approx(1.0)


def test_study_summary_with_fewer_than_two_complete_trials(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from ganrun import study as study_module

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="small", storage=storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, 0.5)
    pruned = study.ask()
    pruned.report(7.0, 200)
    study.tell(pruned, state=TrialState.PRUNED)
    summary = study_module.summarize(storage, "small")
    assert summary.counts == {"COMPLETE": 1, "PRUNED": 1}
    assert (summary.trials[1].state, summary.trials[1].last_step) == ("PRUNED", 200)
    assert summary.best[:2] == (0, 0.5) and summary.importances == {}
    lines = study_module.markdown(summary)
    assert lines[0] == "Optuna study small: 2 trials (1 complete, 1 pruned)."
    assert lines[-1] == ("Parameter importances: none (they need 2 complete trials; the study "
                         "has 1).")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dashboard_serves_the_study_on_loopback(pruned_study):
    sweep_dir, _ = pruned_study
    port = _free_port()
    script = Path(sys.executable).with_name("ganrun")
    server = subprocess.Popen([str(script), "dashboard", str(sweep_dir), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, server.stdout.read() if server.poll() is not None else ""
        assert [study["study_name"] for study in body["study_summaries"]] == ["pruned"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert f"Listening on http://127.0.0.1:{port}/" in server.stdout.read()  # loopback only


def test_dashboard_of_a_directory_without_a_study_exits_2(tmp_path):
    result = run_ganrun("dashboard", str(tmp_path))
    assert result.returncode == 2
    assert "holds no Optuna study" in result.stderr


def _wait_for_running_trial(sweep_dir: Path, process, number: int, timeout: float = 300):
    """Wait until trial `number` is RUNNING and has written a checkpoint."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if (sweep_dir / str(number) / "checkpoints" / "checkpoint").is_file() and \
                _study(sweep_dir, "resumed").trials[number].state == TrialState.RUNNING:
            return
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never ran (sweep exit code {process.poll()})")


@pytest.mark.slow  # two sweeps, a killed one: about 40 s
def test_study_resumes_after_its_sweep_process_is_killed(tmp_path):
    sweep_dir = tmp_path / "study"
    args = ["train", "hparams_search=mnist_optuna", *TINY, "objective.metric=loss/g",
            "train.steps=200", "hydra/sweeper/pruner=none", "hydra.sweeper.n_jobs=1",
            f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.study_name=resumed",
            "hydra.sweeper.n_trials=3"]
    script = Path(sys.executable).with_name("ganrun")
    # Its own session: the kill reaches the sweep and any worker it started.
    sweep = subprocess.Popen([str(script), *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        _wait_for_running_trial(sweep_dir, sweep, 1)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    assert [t.state.name for t in _study(sweep_dir, "resumed").trials] == ["COMPLETE", "RUNNING"]

    second = run_ganrun(*args, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "Trial 1 was interrupted (left RUNNING); marking it failed." in log
    assert "1 of 3 trials finished, 2 trials in storage; running 2" in log
    trials = _study(sweep_dir, "resumed").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params != trials[0].params  # the sampler's seed moved on
    for trial in (trials[0], trials[2], trials[3]):  # run directory = trial number
        metrics = json.loads((sweep_dir / str(trial.number) / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["loss/g"]["value"])
        overrides = (sweep_dir / str(trial.number) / ".hydra" / "overrides.yaml").read_text()
        assert f"loss={trial.params['loss']}" in overrides
    assert not (sweep_dir / "1" / "metrics.json").exists()  # the killed trial's directory


@pytest.mark.parametrize("preset", ["mnist_optuna", "mnist_quality", "mnist_dcgan_refine",
                                    "mnist_dcgan_grid",
                                    "mnist_mlp", "mnist_conditional", "mnist_hinge_sn",
                                    "mnist_wgan_gp"])
def test_every_parameter_of_a_preset_is_a_config_key(compose, preset):
    """Each swept key exists in the composed experiment, and the first and last value the
    sampler can propose (choices; an interval's ends), written as the sweeper writes them,
    compose to those values."""
    from omegaconf import ListConfig, OmegaConf
    from optuna.distributions import CategoricalDistribution

    from hydra_plugins.ganrun_optuna.search_space import parse

    presets = Path(__file__).resolve().parents[1] / "configs" / "hparams_search"
    params = OmegaConf.load(presets / f"{preset}.yaml").hydra.sweeper.params
    space, fixed = parse([f"{key}={value}" for key, value in params.items()])
    assert not fixed and set(space) == set(params)
    for key, distribution in space.items():
        values = (distribution.choices if isinstance(distribution, CategoricalDistribution)
                  else (distribution.low, distribution.high))
        for value in {values[0]: None, values[-1]: None}:  # the ends (each is ~0.5 s)
            cfg = compose(f"hparams_search={preset}", f"{key}={value}", tiny=False)
            if key == "loss":  # a config group: its option's function
                assert cfg.loss._target_ == f"ganrun.losses.{value}"
                continue
            composed = OmegaConf.select(cfg, key, throw_on_missing=True)
            if isinstance(composed, ListConfig):
                composed = "[" + ",".join(str(item) for item in composed) + "]"
            assert composed == value, (key, value)
