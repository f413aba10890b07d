"""`Evaluation`: what `ganrun.fit` calls to score the generator while training.

Image runs use `ganrun.evaluate.during_training.TrainingEvaluation` (FID, KID, ...), text runs
`ganrun.evaluate.text.TextEvaluation` (BLEU, NLL-gen, ...). Both score the trainer's
`sampling_generator` (the EMA copy where there is one), at every `eval_every` steps and at the
last step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ganrun.trainers.protocol import Trainer


class Evaluation(Protocol):
    def due(self, step: int) -> bool:
        """Whether `periodic` should run after the compiled call that ended at `step`."""

    def periodic(self, trainer: Trainer, step: int, writer, run_dir: Path) -> dict | None:
        """Score a cheap sample, log it (`eval_periodic/<metric>`), keep checkpoints/best."""

    def final_entries(self, trainer: Trainer, step: int, writer, run_dir: Path) -> dict:
        """What the end of training adds to metrics.json ("eval", "eval/<metric>", "best")."""
