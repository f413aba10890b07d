"""`TrainOptions`: the `train:` node of the config, checked when made.

A plain frozen dataclass: nothing below `ganrun.build` sees a Hydra config, so tests and
notebooks make one directly (`TrainOptions(steps=10, batch_size=8)`).
"""

from __future__ import annotations

import dataclasses

from ganrun import precision as precisions
from ganrun.budget import parse_duration
from ganrun.distribute import STRATEGIES
from ganrun.errors import ConfigError

# Which check each field gets; every field is in exactly one group (a test asserts it).
POSITIVE = ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every",
            "steps_per_call", "d_steps", "keep_checkpoints", "sample_grid", "max_rollbacks",
            "eval_n")
POSITIVE_OR_OFF = ("eval_every", "eval_final_n", "pretrain_steps")  # 0 turns the feature off
CHOICES = {"jit_compile": ("auto", True, False), "fuse_d_pass": ("auto", True, False),
           "on_divergence": ("stop", "rollback"), "lr_schedule": ("constant", "linear"),
           "schedule_end": ("steps", "budget"),
           "strategy": STRATEGIES, "precision": precisions.CHOICES}
OTHER = ("seed", "rollback_lr_factor", "ema_decay", "ema_rampup", "best_metric", "max_time",
         "on_nonfinite", "divergence_bound")  # checked by hand, below


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How long and how to train; the `train:` node of the config.

    Attributes:
      steps: total adversarial steps (a resumed run trains up to this count).
      batch_size: real and fake examples per discriminator update.
      seed: seeds the models' initial weights, the batch sampler and the latents.
      log_every, sample_every, checkpoint_every: host-side actions, in steps.
      jit_compile: "auto" (XLA on a GPU; on a CPU for dense-only models, and for every
        model where the CPU has no AVX-512: ganrun.trainers.policy), true or false.
      steps_per_call: adversarial steps per compiled call (K).
      d_steps: discriminator updates per generator update.
      keep_checkpoints: how many recent checkpoints to keep.
      sample_grid: number of images in the fixed-latent sample grid.
      on_divergence: "stop" (raise TrainingDiverged) or "rollback" (restore the last good
        checkpoint and multiply the learning rates by rollback_lr_factor, at most
        max_rollbacks times) when a loss or weight becomes NaN or infinite, or a loss or mean
        logit passes divergence_bound; see ganrun.guard.
      on_nonfinite: the old name of on_divergence; when set (not None) it wins, and after
        construction both hold the policy in force.
      divergence_bound: |loss/*| or |logits/*| (means over a compiled call) above this counts
        as divergence; None or 0 turns the bound off (NaN and inf still count).
      ema_decay: 0 (off) or the decay of an exponential moving average of the generator's
        weights (e.g. 0.999), used for samples and generator.keras; see ganrun.ema.
      ema_rampup: None (off) or a fraction r: the average's half-life is at most r times the
        steps done, so it leaves the initial weights quickly (StyleGAN2-ADA; e.g. 0.05).
      lr_schedule: "constant" or "linear" (both learning rates decay linearly to 0 at `steps`).
      schedule_end: where the linear schedule reaches 0: "steps" (train.steps) or "budget"
        (the step max_time is projected to reach from the run's own pace, if sooner; see
        ganrun.budget.ScheduleFit); without max_time or a linear schedule it changes nothing.
      eval_every: metrics of `eval_n` samples every this many steps and at the end, keeping
        the best generator in checkpoints/best (0 = off); see ganrun.evaluate.
      eval_n: samples (and test images) per periodic evaluation; cheap, so noisier.
      eval_final_n: samples of the full evaluation after the last step (0 = none).
      best_metric: the periodic metric that picks checkpoints/best (auto: FID for images,
        NLL-gen for text), see ganrun.evaluate.best.
      pretrain_steps: model=relgan only: the first this many of `steps` are maximum-likelihood
        (teacher-forcing) steps of the generator, the rest adversarial; see
        ganrun.trainers.text_gan.
      strategy: default | mirrored | multi_worker | tpu, see ganrun.distribute; batch_size is
        the global batch, split evenly over the replicas.
      precision: float32 | mixed_bfloat16 | mixed_float16 (loss-scaled) | auto (bf16 where the
        hardware has bf16 units, else float32; resolved here, so the field holds one of the
        other three after construction), see ganrun.precision.
      fuse_d_pass: "auto" (fused where the maths is the same, see
        ganrun.trainers.policy.resolve_fuse_d_pass), true or false: the discriminator update
        runs D once on concat(real, fake) instead of twice, on real and on fake.
      max_time: a wall-clock budget for this process's training loop (e.g. "10m", "90s",
        600) or None; training stops at the first compiled-call boundary after it, see
        ganrun.budget. Whichever of `steps` and `max_time` comes first ends the run.
    """

    steps: int
    batch_size: int
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    jit_compile: bool | str = "auto"
    steps_per_call: int = 50
    d_steps: int = 1
    keep_checkpoints: int = 3
    sample_grid: int = 64
    on_divergence: str = "stop"
    on_nonfinite: str | None = None
    divergence_bound: float | None = 1e4
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    ema_decay: float = 0.0
    ema_rampup: float | None = None
    lr_schedule: str = "constant"
    schedule_end: str = "steps"
    eval_every: int = 0
    eval_n: int = 2000
    eval_final_n: int = 0
    best_metric: str = "auto"
    pretrain_steps: int = 0
    strategy: str = "default"
    precision: str = "float32"
    fuse_d_pass: bool | str = "auto"
    max_time: str | float | None = None

    def __post_init__(self):
        for name in POSITIVE + POSITIVE_OR_OFF:
            value = getattr(self, name)
            if name in POSITIVE_OR_OFF and value == 0:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"train.{name}={value!r} must be a positive integer.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"train.seed={self.seed!r} must be a non-negative integer.")
        for name, choices in CHOICES.items():
            _check_choice(name, getattr(self, name), choices)
        if self.on_nonfinite is not None:
            _check_choice("on_nonfinite", self.on_nonfinite, CHOICES["on_divergence"])
        object.__setattr__(self, "precision", precisions.resolve(self.precision))
        policy = self.on_nonfinite or self.on_divergence  # the old name wins when set
        object.__setattr__(self, "on_nonfinite", policy)
        object.__setattr__(self, "on_divergence", policy)
        bound = self.divergence_bound
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)
                                  or not bound >= 0):
            raise ConfigError(f"train.divergence_bound={bound!r} must be a positive number "
                              "(e.g. 1e4), or 0 or null for no bound.")
        factor = self.rollback_lr_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ConfigError(f"train.rollback_lr_factor={factor!r} must be a number between 0 "
                              "and 1 (exclusive).")
        parse_duration(self.max_time)  # raises ConfigError on a malformed budget
        decay = self.ema_decay
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
            raise ConfigError(f"train.ema_decay={decay!r} must be 0 (off) or in (0, 1), e.g. "
                              "0.999.")
        rampup = self.ema_rampup
        if rampup is not None and (isinstance(rampup, bool) or not isinstance(rampup, int | float)
                                   or not rampup > 0):
            raise ConfigError(f"train.ema_rampup={rampup!r} must be a positive fraction of the "
                              "steps done (e.g. 0.05), or null for none.")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        words = [str(choice).lower() if isinstance(choice, bool) else str(choice)
                 for choice in choices]
        listed = ("one of " + ", ".join(words) if name in ("strategy", "precision")
                  else ", ".join(words[:-1]) + f" or {words[-1]}")
        raise ConfigError(f"train.{name}={value!r} must be {listed}.")
