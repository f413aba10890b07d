"""`ganrun <command> [hydra overrides]`: the command line.

Commands:
  train   compose configs/train.yaml with the overrides and train (see `ganrun train --help`)
  sample  draw images from a run's latest checkpoint (`ganrun sample run=<dir> n=64 out=x.png`)
  eval    image metrics of a run against the test split, with floors (`ganrun eval run=<dir>`)
  calibrate  a classifier of real vs generated for guided sampling (`ganrun calibrate run=<dir>`)
  report  a sweep's parameters vs final metrics: Markdown, CSV, PNG (`ganrun report <dir>`)
  dashboard  optuna-dashboard on a study, on 127.0.0.1 (`ganrun dashboard <sweep dir>`)

Hydra parses the overrides and owns the run directory; this module (with `build.py`) is the
only place that sees a Hydra config. Exit codes: 0 done, 2 a problem in the config or the data
(one sentence on stderr naming the fix, before any training starts), 1 anything else.
TensorFlow is imported only once a command runs, so `--help` answers at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganrun import quiet, rundir
from ganrun.errors import GanrunError
from ganrun.preflight import (
    config_problem,
    output_dir_problem,
    run_dir_override,
    target_override_problem,
)
from ganrun.targets import check_targets

# configs/ of the checkout (src/ganrun/configs links to it), or the copy a wheel ships.
CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")
USAGE = __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1]
EXIT_USAGE = 2

log = logging.getLogger("ganrun")
_task_started = False  # tells a Hydra composition error (exit 2) from a failed task (exit 1)


def _guarded(task):
    """Run `task()`; a GanrunError becomes one line on stderr and exit code 2 (or 1 for a
    diverged run). In a multirun the error is re-raised so Hydra records the failed job."""
    global _task_started
    _task_started = True
    from ganrun.errors import TrainingDiverged, TrainingStopped

    try:
        return task()
    except TrainingStopped as exc:  # SIGTERM / Ctrl-C: a checkpoint was written
        log.warning("ganrun: %s", exc)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        sys.exit(exc.exit_code)
    except GanrunError as exc:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            # The sweep goes on; Hydra reports the first failed job at the end of the batch.
            log.error("ganrun: error in job %s: %s", HydraConfig.get().runtime.output_dir, exc)
            raise
        log.error("ganrun: error: %s", exc)
        sys.exit(1 if isinstance(exc, TrainingDiverged) else EXIT_USAGE)


class SweepComposed(Callback):
    """Marks that a multirun's config composed: its jobs' tasks may run in other processes
    (joblib, submitit), so a failure after this point is a failed job (exit 1), not a bad
    override (exit 2)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        global _task_started
        _task_started = True


def train_from_config(cfg: DictConfig, run_dir: Path) -> dict:
    """Build everything `cfg` names and train into `run_dir`; returns the final metrics.

    Every config value is checked (and the data loaded) before anything is written. A run
    directory that already holds checkpoints is resumed, but only by the same experiment.
    """
    from ganrun import build, distribute

    run_dir = Path(run_dir)
    check_targets(cfg, "the config")  # every _target_, before the first is built
    options = build.train_options(cfg.train)  # bad options fail before the data is loaded
    # Before TensorFlow runs any op: MultiWorkerMirroredStrategy must be made first.
    distribute.make_strategy(options.strategy)
    evaluator = build.evaluator_options(cfg.get("evaluator"))
    dataset = build.data(cfg)
    trainer = build.trainer(cfg, dataset)
    evaluation = _evaluation(dataset, options, evaluator, trainer)
    chief = distribute.is_chief(distribute.make_strategy(options.strategy))
    return _train_owned(cfg, run_dir, dataset, trainer, evaluation, chief)


def _train_owned(cfg, run_dir: Path, dataset, trainer, evaluation, chief: bool) -> dict:
    """Own `run_dir` (lock, ownership, the experiment's fingerprint), then train into it.
    A multi-worker run's other workers share the directory: they neither lock nor write it,
    but check the fingerprint too, so every worker's checkpoint holds the same objects."""
    from ganrun import experiment_record

    with rundir.locked(run_dir) if chief else contextlib.nullcontext():  # held by main, often
        problem = rundir.ownership_problem(run_dir) if chief else None
        if problem:
            raise GanrunError(problem)
        resumed = experiment_record.check_resume(run_dir, cfg, dataset.spec, trainer.checkpoint)
        if chief and (not resumed or not (run_dir / "experiment.yaml").is_file()):
            experiment_record.record(run_dir, cfg, dataset.spec)
        if chief and dataset.spec.kind == "text" and not (
                resumed and (run_dir / "vocab.json").is_file()):
            dataset.save(run_dir)  # vocab.json
        return _train_into(cfg, run_dir, dataset, trainer, evaluation)


