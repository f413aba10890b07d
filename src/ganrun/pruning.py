"""Pruning inside a trial of an Optuna study (`hydra/sweeper=ganrun_optuna`).

The sweeper runs each trial's job with the override `hydra.sweeper.trial=<number>`; the job's
Hydra config therefore names the study's storage, the study and its own trial, and the job (in
whatever process the launcher chose: the sweep's, a joblib/loky worker, a submitit job) opens
the storage itself. `cli` enters `active_trial(...)` around training; then

- every periodic evaluation (train.eval_every) calls `report(step, values)` with its scalars
  (`eval_periodic/fid`, `eval_periodic/nll_gen`, ...): the one named by objective.metric
  (`eval/fid` -> `eval_periodic/fid`) is reported to the trial as its intermediate value at
  that step (steps are the pruner's resource), and the trial's pruner (the sweep's, rebuilt
  from the study: ganrun.study.PRUNER_ATTR) decides whether to stop;
- after the compiled call, `fit` calls `stop_if_pruned(...)`, which stops like a graceful stop
  (checkpoint, flush TensorBoard, a log line) by raising TrialPruned. The sweeper sees that
  exception in the job's result and tells the trial PRUNED (Optuna keeps the last reported
  value as the trial's value).

Outside a trial (a plain run, a grid multirun) every call here does nothing.
"""

from __future__ import annotations

import contextlib
import logging

from ganrun import guard

log = logging.getLogger(__name__)


class TrialPruned(guard.TrainingStopped):
    """The trial's pruner stopped training at `step`, after a checkpoint was written."""

    def __init__(self, message: str, step: int):
        Exception.__init__(self, message)
        self.step = step
        self.exit_code = 0  # not a failure: the study asked for the stop

    def __reduce__(self):  # the exception travels to the sweep's process by pickle
        return type(self), (self.args[0], self.step)


def periodic_name(objective_metric: str) -> str | None:
    """The periodic evaluation's scalar that tracks `objective_metric` (a metrics.json name):
    `eval/fid` -> `eval_periodic/fid`; None for metrics without a periodic value (loss/g)."""
    head, _, name = objective_metric.partition("/")
    if head in ("eval", "eval_periodic") and name:
        return f"eval_periodic/{name}"
    return None


def make_pruner(config: dict | None):
    """The pruner the sweeper stored in the study: `{"_target_": "optuna.pruners.<Class>",
    **arguments}`. Only Optuna's pruner classes are built: the study's attributes can be
    edited (optuna-dashboard), so they must not name arbitrary code."""
    import optuna  # noqa: PLC0415

    if not config:
        return optuna.pruners.NopPruner()
    arguments = dict(config)
    module, _, name = str(arguments.pop("_target_", "")).rpartition(".")
    pruner = getattr(optuna.pruners, name, None) if module == "optuna.pruners" else None
    if not isinstance(pruner, type) or not issubclass(pruner, optuna.pruners.BasePruner):
        raise ValueError(f"the study's pruner {config} is not an optuna.pruners class.")
    return pruner(**arguments)


class TrialReporter:
    """One trial of a study in `storage`: reports values, remembers a prune decision."""

    def __init__(self, storage: str, study_name: str, number: int, metric: str, last_step: int):
        import optuna  # noqa: PLC0415 (the sweep extra)

        from ganrun.study import PRUNER_ATTR, open_storage  # noqa: PLC0415

        storage = open_storage(storage)
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=optuna.samplers.RandomSampler())  # samples nothing
        study.pruner = make_pruner(study.user_attrs.get(PRUNER_ATTR))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.number, self.metric, self.last_step = number, metric, last_step
        self.pruner = type(study.pruner).__name__
        self.pruned_at: tuple[int, float] | None = None

    def report(self, step: int, values: dict[str, float]) -> None:
        if self.metric not in values or self.pruned_at:
            return
        value = float(values[self.metric])
        self.trial.report(value, step)
        # At the last step training is over: the trial finishes with its final evaluation.
        if step < self.last_step and self.trial.should_prune():
            self.pruned_at = (step, value)
            log.warning("Trial %d: the %s prunes it at step %d (%s %.4g); stopping.",
                        self.number, self.pruner, step, self.metric, value)


_active: TrialReporter | None = None


@contextlib.contextmanager
def active_trial(sweeper_config, objective_metric: str, last_step: int):
    """Within the block, `report` goes to the trial named by `sweeper_config` (the job's
    hydra.sweeper: storage, study_name, trial), if it names one."""
    global _active
    number = sweeper_config.get("trial") if sweeper_config is not None else None
    if number is None:
        yield None
        return
    metric = periodic_name(objective_metric)
    if metric is None:
        log.warning("objective.metric=%s has no periodic value: trial %d reports nothing and "
                    "cannot be pruned (use an eval/ metric with train.eval_every > 0).",
                    objective_metric, number)
        yield None
        return
    _active = TrialReporter(str(sweeper_config.storage), str(sweeper_config.study_name),
                            int(number), metric, last_step)
    try:
        yield _active
    finally:
        _active = None


def report(step: int, values: dict[str, float]) -> None:
    """The periodic evaluation's hook: `values` are its scalars by TensorBoard name."""
    if _active is not None:
        _active.report(step, values)


def stop_if_pruned(checkpoints, writer, step: int, run_dir) -> None:
    """fit's hook after each compiled call: when the trial was pruned, checkpoint, flush and
    raise TrialPruned (the sweeper records the trial as PRUNED)."""
    if _active is None or _active.pruned_at is None:
        return
    path = guard.checkpoint_and_flush(checkpoints, writer, step)
    pruned_step, value = _active.pruned_at
    raise TrialPruned(f"trial {_active.number} pruned by the {_active.pruner} at step "
                      f"{pruned_step} ({_active.metric} {value:.4g}); stopped after writing "
                      f"{path} (run directory {run_dir}).", pruned_step)
