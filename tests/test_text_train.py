"""Text GANs end to end on tiny data: every text option composes and trains a few steps, the
two phases trace once each, resume is exact, XLA works, the oracle's NLL meets its entropy."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import tensorflow as tf

from ganrun.cli import train_from_config
from ganrun.data.corpora import load_oracle
from ganrun.data.oracle import random_oracle
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError
from ganrun.fit import fit
from ganrun.models.text import LSTMGenerator
from tests.conftest import data_dir, group_options, make_trainer, training_state

SHRINK = ["model.generator.hidden_dim=16", "model.generator.embed_dim=8",
          "model.discriminator.num_filters=8", "model.discriminator.embed_dim=8",
          "model.discriminator.num_rep=2", "train.eval_every=4", "train.eval_n=20",
          "train.eval_final_n=30"]
ORACLE = ["experiment=base", "data=oracle", "data.random_oracle_seed=0", "data.vocab_size=40",
          "data.num_examples=64", "data.test_examples=32", "data.seq_len=6"]
TEXT_MODELS = [option for option in group_options("model") if option in ("relgan",)]
TEXT_EXPERIMENTS = ["coco_mle", "coco_relgan", "oracle_relgan"]


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    words = ["a man", "the dog", "two cats", "a child"], ["rides", "eats", "sees"], \
        ["a bike .", "the cake", "a red kite ."]
    lines = [" ".join(rng.choice(part) for part in words) for _ in range(120)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _text(corpus, *extra):
    return ["experiment=base", "data=text", f"data.path={corpus}", "data.max_len=8", *extra]


def _check_run(metrics, run_dir, steps=4):
    assert metrics["step"] == steps
    for name, entry in metrics.items():
        if isinstance(entry, dict) and "value" in entry and name != "stopped_by":  # a word
            assert math.isfinite(entry["value"]), name
            assert entry["definition"], name
    assert (run_dir / "samples" / f"step_{steps:07d}.txt").is_file()
    assert json.loads((run_dir / "data_spec.json").read_text())["kind"] == "text"
    for n in (2, 3, 4, 5):
        assert 0.0 <= metrics["eval"][f"bleu{n}"]["value"] <= 1.0


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("loss", ["relativistic", "nonsaturating"])
def test_text_model_trains_both_phases_on_a_file(compose, tmp_path, corpus, model, loss):
    run = tmp_path / "run"
    cfg = compose(*_text(corpus), f"model={model}", f"loss={loss}", "train.pretrain_steps=2",
                  *SHRINK)
    metrics = train_from_config(cfg, run)
    _check_run(metrics, run)
    assert "loss/d" in metrics and "gumbel/beta" in metrics  # the last window: adversarial
    assert (run / "vocab.json").is_file()


@pytest.mark.parametrize("experiment", TEXT_EXPERIMENTS)
def test_text_experiments_train_a_few_steps(compose, tmp_path, corpus, experiment):
    data = [override for override in (ORACLE if experiment.startswith("oracle")
                                      else _text(corpus))
            if override != "experiment=base"]  # the preset itself is the experiment here
    # The presets' 5 D updates per G update are kept for coco_relgan only: each is a rollout
    # in the traced graph, and tracing dominates these tests.
    d_steps = [] if experiment == "coco_relgan" else ["train.d_steps=1"]
    cfg = compose(*data, f"experiment={experiment}", "train.steps=4", "train.pretrain_steps=2",
                  "train.steps_per_call=2", "train.batch_size=8", "train.sample_grid=4",
                  *d_steps, *SHRINK)
    metrics = train_from_config(cfg, tmp_path / "run")  # tmp_path holds the corpus
    _check_run(metrics, tmp_path / "run")
    if experiment.startswith("oracle"):
        assert metrics["eval"]["nll_oracle"]["value"] > 0
        assert metrics["eval"]["oracle_entropy"]["value"] > 0


def test_mle_only_run_logs_only_the_mle_phase(compose, tmp_path, corpus):
    cfg = compose(*_text(corpus), "experiment=coco_mle", "train.steps=4",
                  "train.pretrain_steps=4", "train.batch_size=8", *SHRINK)
    metrics = train_from_config(cfg, tmp_path / "run")  # tmp_path holds the corpus
    assert "mle/nll" in metrics and "loss/d" not in metrics


def test_each_phase_traces_once_and_resume_is_exact_under_xla(compose, tmp_path, corpus):
    # XLA: bit-exact. Without XLA, TensorFlow's CPU kernels can differ in the last bit
    # depending on what ran before in the process (measured: sampling before a step changed
    # 16 arrays by <= 1e-8), so the non-XLA resume is only checked to a tolerance.
    base = [*_text(corpus), "model=relgan", "loss=relativistic", "train.pretrain_steps=3",
            "train.steps_per_call=3", "train.eval_every=0", "train.eval_final_n=0",
            "model.gumbel.beta_max=1", "train.d_steps=1",  # d_steps 1: XLA compiles 3x less
            *SHRINK]  # beta_max 1: beta constant, independent of train.steps
    for jit, exact in (("true", True), ("false", False)):
        runs = tmp_path / jit
        straight = make_trainer(compose(*base, "train.steps=9", f"train.jit_compile={jit}"))
        fit(straight, runs / "straight")
        assert straight.mle_steps.experimental_get_tracing_count() == 1
        assert straight.adversarial_steps.experimental_get_tracing_count() == 1
        fit(make_trainer(compose(*base, "train.steps=5", f"train.jit_compile={jit}")),
            runs / "resumed")
        resumed = make_trainer(compose(*base, "train.steps=9", f"train.jit_compile={jit}"))
        fit(resumed, runs / "resumed")
        straight_state = training_state(straight, *straight.mle_optimizer.variables)
        resumed_state = training_state(resumed, *resumed.mle_optimizer.variables)
        for a, b in zip(straight_state, resumed_state, strict=True):
            if exact:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_jit_compile_auto_is_xla_for_mle_only_on_cpu(compose, corpus):
    # Measured on 2 CPU cores: XLA speeds teacher forcing up and slows the Gumbel rollouts.
    trainer = make_trainer(compose(*_text(corpus), "model=relgan", "train.jit_compile=auto",
                                   *SHRINK))
    assert trainer.jit_compile_by_phase == {"mle": True, "adversarial": False}
    assert trainer.mle_steps._jit_compile and not trainer.adversarial_steps._jit_compile
    forced = make_trainer(compose(*_text(corpus), "model=relgan", "train.jit_compile=false",
                                  *SHRINK))
    assert forced.jit_compile_by_phase == {"mle": False, "adversarial": False}


def test_rollout_is_seeded_and_gumbel_softmax_sums_to_one():
    generator = LSTMGenerator(vocab_size=11, max_len=5, embed_dim=4, hidden_dim=8)
    ids, soft = generator.rollout(3, tf.constant([1, 2]), beta=1000.0)
    again, _ = generator.rollout(3, tf.constant([1, 2]), beta=1000.0)
    np.testing.assert_array_equal(ids, again)
    assert ids.shape == (3, 5) and soft.shape == (3, 5, 11)
    np.testing.assert_allclose(tf.reduce_sum(soft, -1), 1.0, rtol=1e-5)
    # At a large inverse temperature the relaxed one-hot is (almost) the sampled token.
    np.testing.assert_array_equal(tf.argmax(soft, -1), ids)
    assert generator(ids).shape == (3, 5, 11)


def test_text_model_on_image_data_is_a_config_error(compose, tmp_path):
    with pytest.raises(ConfigError, match="text"):
        make_trainer(compose("experiment=base", "model=relgan"))


def test_pretrain_steps_above_steps_is_a_config_error(compose, corpus):
    with pytest.raises(ConfigError, match="pretrain_steps"):
        make_trainer(compose(*_text(corpus), "model=relgan", "train.pretrain_steps=9"))


def test_spec_round_trips_with_vocab_size(tmp_path):
    spec = DataSpec("text", "coco", (32,), 0, 10, "x", 4663)
    spec.to_json(tmp_path / "spec.json")
    assert DataSpec.from_json(tmp_path / "spec.json") == spec


def test_oracle_nll_of_its_own_samples_is_its_entropy():
    oracle = random_oracle(vocab_size=50, embed_dim=8, hidden_dim=8, seed=3)
    samples = oracle.sample(4000, 10, seed=0)
    nll, entropy = oracle.nll(samples)
    # Two estimates of the same entropy rate; 40k tokens give a standard error of ~0.01.
    assert nll == pytest.approx(entropy, abs=0.05)
    uniform_tokens = np.random.default_rng(0).integers(0, 50, samples.shape)
    assert oracle.nll(uniform_tokens)[0] > nll + 0.5  # other text is less likely


@pytest.mark.skipif(data_dir() is None, reason="GANRUN_DATA_DIR with the shared data not set")
def test_seqgan_oracle_file_loads_and_has_the_published_entropy():
    data = load_oracle(num_examples=500, test_examples=10)
    assert data.spec.vocab_size == 5000 and data.spec.shape == (20,)
    nll, entropy = data.oracle.nll(data.x_train)
    assert nll == pytest.approx(5.75, abs=0.15)  # SeqGAN's oracle: ~5.75 nats/token
    assert entropy == pytest.approx(5.75, abs=0.1)
