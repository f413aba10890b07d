"""The discriminator's regularization options (the `regularize:` config node) and the one
function that turns them into the extra terms of its loss.

Every option is off by default (weight 0), so a run that names none trains exactly as
without this module. Options combine freely, e.g. hinge loss + spectral norm + DiffAugment.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ganrun import penalties
from ganrun.augment import POLICIES
from ganrun.errors import ConfigError

# Losses whose discriminator loss is binary cross-entropy, where label smoothing is defined.
BCE_LOSSES = ("minimax", "nonsaturating")


@dataclasses.dataclass(frozen=True)
class Regularization:
    """Attributes (all off at 0 / empty):
      gradient_penalty: WGAN-GP weight λ (paper: 10), at real/fake interpolates.
      r1: R1 weight γ on real data; r1_every: lazy R1, computed every k-th discriminator
        update with weight k·γ (StyleGAN2's lazy regularization).
      dragan: DRAGAN weight (paper: 10), at perturbed real data.
      clip_weights: clip D's variables to [-c, c] after each update (original WGAN: 0.01).
      label_smoothing: one-sided, real targets 1 - s (BCE losses only; Salimans et al.: 0.1).
      instance_noise: std of Gaussian noise on D's inputs at step 0, annealed linearly to 0
        at train.steps (pixels span 1 or 2 units, so 0.1 is already strong).
      augment: DiffAugment policies applied to real and fake alike: translation, cutout.
    """

    gradient_penalty: float = 0.0
    r1: float = 0.0
    r1_every: int = 1
    dragan: float = 0.0
    clip_weights: float = 0.0
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    augment: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("gradient_penalty", "r1", "dragan", "clip_weights", "instance_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"regularize.{name}={value!r} must be a number >= 0 (0 = off).")
        if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"regularize.label_smoothing={self.label_smoothing!r} must be in "
                              "[0, 1).")
        if isinstance(self.r1_every, bool) or not isinstance(self.r1_every, int) \
                or self.r1_every < 1:
            raise ConfigError(f"regularize.r1_every={self.r1_every!r} must be a positive integer.")
        object.__setattr__(self, "augment", tuple(self.augment or ()))
        unknown = sorted(set(self.augment) - set(POLICIES))
        if unknown:
            raise ConfigError(f"regularize.augment has unknown policies {unknown}; use any of "
                              f"{list(POLICIES)}.")

    def check_loss(self, loss_name: str) -> None:
        """Label smoothing is only defined for the binary cross-entropy losses."""
        if self.label_smoothing and loss_name not in BCE_LOSSES:
            raise ConfigError(f"regularize.label_smoothing applies to the {BCE_LOSSES} losses, "
                              f"not {loss_name}; set it to 0 or change the loss.")

    @property
    def has_penalty(self) -> bool:
        return bool(self.gradient_penalty or self.r1 or self.dragan or self.label_smoothing)

    def penalty(self, critic, real, fake, real_logits, rng, update_index) -> tf.Tensor:
        """The weighted sum of the enabled penalties, a float32 scalar.

        Args:
          critic: images (B, H, W, C) -> logits (B, 1), labels bound for conditional models.
          real, fake: the update's image batches (un-augmented, without instance noise).
          real_logits: D's logits on the real batch (for label smoothing).
          rng: the trainer's SeedGenerator.
          update_index: int64 scalar, the number of discriminator updates before this one.
        """
        total = tf.constant(0.0)
        if self.gradient_penalty:
            total += self.gradient_penalty * penalties.wgan_gp(critic, real, fake, rng)
        if self.dragan:
            total += self.dragan * penalties.dragan(critic, real, rng)
        if self.r1 and self.r1_every == 1:
            total += self.r1 * penalties.r1(critic, real)
        elif self.r1:
            lazy = tf.cond(update_index % self.r1_every == 0,
                           lambda: self.r1 * self.r1_every * penalties.r1(critic, real),
                           lambda: tf.constant(0.0))
            total += lazy
        if self.label_smoothing:
            total += penalties.one_sided_label_smoothing(real_logits, self.label_smoothing)
        return total
