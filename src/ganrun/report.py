"""`ganrun report DIR`: one table of a sweep's (or any set of runs') parameters vs final metrics.

A run directory is any directory under DIR holding `experiment.yaml` or `.hydra/` (what
`ganrun train` writes). Its parameters are its command-line overrides (`.hydra/overrides.yaml`,
which in a sweep include the swept values), or for runs made without Hydra the flattened
`experiment.yaml`; only parameters that differ between runs become columns. Its metrics are the
numbers in `metrics.json` (nested names joined by "/": `eval/fid`). Runs are sorted by the
objective (default: the runs' `objective.metric` and `objective.direction`), the best is
marked, and runs without metrics.json (failed, interrupted or running) are listed with the
error line of their train.log. Writes DIR/report.md, report.csv and report.png (the objective
against each swept parameter). For a sweep of the ganrun_optuna sweeper (DIR/study.yaml) it
adds each run's trial state (a `state` column; pruned runs say where), the study's counts by
state, its best trial and Optuna's parameter importances, also in DIR/report_study.csv.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from ganrun import study
from ganrun.errors import GanrunError
from ganrun.hparams import flatten, metric_entries
from ganrun.rundir import read_json, read_yaml

BEST = "★"


@dataclass
class Run:
    path: Path
    name: str                      # path relative to the report's directory
    params: dict[str, str]         # every override (or flattened config value), as text
    metrics: dict[str, float] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)
    objective: tuple[str, str] | None = None   # (metric, direction) from the run's config
    error: str = ""
    state: str = ""                # its Optuna trial's state (COMPLETE, PRUNED, ...), if any


def _natural_key(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_run_dirs(root: Path) -> list[Path]:
    """Directories under `root` (itself included) that hold a ganrun run."""
    found = {p.parent for p in root.rglob("experiment.yaml")}
    found |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    return sorted(found, key=lambda p: _natural_key(str(p)))


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [line[line.find("ganrun: error"):] if "ganrun: error" in line else line
              for line in lines if "error" in line.lower()]
    return (errors or ["no metrics.json (failed, interrupted or still running)"])[-1].strip()


def load_run(path: Path, root: Path) -> Run:
    """Read one run directory (see the module docstring); a damaged file makes the run's
    row an error naming the file, not the report's end."""
    try:
        return _load_run(path, root)
    except GanrunError as exc:
        run = Run(path, str(path.relative_to(root)) if path != root else ".", {})
        run.error = str(exc)
        return run


def _load_run(path: Path, root: Path) -> Run:
    overrides = path / ".hydra" / "overrides.yaml"
    config_path = next((p for p in (path / "experiment.yaml", path / ".hydra" / "config.yaml")
                        if p.is_file()), None)
    config = OmegaConf.to_container(read_yaml(config_path)) if config_path else {}
    params: dict[str, str] = {}
    if overrides.is_file():
        listed = OmegaConf.load(overrides) if _parses(overrides) else None
        if not isinstance(listed, ListConfig):
            raise GanrunError(f"{overrides} is damaged (not a YAML list of overrides); restore "
                              "it from a copy of the run.")
        for override in OmegaConf.to_container(listed):
            key, _, value = str(override).partition("=")
            if not key.lstrip("+~").startswith(("hydra.", "hydra/")):
                params[key.lstrip("+~")] = value
    else:
        params.update({key: str(value) for key, value in flatten(config).items()})
    run = Run(path, str(path.relative_to(root)) if path != root else ".", params)
    objective = config.get("objective") if isinstance(config, dict) else None
    if isinstance(objective, dict) and "metric" in objective:
        run.objective = (str(objective["metric"]), str(objective.get("direction", "minimize")))
    metrics_path = path / "metrics.json"
    if metrics_path.is_file():
        entries = metric_entries(read_json(metrics_path))
        run.metrics = {name: value for name, (value, _) in entries.items()}
        run.definitions = {name: text for name, (_, text) in entries.items() if text}
    else:
        run.error = _last_error(path / "train.log")
    return run


def _parses(path: Path) -> bool:
    try:
        OmegaConf.load(path)
    except Exception:  # noqa: BLE001 (any parser or OmegaConf error: reported as damaged)
        return False
    return True


def swept_parameters(runs: list[Run]) -> tuple[list[str], dict[str, str]]:
    """(names of parameters that differ between runs, {name: value} of those that do not)."""
    names = sorted({key for run in runs for key in run.params}, key=_natural_key)
    swept = [n for n in names if len({run.params.get(n) for run in runs}) > 1]
    common = {n: runs[0].params[n] for n in names if n not in swept}
    return swept, common


def sort_runs(runs: list[Run], objective: str, direction: str) -> list[Run]:
    """Runs with the objective first, best first; then the others in directory order."""
    scored = [run for run in runs if objective in run.metrics]
    scored.sort(key=lambda run: run.metrics[objective], reverse=direction == "maximize")
    return scored + [run for run in runs if objective not in run.metrics]


