"""What the CPU can do, read from the flags line of /proc/cpuinfo (Linux; elsewhere no flags,
so every check is False and ganrun takes its portable choices).

The `auto` settings use it: `train.precision` (bf16 only with bf16 units, ganrun.precision)
and `train.jit_compile` (XLA for convolutional models only without AVX-512,
ganrun.trainers.policy). The measurements behind both are in docs/speed.md.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def _this_machines_flags() -> frozenset[str]:
    path = Path("/proc/cpuinfo")
    return flags(path.read_text() if path.exists() else "")


def flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The words of `cpuinfo` (this machine's /proc/cpuinfo when None), e.g. {"avx2", ...}."""
    return _this_machines_flags() if cpuinfo is None else frozenset(cpuinfo.split())


def has_bf16_units(cpuinfo: str | None = None) -> bool:
    """AVX-512 BF16 or AMX-BF16: bfloat16 maths in hardware (oneDNN uses both)."""
    return bool(flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def has_avx512(cpuinfo: str | None = None) -> bool:
    """AVX-512 Foundation: oneDNN's fastest float32 convolution kernels need it."""
    return "avx512f" in flags(cpuinfo)
