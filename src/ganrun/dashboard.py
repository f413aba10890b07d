"""`ganrun dashboard DIR`: optuna-dashboard on a sweep's study, bound to 127.0.0.1.

DIR is a sweep directory of the ganrun_optuna sweeper (its study.yaml names the storage), an
Optuna SQLite file (`optuna.db`) or a storage URL. The dashboard listens on the loopback
interface only: the storage holds every trial's configuration, and the dashboard can edit it;
reach it from another machine through an SSH tunnel (`ssh -L 8080:127.0.0.1:8080 host`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganrun.study import absolute_url, find_study

HOST = "127.0.0.1"


def storage_of(target: str) -> str:
    """The storage URL for `target` (see the module docstring); ValueError when none."""
    if "://" in target:
        return target
    path = Path(target)
    found = find_study(path) if path.is_dir() else None
    if found:
        return found[0]
    if path.is_dir() and (path / "optuna.db").is_file():
        path = path / "optuna.db"
    if path.is_file():
        return absolute_url(f"sqlite:///{path}")
    raise ValueError(f"{target} holds no Optuna study (no study.yaml or optuna.db); pass the "
                     "sweep directory of a hparams_search run, an .db file or a storage URL.")


def main(argv: list[str] | None = None, prog: str = "ganrun dashboard") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="a sweep directory, an Optuna SQLite file or a storage URL")
    parser.add_argument("--port", type=int, default=8080, help="default: 8080")
    args = parser.parse_args(argv)
    try:
        storage = storage_of(args.dir)
        from optuna_dashboard import run_server  # noqa: PLC0415
    except ValueError as exc:
        print(f"ganrun: error: {exc}", file=sys.stderr)
        return 2
    except ImportError:
        print("ganrun: error: optuna-dashboard is not installed; pip install 'ganrun[sweep]'.",
              file=sys.stderr)
        return 2
    print(f"Optuna dashboard of {storage} on http://{HOST}:{args.port}/ (Ctrl-C stops it).",
          flush=True)
    run_server(storage, host=HOST, port=args.port)
    return 0
