"""What keeps a long run safe on the host side: a graceful stop on SIGTERM / Ctrl-C, and the
divergence guard (non-finite losses or weights, or losses and logits beyond
`train.divergence_bound` → stop, or roll back to the last good checkpoint with lower learning
rates), and a once-only warning when the discriminator has won outright for a long window.

Both act only between compiled calls (`fit` asks them after each call), so a compiled call is
never interrupted half-way and every checkpoint holds a consistent state. Neither retries
silently: every stop and every rollback is logged with its step and cause.
"""

from __future__ import annotations

import logging
import math
import signal
import threading

import keras
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from ganrun.errors import TrainingDiverged, TrainingStopped
from ganrun.trainers.protocol import Trainer

log = logging.getLogger(__name__)

# Metrics the divergence bound applies to: the losses and the mean logits (their scale is the
# logits' scale for every ganrun loss but least squares, whose loss is the logits' square).
BOUNDED_PREFIXES = ("loss/", "logits/")
# "D wins outright": loss/d below this for D_WINS_STEPS consecutive steps. The seed preset
# (minimax loss) collapses this way: D separates real from fake perfectly, G's gradient
# vanishes and its samples stop improving (README "The `seed` preset, honestly").
D_WINS_LOSS = 1e-3
D_WINS_STEPS = 1000


_active: StopRequest | None = None  # the StopRequest whose handlers are installed


def stop_requested() -> bool:
    """True once SIGTERM or SIGINT arrived inside an active StopRequest block."""
    return _active is not None and _active.signum is not None


def checkpoint_and_flush(checkpoints, writer, step: int) -> str:
    """Checkpoint `step` (unless that checkpoint exists) and flush TensorBoard: what every
    graceful stop (a signal, a pruned trial: ganrun.pruning) does; returns the path."""
    paths = checkpoints.paths()
    path = paths[-1] if paths and paths[-1].endswith(f"ckpt-{step}") else checkpoints.save(step)
    writer.flush()
    return path


def stop_gracefully(checkpoints, writer, step: int, run_dir) -> None:
    """Checkpoint `step` (unless that checkpoint exists), flush TensorBoard, and raise
    TrainingStopped with a message saying how to resume."""
    path = checkpoint_and_flush(checkpoints, writer, step)
    raise TrainingStopped(
        f"stopped by {_active.name} at step {step} after writing {path}; resume by running "
        f"the same command with hydra.run.dir={run_dir}.", _active.signum)


