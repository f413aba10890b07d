"""Image metrics while training: a cheap periodic evaluation, the best checkpoint, and the
full-count evaluation at the end.

Every `train.eval_every` steps (and at the last step) `train.eval_n` images (2,000 by default,
cheap and therefore noisier and biased upwards compared with 10,000) are scored against as
many test images and logged to TensorBoard as `eval_periodic/<metric>`; the generator with
the best `train.best_metric` (FID by default) is kept in `checkpoints/best/`
(ganrun.evaluate.best). At the end `train.eval_final_n` images (10,000 by default) are scored
as `ganrun eval` does (`eval/<metric>`, and the "eval" section of metrics.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ganrun import pruning, summaries
from ganrun.data.images import ImageData
from ganrun.evaluate import scores
from ganrun.evaluate.best import BEST_DIR, BestCheckpoint, read_best, resolve_metric
from ganrun.evaluate.feature_net import EvaluatorOptions, load_or_train, unavailable_reason
from ganrun.sample import generate

log = logging.getLogger(__name__)


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
                 seed: int = 0, best_metric: str = "auto"):
        self.net, self.data, self.every, self.last_step = net, data, every, last_step
        self.n, self.final_n, self.seed = n, final_n, seed
        self.best = BestCheckpoint(*resolve_metric(best_metric, "image"), n)
        self._scorer = None

    def due(self, step: int) -> bool:
        return self.every > 0 and (step % self.every == 0 or step == self.last_step)

    def _images(self, trainer, count: int):
        return generate(evaluated_generator(trainer), trainer.pixel_range, count, self.seed,
                        frequencies=self.data.spec.class_frequencies)

    def periodic(self, trainer, step: int, writer, run_dir: Path) -> dict:
        """Score `n` samples, log them, and keep the generator as `best` if it scores best."""
        if self._scorer is None:
            self._scorer = scores.Scorer(self.net, self.data, self.n)
        section = self._scorer.score(self._images(trainer, self.n),
                                     f"generator at step {step}, latents seed {self.seed}")
        write_section(writer, "eval_periodic", section, step)
        log.info("eval at step %d (%d samples): %s", step, self.n, scores.summary_line(section))
        self.best.offer(evaluated_generator(trainer), step, section, run_dir,
                        f"{self.n} samples vs {self._scorer.n_real} real images, see "
                        "eval_periodic/definition in TensorBoard")
        pruning.report(step, {f"eval_periodic/{k}": v for k, v in scores.scalars(section).items()})
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


def make_training_evaluation(data: ImageData, train_options,
                             evaluator: EvaluatorOptions) -> TrainingEvaluation | None:
    """The evaluation `train_options` asks for, or None when it is off or impossible.

    Off when train.eval_every and train.eval_final_n are both 0. Data without labels or a
    test split cannot have the metrics: training goes on and the log says which are missing.
    """
    every, final_n = train_options.eval_every, train_options.eval_final_n
    if data.spec.kind == "image":
        resolve_metric(train_options.best_metric, "image")  # a bad name fails even when off
    if (not every and not final_n) or data.spec.kind != "image":
        return None  # text runs are scored by BLEU (ganrun.evaluate.bleu)
    reason = unavailable_reason(data)
    if reason:
        log.warning("No image metrics during training: %s.", reason)
        return None
    return TrainingEvaluation(load_or_train(data, evaluator), data, every,
                              train_options.eval_n, final_n, train_options.steps,
                              train_options.seed, train_options.best_metric)
