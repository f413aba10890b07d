"""`ganrun sample`: images from a run directory's latest checkpoint, without the dataset.

The generator is rebuilt from the run's `experiment.yaml` (the config it was started with)
and `data_spec.json`, and only its variables are restored from the checkpoint. Latents are
drawn with a stateless generator from `seed`, so the same checkpoint and seed always give
the same images. A run with train.ema_decay > 0 samples from its EMA generator; a
class-conditional run draws one class (`label=7`) or all classes in turn.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from ganrun import build, summaries
from ganrun.checkpoints import Checkpoints
from ganrun.data.corpora import TextData
from ganrun.data.spec import DataSpec
from ganrun.data.text import Vocabulary
from ganrun.errors import ConfigError, DataError, GanrunError
from ganrun.sampling import class_labels, draw_ids, generate, grid_labels, num_classes


def _identity(spec: DataSpec) -> tuple:
    """What must agree between two loads of the same data (the file's SHA-256, not its path)."""
    digest = re.search(r"sha256 ([0-9a-f]{64})", spec.source)
    return (spec.kind, spec.name, tuple(spec.shape), spec.num_classes, spec.num_examples,
            digest.group(1) if digest else spec.source)


def check_same_data(run_dir: Path, data) -> None:
    """Raise DataError unless `data` (ImageData or TextData) is the data the run in `run_dir`
    was trained on."""
    saved = DataSpec.from_json(run_dir / "data_spec.json")
    if _identity(saved) != _identity(data.spec):
        raise DataError(
            f"the data loaded from {run_dir / 'experiment.yaml'} ({data.spec.source}) is not "
            f"the data this run was trained on ({saved.source}); restore that file or point "
            "data.path / GANRUN_DATA_DIR at it.")


def load_generator(run_dir: Path, checkpoint: str = "latest"):
    """(generator, pixel_range, checkpoint path) of the run's newest readable checkpoint, or
    with checkpoint="best" of its best-scoring one (checkpoints/best, see
    ganrun.evaluate.best)."""
    if checkpoint not in ("latest", "best"):
        raise ConfigError(f"checkpoint={checkpoint!r} must be latest or best.")
    config_path, spec_path = run_dir / "experiment.yaml", run_dir / "data_spec.json"
    if not config_path.is_file() or not spec_path.is_file():
        raise GanrunError(f"{run_dir} is not a ganrun run directory (no experiment.yaml); pass "
                          "run=<the hydra.run.dir of a training run>.")
    cfg = OmegaConf.load(config_path)
    generator = build.generator(cfg, DataSpec.from_json(spec_path))
    directory = run_dir / "checkpoints" / ("best" if checkpoint == "best" else "")
    # The latest checkpoint holds the EMA weights apart (ganrun.ema); best holds what was scored.
    ema = checkpoint == "latest" and OmegaConf.select(cfg, "train.ema_decay", default=0)
    objects = {"generator_ema" if ema else "generator": generator}
    path = Checkpoints(tf.train.Checkpoint(**objects), directory).restore_latest()
    if path is None and checkpoint == "best":
        raise GanrunError(f"{run_dir} has no best checkpoint (it is kept only when training "
                          "evaluates, train.eval_every > 0); use checkpoint=latest.")
    if path is None:
        raise GanrunError(f"{run_dir} has no checkpoint yet; train first "
                          f"(ganrun train hydra.run.dir={run_dir}).")
    return generator, build.generator_pixel_range(cfg), path


def sample_to_file(run_dir: Path, count: int, out: Path | None, seed: int = 0,
                   checkpoint: str = "latest", label: int | None = None, guide=None,
                   temperature: float = 1.0) -> Path:
    """Write `count` samples to `out` (.npz with key "images", or a .png grid); for a
    conditional run, of class `label`, or (label None) a grid with one row per class.
    `guide` (ganrun.guide.GuideOptions, None = unguided) picks among generator proposals
    with the run's calibrated classifier; `temperature` is for text runs."""
    if count <= 0:
        raise ConfigError(f"n={count} must be a positive number of images.")
    spec_path = run_dir / "data_spec.json"
    if spec_path.is_file() and DataSpec.from_json(spec_path).kind == "text":
        return text_to_file(run_dir, count, out, seed, checkpoint, label, guide, temperature)
    if temperature != 1.0:
        raise ConfigError("temperature= is for text runs; drop it for an image run.")
    out = out or run_dir / "samples" / f"sample_seed{seed}.png"
    if out.suffix not in (".npz", ".png"):
        raise ConfigError(f"out={out} must end in .npz (arrays) or .png (a grid).")
    generator, pixel_range, _ = load_generator(run_dir, checkpoint)
    frequencies = DataSpec.from_json(spec_path).class_frequencies if spec_path.is_file() else ()
    labels, columns = class_labels(generator, count, label, frequencies), None
    if guide is not None and guide.name != "none":
        from ganrun.guide_sources import draw_guided  # noqa: PLC0415

        # Guided outputs keep the label each accepted proposal was drawn with.
        arrays, _ = draw_guided(run_dir, checkpoint, guide, count, seed, label=label)
        images, labels = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        return _write_images(out, images, labels, None)
    if labels is not None and label is None and out.suffix == ".png":
        labels, columns = grid_labels(count, num_classes(generator))  # a row per class
        count = len(labels)
    images = generate(generator, pixel_range, count, seed, labels)
    return _write_images(out, images, labels, columns)


def _write_images(out: Path, images: np.ndarray, labels: np.ndarray | None,
                  columns: int | None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        summaries.write_png(out, summaries.image_grid(images, columns))
    else:
        # (N, H, W) for single-channel data, as keras.datasets does; (N, H, W, C) otherwise.
        arrays = {"images": images[..., 0] if images.shape[-1] == 1 else images}
        np.savez(out, **arrays, **({} if labels is None else {"labels": labels}))
    return out


def text_to_file(run_dir: Path, count: int, out: Path | None, seed: int = 0,
                 checkpoint: str = "latest", label: int | None = None, guide=None,
                 temperature: float = 1.0) -> Path:
    """A text run's `count` sentences, one a line, to `out` (.txt; default
    <run>/samples/sample_seed<seed>.txt), decoded with the run's vocab.json. relgan samples at
    temperature 1 from `seed`; wgan_char takes the argmax per position for the latents of
    `seed` (ganrun.sampling.draw_ids)."""
    if label is not None:
        raise ConfigError("label= is for class-conditional image runs; drop it for a text run.")
    out = out or run_dir / "samples" / f"sample_seed{seed}.txt"
    if out.suffix != ".txt":
        raise ConfigError(f"out={out} must end in .txt for a text run (one sentence a line).")
    generator, _, _ = load_generator(run_dir, checkpoint)
    cfg, vocab_path = OmegaConf.load(run_dir / "experiment.yaml"), run_dir / "vocab.json"
    # Decoding needs only the vocabulary (none for the oracle, whose tokens are ids) and how
    # tokens join into a line: a TextData without the corpus.
    spec = DataSpec.from_json(run_dir / "data_spec.json")
    decoder = TextData(spec, np.zeros((0, 0)), np.zeros((0, 0)), [], [],
                       Vocabulary.from_json(vocab_path) if vocab_path.is_file() else None, "",
                       separator="" if OmegaConf.select(cfg, "data.level") == "char" else " ")
    if guide is not None and guide.name != "none":
        from ganrun.guide_sources import draw_guided  # noqa: PLC0415

        ids = draw_guided(run_dir, checkpoint, guide, count, seed, temperature)[0][0]
    else:
        ids, _ = draw_ids(generator, count, seed, temperature)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(decoder.text(row) + "\n" for row in ids), encoding="utf-8")
    return out
