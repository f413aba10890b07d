"""`make bench`'s accounting (scripts/bench_loops.py, bench_system.py, bench.py): the FLOPs it
divides by, the convolution peak it divides into, and which presets its sections time."""

from __future__ import annotations

import sys

import pytest

from ganrun import cpu
from tests.conftest import ROOT, make_trainer

sys.path.insert(0, str(ROOT / "scripts"))
bench_loops = pytest.importorskip("bench_loops")


def test_step_flops_of_the_default_count_projection_and_ema(compose):
    """mnist_dcgan with the wide G on 28x28x1 with 10 classes, counted by hand from the
    architecture (the count follows whatever model the preset names: bench_loops reads it
    from the built models)."""
    cfg = compose("experiment=mnist_dcgan", "model=dcgan_wide")
    trainer = make_trainer(cfg)
    assert trainer.num_classes == 10 and trainer.ema and trainer.ema.has_batch_norm
    # G (channels 256, 128): Dense (z + 32 label embedding) -> 7*7*256, up_0 7x7 input
    # 4x4x128x256, image 14x14 input 4x4x1x128 (transposed: every input pixel writes
    # kh*kw*cout).
    assert list(cfg.model.generator.channels) == [256, 128]
    z = cfg.model.latent_dim + 32
    f_g = 2 * z * 12544 + 2 * 49 * 16 * 128 * 256 + 2 * 196 * 16 * 1 * 128
    # D: down_0 14x14 output 4x4x1x64, down_1 7x7 output 4x4x64x128, logit, projection.
    f_d = 2 * 196 * 16 * 64 + 2 * 49 * 16 * 64 * 128 + 2 * 6272 + 2 * 6272
    assert bench_loops.forward_flops(trainer.generator) == f_g
    assert bench_loops.forward_flops(trainer.discriminator) == f_d
    batch = trainer.options.batch_size
    assert bench_loops.adversarial_step_flops(
        trainer.generator, trainer.discriminator, batch, ema_forward=True) == batch * (
            5 * f_g + 8 * f_d)
    assert bench_loops.adversarial_step_flops(
        trainer.generator, trainer.discriminator, batch) == batch * (4 * f_g + 8 * f_d)


def test_grid_dcgan_stays_the_plain_unconditional_dcgan():
    """The loop comparison's "dcgan" must not follow the default experiment (conditional,
    hinge, EMA), or its rows stop being comparable with earlier runs."""
    bench_system = pytest.importorskip("bench_system")
    grid, default = bench_system.compose("dcgan"), bench_system.compose("default")
    assert grid.model.conditional is False and grid.train.ema_decay == 0
    assert grid.loss._target_.endswith("nonsaturating")
    assert default.model.conditional == "auto" and default.train.ema_decay > 0
    assert default.loss._target_.endswith("hinge")


def test_conv_peak_reports_every_setting():
    """Every layout and precision runs (a tiny shape: the figures round to ~0 here)."""
    bench_system = pytest.importorskip("bench_system")
    peak = bench_system.conv_peak(batch=2, side=8, channels=8, repeats=1)
    settings = {"float32", "float32_nchw"} | ({"bfloat16"} if cpu.has_bf16_units()
                                              else set())
    measured = {name for name, value in peak.items() if isinstance(value, dict)}
    # NCHW runs only through oneDNN (off by default on CPUs without AVX-512): else a reason.
    unsupported = {name for name, value in peak.items() if str(value).startswith("unsupported")}
    assert measured | unsupported == settings and "float32" in measured
    settings = measured
    for name in settings:
        assert peak[name]["gflop_per_cpu_s"] >= 0 and peak[name]["gflops"] >= 0
    assert peak["shape"] == "2x8x8x8 * 3x3x8x8"
