"""Checks the CLI makes before Hydra runs, so problems Hydra would report with a traceback
or several lines of its own come out as one sentence naming the fix.

- The overrides are composed once here (a fraction of a second): an unknown option, a
  misspelt key (with a did-you-mean suggestion) or bad syntax becomes one sentence.
- Hydra creates the run directory before ganrun's code runs, so a directory that cannot be
  created (a path through a regular file, a read-only file system) would surface as an
  OSError traceback from inside Hydra; it is found here first.

No TensorFlow import: this runs before every command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _override(args: list[str], key: str) -> str | None:
    """The value of the last `key=value` among the command-line overrides, if any."""
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{key}=")]
    return values[-1] if values else None


def run_dir_override(args: list[str]) -> Path | None:
    """The run directory of a single `ganrun train` run when the command line names it
    (`hydra.run.dir=...`, no interpolation), else None (Hydra's dated default, a sweep)."""
    value = _override(args, "hydra.run.dir")
    if not value or "${" in value or {"-m", "--multirun"} & set(args):
        return None
    return Path(value.strip("'\"")).expanduser()


def output_dir_problem(args: list[str]) -> str | None:
    """One sentence if the run (or sweep) directory the overrides name cannot be created or
    written; None when it can (or when it is left to Hydra's defaults under the cwd and the
    cwd is writable)."""
    key = "hydra.sweep.dir" if {"-m", "--multirun"} & set(args) else "hydra.run.dir"
    value = _override(args, key)
    target = Path(value).expanduser() if value else Path.cwd() / "outputs"
    existing = target if target.is_absolute() else Path.cwd() / target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return (f"{key}={target} cannot be created because {existing} is a file; choose "
                f"another {key}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{key}={target} is not writable ({existing} does not allow it); choose "
                f"another {key} or fix the permissions.")
    return None


def _suggestion(config_dir: str, config_name: str, overrides: list[str], key: str) -> str:
    """' (did you mean <key>?)' for a misspelt `key`, from the keys beside it in the config."""
    import difflib

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    parent, _, name = key.rpartition(".")
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            cfg = compose(config_name, overrides=others)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        close = difflib.get_close_matches(name, [str(k) for k in node], n=1)
    except Exception:  # noqa: BLE001 (a suggestion is optional; Hydra reports the rest)
        return ""
    return f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""


def config_problem(config_dir: str, config_name: str, args: list[str]) -> str | None:
    """One sentence for an override Hydra cannot apply (an unknown option, a misspelt key,
    bad syntax), instead of Hydra's several lines; None if the overrides compose.

    Runs only for plain overrides: flags (--help, --cfg, -m ...) and sweeps are left to Hydra.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    if not (Path(config_dir) / f"{config_name}.yaml").is_file() or \
            any(arg.startswith("-") for arg in args):
        return None
    overrides = list(args)  # hydra.* too: Hydra's own errors for them are several lines
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except MissingConfigException as exc:
        group, _, name = (exc.missing_cfg_file or "").rpartition("/")
        if group and exc.options:
            return f"{group}={name} is not an option of {group} (no configs/{group}/{name}" \
                   f".yaml); choose one of {', '.join(exc.options)}."
        return f"{str(exc).splitlines()[0]}; ganrun {config_name} --help lists the options."
    except ConfigCompositionException as exc:
        found = re.match(r"Could not override '([^']+)'", str(exc))
        if found:
            key = found.group(1)
            return (f"unknown config key {key}"
                    f"{_suggestion(config_dir, config_name, overrides, key)}; "
                    f"ganrun {config_name} --cfg job shows the keys.")
        found = re.match(r"Ambiguous value for argument '([^']+)'", str(exc))
        if found:
            return (f"{found.group(1)} has several values; add -m to run one job per value, "
                    "or write a list as key=[a,b].")
        return None
    except OverrideParseException as exc:
        return f"an override could not be parsed ({str(exc).splitlines()[0]}); write " \
               "overrides as key=value, quoting a value with spaces or non-ASCII characters " \
               "(key='a value', see ganrun --help)."
    except Exception:  # noqa: BLE001 (anything else: Hydra reports it as before)
        return None
    return _targets_problem(cfg)


def target_override_problem(args: list[str]) -> str | None:
    """The allowlist's sentence for a `..._target_=value` on the command line, checked on the
    text itself, so sweeps (-m, `a,b` values) that are not composed here are covered too."""
    from ganrun.targets import allowed

    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if not key.endswith("_target_"):
            continue
        for target in value.split(","):  # a sweep lists several
            if not allowed(target.strip(), in_hydra_node=key.startswith("hydra.")):
                return (f"{key}: {target.strip()!r} on the command line is not a ganrun builder, "
                        "so ganrun will not import and run it; use a ganrun model, data, loss "
                        "or Keras optimizer, or register your own builder in "
                        "GANRUN_EXTRA_TARGETS (docs/reliability.md).")
    return None


def _targets_problem(cfg) -> str | None:
    """The allowlist's sentence for a `_target_` that ganrun will not instantiate, or None;
    checked here because Hydra instantiates hydra.callbacks before ganrun's code runs."""
    from ganrun.errors import ConfigError
    from ganrun.targets import check_targets

    try:
        check_targets(cfg, "the command line or configs/")
    except ConfigError as exc:
        return str(exc)
    return None
