"""What identifies a run's experiment, and the checks that keep a run directory to one.

The fingerprint (`build.experiment_fingerprint`: a hash of data, model, loss and optimizer
types) is stored twice: as a string variable inside every checkpoint (`experiment_fingerprint`)
and as `ganrun_fingerprint` in `experiment.yaml`. Resuming compares the new experiment with
both, so deleting or editing one file cannot make a run resume another experiment's
checkpoints; `sample` and `eval` compare `experiment.yaml` (and `data_spec.json`) with the
checkpoint, so they never rebuild a generator from a description that is not the checkpoint's.
Runs written before the fingerprint existed have it in neither place: for them the fingerprint
is recomputed from `experiment.yaml` and `data_spec.json`, as before.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from ganrun import build
from ganrun.data.spec import DataSpec
from ganrun.errors import GanrunError
from ganrun.rundir import FINGERPRINT_KEY, has_checkpoint, load_experiment

CHECKPOINT_KEY = "experiment_fingerprint"  # the variable's name in tf.train.Checkpoint
_TENSOR = f"{CHECKPOINT_KEY}/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_fingerprint(directory: Path) -> str | None:
    """The fingerprint stored in the newest readable checkpoint under `directory`, or None
    (no checkpoint, or one written before fingerprints)."""
    state = tf.train.get_checkpoint_state(str(directory))
    for path in reversed(list(state.all_model_checkpoint_paths) if state else []):
        path = path if Path(path).is_absolute() else str(Path(directory) / path)
        try:
            reader = tf.train.load_checkpoint(path)
            return reader.get_tensor(_TENSOR).decode() if reader.has_tensor(_TENSOR) else None
        # As Checkpoints.restore_latest: a damaged one is skipped for the next older one.
        except (tf.errors.OpError, ValueError, IndexError, KeyError, OSError,
                UnicodeDecodeError):
            continue
    return None


def saved_fingerprint(run_dir: Path) -> str | None:
    """experiment.yaml's fingerprint: the recorded one, else recomputed from it and
    data_spec.json (runs before fingerprints); None if the files are not there."""
    run_dir = Path(run_dir)
    if not (run_dir / "experiment.yaml").is_file():
        return None
    cfg = load_experiment(run_dir)
    recorded = cfg.get(FINGERPRINT_KEY)
    if recorded:
        return str(recorded)
    spec = run_dir / "data_spec.json"
    return build.experiment_fingerprint(cfg, DataSpec.from_json(spec)) if spec.is_file() else None


def check_resume(run_dir: Path, cfg: DictConfig, spec: DataSpec, checkpoint) -> bool:
    """Before training into `run_dir`: raise GanrunError if its checkpoints belong to another
    experiment (or to none ganrun can tell). Adds the fingerprint variable to `checkpoint`
    (a tf.train.Checkpoint) unless the run's checkpoints predate it. Returns whether the
    directory holds checkpoints (a resume)."""
    fingerprint = build.experiment_fingerprint(cfg, spec)
    if not has_checkpoint(run_dir):
        setattr(checkpoint, CHECKPOINT_KEY, tf.Variable(fingerprint, trainable=False))
        return False
    stored = checkpoint_fingerprint(Path(run_dir) / "checkpoints")
    known = {name: value for name, value in (("its checkpoints", stored),
                                             ("experiment.yaml", saved_fingerprint(run_dir)))
             if value}
    if not known:
        raise GanrunError(f"{run_dir} holds checkpoints but no record of their experiment (no "
                          "experiment.yaml, and checkpoints older than ganrun's fingerprints); "
                          "train into a new hydra.run.dir.")
    differ = [name for name, value in known.items() if value != fingerprint]
    if differ:
        raise GanrunError(f"{run_dir} holds checkpoints of a different experiment (data, model, "
                          f"loss or optimizer differ from {' and '.join(differ)}); train into a "
                          "new hydra.run.dir.")
    if stored:  # the checkpoint has the variable, so restoring matches it
        setattr(checkpoint, CHECKPOINT_KEY, tf.Variable(fingerprint, trainable=False))
    return True


def record(run_dir: Path, cfg: DictConfig, spec: DataSpec) -> None:
    """Write experiment.yaml (the config, resolved, with its fingerprint) and data_spec.json."""
    saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    saved[FINGERPRINT_KEY] = build.experiment_fingerprint(cfg, spec)
    OmegaConf.save(saved, Path(run_dir) / "experiment.yaml")
    spec.to_json(Path(run_dir) / "data_spec.json")


def check_described(run_dir: Path, cfg: DictConfig, spec: DataSpec) -> None:
    """For sample and eval: raise GanrunError unless experiment.yaml and data_spec.json
    describe the experiment the run's checkpoints were trained with."""
    stored = checkpoint_fingerprint(Path(run_dir) / "checkpoints")
    if stored and stored != build.experiment_fingerprint(cfg, spec):
        raise GanrunError(f"{run_dir}/experiment.yaml and data_spec.json do not describe the "
                          "run's checkpoints (their fingerprints differ); restore the files the "
                          "run was trained with.")
