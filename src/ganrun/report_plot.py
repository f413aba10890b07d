"""The report's PNG: the objective against each swept parameter, one panel per parameter.

Numeric parameters get a numeric axis (logarithmic when all values are positive and span more
than a factor of 10, as learning rates do); others (loss=hinge, ...) get one position per value.
The best run is drawn as a star.
"""

from __future__ import annotations

import math
from pathlib import Path


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(value) for value in values]
    except ValueError:
        return None


def _panel(axis, values: list[str], objective_values: list[float], name: str) -> None:
    numbers = _numbers(values)
    if numbers is None:
        categories = sorted(set(values))
        positions = [categories.index(value) for value in values]
        axis.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        axis.margins(x=0.25)
    else:
        positions = numbers
        if min(numbers) > 0 and max(numbers) / min(numbers) > 10:
            axis.set_xscale("log")
        if len(set(numbers)) <= 8:  # a grid: label exactly the values that were tried
            axis.minorticks_off()
            ticks = sorted(set(numbers))
            axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks], rotation=30, ha="right")
            axis.margins(x=0.15)
    axis.scatter(positions[1:], objective_values[1:], color="tab:blue")
    axis.scatter(positions[:1], objective_values[:1], color="tab:red", marker="*", s=200,
                 label="best")
    axis.set_xlabel(name)


def plot_objective(path: Path, runs: list, swept: list[str], objective: str,
                   direction: str) -> None:
    """Write `path` (PNG). `runs` are report.Run objects sorted best first, all with the
    objective; with no swept parameter the objective is drawn per run."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # no display; must precede pyplot
    from matplotlib import pyplot  # noqa: PLC0415

    names = swept or ["run"]
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4.5 * columns, 3.5 * rows),
                                   squeeze=False, sharey=True)
    values = [run.metrics[objective] for run in runs]
    for axis, name in zip(axes.flat, names):
        labels = [run.name if name == "run" else run.params.get(name, "") for run in runs]
        _panel(axis, labels, values, name)
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel(f"{objective} ({direction})")
    axes.flat[0].legend()
    figure.suptitle(f"{objective} of {len(runs)} runs")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
