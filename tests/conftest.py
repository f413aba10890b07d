"""Shared fixtures: the real config tree, shrunk, on fake in-memory data.

`compose(*overrides)` loads configs/train.yaml exactly as `ganrun train` does, then applies
TINY (few steps, small batch, fake data) and the test's own overrides.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
TINY = [
    # train.yaml's plain recipe (unconditional DCGAN, no EMA, constant rates, float32): what
    # most tests were written against. The default preset, mnist_dcgan, is covered by its own
    # tests (test_configs, test_guide, test_budget, the MNIST end-to-end test), and a test's
    # own experiment=... comes later and wins.
    "experiment=base",
    "data=fake", "train.steps=4", "train.batch_size=8", "train.log_every=2",
    "train.sample_every=4", "train.checkpoint_every=2", "train.steps_per_call=2",
    "train.sample_grid=4",
    "train.eval_every=0", "train.eval_final_n=0",  # image metrics have their own tests
]


@pytest.fixture(scope="session", autouse=True)
def _private_evaluator_cache(tmp_path_factory):
    """Feature networks trained by tests go to a temporary cache, never ~/.cache/ganrun."""
    os.environ["GANRUN_CACHE_DIR"] = str(tmp_path_factory.mktemp("ganrun_cache"))


def group_options(group: str) -> list[str]:
    """The option names of a config group, from the files in configs/<group>/."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.fixture
def compose():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(*overrides: str, tiny: bool = True):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose("train", overrides=[*(TINY if tiny else []), *overrides])

    return _compose


def run_ganrun(*args: str, timeout: float = 300, env: dict | None = None):
    """Run the `ganrun` console script; returns the CompletedProcess (text, both streams)."""
    script = Path(sys.executable).with_name("ganrun")
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def make_trainer(cfg):
    """The trainer `model.trainer` names, built from a composed config as the CLI does."""
    from ganrun import build

    return build.trainer(cfg, build.data(cfg))


def training_state(trainer, *extra_variables) -> list:
    """Every variable of a trainer's state, in a fixed order, as numpy arrays: both models,
    both optimizers, `extra_variables` (e.g. the EMA generator's), the step and the RNG."""
    import numpy as np

    variables = [*trainer.generator.variables, *trainer.discriminator.variables,
                 *trainer.g_optimizer.variables, *trainer.d_optimizer.variables,
                 *extra_variables, trainer.step, trainer.rng.state]
    return [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in variables]


def data_dir() -> Path | None:
    """$GANRUN_DATA_DIR when it holds mnist.npz (CI points it at the shared data)."""
    value = os.environ.get("GANRUN_DATA_DIR")
    return Path(value) if value and (Path(value) / "mnist.npz").is_file() else None
