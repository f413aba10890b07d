"""Latent text GANs (model=wgan_char): z -> per-position softmax (B, L, V), trained as an
image GAN is.

`AdversarialTrainer` already runs the Wasserstein loss, the gradient penalty, d_steps,
checkpoints, resume, EMA and the compiled K-step loop; a text GAN whose generator maps
latents to a softmax sequence needs only two things more, both here:
  - real batches: the int32 training ids (N, L) stay on the device and each drawn batch becomes
    float32 one-hot (B, L, V) there, so D sees one-hot real sequences and softmax fakes in the
    same space, and the gradient penalty interpolates between them (Gulrajani et al. 2017,
    section 5.2);
  - samples: sentences instead of image grids (argmax per position, decoded).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from ganrun import sampling, summaries
from ganrun.data.corpora import TextData
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.regularization import Regularization
from ganrun.trainers.image import AdversarialTrainer
from ganrun.trainers.options import TrainOptions


class LatentTextTrainer(AdversarialTrainer):
    """AdversarialTrainer on one-hot text, with text samples and metric definitions.

    Args: those of AdversarialTrainer, with `data` a TextData whose int32 x_train (N, L) is
    held on the device; no pixel range and no classes (the generator's softmax is already in
    D's input space).
    """

    example_dtype = tf.int32

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, data: TextData, options: TrainOptions,
                 regularization: Regularization | None = None, strategy=None):
        super().__init__(generator, discriminator, generator_optimizer, discriminator_optimizer,
                         loss_fn, data, options, regularization, strategy,
                         output_activation=None)

    @staticmethod
    def check(options: TrainOptions, regularization: Regularization, spec: DataSpec,
              loss_name: str) -> None:
        """Text data, the default strategy in float32, no MLE phase, no DiffAugment."""
        check_text_data(spec, options)
        if options.pretrain_steps:
            raise ConfigError("train.pretrain_steps is the MLE pre-training of model=relgan; "
                              "this model has none, set it to 0.")
        if regularization.augment:
            raise ConfigError("regularize.augment (DiffAugment) transforms images; remove it "
                              "for text models.")
        regularization.check_loss(loss_name)

    def _to_real(self, rows):
        """int32 ids (B, L) -> float32 one-hot (B, L, V), on the device."""
        return tf.one_hot(rows, self.data.spec.vocab_size, dtype=tf.float32)

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """`sample_grid` sentences from the fixed latents of train.seed (argmax decoding)."""
        ids = sampling.argmax_ids(self.sampling_generator, self.options.sample_grid,
                                  self.options.seed)
        summaries.write_text_samples([self.data.text(row) for row in ids], writer, run_dir, step)

    def metric_definitions(self, averaged: str) -> dict[str, str]:
        return {
            "logits/real": f"mean critic output on real one-hot training sequences, {averaged}",
            "logits/fake": f"mean critic output on the generator's softmax sequences, {averaged}"
                           "; logits/real - logits/fake = -loss/d is the critic's Wasserstein "
                           "estimate",
            "loss/d_penalty": "the critic's penalty term added to loss/d for its update (with "
                              "regularize.gradient_penalty=w: w * E[(||grad D(x)|| - 1)^2] at "
                              f"real/fake interpolates), {averaged}",
        }


def check_text_data(spec: DataSpec, options: TrainOptions) -> None:
    """What every text trainer needs: text data, the default strategy, float32."""
    if spec.kind != "text":
        raise ConfigError(f"the text model needs text data, but data {spec.name!r} is "
                          f"{spec.kind}; choose data=text, coco or oracle.")
    if (options.strategy, options.precision) != ("default", "float32"):
        raise ConfigError("text models train with train.strategy=default and "
                          "train.precision=float32 only.")
