"""Host-side outputs: TensorBoard scalars, text and image grids, PNG files, text samples.

Nothing here runs inside the compiled training function: the loop returns a dict of metrics
and the host writes them (tensorflow/models `orbit/utils/summary_manager.py`). Tag names are
`/`-separated (`loss/d`, `logits/real`) so TensorBoard groups them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile images into one picture with a 1-pixel dark border between tiles.

    Args:
      images: float (N, H, W, C) in [0, 1] (values outside are clipped).
      columns: tiles per row; default ceil(sqrt(N)).
    Returns:
      uint8 (rows*(H+1)+1, columns*(W+1)+1, C).
    """
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.uint8)
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    for index in range(count):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        grid[top:top + height, left:left + width] = pixels[index]
    return grid


def write_png(path: Path, picture: np.ndarray) -> None:
    """Write a uint8 (H, W, C) picture as PNG, atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    tf.io.write_file(str(temporary), tf.io.encode_png(picture))
    temporary.replace(path)


def write_scalars(writer, values: dict[str, float], step: int) -> None:
    """One TensorBoard scalar per entry of `values`, at `step`."""
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


def write_image(writer, name: str, picture: np.ndarray, step: int) -> None:
    """A uint8 (H, W, C) picture as a TensorBoard image."""
    with writer.as_default(step=step):
        tf.summary.image(name, picture[None], max_outputs=1)


def write_text(writer, name: str, text: str, step: int) -> None:
    """Text (rendered as Markdown by TensorBoard) at `step`."""
    with writer.as_default(step=step):
        tf.summary.text(name, text)


def write_text_samples(lines: list[str], writer, run_dir: Path, step: int) -> None:
    """Sentences as `samples/step_N.txt` (one a line) and the TensorBoard text `samples`."""
    path = Path(run_dir) / "samples" / f"step_{step:07d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_text(writer, "samples", "\n".join(f"{i + 1}. `{line}`" for i, line in enumerate(lines)),
               step)
