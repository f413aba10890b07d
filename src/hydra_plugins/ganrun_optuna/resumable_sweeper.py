"""Hydra's Optuna sweeper, made to resume an interrupted study where it stopped.

(Hydra instantiates sweepers only from the `hydra_plugins` namespace package, so this module of
ganrun lives here; it is inert when hydra-optuna-sweeper is not installed: `pip install
'ganrun[sweep]'`.)

The plugin (hydra-optuna-sweeper 1.3) already loads an existing study from its storage, but it
then runs `n_trials` *more* trials, numbers their run directories from 0 again (overwriting the
first runs' directories) and leaves a trial that was running when the sweep was killed as
RUNNING forever. This subclass, named by `configs/hparams_search/*.yaml`, fixes the three:

- `n_trials` is the number of COMPLETE trials the study should end with: a rerun asks only for
  the missing ones (a failed or interrupted trial does not count, so it is replaced);
- new trials' job numbers (hence run directories `<sweep dir>/<num>`) continue after the
  study's last trial, so trial N runs in `<sweep dir>/N`;
- trials left RUNNING by an interrupted sweep are marked FAIL (so TPE ignores them), with a log
  line. One sweep process per storage at a time: SQLite is a local, single-writer store;
- the sampler is reseeded on resume, or a seeded sampler would propose the same trials again.
"""

from __future__ import annotations

import logging
from pathlib import Path

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # without the plugin Hydra's plugin scan must still import this module
    OptunaSweeper = None

log = logging.getLogger(__name__)


def _sqlite_path(storage) -> Path | None:
    url = str(storage) if storage else ""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _resume(impl) -> None:
    """Adjust the plugin's OptunaSweeperImpl `impl` to an existing study in its storage."""
    import optuna  # noqa: PLC0415 (Hydra imports every plugin module at each start)
    from optuna.trial import TrialState  # noqa: PLC0415

    path = _sqlite_path(impl.storage)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not dirs
    existing = optuna.get_all_study_summaries(impl.storage) if impl.storage else []
    if impl.study_name not in {summary.study_name for summary in existing}:
        return
    study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning("Trial %d was interrupted (left RUNNING); marking it failed.", trial.number)
        study.tell(trial.number, state=TrialState.FAIL)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    log.info("Resuming study %s: %d of %d trials complete, %d trials in storage.",
             impl.study_name, complete, impl.n_trials, len(study.trials))
    impl.n_trials = max(0, impl.n_trials - complete)
    impl.job_idx = len(study.trials)
    if hasattr(impl.sampler, "reseed_rng"):
        # A seeded sampler restarted in a new process would propose the first run's trials
        # again; a resumed study is reproducible only up to its interruption anyway.
        impl.sampler.reseed_rng()


if OptunaSweeper is not None:

    class ResumableOptunaSweeper(OptunaSweeper):
        """`hydra/sweeper: optuna` with `n_trials` counted over every run of the same study."""

        def sweep(self, arguments: list[str]) -> None:
            _resume(self.sweeper)
            return self.sweeper.sweep(arguments)
