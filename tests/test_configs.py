"""Every group option and every experiment composes, builds and trains a few steps."""

import json
import math
from pathlib import Path

import pytest

from ganrun.cli import train_from_config
from tests.conftest import ROOT, group_options

TEXT_OPTIONS = ("text", "coco", "oracle", "relgan", "coco_mle", "coco_relgan", "oracle_relgan",
                "wgan_char", "coco_wgan_char")  # wgan_char: tests/test_wgan_char.py
CASES = [f"{group}={option}" for group in ("model", "loss", "optimizer", "data")
         for option in group_options(group)
         if option not in ("mnist", "npz", "folder")  # files needed: tests/test_image_sources.py
         and option not in TEXT_OPTIONS]  # text data/models: tests/test_text_train.py
CASES += [f"experiment={option}" for option in group_options("experiment")
          if option not in TEXT_OPTIONS]


@pytest.mark.parametrize("override", CASES)
def test_option_trains_a_few_steps(compose, tmp_path, override):
    cfg = compose(override)
    metrics = train_from_config(cfg, tmp_path)
    assert metrics["step"] == 4
    for name in ("loss/d", "loss/g", "logits/real", "logits/fake"):
        assert math.isfinite(metrics[name]["value"]), name
        assert metrics[name]["definition"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["step"] == 4
    for name in ("generator.keras", "experiment.yaml", "data_spec.json", "train.log"):
        if name != "train.log":  # train.log is Hydra's, written only by the CLI
            assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_0000004.png"]


def test_the_default_experiment_is_the_budgeted_conditional_dcgan_on_mnist(compose):
    cfg = compose(tiny=False)
    assert cfg.data._target_.endswith("load_mnist")
    assert cfg.model.generator._target_.endswith("dcgan_generator")
    assert cfg.model.conditional == "auto"
    assert cfg.loss._target_.endswith("hinge")
    assert cfg.train.max_time == "9m" and cfg.train.ema_decay == pytest.approx(0.9998)
    assert cfg.train.ema_rampup == pytest.approx(0.1) and cfg.train.batch_size == 96
    assert cfg.train.schedule_end == "budget"
    assert cfg.train.steps == 4000 and cfg.train.lr_schedule == "linear"
    assert cfg.train.precision == "auto"  # bf16 only where the hardware has bf16 units


IMAGE_MODELS = [m for m in group_options("model") if m not in TEXT_OPTIONS]


@pytest.mark.parametrize("model", IMAGE_MODELS)
def test_every_image_model_builds_under_the_default_experiment(compose, model):
    # `ganrun train model=mlp` keeps the default experiment: the preset may set only keys
    # every image model has, so its width lives in model/dcgan_mid.yaml, not in the preset.
    from ganrun import build

    cfg = compose("experiment=mnist_dcgan", f"model={model}")
    spec = build.data(cfg).spec
    generator, discriminator = build.generator(cfg, spec), build.discriminator(cfg, spec)
    assert generator.output_shape[1:] == spec.shape
    assert discriminator.output_shape[-1] == 1


def test_dcgan_wide_is_dcgan_with_a_twice_as_wide_generator(compose):
    wide, dcgan = compose("model=dcgan_wide", tiny=False), compose("model=dcgan", tiny=False)
    widened = [2 * c for c in dcgan.model.generator.channels]
    assert list(wide.model.generator.channels) == widened
    assert list(wide.model.discriminator.channels) == list(dcgan.model.discriminator.channels)


def test_the_default_model_is_dcgan_with_a_generator_one_and_a_half_times_as_wide(compose):
    mid, dcgan = compose("model=dcgan_mid", tiny=False), compose("model=dcgan", tiny=False)
    widened = [3 * c // 2 for c in dcgan.model.generator.channels]
    assert list(mid.model.generator.channels) == widened == [192, 96]
    assert list(mid.model.discriminator.channels) == list(dcgan.model.discriminator.channels)
    assert list(compose(tiny=False).model.generator.channels) == widened  # the default's model


def test_a_conditional_auto_model_is_unconditional_on_unlabelled_data(compose):
    from ganrun import build
    from ganrun.data.images import make_fake_images

    spec = make_fake_images().spec
    unlabelled = type(spec)(**{**spec.__dict__, "num_classes": 0, "class_frequencies": ()})
    cfg = compose("experiment=mnist_dcgan")
    assert build.conditional(cfg, spec) is True
    assert build.conditional(cfg, unlabelled) is False
    assert len(build.generator(cfg, unlabelled).inputs) == 1


def test_seed_preset_is_the_seed_recipe(compose):
    cfg = compose("experiment=seed", tiny=False)
    assert cfg.model.generator.units == [256, 512]
    assert cfg.model.discriminator.units == [512, 256]
    assert cfg.model.generator.output_activation == "sigmoid"
    assert cfg.loss._target_ == "ganrun.losses.minimax"
    assert cfg.train.batch_size == 32
    assert cfg.optimizer.generator.learning_rate == pytest.approx(2e-4)
    assert cfg.optimizer.discriminator.beta_1 == pytest.approx(0.5)


def test_configs_ship_inside_the_package():
    # A wheel (non-editable install) has no checkout around it: the configs must live in the
    # package. src/ganrun/configs links to configs/; pyproject's package-data copies it.
    import tomllib

    from ganrun import cli

    config_dir = Path(cli.CONFIG_DIR)
    assert config_dir.parent == Path(cli.__file__).resolve().parent
    assert config_dir.resolve() == (ROOT / "configs").resolve()
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "configs/**/*.yaml" in shipped["package-data"]["ganrun"]
