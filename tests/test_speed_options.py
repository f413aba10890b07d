"""Speed choices that must not change results: `jit_compile: auto` per model, XLA
compiling one program for every call length, and D's fused real+fake pass (issue 7; timings
live in scripts/bench.py)."""

import numpy as np
import pytest
import tensorflow as tf

from ganrun import build, cpu
from ganrun.errors import ConfigError

pytestmark = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")),
                                reason="auto is XLA everywhere on a GPU")


@pytest.mark.parametrize(("model", "cpu_flags", "xla"), [
    ("mlp", "avx2 avx512f avx512_bf16", True), ("mlp", "avx2", True),
    ("dcgan", "avx2 avx512f avx512_bf16", False), ("dcgan", "avx2 avx512f", False),
    ("dcgan", "avx2", True), ("resnet", "avx2", True), ("resnet", "avx2 avx512f", False)])
def test_auto_uses_xla_on_cpu_for_dense_models_and_without_avx512(compose, monkeypatch, model,
                                                                   cpu_flags, xla):
    monkeypatch.setattr(cpu, "_this_machines_flags", lambda: frozenset(cpu_flags.split()))
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


@pytest.mark.parametrize(("overrides", "fused"), [
    (["model=mlp"], True), (["model=dcgan"], True),
    (["model=mlp", "model.discriminator.spectral_norm=true"], False),  # power iteration per call
    (["model=mlp", "regularize.augment=[translation]"], False),  # one draw per D call
    (["model=mlp", "regularize.instance_noise=0.1"], False),
    (["model=resnet"], False), (["model=mlp", "train.fuse_d_pass=false"], False),
    (["model.discriminator.minibatch_std=4"], False),  # a statistic over the batch
])
def test_auto_fuses_the_d_pass_only_where_the_maths_is_the_same(compose, overrides, fused):
    cfg = compose(*overrides)
    assert build.trainer(cfg, build.data(cfg)).fuse_d_pass is fused


def test_a_forced_fused_pass_is_refused_with_the_minibatch_statistic(compose):
    cfg = compose("model.discriminator.minibatch_std=4", "train.fuse_d_pass=true")
    with pytest.raises(ConfigError, match="minibatch"):
        build.trainer(cfg, build.data(cfg))


@pytest.mark.parametrize("model", [["model=mlp"], ["model=mlp", "model.conditional=true"]])
def test_fused_d_pass_trains_like_two_passes(compose, model):
    """Same weights and draws: equal up to float summation order (not bit for bit)."""
    def run(fused):
        cfg = compose(*model, "train.jit_compile=false", f"train.fuse_d_pass={fused}")
        trainer = build.trainer(cfg, build.data(cfg))
        first = [float(v) for v in trainer.train_steps(tf.constant(1, tf.int32)).values()]
        trainer.train_steps(tf.constant(3, tf.int32))
        return first, [v.numpy() for v in trainer.discriminator.trainable_variables]

    (first_two, d_two), (first_fused, d_fused) = run("false"), run("true")
    np.testing.assert_allclose(first_fused, first_two, rtol=1e-5, atol=1e-6)
    for fused, two in zip(d_fused, d_two, strict=True):
        np.testing.assert_allclose(fused, two, rtol=1e-4, atol=1e-6)


def test_bad_fuse_d_pass_is_a_config_error(compose):
    with pytest.raises(ConfigError, match="fuse_d_pass"):
        build.train_options(compose("train.fuse_d_pass=sometimes").train)
