"""The compiled loop: traced once, XLA, exact resume, event scheduling."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from ganrun.fit import fit, steps_until_next_event
from ganrun.trainers.options import TrainOptions
from tests.conftest import make_trainer, training_state


def test_compiled_function_traces_once(compose, tmp_path):
    # 7 steps, 3 per call, events every 2: calls of 2, 2, 2, 1 steps -> one trace.
    cfg = compose("train.steps=7", "train.steps_per_call=3")
    trainer = make_trainer(cfg)
    fit(trainer, tmp_path)
    assert int(trainer.step.numpy()) == 7
    assert trainer.train_steps.experimental_get_tracing_count() == 1


def test_xla_trains_and_traces_once(compose, tmp_path):
    cfg = compose("model=mlp", "train.jit_compile=true", "train.steps=6")
    trainer = make_trainer(cfg)
    assert trainer.jit_compile
    metrics = fit(trainer, tmp_path)
    assert np.isfinite(metrics["loss/d"]["value"])
    assert trainer.train_steps.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_resume_equals_an_uninterrupted_run(compose, tmp_path, model):
    overrides = [f"model={model}", "train.checkpoint_every=3", "train.steps_per_call=2"]
    reference = make_trainer(compose(*overrides, "train.steps=8"))
    fit(reference, tmp_path / "reference")

    first = make_trainer(compose(*overrides, "train.steps=5"))  # checkpoints at 3 and 5
    fit(first, tmp_path / "resumed")
    resumed = make_trainer(compose(*overrides, "train.steps=8"))  # a fresh process's state
    fit(resumed, tmp_path / "resumed")

    assert int(resumed.step.numpy()) == 8
    for expected, actual in zip(training_state(reference), training_state(resumed), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_a_finished_run_is_not_trained_again(compose, tmp_path):
    cfg = compose()
    fit(make_trainer(cfg), tmp_path)
    before = (tmp_path / "metrics.json").read_text()
    again = make_trainer(cfg)
    fit(again, tmp_path)
    assert int(again.step.numpy()) == 4
    assert (tmp_path / "metrics.json").read_text() == before


def test_events_cut_calls_short():
    options = TrainOptions(steps=250, batch_size=8, log_every=100, sample_every=1000,
                           checkpoint_every=60, steps_per_call=50)
    assert steps_until_next_event(0, options) == 50
    assert steps_until_next_event(50, options) == 10   # checkpoint at 60
    assert steps_until_next_event(60, options) == 40   # log at 100
    assert steps_until_next_event(240, options) == 10  # the end at 250
    longer = dataclasses.replace(options, steps_per_call=1000)
    assert steps_until_next_event(0, longer) == 60


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", -1), ("steps_per_call", 0),
                                          ("log_every", 1.5), ("seed", -3),
                                          ("jit_compile", "yes")])
def test_bad_options_are_config_errors(field, value):
    from ganrun.errors import ConfigError

    with pytest.raises(ConfigError, match=f"train.{field}"):
        TrainOptions(**{"steps": 10, "batch_size": 8, field: value})


def test_samples_and_tensorboard_are_written(compose, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    fit(make_trainer(compose("train.steps=4")), tmp_path, config_text="train: {}")
    accumulator = event_accumulator.EventAccumulator(
        str(tmp_path / "tb"), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"])
    assert {"loss/d", "loss/g", "logits/real", "logits/fake", "perf/steps_per_sec",
            "samples", "config"} <= tags
    steps = [event.step for event in accumulator.Tensors("loss/d")]
    assert steps == [2, 4]
    value = tf.make_ndarray(accumulator.Tensors("loss/d")[-1].tensor_proto)
    assert np.isfinite(value)
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "step_0000004.png")))
    assert png.shape == (2 * 29 + 1, 2 * 29 + 1, 1)  # 4 images of 28x28 in a 2x2 grid
