"""Which `_target_` values ganrun lets Hydra instantiate: the allowlist and its check.

A config's `_target_` is an import path that `hydra.utils.instantiate` imports and calls, so a
config is code. Configs come from the command line, from `configs/`, and from run directories
(`experiment.yaml`), which people copy and share; a shared run directory must not be able to
run `pathlib.Path.write_text`, `shutil.copyfile` or `builtins.open` on the reader's machine
(hydra-core blocks only a handful of names, such as `os.system`). So every `_target_` of a
config is checked against this allowlist before the first `instantiate` call, and one that is
not on it is a ConfigError naming the key and the target.

Allowed:
- builders in ganrun's builder modules (`BUILDER_MODULES`: data loaders, models, losses,
  trainers), as a top-level function or class of that module — not a method
  (`...TextData.save`), not something the module merely imported;
- the Keras optimizers (`keras.optimizers.<Name>`, the classes in KERAS_OPTIMIZERS);
- in the `hydra:` node only (what Hydra itself instantiates: launchers, sweepers,
  callbacks), Hydra's plugins, Optuna's samplers and pruners, and ganrun's sweep callback;
- whatever the user registers in the environment variable `GANRUN_EXTRA_TARGETS`: a
  comma-separated list of exact targets (`mypkg.models.my_generator`) or module prefixes
  ending in `.*` (`mypkg.models.*`). The environment belongs to the user running ganrun, not
  to the run directory, so a shared directory cannot extend the list.

No TensorFlow import: the CLI checks command-line configs with this before Hydra runs.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from ganrun.errors import ConfigError

# Modules whose top-level functions and classes build things from config values and write no
# files (tests/test_trust.py reads their sources to keep it so). A new builder module is added
# here by its full name: a package (`ganrun.trainers`) does not admit its submodules. The
# trainer modules are the ones model configs name (`trainer: {_target_: ...}`).
BUILDER_MODULES = (
    "ganrun.data.images", "ganrun.data.folders", "ganrun.data.corpora", "ganrun.data.oracle",
    "ganrun.models.image", "ganrun.models.resnet", "ganrun.models.text",
    "ganrun.models.text_conv", "ganrun.losses", "ganrun.trainers.image",
    "ganrun.trainers.latent_text", "ganrun.trainers.text_gan",
)
# Top-level names of those modules that are not builders (they read or write files).
NOT_BUILDERS = frozenset({
    "ganrun.data.images.download_mnist", "ganrun.data.images.sha256_of",
})
# Keras 3's optimizer classes, by name (importing Keras to look would load TensorFlow).
KERAS_OPTIMIZERS = frozenset(f"keras.optimizers.{name}" for name in (
    "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion",
    "Nadam", "RMSprop", "SGD"))
# Only under `hydra:` (Hydra instantiates these itself, before ganrun's code runs).
HYDRA_PREFIXES = ("hydra._internal.core_plugins.", "hydra_plugins.", "optuna.samplers.",
                  "optuna.pruners.")
HYDRA_TARGETS = frozenset({"ganrun.cli.SweepComposed", "ganrun.study.grid_sampler"})
EXTRA_VARIABLE = "GANRUN_EXTRA_TARGETS"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _extra_targets() -> tuple[set[str], tuple[str, ...]]:
    """(exact targets, module prefixes) the user registered in GANRUN_EXTRA_TARGETS."""
    entries = [e.strip() for e in os.environ.get(EXTRA_VARIABLE, "").split(",") if e.strip()]
    prefixes = tuple(e[:-2] for e in entries if e.endswith(".*"))
    return {e for e in entries if not e.endswith(".*")}, prefixes


@functools.cache
def _builders(module_name: str) -> frozenset[str]:
    """The public top-level functions and classes defined in a module's source, found by
    parsing it (not importing it: the CLI checks configs before TensorFlow is loaded)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return frozenset()
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef | ast.ClassDef)
                     and not node.name.startswith("_"))


def _is_builder(target: str) -> bool:
    """A public top-level function or class defined in one of BUILDER_MODULES."""
    module_name, _, name = target.rpartition(".")
    if module_name not in BUILDER_MODULES or target in NOT_BUILDERS:
        return False
    try:
        return name in _builders(module_name)
    except (ImportError, OSError, SyntaxError, ValueError):
        return False


def allowed(target: object, in_hydra_node: bool = False) -> bool:
    """Whether `_target_: target` may be instantiated (see the module docstring)."""
    if not isinstance(target, str) or not _DOTTED.fullmatch(target):
        return False
    exact, prefixes = _extra_targets()
    if target in exact or target.startswith(tuple(p + "." for p in prefixes)):
        return True
    if in_hydra_node and (target in HYDRA_TARGETS or target.startswith(HYDRA_PREFIXES)):
        return True
    return target in KERAS_OPTIMIZERS or _is_builder(target)


def _walk(node, key: str):
    """(key, value) of every `_target_` under a plain container, keys written as a.b[0].c."""
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{key}.{name}" if key else str(name)
            if name == "_target_":
                yield path, value
            else:
                yield from _walk(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{key}[{index}]")


def check_targets(cfg: DictConfig | ListConfig | dict, source: str) -> None:
    """Raise ConfigError for the first `_target_` in `cfg` that is not on the allowlist.

    `source` names where the config came from (a file, or "the command line"), for the
    message. Interpolations are not resolved: a `_target_` must be a literal import path.
    """
    container = (OmegaConf.to_container(cfg, resolve=False)
                 if isinstance(cfg, DictConfig | ListConfig) else cfg)
    for key, target in _walk(container, ""):
        if not allowed(target, in_hydra_node=key.startswith("hydra.")):
            raise ConfigError(
                f"{key}: {target!r} in {source} is not a ganrun builder, so ganrun will not "
                f"import and run it; use a ganrun model, data, loss or Keras optimizer, or "
                f"register your own builder in {EXTRA_VARIABLE} (docs/reliability.md).")
