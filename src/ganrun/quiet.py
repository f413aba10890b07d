"""Quiet by default: TensorFlow's C++ log lines that say nothing to a ganrun user are kept off
the terminal; `--verbose` (or `hydra.verbose=true`) shows everything.

TensorFlow 2.21 prints its start-up lines (oneDNN, CUDA stubs) through absl before it reads
`TF_CPP_MIN_LOG_LEVEL`, so no value of that variable hides them (/work/shared/STACK.md), and
grappler prints "remapper failed" as an error (E) line on some models although training is
unaffected. Those lines are written by C++ straight to file descriptor 2, so the filter
works there: stderr is redirected into a pipe read by a small forked process that drops

- C++ log lines ("I0000 00:00:...", "W...", "E...") below the level the user chose with
  TF_CPP_MIN_LOG_LEVEL (default 2: errors only);
- the known harmless E lines in HARMLESS (no GPU driver, grappler's remapper);

and passes everything else through unchanged, in order. A separate process rather than a
thread, so that nothing is lost when ganrun dies abruptly (it drains the pipe until every
writer is gone); it ignores SIGINT and SIGTERM, which the terminal or a scheduler send to
ganrun's whole process group, so ganrun's own last words still get through.
"""

from __future__ import annotations

import os
import re
import signal
import sys

# C++ log lines: severity letter, MMDD, time, thread id, file:line]
_CPP_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_LEVELS = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
# Lines without the C++ prefix that belong to dropped INFO/WARNING lines: absl's note before its
# first lines, and the second line of the CPU-feature INFO message.
_UNPREFIXED_NOISE = (b"WARNING: All log messages before absl::InitializeLog() is called",
                     b"To enable the following instructions: ")
HARMLESS = (
    re.compile(rb"remapper failed"),  # grappler could not fuse some ops; the graph runs as is
    re.compile(rb"failed call to cuInit"),  # no GPU driver on a CPU machine
)


def verbose_requested(args: list[str]) -> bool:
    """Whether the command line asks for everything (`--verbose`, `hydra.verbose=...`)."""
    return "--verbose" in args or any(a.startswith("hydra.verbose=") and
                                      a.split("=", 1)[1].lower() not in ("false", "[]", "")
                                      for a in args)


def keep(line: bytes, min_level: int) -> bool:
    """Whether a line written to stderr reaches the terminal."""
    found = _CPP_LINE.match(line)
    if not found:
        return min_level < 2 or not line.startswith(_UNPREFIXED_NOISE)
    return _LEVELS[found.group(1)] >= min_level and not any(p.search(line) for p in HARMLESS)


def _filter(read_end: int, out: int, min_level: int) -> None:
    """The forked filter: copy lines from `read_end` to `out` until end of file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if keep(line, min_level):
                    os.write(out, line + b"\n")
        if pending and keep(pending, min_level):
            os.write(out, pending)


def install(args: list[str]) -> None:
    """Unless verbose is asked for, filter this process's stderr (see the module docstring).

    Call before TensorFlow is imported and before any thread starts (it forks).
    """
    if verbose_requested(args):
        return
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the user's value wins
    min_level = int(level) if level.isdigit() else 2
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the filter
        try:
            os.close(write_end)
            _filter(read_end, 2, min_level)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)  # C++ and Python writes to fd 2 now go through the filter
    os.close(write_end)
