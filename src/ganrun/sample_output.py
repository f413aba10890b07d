"""`ganrun sample`'s output at any n: latents drawn block by block, images written chunk by
chunk, and an n refused up front when its output cannot fit.

Memory stays flat in n: at most one latent block (LATENT_BLOCK rows) and one image chunk are
held at a time, and a `.npz` is written as a stream (an uncompressed zip of `.npy` members, as
`np.savez` writes it, so `np.load` reads it as before). The latents of rows in block b are the
first rows of `stateless_normal((LATENT_BLOCK, d), seed=[seed, 0x5EED + b])`; stateless
draws are prefix-stable, so for n <= LATENT_BLOCK they are exactly
`ganrun.sampling.fixed_latents(n, d, seed)` (samples from before this module are unchanged).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from ganrun.errors import ConfigError

LATENT_BLOCK = 65_536  # rows of latents drawn at once (26 MB at latent_dim 100)
MAX_GRID = 4_096  # images in a .png grid (the grid is built in memory; a bigger one is unreadable)
MAX_TEXT = 1_000_000  # sentences in a .txt (drawn in memory)


def latents(start: int, stop: int, latent_dim: int, seed: int, cache: dict) -> tf.Tensor:
    """float32 (stop - start, latent_dim) N(0, 1) latents of rows start..stop-1 (within one
    block; `cache` keeps the current block between calls)."""
    block = start // LATENT_BLOCK
    if cache.get("block") != block:
        cache["block"] = block
        cache["values"] = tf.random.stateless_normal(
            (min(LATENT_BLOCK, cache["count"] - block * LATENT_BLOCK), latent_dim),
            seed=[seed, 0x5EED + block])
    offset = block * LATENT_BLOCK
    return cache["values"][start - offset:stop - offset]


def image_chunks(generator, pixel_range, count: int, seed: int, chunk: int,
                 labels: Callable[[int, int], np.ndarray | None]) -> Iterator[np.ndarray]:
    """float32 (k, H, W, C) images in [0, 1] for rows 0..count-1 in order, k <= chunk (no
    chunk crosses a latent block); `labels(start, stop)` gives a conditional generator's
    int32 labels of those rows (None: unconditional)."""
    low, high = pixel_range
    latent_dim, cache = int(generator.inputs[0].shape[-1]), {"count": count}
    start = 0
    while start < count:
        stop = min(start + chunk, count, (start // LATENT_BLOCK + 1) * LATENT_BLOCK)
        z, y = latents(start, stop, latent_dim, seed, cache), labels(start, stop)
        images = generator(z if y is None else [z, tf.constant(y)], training=False)
        yield ((np.asarray(images) - low) / (high - low)).clip(0, 1).astype(np.float32)
        start = stop


def check_fits(out: Path, count: int, shape: tuple[int, ...], labelled: bool) -> None:
    """ConfigError when `count` samples of `shape` cannot be written to `out`: more than a
    .png grid or a .txt holds, or more float32 bytes than the disk has free."""
    if out.suffix == ".png" and count > MAX_GRID:
        raise ConfigError(f"n={count} is too many images for one .png grid (at most {MAX_GRID}); "
                          "write them to out=<file>.npz.")
    if out.suffix == ".txt" and count > MAX_TEXT:
        raise ConfigError(f"n={count} is more sentences than ganrun samples at once (at most "
                          f"{MAX_TEXT}); run sample several times with different seeds.")
    if out.suffix != ".npz":
        return
    needed = count * (int(np.prod(shape)) * 4 + (4 if labelled else 0)) + (1 << 20)
    existing = out.parent.resolve()
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ConfigError(f"n={count} images of {'x'.join(map(str, shape))} float32 need "
                          f"{needed / 2**30:.1f} GiB, but {existing} has {free / 2**30:.1f} GiB "
                          "free; choose a smaller n or another out=.")


def _write_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype,
                  chunks: Iterator[np.ndarray]) -> None:
    """One `.npy` member of shape `shape`, its data streamed from `chunks` (C order)."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                  "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(member, header)
        for part in chunks:
            member.write(np.ascontiguousarray(part, dtype=dtype).tobytes())


def write_npz(out: Path, count: int, image_shape: tuple[int, ...],
              images: Callable[[], Iterator[np.ndarray]],
              labels: Callable[[int, int], np.ndarray | None]) -> None:
    """Stream `count` images (and their labels, when `labels` gives any) to `out`, keys
    "images" ((N, H, W) for one channel, as keras.datasets, else (N, H, W, C)) and "labels".
    Written under a temporary name and renamed, so a failure leaves no partial file."""
    shape = image_shape[:-1] if image_shape[-1] == 1 else image_shape
    temporary = out.with_name(out.name + ".tmp")
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            _write_member(archive, "images", (count, *shape), np.float32,
                          (part.reshape(len(part), *shape) for part in images()))
            if labels(0, min(count, 1)) is not None:
                _write_member(archive, "labels", (count,), np.int32,
                              (labels(s, min(s + LATENT_BLOCK, count))
                               for s in range(0, count, LATENT_BLOCK)))
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
