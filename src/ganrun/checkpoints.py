"""Checkpoints of the whole training state, written so a crash never loses the last good one.

TensorFlow's `CheckpointManager` writes a checkpoint's data files first and then replaces the
small `checkpoint` state file atomically, so the state file only ever names complete
checkpoints. If the newest one is unreadable anyway (disk corruption, a truncated copy), the
restore falls back to the next older one and says so. No pickle anywhere: these are
TensorFlow checkpoints (variables by object path).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
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

    def restore_latest(self, partial: bool = False) -> str | None:
        """Restore the newest readable checkpoint; return its path, or None if there is none.

        `partial`: the checkpoint object holds only part of what was saved (the generator, for
        sampling), so the rest is expected to stay unread: TensorFlow is told so and does not
        warn about every unread value.

        Raises GanrunError if checkpoints exist but none matches the models (a different
        experiment's run directory).
        """
        failures = []
        for path in reversed(self.paths()):
            try:
                status = self.checkpoint.restore(path)
                if partial:
                    status.expect_partial()
                status.assert_existing_objects_matched()
            # A truncated data file raises IndexError ("Read less bytes than requested").
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError,
                    OSError) as exc:
                failures.append(f"{Path(path).name}: {str(exc).splitlines()[0][:200]}")
                log.warning("Checkpoint %s could not be restored (%s); trying an older one.",
                            path, failures[-1])
                continue
            return path
        if failures:
            raise GanrunError(
                f"no checkpoint in {self.directory} can be restored into this experiment "
                f"({failures[0]}); train into a new hydra.run.dir, or use the config the run "
                "was started with."
            )
        return None

    def save(self, step: int) -> str:
        """Write a checkpoint for `step` and return its path.

        A failed write (disk full, a file-size limit, permissions) removes its partial files
        and raises GanrunError; the state file still names the previous checkpoint.
        """
        # A crash during an earlier save of this step (resume restarts before it) left these.
        shutil.rmtree(self.directory / f"ckpt-{step}_temp", ignore_errors=True)
        try:
            return self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as exc:
            self._remove_partial(step)
            reason = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
            reason = re.sub(r"\{\{.*?\}\}\s*", "", reason)[-200:]  # drop TF's op name
            previous = self.paths()[-1] if self.paths() else "none"
            raise GanrunError(
                f"could not write checkpoint ckpt-{step} in {self.directory} ({reason}); free "
                f"disk space or fix the directory's permissions, then run the same command "
                f"again to resume from the previous checkpoint ({previous}), which is intact."
            ) from None

    def _remove_partial(self, step: int) -> None:
        """Delete the files of an unfinished `ckpt-<step>` that the state file does not list."""
        prefix = str(self.directory / f"ckpt-{step}")
        if prefix in self.paths():
            return
        for path in self.directory.glob(f"ckpt-{step}[._]*"):
            with contextlib.suppress(OSError):  # best effort: the state file never names them
                shutil.rmtree(path) if path.is_dir() else path.unlink()
