"""The code's shape: the import layers (import-linter), the trainer contract, the options'
checks. Fast: no training."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganrun.trainers import options as options_module
from ganrun.trainers.image import AdversarialTrainer
from ganrun.trainers.latent_text import LatentTextTrainer
from ganrun.trainers.options import TrainOptions
from ganrun.trainers.protocol import Trainer
from ganrun.trainers.text_gan import TextGAN
from tests.conftest import ROOT, group_options, make_trainer

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(not LINT_IMPORTS.exists() and not shutil.which("lint-imports"),
                    reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_layers_hold():
    # The contracts in pyproject.toml: no circles, nothing imports upward.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = str(LINT_IMPORTS) if LINT_IMPORTS.exists() else "lint-imports"
    result = subprocess.run([command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_train_option_has_exactly_one_check():
    groups = [*options_module.POSITIVE, *options_module.POSITIVE_OR_OFF,
              *options_module.CHOICES, *options_module.OTHER]
    fields = [field.name for field in dataclasses.fields(TrainOptions)]
    assert sorted(groups) == sorted(fields)


@pytest.mark.parametrize("cls", [AdversarialTrainer, LatentTextTrainer, TextGAN])
def test_every_trainer_has_the_protocol_s_methods(cls):
    # train_steps is the compiled tf.function each instance makes: checked on one below.
    for name in ("metric_definitions", "write_samples", "check", "sampling_generator"):
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"


def test_a_built_trainer_satisfies_the_protocol(compose):
    trainer = make_trainer(compose())
    assert isinstance(trainer, Trainer)  # every member, train_steps included
    assert set(trainer.optimizers) == {"g_optimizer", "d_optimizer"}
    assert trainer.models == (trainer.generator, trainer.discriminator)


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_config_names_its_trainer(compose, model):
    from ganrun import build

    cls = build.trainer_class(compose(f"model={model}"))
    assert cls in (AdversarialTrainer, LatentTextTrainer, TextGAN)
