"""Speed choices that must not change results: `jit_compile: auto` per model, and XLA
compiling one program for every call length (issue 7; timings live in scripts/bench.py)."""

import numpy as np
import pytest
import tensorflow as tf

from ganrun import build

pytestmark = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                                reason="auto is XLA everywhere on a GPU")


@pytest.mark.parametrize(("model", "xla"), [("mlp", True), ("dcgan", False)])
def test_auto_uses_xla_on_cpu_only_for_dense_models(compose, model, xla):
    cfg = compose(f"model={model}")
    assert build.trainer(cfg, build.data(cfg)).jit_compile is xla


def test_xla_results_do_not_depend_on_how_steps_are_split_into_calls(compose):
    def weights_after(call_lengths):
        cfg = compose("model=mlp", "train.jit_compile=true")
        trainer = build.trainer(cfg, build.data(cfg))
        for length in call_lengths:
            trainer.train_steps(tf.constant(length, tf.int32))
        assert trainer.train_steps.experimental_get_tracing_count() == 1
        return [v.numpy() for v in trainer.generator.trainable_variables]

    # Before the loop was a plain while_loop, XLA compiled each call length separately
    # (autograph's maximum_iterations) and odd lengths rounded differently.
    for expected, actual in zip(weights_after([4]), weights_after([1, 3]), strict=True):
        np.testing.assert_array_equal(actual, expected)
