"""A run's hyperparameters and final metrics for TensorBoard's HParams dashboard, and the
objective a sweeper optimizes.

Each run writes one HParams "session" into `<run>/tb/hparams/`: the selected config group options
(`loss: hinge`) and the values of every key overridden on the command line or by a sweeper
(`optimizer.generator.learning_rate: 1e-4`), plus one scalar per final metric of `metrics.json`,
with the metric's definition as its description. `tensorboard --logdir <sweep dir>` then lists
every run of a sweep in one table (and the parallel-coordinates view); only these final values
appear as metric columns because TensorBoard takes a session's metrics from its own directory.
No experiment-level `hparams_config` is written: TensorBoard infers each column's domain from the
runs, which is right for sweeps whose jobs write concurrently.
"""

from __future__ import annotations

import json
from pathlib import Path

from ganrun.errors import ConfigError
from ganrun.rundir import read_json

HParamValue = bool | int | float | str


def flatten(value, prefix: str = "") -> dict:
    """Nested mappings as {dotted key: leaf value} (`{"a": {"b": 1}}` -> `{"a.b": 1}`); a
    leaf at the top is {prefix: value}."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, inner in value.items():
        flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def selected_hparams(config: dict, overrides: list[str], choices: dict) -> dict[str, HParamValue]:
    """The hyperparameters that tell this run from the defaults.

    Args:
      config: the resolved config as plain containers (OmegaConf.to_container(cfg, resolve=True)).
      overrides: Hydra's task overrides (`loss=hinge`, `optimizer.generator.learning_rate=1e-4`),
        the same list Hydra saves in `.hydra/overrides.yaml`.
      choices: Hydra's runtime choices of config groups (`{"loss": "hinge", ...}`).
    Returns:
      {name: value}: every non-Hydra group choice, and for every other override the value it set
      in `config` (a mapping flattened to dotted keys).
    """
    hparams: dict[str, HParamValue] = {
        group: str(option) for group, option in sorted(choices.items())
        if option is not None and not group.startswith("hydra")}
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in hparams or key.startswith("hydra"):
            continue
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        for name, leaf in flatten(value, key).items():
            # TensorBoard takes only bool, number and string values; None and lists as JSON.
            hparams[name] = leaf if isinstance(leaf, HParamValue) else json.dumps(leaf)
    return hparams


def metric_entries(metrics: dict, prefix: str = "") -> dict[str, tuple[float, str | None]]:
    """{name: (value, definition)} of the numbers in a metrics.json dict, nested names joined
    by "/" (`eval/fid`); entries are {"value", "definition", ...} or bare numbers ("step")."""
    entries = {}
    for name, entry in metrics.items():
        if isinstance(entry, dict) and "value" in entry:
            entry, definition = entry["value"], entry.get("definition")
        elif isinstance(entry, dict):
            if name != "definition":
                entries.update(metric_entries(entry, f"{prefix}{name}/"))
            continue
        else:
            definition = None
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            entries[prefix + name] = (float(entry), definition)
    return entries


def metric_values(metrics: dict) -> dict[str, float]:
    """{name: value} of `metric_entries(metrics)`."""
    return {name: value for name, (value, _) in metric_entries(metrics).items()}


def objective(run_dir: Path, metrics: dict, name: str) -> float:
    """The final value of metric `name` (from `run_dir/metrics.json`, which evaluation may have
    extended, else from `metrics`); what `ganrun train` returns to a sweeper."""
    path = Path(run_dir) / "metrics.json"
    on_disk = read_json(path) if path.is_file() else {}  # damaged: one sentence naming it
    values = metric_values({**metrics, **on_disk})
    if name not in values:
        raise ConfigError(
            f"objective.metric={name} is not among this run's final metrics "
            f"({', '.join(sorted(values))}); set objective.metric to one of them.")
    return values[name]


def write(log_dir: Path, hparams: dict[str, HParamValue], metrics: dict, run_name: str) -> None:
    """Write the HParams session (`hparams`) and one scalar per final metric into `log_dir`.

    Args:
      log_dir: `<run>/tb/hparams`, a directory of its own so the table's metric columns are the
        final values only (not every training curve).
      metrics: the metrics.json dict; its definitions become the scalars' descriptions.
      run_name: the trial id TensorBoard shows (the run directory's path within the sweep).
    """
    import tensorflow as tf  # noqa: PLC0415 (the CLI imports TensorFlow only when a run starts)
    from tensorboard.plugins.hparams import api as hp  # noqa: PLC0415

    step = int(metrics.get("step", 0))
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        hp.hparams(hparams, trial_id=run_name)
        for name, (value, definition) in metric_entries(metrics).items():
            if not name.endswith("step"):
                tf.summary.scalar(name, value, description=definition)
    writer.close()
