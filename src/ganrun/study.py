"""The Optuna study behind a sweep: opening its storage, finding it from a sweep directory, and
summarizing it for `ganrun report` (trial states, best trial, parameter importances).

The sweeper (`hydra/sweeper=ganrun_optuna`, src/hydra_plugins/ganrun_optuna) writes
`<sweep dir>/study.yaml` naming the storage (as an absolute URL) and the study, so `ganrun
report DIR` and `ganrun dashboard DIR` need nothing but the directory. Optuna is imported only
when a study is opened: it belongs to the `sweep` extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

STUDY_FILE = "study.yaml"
# The study's user attribute holding the pruner's config: Optuna does not store pruners, and
# the trials' processes (ganrun.pruning) rebuild the sweep's pruner from it.
PRUNER_ATTR = "ganrun_pruner"
# SQLite lets one writer at a time; trials in other processes (joblib, submitit) write their
# intermediate values while the sweep process asks and tells. They wait for the lock up to
# this long instead of failing with "database is locked" (SQLite's default is 5 s).
SQLITE_TIMEOUT_S = 60


def absolute_url(url: str) -> str:
    """`url` with a relative SQLite path made absolute (against the current directory)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def open_storage(url: str):
    """An Optuna storage for `url`: SQLite files get their directory created and a lock
    timeout of SQLITE_TIMEOUT_S; other URLs (PostgreSQL, MySQL) are passed to Optuna as they
    are."""
    import optuna  # noqa: PLC0415

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})
    return url


def grid_sampler(search_space: dict[str, list], seed: int | None = None):
    """Optuna's GridSampler (every combination of `search_space`'s values once, in an order
    `seed` shuffles) for the sweeper's ask-and-tell loop. Optuna's own calls `study.stop()`
    after the last combination, which only works inside `study.optimize`; here the sweeper
    itself runs no more trials than the grid has (hydra/sweeper/sampler=grid)."""
    import optuna  # noqa: PLC0415

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            pass

    return AskTellGridSampler(search_space, seed=seed)


def write_study_file(sweep_dir: Path, storage: str, study_name: str) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"storage": absolute_url(storage), "study_name": study_name},
                   sweep_dir / STUDY_FILE)


def find_study(sweep_dir: Path) -> tuple[str, str] | None:
    """(storage URL, study name) of the study whose trials run in `sweep_dir`, or None when
    `sweep_dir` was not made by the ganrun_optuna sweeper."""
    path = Path(sweep_dir) / STUDY_FILE
    if not path.is_file():
        return None
    content = OmegaConf.load(path)
    return str(content.storage), str(content.study_name)


def load_study(storage: str, study_name: str):
    import optuna  # noqa: PLC0415

    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


@dataclass
class TrialRow:
    """What the report adds to a run: its trial's state and, when pruned, where."""
    number: int
    state: str                       # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    last_step: int | None = None     # step of the last intermediate value
    last_value: float | None = None  # the periodic metric reported there


@dataclass
class StudySummary:
    name: str
    counts: dict[str, int]                                 # state name -> trials
    trials: dict[int, TrialRow] = field(default_factory=dict)
    best: tuple[int, float, dict] | None = None            # (number, value, params)
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""                              # why there are none
    evaluator: str = ""                                    # which evaluator computed them


def importances(study) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances over the COMPLETE trials, by its default evaluator
    (PED-ANOVA since Optuna 5, fANOVA before: how much each parameter's distribution among
    the best trials differs from its distribution overall, resp. the share of the objective's
    variance it explains), normalized to sum 1; or ({}, the reason) when they cannot be
    computed."""
    import optuna  # noqa: PLC0415

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"they need 2 complete trials; the study has {len(complete)}"
    try:
        values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same parameters
        return {}, f"they could not be computed: {exc}"
    return {name: float(value) for name, value in values.items()}, ""


def summarize(storage: str, study_name: str) -> StudySummary:
    """States, best trial and importances of one study."""
    study = load_study(storage, study_name)
    summary = StudySummary(study_name, {})
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        summary.counts[state] = summary.counts.get(state, 0) + 1
        last = trial.last_step
        summary.trials[trial.number] = TrialRow(
            trial.number, state, last,
            trial.intermediate_values[last] if last is not None else None)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                and t.value is not None and math.isfinite(t.value)]
    if complete:
        best = study.best_trial
        summary.best = (best.number, float(best.value), dict(best.params))
    summary.importances, summary.importance_note = importances(study)
    import optuna  # noqa: PLC0415

    summary.evaluator = f"Optuna {optuna.__version__}'s default evaluator over complete trials"
    return summary


def markdown(summary: StudySummary) -> list[str]:
    """The report's lines about the study."""
    counts = ", ".join(f"{count} {state.lower()}" for state, count in
                       sorted(summary.counts.items())) or "no trials"
    lines = [f"Optuna study {summary.name}: {sum(summary.counts.values())} trials ({counts})."]
    if summary.best:
        number, value, params = summary.best
        lines.append(f"Best trial: {number} (value {value:.4g}): "
                     + " ".join(f"{k}={v}" for k, v in params.items()) + ".")
    if summary.importances:
        lines.append(f"Parameter importances ({summary.evaluator}; sum 1): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in summary.importances.items()) + ".")
    else:
        lines.append(f"Parameter importances: none ({summary.importance_note}).")
    return lines


def csv_rows(summary: StudySummary) -> list[list]:
    """report_study.csv: one (key, value) row per count, the best trial, each importance."""
    rows = [[f"trials/{state.lower()}", count] for state, count in sorted(summary.counts.items())]
    if summary.best:
        rows += [["best/trial", summary.best[0]], ["best/value", summary.best[1]]]
        rows += [[f"best/{k}", v] for k, v in summary.best[2].items()]
    rows += [[f"importance/{k}", v] for k, v in summary.importances.items()]
    return rows