def _train_into(cfg, run_dir: Path, dataset, trainer, evaluation) -> dict:
    from ganrun import build
    from ganrun.fit import fit
    from ganrun.guard import StopRequest

    log.info("Run directory: %s", run_dir.resolve())
    _, loss_name = build.loss(cfg)
    with StopRequest():  # SIGTERM / Ctrl-C stop after the current compiled call
        metrics = fit(trainer, run_dir, OmegaConf.to_yaml(cfg, resolve=True), loss_name,
                      evaluation)
    log.info("Run directory: %s (tensorboard --logdir %s)", run_dir.resolve(), run_dir / "tb")
    return metrics


def _evaluation(dataset, options, evaluator, trainer):
    """Periodic and final metrics (train.eval_every, eval_final_n), or None; checked before
    anything is written. Image runs train the feature network here if it is not cached."""
    if dataset.spec.kind == "text":  # BLEU, Self-BLEU, NLL-gen (and NLL-oracle)
        from ganrun.evaluate.text import make_text_evaluation
        from ganrun.sampling import autoregressive

        return make_text_evaluation(dataset, options, autoregressive(trainer.sampling_generator))
    from ganrun.evaluate.during_training import make_training_evaluation

    return make_training_evaluation(dataset, options, evaluator)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _train(cfg: DictConfig):
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return _guarded(lambda: _train_job(cfg, run_dir))


def _train_job(cfg: DictConfig, run_dir: Path) -> float | None:
    from ganrun import pruning  # an Optuna trial's job reports to its trial (docs/sweeps.md)

    alone = OmegaConf.select(cfg, "train.strategy") != "multi_worker"  # else: the chief locks
    with rundir.locked(run_dir) if alone else contextlib.nullcontext(), \
            pruning.active_trial(HydraConfig.get().sweeper, cfg.objective.metric, cfg.train.steps):
        return _record_hparams(cfg, run_dir, train_from_config(cfg, run_dir))


def _record_hparams(cfg: DictConfig, run_dir: Path, metrics: dict) -> float | None:
    """Write the run's TensorBoard HParams session; in a multirun, return the final value of
    `objective.metric` for the sweeper (Optuna minimizes or maximizes it)."""
    from ganrun import distribute, hparams

    strategy = OmegaConf.select(cfg, "train.strategy", default="default")
    if not distribute.is_chief(distribute.make_strategy(strategy)):
        return None  # multi_worker: only the chief writes the run directory
    hydra_cfg = HydraConfig.get()
    selected = hparams.selected_hparams(OmegaConf.to_container(cfg, resolve=True),
                                        list(hydra_cfg.overrides.task),
                                        OmegaConf.to_container(hydra_cfg.runtime.choices))
    hparams.write(run_dir / "tb" / "hparams", selected, metrics, str(run_dir))
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return hparams.objective(run_dir, metrics, cfg.objective.metric)
    return None


def _guide(cfg: DictConfig):
    """The `guide:` node as checked GuideOptions (ganrun.guide)."""
    from ganrun.guide import GuideOptions

    values = OmegaConf.to_container(cfg.get("guide") or {"name": "none"}, resolve=True)
    try:
        return GuideOptions(**values)
    except TypeError as exc:
        raise GanrunError(f"guide has an unknown key ({exc}); see configs/guide/.") from None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="calibrate")
def _calibrate(cfg: DictConfig):
    def task():
        from ganrun.calibrate import calibrate_run, options_from

        record = calibrate_run(Path(cfg.run), options_from(cfg))
        print(f"held-out accuracy {record['accuracy']['value']:.4f}, ECE "
              f"{record['ece']['value']:.4f} (before scaling {record['ece_raw']['value']:.4f}), "
              f"{record['seconds']:.1f} s; written to {Path(cfg.run) / 'calibrated'}")

    return _guarded(task)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def _sample(cfg: DictConfig):
    from ganrun.sample import sample_to_file

    def task():
        out = sample_to_file(Path(cfg.run), int(cfg.n), cfg.out and Path(cfg.out), int(cfg.seed),
                             str(cfg.checkpoint), cfg.label, _guide(cfg),
                             float(cfg.get("temperature", 1.0)))
        print(f"Wrote {cfg.n} samples to {out}")

    return _guarded(task)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _eval(cfg: DictConfig):
    def task():
        from ganrun import build

        run_dir, evaluator = Path(cfg.run), build.evaluator_options(cfg.evaluator)
        if not run_dir.is_dir():
            raise GanrunError(f"run={run_dir} is not a directory; pass run=<the hydra.run.dir "
                              "of a training run>.")
        experiment = rundir.load_experiment(run_dir)  # validated, every _target_ allowed
        with rundir.locked(run_dir):  # eval writes metrics.json and tb/
            _evaluate(cfg, run_dir, evaluator, experiment)

    return _guarded(task)


