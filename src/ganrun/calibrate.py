"""`ganrun calibrate run=DIR`: a classifier whose logit estimates log p_data / p_generator.

What is held out, exactly:
- The **test split** is never read, except to hash its rows: a training row whose content
  equals a test row is never put in the validation carve, so validation ∩ test = ∅ by content.
- The **validation carve** is `holdout` (default 10 %) of the training split, chosen by a
  seeded permutation (`holdout_indices`). It is held out from the *calibration training only*:
  the GAN itself trained on the whole training split, carve included.
- The classifier fine-tunes on the rest of the training split (label 1) against fresh samples
  of the final generator (EMA generator where the run keeps one; label 0), with logistic loss
  on balanced batches. The carve and other fresh generator samples are split in two halves:
  the first fits Platt scaling (l -> a l + b), the second measures accuracy and ECE, before and
  after scaling.

Image runs fine-tune a copy of the run's discriminator restored from the checkpoint; text runs
train a RelGAN-style CNN over token ids (restored from the run's D when the run had adversarial
steps, fresh for a pure MLE run or model=wgan_char). Output: `<run>/calibrated/
discriminator.keras` and `calibration.json` (scaling, metrics with definitions, split).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from ganrun.errors import ConfigError, GanrunError
from ganrun.guide import sigmoid

log = logging.getLogger(__name__)
CALIBRATED_DIR = "calibrated"
ECE_BINS = 15


@dataclasses.dataclass(frozen=True)
class CalibrateOptions:
    """configs/calibrate.yaml, checked."""

    holdout: float = 0.1
    seed: int = 0
    steps: int = 500
    batch_size: int = 64
    learning_rate: float | None = None  # None: 1e-4 for a restored D, 1e-3 for a fresh one
    fake_examples: int = 10000
    temperature: float = 1.0            # text: temperature of the generator's samples
    checkpoint: str = "latest"

    def __post_init__(self):
        if not 0.0 < self.holdout < 1.0:
            raise ConfigError(f"holdout={self.holdout} must be in (0, 1).")
        for key in ("steps", "batch_size", "fake_examples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}={value!r} must be a positive integer.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate={self.learning_rate} must be positive (or null).")
        if not self.temperature > 0:
            raise ConfigError(f"temperature={self.temperature} must be positive.")


def expected_calibration_error(probabilities, labels, bins: int = ECE_BINS) -> float:
    """ECE of P(real) predictions: sum over `bins` equal-width bins of [0, 1] of
    (n_b / n) |mean(label) - mean(p)| in the bin (p = 1.0 falls in the last bin).
    probabilities float (n,) in [0, 1]; labels (n,) in {0, 1}."""
    p, y = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(total)


def fit_platt(logits, labels) -> tuple[float, float]:
    """(a, b) minimising the logistic loss of a * logit + b (Platt scaling)."""
    from scipy.optimize import minimize  # noqa: PLC0415

    x, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)

    def loss(params):
        z = params[0] * x + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    result = minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead",
                      options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return float(result.x[0]), float(result.x[1])


def _row_hashes(rows: np.ndarray) -> list[bytes]:
    rows = np.ascontiguousarray(rows)
    return [hashlib.sha1(row.tobytes()).digest() for row in rows]


def holdout_indices(x_train: np.ndarray, x_test: np.ndarray | None, fraction: float,
                    seed: int) -> np.ndarray:
    """Sorted int indices into x_train of the validation carve: round(fraction * N) rows in
    the order of `np.random.default_rng(seed).permutation(N)`, skipping every row whose
    content equals a test row (so the carve never overlaps the test split)."""
    test = set(_row_hashes(x_test)) if x_test is not None and len(x_test) else set()
    want = max(1, round(fraction * len(x_train)))
    order = np.random.default_rng(seed).permutation(len(x_train))
    hashes = _row_hashes(x_train)
    chosen = [i for i in order if hashes[i] not in test][:want]
    if len(chosen) < 2:
        raise ConfigError(f"holdout={fraction} carves fewer than 2 training rows; raise it.")
    return np.sort(np.array(chosen, np.int64))


def _logistic_loss(real_logits, fake_logits):
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits))


def train_classifier(critic, real: list[np.ndarray], fake: list[np.ndarray],
                     options: CalibrateOptions, learning_rate: float) -> list[float]:
    """Fine-tune `critic` (inputs -> logits (B, k), averaged over k) with logistic loss on
    balanced batches drawn with replacement; returns the loss every 50 steps."""
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.5)
    optimizer.build(critic.trainable_variables)
    real_t = [tf.constant(a) for a in real]
    fake_t = [tf.constant(a) for a in fake]
    rng = np.random.default_rng(options.seed)

    @tf.function
    def step(real_index, fake_index):
        real_in = [tf.gather(a, real_index) for a in real_t]
        fake_in = [tf.gather(a, fake_index) for a in fake_t]
        with tf.GradientTape() as tape:
            loss = _logistic_loss(mean_logit(critic, real_in, True),
                                  mean_logit(critic, fake_in, True))
        gradients = tape.gradient(loss, critic.trainable_variables)
        optimizer.apply_gradients(zip(gradients, critic.trainable_variables))
        return loss

    losses = []
    for index in range(options.steps):
        loss = step(rng.integers(0, len(real[0]), options.batch_size),
                    rng.integers(0, len(fake[0]), options.batch_size))
        if index % 50 == 0 or index == options.steps - 1:
            losses.append(float(loss))
    return losses


def mean_logit(critic, inputs: list, training: bool = False):
    """The critic's logit per example, (B,): its outputs (B, k) averaged over k (RelGAN's D
    has one logit per embedding representation)."""
    out = critic(inputs[0] if len(inputs) == 1 else inputs, training=training)
    return tf.reduce_mean(tf.cast(out, tf.float32), axis=-1)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def score(critic, inputs: list[np.ndarray], scaling=(1.0, 0.0), chunk: int = 1000) -> np.ndarray:
    """Calibrated logits a * l + b, float64 (n,), of the arrays `inputs` (n rows each)."""
    compiled = _COMPILED.get(critic)
    if compiled is None:  # one graph per classifier: eager Keras calls dominate otherwise
        compiled = tf.function(lambda *x: mean_logit(critic, list(x)), reduce_retracing=True)
        _COMPILED[critic] = compiled
    parts = [compiled(*[tf.constant(a[s:s + chunk]) for a in inputs]).numpy()
             for s in range(0, len(inputs[0]), chunk)]
    return scaling[0] * np.concatenate(parts).astype(np.float64) + scaling[1]


def held_out_report(critic, real: list[np.ndarray], fake: list[np.ndarray]) -> dict:
    """Platt scaling fitted on the first halves of the held-out real and fake rows; accuracy
    and ECE on the second halves, before and after it."""
    half_r, half_f = len(real[0]) // 2, len(fake[0]) // 2
    real_l, fake_l = score(critic, real), score(critic, fake)
    fit_l = np.concatenate([real_l[:half_r], fake_l[:half_f]])
    fit_y = np.concatenate([np.ones(half_r), np.zeros(half_f)])
    a, b = fit_platt(fit_l, fit_y)
    check_l = np.concatenate([real_l[half_r:], fake_l[half_f:]])
    check_y = np.concatenate([np.ones(len(real_l) - half_r), np.zeros(len(fake_l) - half_f)])
    raw_p, scaled_p = sigmoid(check_l), sigmoid(a * check_l + b)
    definition = (f"on the second halves of the held-out rows ({len(real_l) - half_r} real "
                  f"from the validation carve, {len(fake_l) - half_f} fresh generator samples)")
    return {"scaling": [a, b],
            "accuracy": {"value": float(((raw_p > 0.5) == check_y).mean()),
                         "definition": f"fraction classified correctly at P(real) > 0.5, "
                                       f"{definition}"},
            "ece_raw": {"value": expected_calibration_error(raw_p, check_y),
                        "definition": f"expected calibration error of P(real) = sigmoid(l), "
                                      f"{ECE_BINS} equal-width bins, {definition}"},
            "ece": {"value": expected_calibration_error(scaled_p, check_y),
                    "definition": f"the same after Platt scaling sigmoid({a:.4g} l + {b:.4g}) "
                                  f"fitted on the first halves ({half_r} real, {half_f} fake)"}}


def save(run_dir: Path, critic, record: dict) -> Path:
    directory = Path(run_dir) / CALIBRATED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    critic.save(directory / "discriminator.keras")
    (directory / "calibration.json").write_text(json.dumps(record, indent=1) + "\n")
    return directory


def load(run_dir: Path):
    """(classifier, (a, b), record) written by `ganrun calibrate`, or GanrunError."""
    import ganrun.models.text  # noqa: F401, PLC0415 (registers RelGANDiscriminator)

    directory = Path(run_dir) / CALIBRATED_DIR
    if not (directory / "calibration.json").is_file():
        raise GanrunError(f"{run_dir} has no calibrated discriminator; run `ganrun calibrate "
                          f"run={run_dir}` first.")
    record = json.loads((directory / "calibration.json").read_text())
    critic = keras.models.load_model(directory / "discriminator.keras", compile=False,
                                     safe_mode=True)
    return critic, tuple(record["scaling"]), record


def options_from(cfg) -> CalibrateOptions:
    values = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
              if k not in ("run",)}
    known = {f.name for f in dataclasses.fields(CalibrateOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown calibrate option(s) {unknown}; known: {sorted(known)}.")
    return CalibrateOptions(**values)


def calibrate_run(run_dir: Path, options: CalibrateOptions) -> dict:
    """Train, measure and save the calibrated classifier of the run in `run_dir`."""
    from ganrun.guide_sources import run_source  # noqa: PLC0415

    started = time.perf_counter()
    source = run_source(Path(run_dir), options.checkpoint, calibrated=False)
    carve = holdout_indices(source.x_train, source.x_test, options.holdout, options.seed)
    rest = np.setdiff1d(np.arange(len(source.x_train)), carve)
    critic, restored = source.fresh_or_restored_critic()
    rate = options.learning_rate or (1e-4 if restored else 1e-3)
    fake = source.fakes(options.fake_examples, 1_000_000 + options.seed, options.temperature)
    losses = train_classifier(critic, source.real(rest), fake, options, rate)
    held_fake = source.fakes(len(carve), 2_000_000 + options.seed, options.temperature)
    report = held_out_report(critic, source.real(carve), held_fake)
    record = {
        **report, "seconds": time.perf_counter() - started, "losses_every_50_steps": losses,
        "classifier": ("the run's discriminator, restored from " + source.checkpoint
                       if restored else "a fresh " + source.critic_family),
        "samples": {"real_train": int(len(rest)), "fake_train": options.fake_examples,
                    "real_held_out": int(len(carve)), "fake_held_out": int(len(carve))},
        "split": f"validation carve: {len(carve)} of {len(source.x_train)} training rows "
                 f"(holdout {options.holdout}, permutation seed {options.seed}), skipping "
                 "rows equal to a test row; held out from calibration training only (the "
                 "GAN trained on the whole training split). The test split is not used.",
        "generator": source.description, "checkpoint_path": str(source.checkpoint),
        "options": dataclasses.asdict(options) | {"learning_rate": rate}}
    save(run_dir, critic, record)
    log.info("Calibrated in %.1f s: held-out accuracy %.3f, ECE %.3f (raw %.3f)",
             record["seconds"], report["accuracy"]["value"], report["ece"]["value"],
             report["ece_raw"]["value"])
    return record
