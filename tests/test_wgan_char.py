"""The WGAN-GP character model (model=wgan_char) on tiny text: it trains through the image
trainer on one-hot real sequences, resumes exactly, writes text samples, `ganrun sample` gives
text, evaluation gives character-level BLEU without NLL-gen, and bad combinations are one
ConfigError each."""

from __future__ import annotations

import json
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganrun.cli import train_from_config
from ganrun.errors import ConfigError
from ganrun.evaluate.text import evaluate_text_run_dir, generator_section
from ganrun.fit import fit
from ganrun.sample import sample_to_file
from ganrun.text_wgan import LatentTextTrainer
from tests.conftest import make_trainer, training_state

SMALL = ["model.generator.dim=8", "model.discriminator.dim=8", "model.generator.blocks=1",
         "model.discriminator.blocks=1", "model.latent_dim=4", "train.d_steps=2"]


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    words = ["a cat", "the dog"], ["sees", "eats"], ["a kite", "the cake"]
    lines = [" ".join(rng.choice(part) for part in words) for _ in range(80)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _char(corpus, *extra):
    """experiment=coco_wgan_char on a tiny character-level file, shrunk."""
    return ["experiment=coco_wgan_char", "data=text", f"data.path={corpus}", "data.level=char",
            "data.max_len=12", *SMALL, "train.steps=4", "train.batch_size=8",
            "train.steps_per_call=2", "train.log_every=2", "train.sample_every=4",
            "train.checkpoint_every=2", "train.sample_grid=4", "train.eval_final_n=0", *extra]


def test_trains_through_the_image_trainer_and_writes_text(compose, tmp_path, corpus):
    cfg = compose(*_char(corpus, "train.eval_final_n=20"))
    assert cfg.regularize.gradient_penalty == 10 and cfg.loss._target_.endswith("wasserstein")
    run = tmp_path / "run"
    metrics = train_from_config(cfg, run)
    assert metrics["step"] == 4
    for name in ("loss/d", "loss/g", "logits/real", "logits/fake", "loss/d_penalty"):
        assert np.isfinite(metrics[name]["value"]) and metrics[name]["definition"], name
    lines = (run / "samples" / "step_0000004.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    alphabet = set(corpus.read_text()) | set("<unk>")  # characters, joined without spaces
    assert all(set(line) <= alphabet for line in lines)
    section = metrics["eval"]
    for n in (2, 3, 4, 5):
        assert 0.0 <= section[f"bleu{n}"]["value"] <= 1.0
        assert "char" in section[f"bleu{n}"]["definition"]  # the tokenization is stated
        assert 0.0 <= section[f"self_bleu{n}"]["value"] <= 1.0
    assert "nll_gen" not in section and "not autoregressive" in section["definition"]["nll_gen"]
    assert "most probable token" in section["definition"]["samples"]
    # generator.keras is stock layers only: it loads in safe mode and gives (B, L, V) softmax.
    generator = keras.saving.load_model(run / "generator.keras", safe_mode=True)
    probabilities = generator(np.zeros((2, 4), np.float32))
    vocab_size = json.loads((run / "data_spec.json").read_text())["vocab_size"]
    assert probabilities.shape == (2, 12, vocab_size)
    np.testing.assert_allclose(tf.reduce_sum(probabilities, -1), 1.0, rtol=1e-5)


def test_real_batches_are_one_hot_training_sequences(compose, corpus):
    trainer = make_trainer(compose(*_char(corpus)))
    assert isinstance(trainer, LatentTextTrainer)
    real, labels = trainer._real_batch()
    assert labels is None and real.shape == (8, 12, trainer.data.spec.vocab_size)
    assert real.dtype == tf.float32 and trainer.images.dtype == tf.int32  # ids stay ids
    np.testing.assert_array_equal(tf.reduce_sum(real, -1), 1.0)
    training_rows = {tuple(row) for row in trainer.data.x_train}
    assert all(tuple(row) in training_rows for row in tf.argmax(real, -1).numpy())


@pytest.mark.slow  # three trainers, each tracing a 2-critic-update step (~30 s loaded)
def test_resume_equals_an_uninterrupted_run(compose, tmp_path, corpus):
    overrides = [*_char(corpus), "train.checkpoint_every=3"]
    reference = make_trainer(compose(*overrides, "train.steps=6"))
    fit(reference, tmp_path / "reference")
    fit(make_trainer(compose(*overrides, "train.steps=4")), tmp_path / "resumed")
    resumed = make_trainer(compose(*overrides, "train.steps=6"))  # a fresh process's state
    fit(resumed, tmp_path / "resumed")
    assert int(resumed.step.numpy()) == 6
    for expected, actual in zip(training_state(reference), training_state(resumed), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_sample_and_eval_of_a_run_give_text_and_bleu(compose, tmp_path, corpus):
    run = tmp_path / "run"
    cfg = compose(*_char(corpus))
    train_from_config(cfg, run)
    out = sample_to_file(run, 5, None, seed=3)
    assert out == run / "samples" / "sample_seed3.txt"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and sample_to_file(run, 5, None, seed=3).read_text() == "\n".join(
        lines) + "\n"  # the same seed gives the same sentences
    with pytest.raises(ConfigError, match=r"\.txt"):
        sample_to_file(run, 5, tmp_path / "x.png")
    from ganrun import build

    data = build.data(cfg)
    table = evaluate_text_run_dir(run, data, 10, "latest")
    assert "bleu5" in table and "self_bleu5" in table and "nll_gen" not in table
    with pytest.raises(ConfigError, match="temperatures"):
        evaluate_text_run_dir(run, data, 10, "latest", temperatures=[0.8])


def test_generator_section_of_an_untrained_generator_decodes_every_sample(compose, corpus):
    trainer = make_trainer(compose(*_char(corpus)))
    section = generator_section(trainer.generator, trainer.data, 6, pool_size=6)
    assert set(section) >= {f"bleu{n}" for n in (2, 3, 4, 5)}


@pytest.mark.parametrize("overrides, named", [
    (["model=wgan_char"], "text data"),  # the fixture's fake image data
    (["train.pretrain_steps=2"], "pretrain_steps"),
    (["regularize.augment=[translation]"], "augment"),
])
def test_bad_combinations_are_one_sentence_config_errors(compose, corpus, overrides, named):
    base = [] if overrides == ["model=wgan_char"] else _char(corpus)
    with pytest.raises(ConfigError, match=named) as error:
        make_trainer(compose(*base, *overrides))
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")


@pytest.mark.parametrize("metric", ["auto", "nll_gen"])
def test_best_metric_needing_nll_gen_is_a_config_error_before_training(compose, corpus,
                                                                       tmp_path, metric):
    # auto means NLL-gen for text, which a non-autoregressive generator does not have.
    cfg = compose(*_char(corpus), "train.eval_every=2", f"train.best_metric={metric}")
    with pytest.raises(ConfigError, match="best_metric") as error:
        train_from_config(cfg, tmp_path / "run")
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")
    assert not (tmp_path / "run").exists()  # nothing written


def test_image_model_on_character_data_names_both_text_models(compose, corpus):
    with pytest.raises(ConfigError, match="wgan_char"):
        make_trainer(compose("experiment=base", "data=text", f"data.path={corpus}",
                             "data.level=char", "model=dcgan"))


@pytest.mark.slow  # trains a tiny relgan (two traced phases): ~15 s loaded
def test_sample_of_a_relgan_run_gives_text_too(compose, tmp_path, corpus):
    # `ganrun sample` builds any text run's generator (build.any_generator), not only latent ones.
    run = tmp_path / "run"
    train_from_config(compose("experiment=base", "data=text", f"data.path={corpus}",
                              "data.max_len=8", "model=relgan", "model.generator.hidden_dim=8",
                              "model.discriminator.num_filters=4", "train.pretrain_steps=2"), run)
    lines = sample_to_file(run, 3, None, seed=1).read_text(encoding="utf-8").splitlines()
    vocabulary = set(corpus.read_text().split()) | {"<unk>"}
    assert len(lines) == 3 and all(set(line.split()) <= vocabulary for line in lines)
