"""Image metrics while training: a cheap periodic evaluation, the best-FID checkpoint, and the
full-count evaluation at the end.

Every `train.eval_every` steps (and at the last step) `train.eval_n` images (2,000 by default,
cheap and therefore noisier and biased upwards compared with 10,000) are scored against as
many test images and logged to TensorBoard as `eval_periodic/<metric>`. When the FID is the
lowest so far, the evaluated generator weights are saved to `checkpoints/best/` (a
TensorFlow checkpoint holding only `generator`, written atomically by CheckpointManager), and
`checkpoints/best/best.json` records its step and FID so a resumed run keeps competing with
it. At the end `train.eval_final_n` images (10,000 by default) are scored as `ganrun eval`
does (`eval/<metric>`, and the "eval" section of metrics.json).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import tensorflow as tf

from ganrun import summaries
from ganrun.checkpoints import Checkpoints
from ganrun.data.images import ImageData
from ganrun.evaluate import scores
from ganrun.evaluate.feature_net import (
    EvaluatorOptions,
    load_or_train,
    unavailable_reason,
    write_json_atomic,
)
from ganrun.sample import generate

log = logging.getLogger(__name__)

BEST_DIR = Path("checkpoints") / "best"


def evaluated_generator(trainer):
    """The generator whose samples are scored: the EMA copy when the trainer keeps one."""
    # `sampling_generator` is the EMA copy when train.ema_decay > 0 (ganrun.ema).
    return getattr(trainer, "sampling_generator", trainer.generator)


def write_section(writer, prefix: str, section: dict, step: int) -> None:
    """A result's scalars as `<prefix>/<metric>` and its definition as `<prefix>/definition`."""
    summaries.write_scalars(writer, {f"{prefix}/{k}": v
                                     for k, v in scores.scalars(section).items()}, step)
    text = "\n".join(f"- {k}: {v}" for k, v in section["definition"].items())
    summaries.write_text(writer, f"{prefix}/definition", text, step)


class TrainingEvaluation:
    """Evaluation during `fit`: call `due`/`periodic` after each compiled call, `final` once."""

    def __init__(self, net, data: ImageData, every: int, n: int, final_n: int, last_step: int,
                 seed: int = 0):
        self.net, self.data, self.every, self.last_step = net, data, every, last_step
        self.n, self.final_n, self.seed = n, final_n, seed
        self._scorer = None

    def due(self, step: int) -> bool:
        return self.every > 0 and (step % self.every == 0 or step == self.last_step)

    def _images(self, trainer, count: int):
        return generate(evaluated_generator(trainer), trainer.pixel_range, count, self.seed)

    def periodic(self, trainer, step: int, writer, run_dir: Path) -> dict:
        """Score `n` samples, log them, and keep the generator as `best` if its FID is lowest."""
        if self._scorer is None:
            self._scorer = scores.Scorer(self.net, self.data, self.n)
        section = self._scorer.score(self._images(trainer, self.n),
                                     f"generator at step {step}, latents seed {self.seed}")
        write_section(writer, "eval_periodic", section, step)
        log.info("eval at step %d (%d samples): %s", step, self.n, scores.summary_line(section))
        best_dir = Path(run_dir) / BEST_DIR
        best = read_best(best_dir)
        fid = section["fid"]["value"]
        if best is None or best.get("n_fake") != self.n or fid < best["fid"]:
            checkpoint = tf.train.Checkpoint(generator=evaluated_generator(trainer))
            path = Checkpoints(checkpoint, best_dir, keep=1).save(step)
            write_json_atomic(best_dir / "best.json", {
                "step": step, "fid": fid, "n_fake": self.n, "n_real": self._scorer.n_real,
                "checkpoint": Path(path).name, "definition": "lowest periodic FID so far "
                f"({self.n} samples, see eval_periodic/definition in TensorBoard)"})
            log.info("New best FID %.4g at step %d: saved %s.", fid, step, path)
        return section

    def final(self, trainer, step: int, writer) -> dict | None:
        """Score `final_n` samples of the final generator: the metrics.json "eval" section
        (None when train.eval_final_n is 0)."""
        if not self.final_n:
            return None
        scorer = (self._scorer if self._scorer and self._scorer.n == self.final_n
                  else scores.Scorer(self.net, self.data, self.final_n))
        section = scorer.score(self._images(trainer, self.final_n),
                               f"latest checkpoint (step {step}), latents seed {self.seed}")
        section = {"step": step, "checkpoint": "latest", **section}
        write_section(writer, "eval", section, step)
        log.info("Final eval at step %d (%d samples): %s", step, self.final_n,
                 scores.summary_line(section))
        return section


    def final_entries(self, trainer, step: int, writer, run_dir: Path) -> dict:
        """What the end of training adds to metrics.json: "eval" (the full-count result of
        the latest generator), flat "eval/<metric>" entries of it (for sweep objectives),
        and "best" (the best periodic checkpoint's step and FID)."""
        entries = {}
        section = self.final(trainer, step, writer)
        if section is not None:
            entries["eval"] = section
            entries.update(scores.flat_entries(section))
        best = read_best(Path(run_dir) / BEST_DIR)
        if best is not None:
            entries["best"] = best
        return entries


def read_best(best_dir: Path) -> dict | None:
    """The best checkpoint's record (step, fid, n_fake, ...), or None."""
    path = Path(best_dir) / "best.json"
    return json.loads(path.read_text()) if path.is_file() else None


def make_training_evaluation(data: ImageData, train_options,
                             evaluator: EvaluatorOptions) -> TrainingEvaluation | None:
    """The evaluation `train_options` asks for, or None when it is off or impossible.

    Off when train.eval_every and train.eval_final_n are both 0. Data without labels or a
    test split cannot have the metrics: training goes on and the log says which are missing.
    """
    every, final_n = train_options.eval_every, train_options.eval_final_n
    if (not every and not final_n) or data.spec.kind != "image":
        return None  # text runs are scored by BLEU (ganrun.evaluate.bleu)
    reason = unavailable_reason(data)
    if reason:
        log.warning("No image metrics during training: %s.", reason)
        return None
    return TrainingEvaluation(load_or_train(data, evaluator), data, every,
                              train_options.eval_n, final_n, train_options.steps,
                              train_options.seed)
