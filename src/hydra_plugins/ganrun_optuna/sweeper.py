"""`hydra/sweeper=ganrun_optuna`: an Optuna (>= 4) study run by Hydra's launchers, with
pruning, resumable from its storage. Configured by configs/hydra/sweeper/ganrun_optuna.yaml;
docs/sweeps.md explains the study as a user runs it.

(Hydra instantiates sweepers only from the `hydra_plugins` namespace package, so this part of
ganrun lives here. Hydra imports every plugin module at each start, so Optuna is imported only
when a sweep starts.)

A sweep, in batches of `n_jobs` trials:
1. `study.ask()` each trial its parameters (the sampler; `hydra.sweeper.params` and sweep
   overrides of the command line are the search space, src/.../search_space.py);
2. the launcher runs the jobs with those overrides plus `hydra.sweeper.trial=<number>`: the job
   (possibly another process) opens the storage and reports its periodic evaluations to its
   own trial, which may prune it (ganrun.pruning);
3. `study.tell()` each trial: COMPLETE with the job's objective value, PRUNED (Optuna records
   the last reported value) when the job stopped as pruned, FAIL otherwise.

Resuming: rerunning the same command loads the study. `n_trials` is the number of finished
(COMPLETE or PRUNED) trials the study should end with, so a rerun runs only the missing ones;
trials left RUNNING by a killed sweep are marked FAIL; new trials continue the numbering, and
trial N runs in job N, hence `<sweep dir>/N` (hydra.sweep.subdir=${hydra.job.num}); the
sampler's seed is offset by the number of trials already in the study, so a resumed seeded
study does not propose the first trials again. One sweep process per study at a time.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ganrun_optuna import search_space

log = logging.getLogger(__name__)


def _require_torch() -> None:
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        raise ValueError("hydra/sweeper/sampler=gp (Optuna's GPSampler) needs PyTorch: pip "
                         "install torch, or choose tpe, random or cmaes.") from None


class GanrunOptunaSweeper(Sweeper):
    """The sweeper; its arguments are the keys of hydra.sweeper (ganrun_optuna.yaml)."""

    def __init__(self, sampler: DictConfig, pruner: DictConfig, direction: str,
                 storage: str | None, study_name: str, n_trials: int, n_jobs: int,
                 max_failure_rate: float, params: DictConfig | None = None,
                 trial: int | None = None):
        self.sampler_config, self.pruner_config = sampler, pruner
        self.direction, self.storage, self.study_name = str(direction), storage, study_name
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.max_failure_rate = float(max_failure_rate)
        self.params = OmegaConf.to_container(params) if params else {}
        self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def _create_study(self, grid: dict | None):
        """The study in `storage` (created or loaded), its zombies marked FAIL, with the
        configured sampler (seed offset by the trials already there; for the grid sampler,
        `grid`: name -> values) and pruner."""
        import optuna  # noqa: PLC0415

        from ganrun.study import PRUNER_ATTR, open_storage, write_study_file  # noqa: PLC0415

        if not self.storage:
            raise ValueError("hydra.sweeper.storage is empty; an in-memory study cannot be "
                             "reached by the trials' processes: use sqlite:///<path>.db.")
        study = optuna.create_study(
            storage=open_storage(self.storage), study_name=self.study_name,
            direction=self.direction, load_if_exists=True,
            pruner=instantiate(self.pruner_config))
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            log.warning("Trial %d was interrupted (left RUNNING); marking it failed.",
                        trial.number)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        # The trials' processes rebuild the pruner from the study itself (Optuna does not
        # store pruners): ganrun.pruning reads this attribute.
        study.set_user_attr(PRUNER_ATTR, OmegaConf.to_container(self.pruner_config, resolve=True))
        if "GPSampler" in str(self.sampler_config.get("_target_")):
            _require_torch()
        existing = len(study.trials)
        seed = self.sampler_config.get("seed")
        if grid is not None:
            # The seed orders the grid, so it stays as it is when the study resumes.
            study.sampler = instantiate(self.sampler_config, search_space=grid)
            self._requeue_failed_grid_points(study)
        else:
            study.sampler = instantiate(self.sampler_config, **(
                {"seed": int(seed) + existing} if seed is not None else {}))
        write_study_file(Path(self.config.hydra.sweep.dir), self.storage, self.study_name)
        return study

    def sweep(self, arguments: list[str]) -> None:
        import optuna  # noqa: PLC0415

        space, fixed = search_space.parse(
            [f"{key}={value}" for key, value in self.params.items()] + list(arguments))
        grid = search_space.grid(space) if self._is_grid() else None
        study = self._create_study(grid)
        finished = len(study.get_trials(deepcopy=False, states=(
            optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
        n_trials = self.n_trials
        if grid is not None:  # beyond the grid's size, GridSampler repeats combinations
            n_trials = min(n_trials, math.prod(len(values) for values in grid.values()))
        to_go = max(0, n_trials - finished)
        log.info("Study %s in %s: %d of %d trials finished, %d trials in storage; running %d "
                 "(sampler %s, pruner %s).", self.study_name, self.storage, finished,
                 n_trials, len(study.trials), to_go, type(study.sampler).__name__,
                 type(study.pruner).__name__)
        while to_go > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, to_go))]
            self._run_batch(study, trials, fixed)
            to_go -= len(trials)
        self._log_best(study)

    def _is_grid(self) -> bool:
        return self.sampler_config.get("_target_") == "ganrun.study.grid_sampler"

    @staticmethod
    def _requeue_failed_grid_points(study) -> None:
        """Queue again the grid's combinations whose every trial failed (e.g. the sweep was
        killed): GridSampler counts a failed trial as visited and would not run them."""
        from optuna.trial import TrialState  # noqa: PLC0415

        trials = study.get_trials(deepcopy=False)
        done = [t.params or t.system_attrs.get("fixed_params") for t in trials if t.state in (
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)]
        for trial in trials:
            if trial.state == TrialState.FAIL and trial.params and trial.params not in done:
                log.info("Grid point %s failed in trial %d; queued again.", trial.params,
                         trial.number)
                study.enqueue_trial(trial.params)
                done.append(trial.params)

    def _run_batch(self, study, trials: list, fixed: dict[str, str]) -> None:
        first = trials[0].number
        if [t.number for t in trials] != list(range(first, first + len(trials))):
            # Job numbers (hence run directories) are consecutive; trial numbers are too
            # unless another process asks trials of the same study at the same time.
            raise RuntimeError(f"trials {[t.number for t in trials]} are not consecutive: is "
                               f"another sweep running study {self.study_name}?")
        overrides = [(*(f"{k}={v}" for k, v in trial.params.items()),
                      *fixed.values(),
                      f"hydra.sweeper.trial={trial.number}") for trial in trials]
        returns = self.launcher.launch(overrides, initial_job_idx=first)
        failures = [ret for trial, ret in zip(trials, returns) if not self._tell(study, trial, ret)]
        self._stop_if_asked(failures)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            log.error("%d of %d trials failed, above max_failure_rate=%g.", len(failures),
                      len(returns), self.max_failure_rate)
            failures[0].return_value  # noqa: B018 (re-raises the job's error, with its traceback)

    def _stop_if_asked(self, failures: list) -> None:
        """A job stopped by SIGTERM / Ctrl-C (ganrun.guard) ends the sweep too, with the job's
        exit code: its trial is FAIL, and rerunning the command resumes the study."""
        from ganrun.guard import TrainingStopped  # noqa: PLC0415

        stopped = [ret._return_value for ret in failures
                   if isinstance(ret._return_value, TrainingStopped)]
        if stopped:
            log.warning("Study %s stopped (%s); rerun the same command to resume it.",
                        self.study_name, stopped[0])
            raise SystemExit(stopped[0].exit_code)

    def _tell(self, study, trial, ret) -> bool:
        """Record the job's outcome in `trial`; False when it failed."""
        from optuna.trial import TrialState  # noqa: PLC0415

        if ret.status == JobStatus.COMPLETED:
            try:
                value = float(ret.return_value)
            except (TypeError, ValueError):
                value = math.nan
            if math.isfinite(value):
                study.tell(trial, value)
                return True
            log.warning("Trial %d returned %r, not a finite number: FAIL.", trial.number,
                        ret.return_value)
            study.tell(trial, state=TrialState.FAIL)
            return False
        from ganrun.pruning import TrialPruned  # noqa: PLC0415 (imports TensorFlow)

        error = ret._return_value  # the job's exception (`return_value` would raise it)
        if isinstance(error, TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)  # value: the last one reported
            log.info("Trial %d pruned at step %d.", trial.number, error.step)
            return True
        log.warning("Trial %d failed: %s", trial.number, error)
        study.tell(trial, state=TrialState.FAIL)
        return False

    def _log_best(self, study) -> None:
        import optuna  # noqa: PLC0415

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            log.warning("Study %s has no complete trial.", self.study_name)
            return
        best = study.best_trial
        log.info("Best trial %d: value %.6g, params %s.", best.number, best.value, best.params)
        OmegaConf.save({"name": "optuna", "study_name": self.study_name,
                        "best_trial": best.number, "best_value": best.value,
                        "best_params": best.params},
                       Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")
