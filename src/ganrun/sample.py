"""`ganrun sample`: images from a run directory's latest checkpoint, without the dataset.

The generator is rebuilt from the run's `experiment.yaml` (the config it was started with)
and `data_spec.json`, and only its variables are restored from the checkpoint. Latents are
drawn with a stateless generator from `seed`, so the same checkpoint and seed always give
the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from ganrun import build, summaries
from ganrun.checkpoints import Checkpoints
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError, GanrunError
from ganrun.train import fixed_latents

CHUNK = 500  # images generated per forward pass, to bound memory for large n


def load_generator(run_dir: Path, checkpoint: str = "latest"):
    """(generator, pixel_range, checkpoint path) of the run's newest readable checkpoint, or
    with checkpoint="best" of its lowest-FID one (checkpoints/best, see train.eval_every)."""
    if checkpoint not in ("latest", "best"):
        raise ConfigError(f"checkpoint={checkpoint!r} must be latest or best.")
    config_path, spec_path = run_dir / "experiment.yaml", run_dir / "data_spec.json"
    if not config_path.is_file() or not spec_path.is_file():
        raise GanrunError(f"{run_dir} is not a ganrun run directory (no experiment.yaml); pass "
                          "run=<the hydra.run.dir of a training run>.")
    cfg = OmegaConf.load(config_path)
    generator = build.generator(cfg, DataSpec.from_json(spec_path))
    directory = run_dir / "checkpoints" / ("best" if checkpoint == "best" else "")
    path = Checkpoints(tf.train.Checkpoint(generator=generator), directory).restore_latest()
    if path is None and checkpoint == "best":
        raise GanrunError(f"{run_dir} has no best checkpoint (it is kept only when training "
                          "evaluates, train.eval_every > 0); use checkpoint=latest.")
    if path is None:
        raise GanrunError(f"{run_dir} has no checkpoint yet; train first "
                          f"(ganrun train hydra.run.dir={run_dir}).")
    return generator, build.generator_pixel_range(cfg), path


def generate(generator, pixel_range, count: int, seed: int) -> np.ndarray:
    """float32 (count, H, W, C) images in [0, 1] from latents fixed by `seed`."""
    latents = fixed_latents(count, int(generator.input_shape[-1]), seed)
    low, high = pixel_range
    chunks = [generator(latents[start:start + CHUNK], training=False)
              for start in range(0, count, CHUNK)]
    return ((np.concatenate(chunks) - low) / (high - low)).clip(0, 1).astype(np.float32)


def sample_to_file(run_dir: Path, count: int, out: Path | None, seed: int = 0,
                   checkpoint: str = "latest") -> Path:
    """Write `count` samples to `out` (.npz with key "images", or a .png grid)."""
    if count <= 0:
        raise ConfigError(f"n={count} must be a positive number of images.")
    out = out or run_dir / "samples" / f"sample_seed{seed}.png"
    if out.suffix not in (".npz", ".png"):
        raise ConfigError(f"out={out} must end in .npz (arrays) or .png (a grid).")
    generator, pixel_range, _ = load_generator(run_dir, checkpoint)
    images = generate(generator, pixel_range, count, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        summaries.write_png(out, summaries.image_grid(images))
    else:
        # (N, H, W) for single-channel data, as keras.datasets does; (N, H, W, C) otherwise.
        np.savez(out, images=images[..., 0] if images.shape[-1] == 1 else images)
    return out
