"""Text runs refuse the image trainer's options instead of ignoring them, and keep a best
checkpoint chosen by a stated metric."""

from __future__ import annotations

import json
import random

import pytest

from ganrun.errors import ConfigError
from tests.conftest import make_trainer


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(1)
    words = ["a man", "the dog", "two cats"], ["rides", "eats", "sees"], ["a bike .", "a kite ."]
    lines = [" ".join(rng.choice(part) for part in words) for _ in range(60)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _relgan(corpus):
    return ["experiment=base", "data=text", f"data.path={corpus}", "data.max_len=8",
            "model=relgan",
            "model.generator.hidden_dim=8", "model.discriminator.num_filters=4"]


@pytest.mark.parametrize("override, named", [
    ("regularize.gradient_penalty=10", "regularize"),
    ("regularize.augment=[translation]", "regularize"),
    ("regularize.label_smoothing=0.1", "regularize"),
    ("train.ema_decay=0.999", "ema_decay"),
    ("train.lr_schedule=linear", "lr_schedule"),
    ("train.fuse_d_pass=true", "fuse_d_pass"),
])
def test_image_only_options_are_refused_for_the_text_gan(compose, corpus, override, named):
    with pytest.raises(ConfigError, match=named):
        make_trainer(compose(*_relgan(corpus), override))


def test_text_run_keeps_the_best_checkpoint_and_eval_scores_it(compose, tmp_path, corpus):
    from ganrun.cli import train_from_config
    from ganrun.evaluate.best import BEST_DIR, read_best
    from ganrun.evaluate.text import evaluate_text_run_dir

    run = tmp_path / "run"
    cfg = compose(*_relgan(corpus), "train.steps=6", "train.pretrain_steps=4",
                  "train.eval_every=2", "train.eval_n=20", "train.eval_final_n=0",
                  "train.best_metric=bleu2", "train.batch_size=8")
    metrics = train_from_config(cfg, run)
    best = read_best(run / BEST_DIR)
    assert best["metric"] == "bleu2" and best["n_fake"] == 20 and best["step"] in (2, 4, 6)
    assert metrics["best"] == best and "highest periodic bleu2" in best["definition"]
    assert (run / BEST_DIR / best["checkpoint"]).with_suffix(".index").is_file()
    table = evaluate_text_run_dir(run, make_trainer(cfg).data, 12, "best")
    assert "bleu2" in table
    section = json.loads((run / "metrics.json").read_text())["eval_best"]
    assert section["step"] == best["step"] and 0 <= section["bleu2"]["value"] <= 1
    with pytest.raises(ConfigError, match="latest or best"):
        evaluate_text_run_dir(run, make_trainer(cfg).data, 12, "newest")


def test_best_checkpoint_follows_the_metric_direction(tmp_path):
    import keras

    from ganrun.evaluate.best import BEST_DIR, BestCheckpoint, read_best

    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    higher = BestCheckpoint("bleu5", True, n=10)
    for step, value in ((1, 0.2), (2, 0.3), (3, 0.25)):
        higher.offer(generator, step, {"bleu5": {"value": value}}, tmp_path, "test")
    assert read_best(tmp_path / BEST_DIR)["step"] == 2
    # Another metric is not comparable: its first value takes over, then lower wins.
    lower = BestCheckpoint("self_bleu5", False, n=10)
    for step, value in ((4, 0.9), (5, 0.8), (6, 0.85)):
        lower.offer(generator, step, {"self_bleu5": {"value": value}}, tmp_path, "test")
    assert read_best(tmp_path / BEST_DIR)["step"] == 5


@pytest.mark.parametrize("kind, name, has_oracle", [
    ("image", "bleu5", False), ("text", "fid", False), ("text", "nll_oracle", False),
    ("image", "FID", False)])
def test_unknown_best_metric_is_a_config_error(kind, name, has_oracle):
    from ganrun.evaluate.best import resolve_metric

    with pytest.raises(ConfigError, match="best_metric"):
        resolve_metric(name, kind, has_oracle)


def test_best_metric_defaults_per_data_kind():
    from ganrun.evaluate.best import resolve_metric

    assert resolve_metric("auto", "image") == ("fid", False)
    assert resolve_metric("auto", "text") == ("nll_gen", False)
    assert resolve_metric("nll_oracle", "text", has_oracle=True) == ("nll_oracle", False)