class StopRequest:
    """While active (a `with` block), SIGTERM and SIGINT only record that a stop was asked for;
    `fit` then finishes the current compiled call, checkpoints and raises TrainingStopped.

    A second signal restores the default behaviour and re-delivers itself (Ctrl-C twice stops
    at once). Handlers can only be installed from the main thread; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        global _active
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            _active = self
        return self

    def __exit__(self, *exc_info) -> None:
        global _active
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        if _active is self:
            _active = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal: stop now
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.signum = signum
        log.warning("%s received: stopping after the current compiled call (send it again to "
                    "stop at once, without a checkpoint).", signal.Signals(signum).name)


class WeightCheck:
    """Names of the models' floating-point variables that hold a NaN or an infinity.

    One small tf.function (traced once) reduces every variable to one boolean, so the check
    costs one pass over the weights per compiled call (about a millisecond for the DCGAN).
    """

    def __init__(self, models):
        self.variables = [v for model in models for v in model.variables
                          if keras.backend.is_float_dtype(v.dtype)]
        self._finite = tf.function(
            lambda: tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in self.variables]))

    def nonfinite(self) -> list[str]:
        if not self.variables:
            return []
        flags = self._finite().numpy()
        return [v.path for v, ok in zip(self.variables, flags) if not ok]


class DivergenceGuard:
    """Checks each compiled call's metrics and the weights; on a NaN or infinity either raises
    TrainingDiverged (policy "stop") or rolls back (policy "rollback"): restore the newest
    checkpoint, multiply both learning rates by `lr_factor`, continue; after `max_rollbacks`
    rollbacks in one process it gives up with TrainingDiverged.
    """

    def __init__(self, trainer: Trainer, checkpoints, policy: str = "stop", max_rollbacks: int = 3,
                 lr_factor: float = 0.5):
        self.trainer, self.checkpoints = trainer, checkpoints
        self.policy, self.max_rollbacks, self.lr_factor = policy, max_rollbacks, lr_factor
        self.weights = WeightCheck(trainer.models)
        self.rollbacks = 0
        options = getattr(trainer, "options", None)
        self.bound = getattr(options, "divergence_bound", None) or None  # 0 or None: off
        self.d_wins_since, self.warned_d_wins, self.previous_step = None, False, None

    def prepare(self, step: int) -> None:
        """With policy "rollback", make sure there is a checkpoint to roll back to."""
        if self.policy == "rollback" and not self.checkpoints.paths():
            self.checkpoints.save(step)

    def check(self, metrics: dict[str, float], step: int) -> int | None:
        """None when everything is finite; otherwise the step training continues from after a
        rollback (or TrainingDiverged is raised)."""
        bad = [f"{name} = {value}" for name, value in metrics.items() if not math.isfinite(value)]
        if not bad and self.bound:
            beyond = [f"{name} = {value:.3g}" for name, value in metrics.items()
                      if name.startswith(BOUNDED_PREFIXES) and abs(value) > self.bound]
            if beyond:  # the first two name the problem; the rest would only lengthen it
                bad = [", ".join(beyond[:2]) + (f" (and {len(beyond) - 2} more)"
                                                if len(beyond) > 2 else "")
                       + f", beyond train.divergence_bound={self.bound:g}"]
        if not bad:
            weights = self.weights.nonfinite()
            if weights:
                bad = [f"non-finite weights in {', '.join(weights[:3])}"
                       + (f" and {len(weights) - 3} more" if len(weights) > 3 else "")]
        if not bad:
            self._watch_d_wins(metrics, step)
            self.previous_step = step
            return None
        cause = f"training diverged in the steps ending at {step}: {'; '.join(bad)}"
        last = self.checkpoints.paths()[-1] if self.checkpoints.paths() else None
        if self.policy != "rollback":
            raise TrainingDiverged(
                f"{cause}; the last good checkpoint ({last or 'none'}) is kept — lower the "
                "learning rates (optimizer.*.learning_rate), choose another loss, or set "
                "train.on_divergence=rollback before resuming.")
        if self.rollbacks >= self.max_rollbacks or last is None:
            why = (f"after {self.rollbacks} rollbacks (train.max_rollbacks)" if last
                   else "and there is no checkpoint to roll back to")
            raise TrainingDiverged(f"{cause}, {why}; lower the learning rates "
                                   "(optimizer.*.learning_rate) or choose another loss.")
        return self._roll_back(cause)

    def _watch_d_wins(self, metrics: dict[str, float], step: int) -> None:
        """Warn once when loss/d has stayed below D_WINS_LOSS for D_WINS_STEPS steps (checked
        on each compiled call's mean, so the window is counted in whole calls)."""
        value = metrics.get("loss/d")
        if value is None or value >= D_WINS_LOSS:
            self.d_wins_since = None
            return
        if self.d_wins_since is None:  # the window starts where this call started
            self.d_wins_since = self.previous_step if self.previous_step is not None else step
        if not self.warned_d_wins and step - self.d_wins_since >= D_WINS_STEPS:
            self.warned_d_wins = True
            log.warning("loss/d has stayed below %g since step %d (%d steps): the discriminator "
                        "wins outright and the generator's gradient vanishes, the collapse of "
                        "the seed preset's minimax loss; training goes on, but consider "
                        "loss=nonsaturating, a lower discriminator learning rate or "
                        "regularize.* (README 'The seed preset, honestly').", D_WINS_LOSS,
                        self.d_wins_since, step - self.d_wins_since)

    def _roll_back(self, cause: str) -> int:
        path = self.checkpoints.restore_latest()  # learning rates are in it: restored too
        self.d_wins_since = self.previous_step = None
        rates = []
        for name, optimizer in self.trainer.optimizers.items():
            if isinstance(optimizer._learning_rate, LearningRateSchedule):
                raise TrainingDiverged(f"{cause}; rollback lowers constant learning rates only, "
                                       f"and {name} uses a schedule.")
            optimizer.learning_rate.assign(optimizer.learning_rate * self.lr_factor)
            rates.append(f"{name} {float(optimizer.learning_rate.numpy()):.3g}")
        self.rollbacks += 1
        step = int(self.trainer.step.numpy())
        log.warning("%s; rolled back to %s (step %d) and multiplied the learning rates by %g "
                    "(now %s); rollback %d of %d.", cause, path, step, self.lr_factor,
                    ", ".join(rates), self.rollbacks, self.max_rollbacks)
        return step
