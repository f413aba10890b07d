"""The wall-clock budget of a training process (`train.max_time`).

A budget is a duration such as `10m`, `90s`, `1h`, `1h30m` or a plain number of seconds.
It counts the wall time of this process's training loop: from the first compiled call to
the end of the call that crossed it, including the periodic evaluations, sample grids and
checkpoints inside the loop, and excluding start-up (imports, data, model building, the
feature network) and the final evaluation after the loop. A resumed run gets its budget
again. Training stops at the first compiled-call boundary after the budget, so the step it
reaches is not fixed in advance; `train.steps` stays the other limit.

A linear learning-rate schedule (`train.lr_schedule=linear`, `LinearToZero`) ends at
`train.steps`, or with `train.schedule_end=budget` at the step the budget is projected to
reach (`ScheduleFit`, whichever is sooner), so that the rates reach 0 as the budget runs out
on a slow machine too. The projection is the run's own pace (steps per wall-clock second
since its first compiled call, which held the compilation) times the budget left, made
again after every compiled call; a resumed run fits its schedule to its own new budget.
"""

from __future__ import annotations

import re
import time

import keras
import tensorflow as tf

from ganrun.errors import ConfigError

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(value) -> float | None:
    """`train.max_time` as seconds: None/"none" -> None; 600, "600", "10m", "1h30m" -> float.

    Raises ConfigError naming the accepted forms for anything else, or for a duration <= 0.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    seconds = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if parts and "".join(number + unit for number, unit in parts) == text:
                seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds is None or not seconds > 0:
        raise ConfigError(f"train.max_time={value!r} must be a positive duration such as 90s, "
                          "10m, 1h30m or a number of seconds (or null for no budget).")
    return seconds


class Budget:
    """Started when the training loop starts; `expired()` is checked between compiled calls."""

    def __init__(self, seconds: float | None, clock=time.perf_counter):
        self.seconds, self._clock = seconds, clock
        self.started = clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds

    def describe(self) -> str:
        """For log lines: '10m 0s' style."""
        minutes, seconds = divmod(int(round(self.seconds or 0)), 60)
        return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


class LinearToZero(keras.optimizers.schedules.LearningRateSchedule):
    """rate * max(0, 1 - updates / (end * updates_per_step)): a linear decay that reaches 0
    at the adversarial step `end` holds. `end` is a variable so that `ScheduleFit` can move
    it while a compiled training function reads it (no retracing).

    Args:
      rate: the initial learning rate (> 0).
      end: a float32 scalar variable, the step at which the rate reaches 0 (> 0).
      updates_per_step: this optimizer's updates per adversarial step (D: train.d_steps),
        because the optimizer counts its own updates (`iterations`, checkpointed).
    """

    def __init__(self, rate: float, end: tf.Variable, updates_per_step: int = 1):
        self.rate, self.end, self.updates_per_step = float(rate), end, int(updates_per_step)

    def __call__(self, updates):
        total = self.end * float(self.updates_per_step)
        left = 1.0 - tf.cast(updates, tf.float32) / tf.maximum(total, 1.0)
        return self.rate * tf.maximum(left, 0.0)

    def get_config(self) -> dict:
        return {"rate": self.rate, "end": float(self.end.numpy()),
                "updates_per_step": self.updates_per_step}

    @classmethod
    def from_config(cls, config: dict) -> LinearToZero:
        end = tf.Variable(float(config["end"]), trainable=False, dtype=tf.float32)
        return cls(config["rate"], end, config["updates_per_step"])


class ScheduleFit:
    """Moves the end of the linear schedules to the step the budget is projected to reach.

    After each compiled call, `update(step)` projects: this run's pace since the end of its
    first call (steps per wall second, evaluations, samples and checkpoints in the loop
    included) times the budget left, added to `step`, capped at `limit` (train.steps) and
    never before `step`. The first call (tracing and compilation) only starts the clock.
    """

    def __init__(self, budget: Budget, ends: list[tf.Variable], limit: int):
        self.budget, self.ends, self.limit = budget, ends, limit
        self.origin: tuple[int, float] | None = None  # (step, elapsed) at the first call's end

    def update(self, step: int) -> int | None:
        """Re-fit the ends after a call that finished at `step`; returns the end set, or None
        while there is no pace yet."""
        elapsed = self.budget.elapsed()
        if self.origin is None:
            self.origin = (step, elapsed)
            return None
        done, spent = step - self.origin[0], elapsed - self.origin[1]
        if done <= 0 or spent <= 0:
            return None
        pace = done / spent
        left = max(self.budget.seconds - elapsed, 0.0)
        end = int(min(self.limit, max(step, round(step + pace * left))))
        for variable in self.ends:
            variable.assign(float(end))
        return end