def _format(value) -> str:
    """4 significant digits for metrics and for long numeric parameters (Optuna's 0.000151320...);
    the CSV keeps every digit."""
    if isinstance(value, str) and len(value) > 8:
        try:
            value = float(value)
        except ValueError:
            return value
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metric_order(name: str) -> tuple[int, str]:
    """Quality metrics first, then losses and logits, then bookkeeping (steps, timings)."""
    order = ("eval/", "loss/", "logits/", "best/", "perf/")
    rank = next((i for i, prefix in enumerate(order) if name.startswith(prefix)), len(order))
    return (len(order) + 1 if name.endswith("step") or "/n_" in name else rank, name)


def table_rows(runs: list[Run], swept: list[str], objective: str) -> tuple[list[str], list[list]]:
    """(header, rows): best mark, run, swept parameters, objective, other metrics, error."""
    others = sorted({name for run in runs for name in run.metrics} - {objective, "step"},
                    key=_metric_order)
    states = ["state"] if any(run.state for run in runs) else []  # an Optuna study's sweep
    header = ["best", "run", *states, *swept, objective, "step", *others, "error"]
    rows = []
    for index, run in enumerate(runs):
        best = BEST if index == 0 and objective in run.metrics else ""
        rows.append([best, run.name, *([run.state] if states else []),
                     *(run.params.get(n, "") for n in swept),
                     *(run.metrics.get(n, "") for n in (objective, "step", *others)), run.error])
    return header, rows


def markdown(header: list[str], rows: list[list], max_columns: int = 12) -> str:
    """A GitHub-Markdown table of the first `max_columns` columns (the CSV has them all)."""
    keep = [i for i, name in enumerate(header) if name != "error"][:max_columns]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |",
             "|" + "|".join("---" for _ in keep) + "|"]
    lines += ["| " + " | ".join(_format(row[i]) for i in keep) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _study(root: Path, runs: list[Run]) -> study.StudySummary | None:
    """The Optuna study of a ganrun_optuna sweep in `root` (None for other directories); sets
    each trial's run (directory `<root>/<trial number>`) its state, and a pruned run's error
    to where it was pruned."""
    found = study.find_study(root)
    if found is None:
        return None
    summary = study.summarize(*found)
    for run in runs:
        trial = summary.trials.get(int(run.name)) if run.name.isdigit() else None
        if trial is None:
            continue
        run.state = trial.state
        if trial.state == "PRUNED":
            run.error = (f"pruned at step {trial.last_step} (reported value "
                         f"{trial.last_value:.4g})" if trial.last_step is not None else "pruned")
    return summary


def report(root: Path, objective: str | None = None, direction: str | None = None) -> str:
    """Build the report of the runs under `root`; write report.{md,csv,png}; return the text."""
    root = Path(root)
    if not root.is_dir():
        raise GanrunError(f"{root} is not a directory; pass a sweep or runs directory.")
    runs = [load_run(path, root) for path in find_run_dirs(root)]
    if not runs:
        raise GanrunError(f"no run directories (with experiment.yaml or .hydra/) under {root}; "
                          "pass the sweep directory printed by `ganrun train -m`.")
    configured = next((run.objective for run in runs if run.objective), ("loss/g", "minimize"))
    objective, direction = objective or configured[0], direction or configured[1]
    summary = _study(root, runs)
    runs = sort_runs(runs, objective, direction)
    swept, common = swept_parameters(runs)
    header, rows = table_rows(runs, swept, objective)
    scored = [run for run in runs if objective in run.metrics]
    definition = next((run.definitions[objective] for run in scored
                       if objective in run.definitions), "")
    lines = [f"# Report of {len(runs)} runs in {root}", "",
             f"Objective: {objective} ({direction}){': ' + definition if definition else ''}.",
             f"Common overrides: {' '.join(f'{k}={v}' for k, v in common.items()) or 'none'}.",
             "", markdown(header, rows), ""]
    if not scored:
        lines.append(f"No run has {objective}; choose another with --objective.")
    failed = [f"- {run.name}: {run.error}" for run in runs if run.error]
    lines += ["Failed, pruned or incomplete runs:", *failed, ""] if failed else []
    lines += study.markdown(summary) if summary else []
    text = "\n".join(lines) + "\n"
    (root / "report.md").write_text(text)
    write_csv(root / "report.csv", header, rows)
    if summary:
        write_csv(root / "report_study.csv", ["key", "value"], study.csv_rows(summary))
    if scored:
        from ganrun.report_plot import plot_objective  # noqa: PLC0415 (matplotlib is slow)

        plot_objective(root / "report.png", scored, swept, objective, direction)
    return text


def main(argv: list[str] | None = None, prog: str = "ganrun report") -> int:
    """`ganrun report DIR [--objective NAME] [--direction minimize|maximize]`."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a sweep directory (multirun/...) or any "
                                               "directory holding run directories")
    parser.add_argument("--objective", help="metric to sort by, e.g. eval/fid (default: the "
                                            "runs' objective.metric)")
    parser.add_argument("--direction", choices=("minimize", "maximize"),
                        help="default: the runs' objective.direction")
    args = parser.parse_args(argv)
    try:
        print(report(args.dir, args.objective, args.direction), end="")
    except GanrunError as exc:
        print(f"ganrun: error: {exc}", file=sys.stderr)
        return 2
    extra = ", report_study.csv" if study.find_study(args.dir) else ""
    print(f"Written {args.dir / 'report.md'}, report.csv{extra} and report.png.")
    return 0
