"""Checkpoints of the whole training state, written so a crash never loses the last good one.

TensorFlow's `CheckpointManager` writes a checkpoint's data files first and then replaces the
small `checkpoint` state file atomically, so the state file only ever names complete
checkpoints. If the newest one is unreadable anyway (disk corruption, a truncated copy), the
restore falls back to the next older one and says so. No pickle anywhere: these are
TensorFlow checkpoints (variables by object path).
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from ganrun.errors import GanrunError

log = logging.getLogger(__name__)


class Checkpoints:
    """Save and restore `checkpoint` (a `tf.train.Checkpoint`) under `directory`.

    Checkpoint files are named `ckpt-<step>`; the newest `keep` are kept.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: Path, keep: int = 3):
        self.checkpoint = checkpoint
        self.directory = Path(directory)
        self.manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep,
                                                  checkpoint_name="ckpt")

    def paths(self) -> list[str]:
        """Checkpoint prefixes the state file lists, newest last."""
        return list(self.manager.checkpoints)

    def restore_latest(self) -> str | None:
        """Restore the newest readable checkpoint; return its path, or None if there is none.

        Raises GanrunError if checkpoints exist but none matches the models (a different
        experiment's run directory).
        """
        failures = []
        for path in reversed(self.paths()):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError) as exc:
                failures.append(f"{Path(path).name}: {str(exc).splitlines()[0][:200]}")
                log.warning("Checkpoint %s could not be restored (%s); trying an older one.",
                            path, failures[-1])
                continue
            return path
        if failures:
            raise GanrunError(
                f"no checkpoint in {self.directory} matches this experiment ({failures[0]}); "
                "train into a new hydra.run.dir, or use the config the run was started with."
            )
        return None

    def save(self, step: int) -> str:
        """Write a checkpoint for `step` and return its path."""
        return self.manager.save(checkpoint_number=step)