def _eval_guided(cfg: DictConfig, run_dir: Path, data, guide, evaluator) -> str:
    """`ganrun eval guide=...`: the printed table of the guided metrics."""
    from ganrun.evaluate.guided import evaluate_guided_images, evaluate_guided_text
    from ganrun.evaluate.run_eval import format_table

    if data.spec.kind == "text":
        temperatures = cfg.get("temperatures")
        return evaluate_guided_text(run_dir, data, cfg.n, str(cfg.checkpoint), int(cfg.seed),
                                    list(temperatures) if temperatures else None, guide)
    section = evaluate_guided_images(run_dir, data, cfg.n, str(cfg.checkpoint), evaluator,
                                     int(cfg.seed), guide)
    cost = section["guide"]
    return (format_table(section) + f"\nguide={guide.name}: {cost['samples_per_second']:.1f} "
            f"samples/s, acceptance {cost['acceptance']:.4f} ({cost['definition']})")


def _evaluate(cfg: DictConfig, run_dir: Path, evaluator, experiment: DictConfig) -> None:
    from ganrun import build
    from ganrun.evaluate.run_eval import evaluate_run, evaluate_text_run_dir, format_table

    # The run's own data, loaded as it was for training (checked against data_spec.json).
    data, guide = build.data(experiment), _guide(cfg)
    if guide.name != "none":  # metrics.json "eval_guided" (docs/guided-sampling.md)
        print(_eval_guided(cfg, run_dir, data, guide, evaluator))
        print(f"Written to {run_dir / 'metrics.json'} and {run_dir / 'tb'}.")
        return
    if data.spec.kind == "text":  # BLEU, Self-BLEU, NLL and the temperature sweep
        print(evaluate_text_run_dir(run_dir, data, cfg.n, str(cfg.checkpoint), int(cfg.seed),
                                    cfg.get("temperatures")))
        print(f"Written to {run_dir / 'metrics.json'} and {run_dir / 'tb'}.")
        return
    section = evaluate_run(run_dir, data, cfg.n, str(cfg.checkpoint), evaluator,
                           int(cfg.seed))
    print(format_table(section))
    print(f"Written to {run_dir / 'metrics.json'} and {run_dir / 'tb'}.")


def _report():
    from ganrun.report import main as report_main  # argparse, not Hydra: one positional dir

    sys.exit(report_main(sys.argv[1:], prog=sys.argv[0]))


def _dashboard():
    from ganrun.dashboard import main as dashboard_main  # optuna-dashboard on 127.0.0.1

    sys.exit(dashboard_main(sys.argv[1:], prog=sys.argv[0]))


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "calibrate": _calibrate,
            "report": _report, "dashboard": _dashboard}


def _train_dir_problem(args: list[str]) -> str | None:
    """One sentence if `ganrun train` may not write its run directory: it cannot be created,
    or (named on the command line) it holds someone else's files. Checked before Hydra
    writes .hydra/ and train.log into it."""
    run_dir = run_dir_override(args)
    return output_dir_problem(args) or (rundir.ownership_problem(run_dir) if run_dir else None)


def _lock_run_dir(args: list[str]) -> None:
    """Take the run directory's lock for this whole process, before Hydra writes into it
    (exit 2 if another process holds it). Multi-worker runs share one directory: there only
    the chief locks it, once its strategy knows which process that is (train_from_config)."""
    run_dir = run_dir_override(args)
    multi_worker = "TF_CONFIG" in os.environ or any(
        a.endswith("train.strategy=multi_worker") for a in args)
    if run_dir is None or multi_worker:
        return
    try:
        rundir.lock(run_dir)
    except GanrunError as exc:
        print(f"ganrun: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def main() -> None:
    """Entry point of the `ganrun` console script."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if len(sys.argv) >= 2 else EXIT_USAGE)
    command = sys.argv[1]
    if command not in COMMANDS:
        print(f"ganrun: error: unknown command {command!r}; use one of "
              f"{', '.join(COMMANDS)} (ganrun --help).", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    args = [arg for arg in sys.argv[2:] if arg != "--verbose"]  # ganrun's flag, not Hydra's
    problem = target_override_problem(args) or config_problem(CONFIG_DIR, command, args) or (
        _train_dir_problem(args) if command == "train" else None)
    if problem:  # Hydra would print several lines, or a traceback for the directory
        print(f"ganrun: error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if command in ("train", "sample", "eval"):  # before TensorFlow is imported (it forks)
        quiet.install(sys.argv[2:])
    if command == "train":
        _lock_run_dir(args)
    sys.argv = [f"ganrun {command}", *args]
    try:
        COMMANDS[command]()
    except SystemExit as exc:
        # Hydra exits 1 on a bad override or an unknown config option, before the task runs.
        if exc.code == 1 and not _task_started:
            sys.exit(EXIT_USAGE)
        raise


if __name__ == "__main__":
    main()
