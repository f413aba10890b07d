"""`Trainer`: the one contract between a trainer and the host side.

`ganrun.fit` (the host loop, checkpoints, resume), `ganrun.guard` (divergence checks and
rollbacks) and the evaluation during training use a trainer through these members only.
`image.AdversarialTrainer`, `latent_text.LatentTextTrainer` and `text_gan.TextGAN` implement
it; a new family of models is a new class with these members plus a config naming it
(`model.trainer._target_`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import keras
import tensorflow as tf

from ganrun.data.spec import DataSpec
from ganrun.regularization import Regularization
from ganrun.trainers.options import TrainOptions


@runtime_checkable
class Trainer(Protocol):
    """What a trainer offers the host side.

    Attributes:
      options: the run's TrainOptions.
      step: int64 scalar variable, adversarial (or MLE) steps done; part of `checkpoint`.
      checkpoint: every variable resume needs (models, optimizers, step, RNG state); `fit`
        adds its own records to it.
      strategy: the tf.distribute strategy the variables live under.
      jit_compile: whether (some of) the compiled function runs under XLA, for the log.
      optimizers: name -> optimizer of every optimizer whose learning rate the guard may
        lower on a rollback and whose configured rate resume compares (`g_optimizer`,
        `d_optimizer`, and `mle_optimizer` for the text GAN).
      models: the models whose weights the guard checks for NaN and infinity.
      metric_names: every metric `train_steps` may return ("loss/d", "mle/nll", ...).
      sampling_generator: the generator samples, evaluation and generator.keras come from
        (the EMA copy where train.ema_decay > 0).
    """

    options: TrainOptions
    step: tf.Variable
    checkpoint: tf.train.Checkpoint
    strategy: tf.distribute.Strategy
    jit_compile: bool
    optimizers: dict[str, keras.optimizers.Optimizer]
    models: tuple[keras.Model, ...]
    metric_names: tuple[str, ...]

    @property
    def sampling_generator(self) -> keras.Model: ...

    def train_steps(self, num_steps: tf.Tensor) -> dict[str, tf.Tensor]:
        """The compiled function: run int32 `num_steps` steps (traced once for every length)
        and return each metric's float32 mean over them."""

    def metric_definitions(self, averaged: str) -> dict[str, str]:
        """A one-sentence definition of each metric in `metric_names` ("loss/d": ...);
        `averaged` says over which steps the value is a mean."""

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """The fixed-seed samples of `step`: a file under run_dir/samples and a TensorBoard
        summary (an image grid, or sentences)."""

    @staticmethod
    def check(options: TrainOptions, regularization: Regularization, spec: DataSpec,
              loss_name: str) -> None:
        """Raise ConfigError (one sentence naming the fix) for options, regularization or
        data this trainer cannot train with; called by ganrun.build before any model is
        made, so a bad combination fails before anything is written."""
