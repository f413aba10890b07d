"""Regularizers, EMA, schedules and the conditional GAN inside the compiled loop: every
option trains, traces once, resumes bit for bit, and ends up where the docs say."""

import numpy as np
import pytest
import tensorflow as tf

from ganrun import sample
from ganrun.checkpoints import Checkpoints
from ganrun.cli import train_from_config
from ganrun.ema import GeneratorEMA
from ganrun.errors import ConfigError
from ganrun.fit import fit
from tests.conftest import make_trainer, training_state

EVERYTHING = [  # one run with every option on: conditional, SN, EMA, all penalties, augment
    "model.conditional=true", "model.discriminator.spectral_norm=true", "train.ema_decay=0.9",
    "train.ema_rampup=0.5", "train.lr_schedule=linear", "train.d_steps=2",
    "regularize.gradient_penalty=1",
    "regularize.r1=1", "regularize.r1_every=3", "regularize.dragan=1",
    "regularize.clip_weights=0.5", "regularize.label_smoothing=0.1",
    "regularize.instance_noise=0.1", "regularize.augment=[translation,cutout]",
]


@pytest.mark.parametrize("overrides", [
    ["regularize.gradient_penalty=10", "loss=wasserstein"],
    ["regularize.r1=10", "regularize.r1_every=2"],
    ["regularize.dragan=10"],
    ["regularize.clip_weights=0.01", "loss=wasserstein"],
    ["regularize.label_smoothing=0.1"],
    ["regularize.instance_noise=0.2", "regularize.augment=[translation,cutout]"],
    ["train.ema_decay=0.99", "train.lr_schedule=linear"],
    ["model=mlp", "model.conditional=true"],
    ["model=resnet", "model.conditional=true"],
    ["model.discriminator.spectral_norm=true", "loss=hinge"],
    ["model.discriminator.minibatch_std=4", "model.conditional=true", "train.ema_decay=0.99",
     "train.ema_rampup=0.1", "train.precision=mixed_bfloat16"],  # the statistic under bf16
])
def test_option_trains_and_traces_once(compose, tmp_path, overrides):
    trainer = make_trainer(compose(*overrides, "train.steps=5", "train.steps_per_call=3"))
    metrics = fit(trainer, tmp_path)
    assert np.isfinite(metrics["loss/d"]["value"]) and np.isfinite(metrics["loss/g"]["value"])
    assert trainer.train_steps.experimental_get_tracing_count() == 1


class Crash(Exception):
    pass


def test_everything_on_resumes_bit_for_bit(compose, tmp_path, monkeypatch):
    # The linear schedules (learning rate, instance noise) end at train.steps, so the
    # interrupted run must have the same train.steps: it crashes right after ckpt-6.
    overrides = [*EVERYTHING, "train.checkpoint_every=3", "train.steps_per_call=2",
                 "train.steps=7"]
    reference = make_trainer(compose(*overrides))
    fit(reference, tmp_path / "reference")
    save = Checkpoints.save

    def save_then_crash(self, step):
        path = save(self, step)
        if step == 6:
            raise Crash
        return path

    monkeypatch.setattr(Checkpoints, "save", save_then_crash)
    with pytest.raises(Crash):
        fit(make_trainer(compose(*overrides)), tmp_path / "resumed")
    monkeypatch.setattr(Checkpoints, "save", save)
    resumed = make_trainer(compose(*overrides))
    fit(resumed, tmp_path / "resumed")
    expected_state = training_state(reference, *reference.ema.model.variables)
    resumed_state = training_state(resumed, *resumed.ema.model.variables)
    for expected, actual in zip(expected_state, resumed_state, strict=True):
        np.testing.assert_array_equal(actual, expected)
    names = {name for name, _ in tf.train.list_variables(str(tmp_path / "resumed" / "checkpoints"
                                                             / "ckpt-7"))}
    assert any(name.startswith("generator_ema/") for name in names)
    # Spectral norm's power-iteration vectors are checkpointed (the equality above needs it).
    sn_vectors = [name for name in names
                  if name.startswith("discriminator/") and "/vector_u/" in name]
    assert len(sn_vectors) == len(reference.discriminator.non_trainable_weights) == 3


def test_ema_follows_its_formula_and_is_what_is_sampled(compose, tmp_path):
    trainer = make_trainer(compose("train.ema_decay=0.5", "train.steps=2",
                                   "train.steps_per_call=1"))
    before = [w.numpy() for w in trainer.ema.model.trainable_weights]
    trainer.train_steps(tf.constant(1))
    for old, average, current in zip(before, trainer.ema.model.trainable_weights,
                                     trainer.generator.trainable_weights, strict=True):
        np.testing.assert_allclose(average.numpy(), 0.5 * old + 0.5 * current.numpy(),
                                   rtol=1e-6, atol=1e-7)
    assert trainer.sampling_generator is trainer.ema.model
    fit(trainer, tmp_path)
    saved = tf.keras.models.load_model(tmp_path / "generator.keras")
    for expected, actual in zip(trainer.ema.model.weights, saved.weights, strict=True):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())


