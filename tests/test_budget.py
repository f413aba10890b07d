"""train.max_time: parsing, stopping at a call boundary, checkpointing, resuming, schedules."""

import json

import pytest

import ganrun.fit as fit_module
from ganrun.budget import Budget, parse_duration
from ganrun.errors import ConfigError
from ganrun.fit import fit
from tests.conftest import make_trainer


@pytest.mark.parametrize("value, seconds", [
    (None, None), ("null", None), (600, 600.0), ("600", 600.0), ("90s", 90.0), ("10m", 600.0),
    ("1h", 3600.0), ("1h30m", 5400.0), ("2.5m", 150.0), ("1m 30s", 90.0),
])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["10 minutes", "m10", "-5", 0, "0s", True, "1x", "10m10"])
def test_bad_durations_name_the_accepted_forms(value):
    with pytest.raises(ConfigError, match="train.max_time=.*90s, 10m, 1h30m"):
        parse_duration(value)


def test_a_bad_budget_is_a_config_error_before_training(compose):
    with pytest.raises(ConfigError, match="train.max_time"):
        make_trainer(compose("train.max_time=soon"))


class FakeClock:
    """perf_counter stand-in: every reading advances by `tick` seconds, so a budget of
    N ticks expires after a known number of compiled calls, whatever the machine's speed."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def _budgeted_fit(trainer, run_dir, monkeypatch, seconds_per_reading: float):
    clock = FakeClock(seconds_per_reading)
    monkeypatch.setattr(fit_module, "Budget", lambda seconds: Budget(seconds, clock=clock))
    return fit(trainer, run_dir)


def test_budget_stops_checkpoints_and_resumes(compose, tmp_path, monkeypatch):
    # Calls of 2 steps; every budget reading advances the fake clock by 1 s (the start reads
    # 1, the check after each call 2, 3, ...): the budget of 1.5 s has run out at the check
    # after the second call, at step 4 of 100, which is not a checkpoint or sample step.
    overrides = ["train.steps=100", "train.checkpoint_every=50", "train.sample_every=50",
                 "train.log_every=50", "train.max_time=1.5s"]
    trainer = make_trainer(compose(*overrides))
    metrics = _budgeted_fit(trainer, tmp_path, monkeypatch, 1.0)
    assert int(trainer.step.numpy()) == 4
    assert metrics["step"] == 4
    assert metrics["stopped_by"] == "max_time"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["step"] == 4 and written["stopped_by"] == "max_time"
    assert (tmp_path / "checkpoints" / "ckpt-4.index").is_file()
    assert (tmp_path / "samples" / "step_0000004.png").is_file()
    assert (tmp_path / "generator.keras").is_file()

    # A resumed run gets its budget again: it starts at step 4 and runs two more calls.
    resumed = make_trainer(compose(*overrides))
    metrics = _budgeted_fit(resumed, tmp_path, monkeypatch, 1.0)
    assert int(resumed.step.numpy()) == 8
    assert metrics["stopped_by"] == "max_time"


def test_steps_end_the_run_when_they_come_first(compose, tmp_path):
    trainer = make_trainer(compose("train.steps=4", "train.max_time=1h"))
    metrics = fit(trainer, tmp_path)
    assert metrics["step"] == 4 and metrics["stopped_by"] == "steps"


def test_linear_schedule_stops_where_it_is_when_the_budget_ends_the_run(compose, tmp_path,
                                                                       monkeypatch):
    # Schedules run over train.steps: a budget that ends the run at step 4 of 100 leaves the
    # linearly decaying rate at 1 - 4/100 of its start, and a resume continues the schedule.
    trainer = make_trainer(compose("train.steps=100", "train.checkpoint_every=50",
                                   "train.lr_schedule=linear", "train.max_time=1.5s",
                                   "optimizer.generator.learning_rate=1e-3"))
    _budgeted_fit(trainer, tmp_path, monkeypatch, 1.0)
    assert int(trainer.step.numpy()) == 4
    rate = float(trainer.g_optimizer.learning_rate.numpy())
    assert rate == pytest.approx(1e-3 * (1 - 4 / 100), rel=1e-4)


def test_linear_to_zero_counts_each_optimizer_s_own_updates():
    import tensorflow as tf

    from ganrun.budget import LinearToZero

    end = tf.Variable(10.0)
    generator, critic = LinearToZero(1e-3, end), LinearToZero(1e-3, end, updates_per_step=5)
    assert float(generator(4)) == pytest.approx(6e-4)
    assert float(critic(20)) == pytest.approx(6e-4)  # 20 critic updates = step 4 of 10
    assert float(generator(12)) == 0.0  # past the end: 0, never negative
    end.assign(20.0)  # moved by ScheduleFit: the same schedule object follows
    assert float(generator(4)) == pytest.approx(8e-4)
    assert LinearToZero.from_config(generator.get_config()).get_config() == generator.get_config()


def test_schedule_fit_projects_the_pace_over_the_budget_left():
    import tensorflow as tf

    from ganrun.budget import ScheduleFit

    clock = FakeClock(0.0)
    budget = Budget(100.0, clock=clock)  # started at 0
    end = tf.Variable(1000.0)
    fitted = ScheduleFit(budget, [end], limit=1000)
    clock.now = 10.0  # the first call (compilation): only starts the pace's clock
    assert fitted.update(5) is None and float(end.numpy()) == 1000.0
    clock.now = 30.0  # 40 steps in 20 s: 2 steps/s, 70 s left -> step 45 + 140
    assert fitted.update(45) == 185 and float(end.numpy()) == 185.0
    clock.now = 60.0  # slower since: 65 steps in 50 s, 40 s left -> 70 + 52
    assert fitted.update(70) == 122
    clock.now = 120.0  # past the budget: the end is the step reached, never before it
    assert fitted.update(90) == 90
    fast = ScheduleFit(Budget(100.0, clock=clock), [end], limit=150)
    clock.now = 130.0
    fast.update(0)
    clock.now = 140.0  # 100 steps/s would reach 9,000: train.steps (the limit) comes first
    assert fast.update(100) == 150


def test_budget_fitted_schedule_reaches_zero_as_the_budget_runs_out(compose, tmp_path,
                                                                    monkeypatch, caplog):
    # Calls of 2 steps; each call is followed by two clock readings of 1 s (the schedule's
    # fit, then the budget check): a pace of 1 step/s, so a 9.5 s budget ends the run at
    # step 10 of 100, and the fitted schedule's rates reach 0 there, not at step 100.
    trainer = make_trainer(compose("train.steps=100", "train.checkpoint_every=50",
                                   "train.sample_every=50", "train.log_every=50",
                                   "train.lr_schedule=linear", "train.max_time=9.5s",
                                   "train.schedule_end=budget",
                                   "optimizer.generator.learning_rate=1e-3"))
    with caplog.at_level("WARNING", logger="ganrun.fit"):
        metrics = _budgeted_fit(trainer, tmp_path, monkeypatch, 1.0)
    assert metrics["step"] == 10 and metrics["stopped_by"] == "max_time"
    assert metrics["schedule_end"]["value"] == 10
    # Under half of train.steps: the user is told that this machine is slow for the preset.
    assert "budget reaches about step" in caplog.text and "train.steps=100" in caplog.text
    assert float(trainer.g_optimizer.learning_rate.numpy()) == 0.0
    assert float(trainer.d_optimizer.learning_rate.numpy()) == 0.0


def test_a_fitted_schedule_keeps_train_steps_when_they_come_first(compose, tmp_path):
    trainer = make_trainer(compose("train.steps=4", "train.max_time=1h",
                                   "train.lr_schedule=linear", "train.schedule_end=budget"))
    metrics = fit(trainer, tmp_path)
    assert metrics["stopped_by"] == "steps" and metrics["schedule_end"]["value"] == 4


def test_without_a_budget_a_budget_schedule_ends_at_train_steps(compose, tmp_path):
    # `ganrun train train.max_time=null` on a budget-fitted preset: nothing to fit to.
    trainer = make_trainer(compose("train.steps=4", "train.lr_schedule=linear",
                                   "train.schedule_end=budget"))
    metrics = fit(trainer, tmp_path)
    assert metrics["step"] == 4 and metrics["schedule_end"]["value"] == 4
    assert float(trainer.g_optimizer.learning_rate.numpy()) == 0.0
