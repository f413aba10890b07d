"""Text runs refuse the image trainer's options instead of ignoring them, and keep a best
checkpoint chosen by a stated metric."""

from __future__ import annotations

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
    return ["data=text", f"data.path={corpus}", "data.max_len=8", "model=relgan",
            "model.generator.hidden_dim=8", "model.discriminator.num_filters=4"]


@pytest.mark.parametrize("override, named", [
    ("regularize.gradient_penalty=10", "regularize"),
    ("regularize.augment=[translation]", "regularize"),
    ("regularize.label_smoothing=0.1", "regularize"),
    ("train.ema_decay=0.999", "ema_decay"),
    ("train.lr_schedule=linear", "lr_schedule"),
])
def test_image_only_options_are_refused_for_the_text_gan(compose, corpus, override, named):
    with pytest.raises(ConfigError, match=named):
        make_trainer(compose(*_relgan(corpus), override))