def test_ema_rampup_caps_the_half_life_at_a_fraction_of_the_steps(compose):
    trainer = make_trainer(compose("train.ema_decay=0.999", "train.ema_rampup=0.1",
                                   "train.steps=2", "train.steps_per_call=1"))
    ema = trainer.ema
    # half-life min(693 steps, 0.1 * (t + 1)): 0.5 ** (1 / 0.1) at t = 0, 0.999 from t = 6930
    assert float(ema.decay_at(0)) == pytest.approx(0.5 ** 10, rel=1e-5)
    assert float(ema.decay_at(99)) == pytest.approx(0.5 ** (1 / 10), rel=1e-5)
    assert float(ema.decay_at(10**6)) == pytest.approx(0.999, rel=1e-6)
    # The first averaging step therefore moves the average (almost) onto the generator.
    trainer.train_steps(tf.constant(1))
    for average, current in zip(ema.model.trainable_weights,
                                trainer.generator.trainable_weights, strict=True):
        np.testing.assert_allclose(average.numpy(), current.numpy(), rtol=1e-3, atol=1e-5)
    assert float(make_trainer(compose("train.ema_decay=0.999")).ema.decay_at(0)) == \
        pytest.approx(0.999)


def test_linear_schedule_reaches_zero_at_the_end(compose, tmp_path):
    trainer = make_trainer(compose("train.lr_schedule=linear", "train.steps=4", "train.d_steps=2"))
    fit(trainer, tmp_path)
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
    assert float(trainer.d_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
    assert int(trainer.d_optimizer.iterations) == 8


def test_label_smoothing_needs_a_bce_loss(compose):
    with pytest.raises(ConfigError, match="label_smoothing"):
        make_trainer(compose("regularize.label_smoothing=0.1", "loss=hinge"))


@pytest.mark.parametrize("override, message", [
    ("regularize.augment=[flip]", "unknown policies"),
    ("regularize.r1_every=0", "r1_every"),
    ("regularize.gradient_penalty=-1", "gradient_penalty"),
    ("train.ema_decay=1.0", "ema_decay"),
    ("train.ema_rampup=0", "ema_rampup"),
    ("train.lr_schedule=cosine", "lr_schedule"),
])
def test_bad_regularization_is_a_config_error(compose, override, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer(compose(override))


def test_conditional_samples_one_row_per_class_and_one_label(compose, tmp_path):
    cfg = compose("model.conditional=true", "train.ema_decay=0.9", "train.sample_grid=20")
    train_from_config(cfg, tmp_path)
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "step_0000004.png")))
    assert grid.shape == (10 * 29 + 1, 2 * 29 + 1, 1)  # 10 classes x 2 columns
    out = sample.sample_to_file(tmp_path, 6, tmp_path / "sevens.npz", seed=1, label=7)
    with np.load(out) as arrays:
        assert arrays["images"].shape == (6, 28, 28) and list(arrays["labels"]) == [7] * 6
    png = sample.sample_to_file(tmp_path, 30, tmp_path / "grid.png")
    assert tf.io.decode_png(tf.io.read_file(str(png))).shape == (10 * 29 + 1, 3 * 29 + 1, 1)
    with pytest.raises(ConfigError, match="label=12"):
        sample.sample_to_file(tmp_path, 2, tmp_path / "x.npz", label=12)
    # The sampled generator is the EMA one, restored from the checkpoint's generator_ema.
    generator, pixel_range, _ = sample.load_generator(tmp_path)
    trainer = make_trainer(cfg)
    trainer.checkpoint.restore(str(tmp_path / "checkpoints" / "ckpt-4"))
    for expected, actual in zip(trainer.ema.model.weights, generator.weights, strict=True):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())


def test_ema_keeps_standing_batch_norm_statistics_of_its_own_weights():
    # The average's moving statistics come from running the average itself in training
    # mode on the step's inputs, not from the live generator (whose weights differ).
    import keras

    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    generator = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    ema = GeneratorEMA(generator, decay=0.5)
    generator.get_layer("dense").kernel.assign(np.ones((3, 4), np.float32))
    z = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    ema.update(z)
    average_dense = ema.model.get_layer("dense")
    batch_mean = (z @ average_dense.kernel.numpy() + average_dense.bias.numpy()).mean(0)
    momentum = ema.model.get_layer("bn").momentum
    np.testing.assert_allclose(ema.model.get_layer("bn").moving_mean.numpy(),
                               (1 - momentum) * batch_mean, rtol=1e-5, atol=1e-6)
    assert np.all(generator.get_layer("bn").moving_mean.numpy() == 0)  # the live G's untouched


def test_a_generator_without_batch_norm_needs_no_inputs_for_its_average():
    import keras

    inputs = keras.Input((3,))
    generator = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    ema = GeneratorEMA(generator, decay=0.9)
    ema.update()  # no standing statistics to keep
    assert not ema.has_batch_norm
