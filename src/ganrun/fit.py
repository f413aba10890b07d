"""The host side of training: resume, call the compiled steps, log, sample, checkpoint.

`fit(trainer, run_dir)` owns everything that is written into a run directory during training:
`checkpoints/`, `tb/`, `samples/`, `generator.keras` and `metrics.json`. The host acts only
between compiled calls; a call runs up to `steps_per_call` steps and stops early at the next
step where something is due (a log line, a sample grid, a checkpoint, the end).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from ganrun import distribute, guard, pruning, summaries
from ganrun.budget import Budget, LinearToZero, ScheduleFit, parse_duration
from ganrun.checkpoints import Checkpoints
from ganrun.evaluate.protocol import Evaluation
from ganrun.jsonfile import write_json_atomic
from ganrun.rundir import read_json
from ganrun.trainers.protocol import Trainer

log = logging.getLogger(__name__)


def steps_until_next_event(step: int, options) -> int:
    """How many steps the next compiled call should run (1..steps_per_call)."""
    due = [options.steps]
    for every in (options.log_every, options.sample_every, options.checkpoint_every,
                  options.eval_every):
        if every:  # eval_every may be 0 (off)
            due.append((step // every + 1) * every)
    if step < options.pretrain_steps:  # text: a call never mixes MLE and adversarial steps
        due.append(options.pretrain_steps)
    return max(1, min(options.steps_per_call, min(due) - step))


class MetricWindow:
    """Step-weighted means of the compiled calls' metrics since the last log, and the
    throughput of the calls that did not include tracing and compilation."""

    def __init__(self):
        self.sums, self.steps, self.timed_steps, self.timed_seconds = {}, 0, 0, 0.0
        self.counts = {}  # steps per metric: text runs' MLE and adversarial phases differ

    def add(self, metrics: dict[str, float], steps: int, seconds: float | None) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * steps
            self.counts[name] = self.counts.get(name, 0) + steps
        self.steps += steps
        if seconds is not None:
            self.timed_steps += steps
            self.timed_seconds += seconds

    def means(self) -> dict[str, float]:
        values = {name: total / self.counts[name] for name, total in self.sums.items()}
        if self.timed_seconds > 0:
            values["perf/steps_per_sec"] = self.timed_steps / self.timed_seconds
        return values


def _save_generator(generator, path: Path) -> None:
    temporary = path.with_name("generator.tmp.keras")
    generator.save(temporary)
    temporary.replace(path)


class ConfiguredRates:
    """The learning rates the config asked for, remembered in every checkpoint.

    A checkpoint restores each optimizer's current rate, which training may have changed (a
    rollback lowers it, ganrun.guard). On resume, a rate whose config value differs from the
    one the checkpoint was launched with was changed on the command line: that one is set
    to the config's value; the others keep the restored rate. Schedules are rebuilt from the
    config at every launch, so they need nothing.
    """

    def __init__(self, trainer: Trainer):
        self.optimizers = {name: optimizer for name, optimizer in trainer.optimizers.items()
                           if not isinstance(_inner(optimizer)._learning_rate,
                                             LearningRateSchedule)}
        self.config = [float(o.learning_rate.numpy()) for o in self.optimizers.values()]
        self.checkpoint = trainer.checkpoint
        # A trainer that trained before in this process tracks its record already: restoring
        # fills it like the other variables.
        self.launched = getattr(self.checkpoint, "configured_learning_rates", None)
        if self.launched is None:
            self.launched = tf.Variable(self.config or [0.0], trainable=False,
                                        name="configured_learning_rates")

    def track(self) -> None:
        """After the restore: add the record to the checkpointed state. TensorFlow fills it
        from the restored checkpoint (deferred restoration); checkpoints written before the
        record existed have none, so they keep their rates. Then set the rates the config
        changed since that checkpoint's launch, and remember this launch's."""
        self.checkpoint.configured_learning_rates = self.launched
        launched = self.launched.numpy().tolist()
        for (name, optimizer), before, now in zip(self.optimizers.items(), launched,
                                                  self.config, strict=False):
            if before != now:
                restored = float(optimizer.learning_rate.numpy())
                optimizer.learning_rate.assign(now)
                log.info("%s learning rate: the config changed it from %.3g to %.3g since the "
                         "checkpoint, which held %.3g; training goes on at %.3g.", name, before,
                         now, restored, now)
        self.launched.assign(self.config or [0.0])


def _inner(optimizer):
    """The optimizer a float16 LossScaleOptimizer wraps (the optimizer itself otherwise)."""
    return optimizer.inner_optimizer if isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer) else optimizer


def _final_metrics(window: MetricWindow, whole_run: MetricWindow, trainer: Trainer, step: int,
                   wall_seconds: float, loss_name: str, stopped_by: str = "steps") -> dict:
    options = trainer.options
    averaged = f"mean over the last {window.steps} steps of training (batch {options.batch_size})"
    definitions = {
        "loss/d": f"discriminator loss ({loss_name}), {averaged}",
        "loss/g": f"generator loss ({loss_name}), {averaged}",
        "logits/real": f"mean discriminator logit on real training images, {averaged}",
        "logits/fake": f"mean discriminator logit on generated images, {averaged}",
        "perf/steps_per_sec": "adversarial steps per second of this process, excluding its "
                              "first compiled call (tracing and compilation)",
    }
    definitions.update(trainer.metric_definitions(averaged))
    values = window.means()
    values.pop("perf/steps_per_sec", None)
    values.update({k: v for k, v in whole_run.means().items() if k.startswith("perf/")})
    return {
        "step": step,
        # What ended training, beside the step it reached: "steps" (train.steps) or
        # "max_time" (the wall-clock budget, ganrun.budget). A plain string like "step", so
        # every {"value", "definition"} entry stays a number.
        "stopped_by": stopped_by,
        "wall_time_s": {"value": round(wall_seconds, 2),
                        "definition": "wall time of this process's training loop, seconds"},
        **_schedule_entry(trainer),
        **{name: {"value": values[name], "definition": definitions[name]}
           for name in (*trainer.metric_names, *definitions)
           if name in values and name in definitions},
    }


def _schedule_entry(trainer: Trainer) -> dict:
    """metrics.json's record of where the linear schedule's rates reach 0 (if linear)."""
    ends = _schedule_ends(trainer)
    if not ends:
        return {}
    how = ("fitted to the wall-clock budget from the run's pace, or train.steps if sooner "
           "(train.schedule_end=budget)" if trainer.options.schedule_end == "budget"
           else "train.steps")
    return {"schedule_end": {"value": int(ends[0].numpy()), "definition":
                             f"the step at which the linear schedule's learning rates reach 0: "
                             f"{how}"}}


def _resume(trainer: Trainer, run_dir: Path) -> tuple[Checkpoints, Path, int]:
    """Restore the newest checkpoint (every worker reads the chief's); returns the
    checkpoints this process writes, the directory it writes into, and the step."""
    options = trainer.options
    rates = ConfiguredRates(trainer)  # before restoring: it reads the config's rates
    checkpoints = Checkpoints(trainer.checkpoint, run_dir / "checkpoints", options.keep_checkpoints)
    restored = checkpoints.restore_latest()
    if not distribute.is_chief(trainer.strategy):  # other workers write a scratch directory
        run_dir = distribute.worker_dir(trainer.strategy, run_dir, clear=True)
        checkpoints = Checkpoints(trainer.checkpoint, run_dir / "checkpoints",
                                  options.keep_checkpoints)
    step = int(trainer.step.numpy())
    if restored:
        log.info("Resumed from %s at step %d.", restored, step)
    rates.track()
    return checkpoints, run_dir, step


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


def _log_window(writer, window: MetricWindow, step: int, last: int) -> None:
    values = window.means()
    summaries.write_scalars(writer, values, step)
    log.info("step %d/%d  %s", step, last,
             "  ".join(f"{name} {value:.4g}" for name, value in values.items()))


def _finish(trainer: Trainer, run_dir: Path, writer, evaluation: Evaluation | None,
            window: MetricWindow, whole_run: MetricWindow, step: int, seconds: float,
            loss_name: str, stopped_by: str) -> dict:
    """generator.keras, the final evaluation, metrics.json; returns what was written."""
    writer.flush()
    _save_generator(trainer.sampling_generator, run_dir / "generator.keras")  # EMA if on
    final = _final_metrics(window, whole_run, trainer, step, seconds, loss_name, stopped_by)
    if evaluation:
        final.update(evaluation.final_entries(trainer, step, writer, run_dir))
        writer.flush()
    write_json_atomic(run_dir / "metrics.json", final)
    return final


def _compiled_call(trainer: Trainer, count: int, first: bool) -> tuple[dict[str, float], float]:
    """`count` steps of the trainer's compiled function: its metrics and the call's seconds."""
    started = time.perf_counter()
    metrics = {name: float(value)
               for name, value in trainer.train_steps(tf.constant(count, tf.int32)).items()}
    seconds = time.perf_counter() - started
    if first:
        log.info("First compiled call (tracing, compilation and %d steps): %.1f s.", count,
                 seconds)
    return metrics, seconds


def _announce(trainer: Trainer, step: int) -> Budget:
    """Log what this process will train; returns the wall-clock budget (train.max_time)."""
    options = trainer.options
    log.info("Training from step %d to %d (batch %d, %d steps per compiled call, XLA %s).",
             step, options.steps, options.batch_size, options.steps_per_call,
             "on" if trainer.jit_compile else "off")
    budget = Budget(parse_duration(options.max_time))
    if budget.seconds is not None:
        log.info("Wall-clock budget: %s for this process's training loop (train.max_time); "
                 "training stops at the first compiled call after it, or at step %d.",
                 budget.describe(), options.steps)
        if options.schedule_end == "budget" and options.lr_schedule == "linear":
            log.info("The linear schedule's rates reach 0 at train.steps=%d or at the step the "
                     "budget is projected to reach, whichever is sooner (train.schedule_end="
                     "budget; fitted after every compiled call).", options.steps)
        elif options.lr_schedule != "constant":
            log.warning("train.lr_schedule=%s runs over train.steps=%d; if the budget ends the "
                        "run first, the rates stop where the schedule is at that step (train."
                        "schedule_end=budget fits the schedule to the budget instead).",
                        options.lr_schedule, options.steps)
    return budget


def _schedule_ends(trainer: Trainer) -> list[tf.Variable]:
    """The end-step variables of the optimizers' linear schedules (one shared by both)."""
    ends = {}
    for optimizer in trainer.optimizers.values():
        schedule = _inner(optimizer)._learning_rate
        if isinstance(schedule, LinearToZero):
            ends[id(schedule.end)] = schedule.end
    return list(ends.values())


def _log_first_fit(end: int, limit: int) -> None:
    """The first projection; a warning when the budget reaches under half of train.steps,
    which is where a preset sized for a faster machine loses most (docs/quality.md)."""
    if end < limit / 2:
        log.warning("At this machine's pace the budget reaches about step %d of train.steps=%d, "
                    "so the linear schedule now ends there (re-fitted after every call); a "
                    "preset sized for %d steps may score better here with a smaller model or "
                    "batch (docs/quality.md, 'On a slower CPU').", end, limit, limit)
    else:
        log.info("The linear schedule now ends at step %d (this run's pace times the budget "
                 "left; re-fitted after every call).", end)


def _schedule_fit(trainer: Trainer, budget: Budget) -> ScheduleFit | None:
    """train.schedule_end=budget: what moves the linear schedule's end (ganrun.budget)."""
    ends = _schedule_ends(trainer)
    if trainer.options.schedule_end != "budget" or not ends or budget.seconds is None:
        return None
    return ScheduleFit(budget, ends, trainer.options.steps)


def _after_call(trainer: Trainer, step: int, checkpoints: Checkpoints, writer,
                evaluation: Evaluation | None, run_dir: Path) -> None:
    """What is due at `step`, after a compiled call: samples, a checkpoint, the periodic
    evaluation, and a graceful stop when a signal asked for one."""
    options = trainer.options
    if _due(step, options.sample_every, options.steps):
        trainer.write_samples(writer, run_dir, step)
    if _due(step, options.checkpoint_every, options.steps):
        checkpoints.save(step)
    if evaluation and evaluation.due(step):
        evaluation.periodic(trainer, step, writer, run_dir)
    if guard.stop_requested():  # SIGTERM / Ctrl-C: checkpoint, flush, raise TrainingStopped
        guard.stop_gracefully(checkpoints, writer, step, run_dir)
    pruning.stop_if_pruned(checkpoints, writer, step, run_dir)  # an Optuna trial's pruner


def _stop_for_budget(trainer: Trainer, checkpoints: Checkpoints, writer, window: MetricWindow,
                     budget: Budget, step: int, run_dir: Path) -> None:
    """The budget ran out between events: log, sample and checkpoint this step as if it were
    the last of train.steps, so the final evaluation and a resume start from here."""
    options = trainer.options
    log.info("Wall-clock budget of %s reached after %.1f s at step %d of %d (train.max_time); "
             "checkpointing and running the final evaluation.", budget.describe(),
             budget.elapsed(), step, options.steps)
    if window.steps:
        _log_window(writer, window, step, options.steps)
    if step % options.sample_every:
        trainer.write_samples(writer, run_dir, step)
    if step % options.checkpoint_every:
        checkpoints.save(step)


def fit(trainer: Trainer, run_dir: Path, config_text: str = "",
        loss_name: str = "", evaluation: Evaluation | None = None) -> dict:
    """Train until `trainer.options.steps` or the wall-clock budget `options.max_time`
    (whichever comes first), resuming from `run_dir/checkpoints` if present.

    `evaluation` (image: ganrun.evaluate.during_training, text: ganrun.evaluate.text; or
    None) scores samples every train.eval_every steps, keeps checkpoints/best, and scores the
    final generator into the "eval" section of metrics.json.

    Returns the contents written to `run_dir/metrics.json`.
    """
    options = trainer.options
    checkpoints, run_dir, step = _resume(trainer, Path(run_dir))
    if step >= options.steps:
        log.info("The run is at step %d, which is train.steps=%d already; raise train.steps "
                 "to train further.", step, options.steps)
        metrics_path = run_dir / "metrics.json"
        return read_json(metrics_path) if metrics_path.is_file() else {}
    writer = tf.summary.create_file_writer(str(run_dir / "tb"))
    if config_text:
        summaries.write_text(writer, "config", f"```\n{config_text}\n```", step)
    budget = _announce(trainer, step)
    progress = keras.utils.Progbar(options.steps, interval=0.5, unit_name="step",
                                   stateful_metrics=list(trainer.metric_names)) \
        if sys.stdout.isatty() else None  # a live bar on a terminal, not in train.log
    started, first_call = time.perf_counter(), True
    window, last_window, whole_run = MetricWindow(), None, MetricWindow()
    divergence = guard.DivergenceGuard(trainer, checkpoints, options.on_nonfinite,
                                       options.max_rollbacks, options.rollback_lr_factor)
    divergence.prepare(step)
    schedule_fit, fitted = _schedule_fit(trainer, budget), None
    stopped_by = "steps"
    while step < options.steps:
        count = steps_until_next_event(step, options)
        metrics, seconds = _compiled_call(trainer, count, first_call)
        step += count
        rolled_back_to = divergence.check(metrics, step)  # raises TrainingDiverged on "stop"
        if rolled_back_to is not None:
            step, window = rolled_back_to, MetricWindow()
            continue
        if schedule_fit and (end := schedule_fit.update(step)) is not None:
            if fitted is None:
                _log_first_fit(end, options.steps)
            fitted = end
        for accumulator in (window, whole_run):
            accumulator.add(metrics, count, None if first_call else seconds)
        first_call = False
        if progress:
            progress.update(step, list(metrics.items()))
        if _due(step, options.log_every, options.steps):
            _log_window(writer, window, step, options.steps)
            last_window, window = window, MetricWindow()
        _after_call(trainer, step, checkpoints, writer, evaluation, run_dir)
        if budget.expired() and step < options.steps:
            stopped_by = "max_time"
            _stop_for_budget(trainer, checkpoints, writer, window, budget, step, run_dir)
            if window.steps:
                last_window, window = window, MetricWindow()
            break
    if fitted is not None:
        log.info("The linear schedule ended at step %d (train.schedule_end=budget).", fitted)
    final = _finish(trainer, run_dir, writer, evaluation, last_window or window, whole_run,
                    step, time.perf_counter() - started, loss_name, stopped_by)
    log.info("Done at step %d in %.1f s; samples in %s.", step, time.perf_counter() - started,
             run_dir / "samples")
    return final
