"""`ganrun sample`: images from a run directory's latest checkpoint, without the dataset.

The generator is rebuilt from the run's `experiment.yaml` (the config it was started with)
and `data_spec.json`, and only its variables are restored from the checkpoint. Latents are
drawn with a stateless generator from `seed`, so the same checkpoint and seed always give
the same images. A run with train.ema_decay > 0 samples from its EMA generator; a
class-conditional run draws one class (`label=7`) or all classes in turn.
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
from ganrun.experiment_record import check_described
from ganrun.rundir import load_experiment
from ganrun.sample_output import LATENT_BLOCK, check_fits, image_chunks, write_npz
from ganrun.train import grid_inputs

CHUNK = 500  # images generated per forward pass, to bound memory for large n
WHOLE_LABELS = 1 << 24  # up to this n (64 MB of int32) labels are drawn as one array


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
    generator = build.any_generator(cfg, spec)
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


def num_classes(generator) -> int:
    """The class count of a conditional generator (ganrun.models.image), 0 otherwise."""
    return generator.get_layer("label_embedding").input_dim if len(generator.inputs) > 1 else 0


def proportional_labels(count: int, frequencies) -> np.ndarray:
    """int32 (count,) labels, class k repeated in proportion to frequencies[k] (largest
    remainders, so the counts are exact to one image), in a fixed shuffled order: metrics
    computed over splits of the samples (the classifier score) need every split mixed."""
    shares = np.asarray(frequencies, np.float64) / np.sum(frequencies) * count
    counts = np.floor(shares).astype(np.int64)
    counts[np.argsort(counts - shares)[: count - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return np.random.default_rng(0).permutation(labels)


def class_labels(generator, count: int, label: int | None = None,
                 frequencies=()) -> np.ndarray | None:
    """int32 (count,) labels for a conditional generator: all `label`; without one, in the
    training data's class proportions (`frequencies`, DataSpec.class_frequencies) when
    known, else 0..K-1 in turn."""
    classes = num_classes(generator)
    if not classes:
        if label is not None:
            raise ConfigError(f"label={label} needs a class-conditional run "
                              "(model.conditional=true); drop label=.")
        return None
    if label is not None and not 0 <= int(label) < classes:
        raise ConfigError(f"label={label} is not a class of this run; use 0..{classes - 1}.")
    if label is not None:
        return np.full(count, int(label), np.int32)
    if len(frequencies) == classes:
        return proportional_labels(count, frequencies)
    return (np.arange(count) % classes).astype(np.int32)


def generate(generator, pixel_range, count: int, seed: int,
             labels: np.ndarray | None = None, frequencies=()) -> np.ndarray:
    """float32 (count, H, W, C) images in [0, 1] from latents fixed by `seed`; a conditional
    generator gets `labels` (default: see class_labels, with the data's `frequencies`)."""
    if labels is None:
        labels = class_labels(generator, count, frequencies=frequencies)
    chunks = image_chunks(generator, pixel_range, count, seed, CHUNK,
                          lambda start, stop: None if labels is None else labels[start:stop])
    return np.concatenate(list(chunks))


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
    grid_labels, columns = class_labels(generator, count, label), None
    if grid_labels is not None and label is None:
        _, grid_labels, columns = grid_inputs(count, 1, seed, num_classes(generator))  # per class
        count = len(grid_labels)
    images = generate(generator, pixel_range, count, seed, grid_labels)
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
    `seed` (ganrun.evaluate.text.draw_ids)."""
    from ganrun.data.corpora import TextData  # noqa: PLC0415
    from ganrun.data.text import Vocabulary  # noqa: PLC0415
    from ganrun.evaluate.text import draw_ids  # noqa: PLC0415

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
