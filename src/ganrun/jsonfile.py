"""JSON files of a run directory (metrics.json, best.json, floors), written atomically: a
reader (TensorBoard, a sweep, another process) never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, content: dict) -> None:
    """Write JSON to a temporary file in the same directory, then rename it over `path`
    (the process id in the temporary name keeps concurrent writers apart)."""
    path = Path(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)


def update_json(path: Path, key: str, section: dict) -> None:
    """Set path's JSON[key] = section, keeping every other entry (a missing file is {}; a
    damaged one is a GanrunError naming it, ganrun.rundir.read_json)."""
    from ganrun.rundir import read_json  # noqa: PLC0415  (rundir sits beside; keeps this leaf)

    path = Path(path)
    content = read_json(path) if path.is_file() else {}
    content[key] = section
    write_json_atomic(path, content)
