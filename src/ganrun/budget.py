"""The wall-clock budget of a training process (`train.max_time`).

A budget is a duration such as `10m`, `90s`, `1h`, `1h30m` or a plain number of seconds.
It counts the wall time of this process's training loop: from the first compiled call to
the end of the call that crossed it, including the periodic evaluations, sample grids and
checkpoints inside the loop, and excluding start-up (imports, data, model building, the
feature network) and the final evaluation after the loop. A resumed run gets its budget
again. Training stops at the first compiled-call boundary after the budget, so the step it
reaches is not fixed in advance; `train.steps` stays the other limit.
"""

from __future__ import annotations

import re
import time

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
