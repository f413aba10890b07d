"""A run directory as something ganrun owns: its lock, who may write into it, and checked
reads of the files ganrun reads back from it.

- Lock: `DIR/.lock`, an exclusive `fcntl.flock` held by `ganrun train` for its whole life and
  by `ganrun eval` (which writes metrics.json and tb/). A second writer fails at once with
  "DIR is in use by process N". The kernel drops the lock when its process dies, even by
  kill -9, so a stale `.lock` file never blocks anyone. The file stays empty: the holder's
  PID for the message comes from the kernel's table of locks.
- Ownership: `ganrun train` writes only into a new or empty directory, one holding a ganrun
  run (a checkpoint, whose fingerprint is checked against the experiment by `ganrun.cli`),
  or what a ganrun run leaves before its first checkpoint. Anything else is someone's
  folder: exit 2 before anything is written.
- Reads: experiment.yaml, .hydra/*.yaml and the JSON files are parsed here, and a damaged
  one is a GanrunError naming the file, not a parser traceback.

No TensorFlow import: the CLI calls this before Hydra runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from ganrun.errors import GanrunError

LOCK_NAME = ".lock"
# Hydra writes these into the run directory before ganrun's code runs (a launch that failed
# on a bad value leaves them): they never make a directory someone else's.
HYDRA_FILES = frozenset({".hydra", "train.log"})
# What a ganrun run writes before (or while writing) its first checkpoint; with `.lock`
# beside them, they are a ganrun run that stopped early and may be trained into again.
EARLY_FILES = HYDRA_FILES | {LOCK_NAME, "experiment.yaml", "data_spec.json", "vocab.json",
                             "tb", "samples", "checkpoints"}
FINGERPRINT_KEY = "ganrun_fingerprint"  # experiment.yaml's record of the experiment

_held: dict[Path, int] = {}  # run directory (resolved) -> descriptor of its locked .lock


class RunDirectoryInUse(GanrunError):
    """Another process holds the run directory's lock."""


def lock(run_dir: Path) -> None:
    """Take `run_dir`'s lock for the rest of this process (a no-op if this process holds it).

    Raises RunDirectoryInUse when another live process holds it. Creates `run_dir` and an
    empty `.lock`, which is never rewritten (so taking the lock changes no file's content).
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(run_dir / LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GanrunError(f"cannot create {run_dir / LOCK_NAME} ({exc.strerror}); ganrun writes "
                          "only into a directory it can lock, so fix its permissions or use a "
                          "writable copy.") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunDirectoryInUse(
            f"{run_dir} is in use by process {holder(run_dir) or '(unknown)'}; wait for it to "
            "finish, or train into another hydra.run.dir.") from None
    _held[run_dir] = descriptor


def holder(run_dir: Path) -> int | None:
    """The PID of the process holding `run_dir`'s lock, from the kernel's table of locks
    (/proc/locks, Linux), or None when it is free or the table cannot tell."""
    try:
        status = os.stat(Path(run_dir) / LOCK_NAME)
        wanted = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()  # "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                return int(fields[4]) or None
    except (OSError, ValueError):
        pass
    return None


def unlock(run_dir: Path) -> None:
    """Release `run_dir`'s lock if this process holds it (process exit releases it too)."""
    descriptor = _held.pop(Path(run_dir).resolve(), None)
    if descriptor is not None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


@contextlib.contextmanager
def locked(run_dir: Path):
    """`with locked(dir):` holds the lock for the block (kept if it was held before)."""
    held = Path(run_dir).resolve() in _held
    lock(run_dir)
    try:
        yield
    finally:
        if not held:
            unlock(run_dir)


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / "checkpoints" / "checkpoint").is_file()


def ownership_problem(run_dir: Path) -> str | None:
    """One sentence if `run_dir` holds files that are not a ganrun run's; None when training
    may write there (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or has_checkpoint(run_dir):
        return None
    names = {path.name for path in run_dir.iterdir()}
    if names <= HYDRA_FILES or (LOCK_NAME in names and names <= EARLY_FILES):
        return None
    foreign = sorted(names - EARLY_FILES) or sorted(names - HYDRA_FILES)
    return (f"{run_dir} holds files but no ganrun run ({', '.join(foreign[:4])}"
            f"{', ...' if len(foreign) > 4 else ''}), and ganrun does not overwrite them; "
            "choose a new or empty hydra.run.dir.")


def _damaged(path: Path, reason: str) -> GanrunError:
    reason = " ".join(str(reason).split())[:160]
    return GanrunError(f"{path} is damaged ({reason}); restore it from a copy of the run, "
                       "or train into a new hydra.run.dir.")


def read_json(path: Path) -> dict:
    """A JSON object from `path`; GanrunError naming the file if it is not one."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(content, dict):
        raise _damaged(path, f"a JSON {type(content).__name__}, not an object")
    return content


def read_yaml(path: Path) -> DictConfig:
    """A YAML mapping from `path` as an OmegaConf config; GanrunError naming the file if it
    is not one."""
    path = Path(path)
    try:
        cfg = OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                       ) from None
    except Exception as exc:  # noqa: BLE001 (OmegaConf's own errors: keys, interpolations)
        raise _damaged(path, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise _damaged(path, "a YAML list or value, not a mapping")
    return cfg


def load_experiment(run_dir: Path) -> DictConfig:
    """The config a run was started with (`experiment.yaml`), validated: a mapping with the
    nodes ganrun builds from, whose every `_target_` is on ganrun's allowlist."""
    from ganrun.targets import check_targets  # noqa: PLC0415

    path = Path(run_dir) / "experiment.yaml"
    if not path.is_file():
        raise GanrunError(f"{run_dir} is not a ganrun run directory (no experiment.yaml); pass "
                          "run=<the hydra.run.dir of a training run>.")
    cfg = read_yaml(path)
    for node in ("data", "model", "loss", "optimizer"):
        if not isinstance(cfg.get(node), DictConfig):
            raise _damaged(path, f"it has no '{node}' mapping")
    for node in ("generator", "discriminator"):
        if not isinstance(cfg.model.get(node), DictConfig):
            raise _damaged(path, f"it has no 'model.{node}' mapping")
    check_targets(cfg, str(path))
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # noqa: BLE001 (a broken interpolation)
        raise _damaged(path, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    return cfg
