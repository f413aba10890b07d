"""Latent text GANs (model=wgan_char) on the image trainer: z -> per-position softmax (B, L, V).

`ganrun.train.AdversarialTrainer` already runs the Wasserstein loss, the gradient penalty,
d_steps, checkpoints, resume, EMA and the compiled K-step loop; a text GAN whose generator maps
latents to a softmax sequence needs only two things more, both here:
  - real batches: the int32 training ids (N, L) stay on the device and each drawn batch becomes
    float32 one-hot (B, L, V) there (`one_hot`, the trainer's `real_transform`), so D sees
    one-hot real sequences and softmax fakes in the same space, and the gradient penalty
    interpolates between them (Gulrajani et al. 2017, section 5.2);
  - samples: sentences instead of image grids (`write_samples`: argmax per position, decoded).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from ganrun.data.corpora import TextData
from ganrun.models.text_conv import argmax_ids
from ganrun.text_train import write_text_samples
from ganrun.train import AdversarialTrainer


def one_hot(vocab_size: int):
    """int32 ids (B, L) -> float32 one-hot (B, L, vocab_size), on the device."""
    def transform(ids):
        return tf.one_hot(ids, vocab_size, dtype=tf.float32)
    return transform


class LatentTextTrainer(AdversarialTrainer):
    """AdversarialTrainer on one-hot text, with text samples and metric definitions.

    Args: those of AdversarialTrainer, with `images` replaced by `data` (a TextData whose
    int32 x_train (N, L) is held on the device) and no pixel range (the generator's softmax
    is already in D's input space).
    """

    def __init__(self, generator, discriminator, generator_optimizer, discriminator_optimizer,
                 loss_fn, data: TextData, options, regularization=None):
        super().__init__(generator, discriminator, generator_optimizer, discriminator_optimizer,
                         loss_fn, data.x_train, (0.0, 1.0), options, regularization,
                         real_transform=one_hot(data.spec.vocab_size))
        self.data = data

    def write_samples(self, writer, run_dir: Path, step: int) -> None:
        """`sample_grid` sentences from the fixed latents of train.seed (argmax decoding)."""
        ids = argmax_ids(self.sampling_generator, self.options.sample_grid, self.options.seed)
        write_text_samples(self.data, ids, writer, run_dir, step)

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
