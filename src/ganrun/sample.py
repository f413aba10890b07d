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
from ganrun.experiment_record import check_described
from ganrun.rundir import load_experiment
from ganrun.sample_output import LATENT_BLOCK, check_fits, image_chunks, write_npz
from ganrun.sampling import (
    CHUNK,
    class_labels,
    draw_ids,
    generate,
    grid_labels,
    num_classes,
    proportional_labels,
)

WHOLE_LABELS = 1 << 24  # up to this n (64 MB of int32) labels are drawn as one array


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
    spec_path = run_dir / "data_spec.json"
    cfg = load_experiment(run_dir)  # validated; every _target_ on ganrun's allowlist
    if not spec_path.is_file():
        raise GanrunError(f"{run_dir} is not a ganrun run directory (no data_spec.json); pass "
                          "run=<the hydra.run.dir of a training run>.")
    spec = DataSpec.from_json(spec_path)
    check_described(run_dir, cfg, spec)
    generator = build.generator(cfg, spec)
    directory = run_dir / "checkpoints" / ("best" if checkpoint == "best" else "")
    # The latest checkpoint holds the EMA weights apart (ganrun.ema); best holds what was scored.
    ema = checkpoint == "latest" and OmegaConf.select(cfg, "train.ema_decay", default=0)
    objects = {"generator_ema" if ema else "generator": generator}
    # Only the generator is restored: the rest of the checkpoint is expected to stay unread.
    path = Checkpoints(tf.train.Checkpoint(**objects), directory).restore_latest(partial=True)
    if path is None and checkpoint == "best":
        raise GanrunError(f"{run_dir} has no best checkpoint (it is kept only when training "
                          "evaluates, train.eval_every > 0); use checkpoint=latest.")
    if path is None:
        raise GanrunError(f"{run_dir} has no checkpoint yet; train first "
                          f"(ganrun train hydra.run.dir={run_dir}).")
    return generator, build.generator_pixel_range(cfg), path


def labels_of_rows(generator, label: int | None, count: int, frequencies=()):
    """`labels(start, stop)`: rows start..stop-1 of `class_labels(generator, count, label,
    frequencies)` (None when unconditional), computed per chunk so memory does not grow
    with `count`. Proportional labels are a shuffle of the whole (count,) array, so beyond
    WHOLE_LABELS rows each latent block (LATENT_BLOCK rows; chunks never cross one) gets
    its own proportional shuffle instead."""
    classes = num_classes(generator)
    class_labels(generator, 1, label)  # checks `label` against the run
    if not classes:
        return lambda start, stop: None
    if label is not None:
        return lambda start, stop: np.full(stop - start, int(label), np.int32)
    if len(frequencies) == classes and count <= WHOLE_LABELS:  # sliced from the whole array
        whole = proportional_labels(count, frequencies)
        return lambda start, stop: whole[start:stop]
    if len(frequencies) == classes:  # beyond: proportional and shuffled within each block
        return lambda start, stop: proportional_labels(
            LATENT_BLOCK, frequencies)[start % LATENT_BLOCK:(start % LATENT_BLOCK) + stop - start]
    return lambda start, stop: (np.arange(start, stop) % classes).astype(np.int32)


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
    labels = labels_of_rows(generator, label, count, frequencies)
    shape = tuple(int(d) for d in generator.outputs[0].shape[1:])
    check_fits(out, count, shape, labels(0, 1) is not None)
    if guide is not None and guide.name != "none":
        from ganrun.guide_sources import draw_guided  # noqa: PLC0415

        # Guided within each label: outputs keep the labels unguided sampling gives them.
        arrays, _ = draw_guided(run_dir, checkpoint, guide, count, seed, label=label)
        return _write_guided(out, arrays[0], arrays[1] if len(arrays) > 1 else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":  # streamed: memory does not grow with n
        write_npz(out, count, shape, lambda: image_chunks(generator, pixel_range, count, seed,
                                                          CHUNK, labels), labels)
        return out
    row_labels, columns = class_labels(generator, count, label), None
    if row_labels is not None and label is None:  # a row per class
        row_labels, columns = grid_labels(count, num_classes(generator))
        count = len(row_labels)
    images = generate(generator, pixel_range, count, seed, row_labels)
    summaries.write_png(out, summaries.image_grid(images, columns))
    return out


def _write_guided(out: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    """Guided images (already in memory: guidance draws them in chunks of proposals) to a
    .png grid or an .npz with "images" (and "labels")."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        summaries.write_png(out, summaries.image_grid(images, None))
    else:  # (N, H, W) for single-channel data, as keras.datasets does; (N, H, W, C) otherwise
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
    check_fits(out, count, (), False)
    generator, _, _ = load_generator(run_dir, checkpoint)
    cfg, vocab_path = load_experiment(run_dir), run_dir / "vocab.json"
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
