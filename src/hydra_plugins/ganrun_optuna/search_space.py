"""Hydra sweep syntax -> Optuna distributions, through Hydra's own override parser.

`hydra.sweeper.params` (and sweep overrides on the command line) keep the syntax users know
from Hydra's multirun:

| override                             | Optuna distribution                          |
|--------------------------------------|----------------------------------------------|
| `choice(a, b, ...)`, `a,b,...`       | CategoricalDistribution (values as overrides) |
| `range(start, stop, step)`           | IntDistribution(start, stop - step, step), or |
|                                      | FloatDistribution with step when any is float |
| `interval(low, high)`                | FloatDistribution(low, high)                 |
| `int(interval(low, high))`           | IntDistribution(low, high)                   |
| `tag(log, interval(low, high))`      | the same with log=True                       |
| `key=value`, `~key`, ... (no sweep)  | a fixed override, passed to every trial      |

Choices that are not scalars (`choice([], [translation, cutout])`) are kept as their override
text (`[translation,cutout]`), which Optuna stores as a string and Hydra parses back.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)


class SearchSpaceError(ValueError):
    """A sweep override that has no Optuna distribution (the message names it)."""


def _choices(override: Override) -> list:
    # Transformer.encode: the override text of each value, so a list or a string with
    # special characters goes back to Hydra exactly as the user wrote it.
    return list(override.sweep_iterator(transformer=Transformer.encode))


def _distribution(override: Override):
    """The Optuna distribution of one sweep override."""
    from optuna.distributions import (  # noqa: PLC0415 (Hydra imports plugins at each start)
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(_choices(override))
    if isinstance(value, RangeSweep):
        values = [float(v) for v in override.sweep_iterator()]
        if not values:
            raise SearchSpaceError(f"{override.input_line}: the range is empty.")
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
        return FloatDistribution(values[0], values[-1], step=float(value.step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise SearchSpaceError(f"{override.input_line}: Optuna cannot sample this sweep; use "
                           "choice(...), range(...) or [tag(log, )]interval(...).")


def grid(space: dict[str, Any]) -> dict[str, list]:
    """The values of each parameter of `space` (name -> Optuna distribution) for Optuna's
    GridSampler: a choice's values, the steps of a range or an int interval. A float or log
    interval has no grid."""
    from optuna.distributions import CategoricalDistribution  # noqa: PLC0415

    values: dict[str, list] = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            values[name] = list(distribution.choices)
        elif getattr(distribution, "step", None) and not getattr(distribution, "log", False):
            count = round((distribution.high - distribution.low) / distribution.step) + 1
            kind = type(distribution.low)
            values[name] = [kind(distribution.low + i * distribution.step) for i in range(count)]
        else:
            raise SearchSpaceError(f"{name}: hydra/sweeper/sampler=grid needs choice(...) or "
                                   "range(...) for every parameter; this one is a float or "
                                   "log interval.")
    return values


def parse(arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> Optuna distribution, name -> fixed override) of `arguments`, override
    strings such as `loss=choice(hinge,nonsaturating)` or `train.steps=100`. A later
    override of the same key replaces an earlier one (the command line beats the preset)."""
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        name = override.get_key_element()
        space.pop(name, None)
        fixed.pop(name, None)
        if override.is_sweep_override():
            space[name] = _distribution(override)
        else:
            fixed[name] = override.input_line  # as written: `+key=v`, `~key` keep their prefix
    return space, fixed
