"""`ganrun eval`: score a run's generator against the test split, with floors and definitions
(image runs: FID, KID, ... ; text runs: BLEU, Self-BLEU, NLL-gen and the temperature sweep).

The images come from the run's own data (loaded by the caller from the run's
experiment.yaml), which must be the data the run was trained on. The result is written to
the run's metrics.json — section "eval" for the latest checkpoint, "eval_best" for the best
one, leaving the training entries alone — and to TensorBoard (`eval/<metric>` or
`eval_best/<metric>`, with `<prefix>/definition` as text) at the checkpoint's step.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from ganrun import summaries
from ganrun.data.corpora import TextData
from ganrun.data.images import ImageData
from ganrun.errors import ConfigError
from ganrun.evaluate import scores, text
from ganrun.evaluate.during_training import write_section
from ganrun.evaluate.feature_net import EvaluatorOptions, load_or_train
from ganrun.jsonfile import update_json
from ganrun.sample import check_same_data, load_generator
from ganrun.sampling import generate, num_classes


def _step_of(checkpoint_path: str) -> int:
    return int(Path(checkpoint_path).name.rsplit("-", 1)[-1])


def _labels_note(generator) -> str:
    return (", labels in the training split's class proportions" if num_classes(generator)
            else "")


def evaluate_run(run_dir: Path, data: ImageData, n: int, checkpoint: str,
                 evaluator: EvaluatorOptions, seed: int = 0) -> dict:
    """Score `n` samples of the run's `checkpoint` (best|latest); return the written section."""
    run_dir = Path(run_dir)
    if not isinstance(n, int) or isinstance(n, bool) or n < 2 * scores.PR_K:
        raise ConfigError(f"n={n!r} must be an integer of at least {2 * scores.PR_K} "
                          "(10000 for numbers comparable with ganrun's defaults).")
    generator, pixel_range, path = load_generator(run_dir, checkpoint)
    check_same_data(run_dir, data)
    scorer = scores.Scorer(load_or_train(data, evaluator), data, n)
    step = _step_of(path)
    images = generate(generator, pixel_range, n, seed,
                      frequencies=data.spec.class_frequencies)
    section = scorer.score(images, f"{checkpoint} checkpoint {path} (step {step}), latents "
                                   f"seed {seed}{_labels_note(generator)}")
    section = {"step": step, "checkpoint": checkpoint, **section}
    key = "eval" if checkpoint == "latest" else "eval_best"
    update_json(run_dir / "metrics.json", key, section)
    writer = tf.summary.create_file_writer(str(run_dir / "tb"))
    write_section(writer, key, section, step)
    writer.flush()
    return section


def format_table(section: dict) -> str:
    """The result as a small table: metric, value, floor."""
    lines = [f"{'metric':<18}{'value':>12}{'floor':>12}"]
    for name in scores.DEFINITIONS:
        entry = section[name]
        extra = (f" ± {entry['std_error']:.2g}" if name == "kid" else
                 f"  ({entry['classes_covered']}/{entry['num_classes']} classes)"
                 if name == "class_coverage" else "")
        lines.append(f"{name:<18}{entry['value']:>12.5g}{entry['floor']:>12.5g}{extra}")
    definition = section["definition"]
    lines.append(f"n_fake {definition['n_fake']}, n_real {definition['n_real']} "
                 f"({definition['real_split']}); {definition['feature_network']}")
    return "\n".join(lines)


def evaluate_text_run(run_dir: Path, data: TextData, generator, checkpoint_path: str, n: int,
                      seed: int = 0, temperatures=None, key: str = "eval") -> dict:
    """`ganrun eval` on a text run: every metric of `n` samples at temperature 1 (metrics.json
    `key`: "eval" for the latest checkpoint, "eval_best" for the best); with `temperatures`,
    the sweep (metrics.json "<key>_temperatures", the PNG `<run>/<key>_temperatures.png`).
    Returns {label: section} rows for `format_rows`."""
    step = int(Path(checkpoint_path).name.rsplit("-", 1)[-1])
    section = {"step": step, "checkpoint": str(checkpoint_path),
               **text.generator_section(generator, data, n, 1.0, seed, n)}
    update_json(Path(run_dir) / "metrics.json", key, section)
    writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
    summaries.write_scalars(writer, text.flat(section, key), step)
    rows = {"generator T=1": section}
    if temperatures:
        sweep = text.temperature_sweep(generator, data, temperatures, n, seed, n,
                                  Path(run_dir) / f"{key}_temperatures.png")
        update_json(Path(run_dir) / "metrics.json", f"{key}_temperatures", sweep)
        rows.update({f"T={label}": row for label, row in sweep["temperatures"].items()})
        rows["training data"] = sweep["training_data"]
    writer.flush()
    return rows


def evaluate_text_run_dir(run_dir: Path, data: TextData, n: int, checkpoint: str,
                          seed: int = 0, temperatures=None) -> str:
    """`ganrun eval` for a run whose data is text: restore the generator of the run's latest
    or best checkpoint (as `ganrun sample` does), score it, return the printed table."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ConfigError(f"n={n!r} must be an integer of at least 2 (10000 for numbers "
                          "comparable with the literature).")
    check_same_data(run_dir, data)
    generator, _, path = load_generator(Path(run_dir), checkpoint)
    rows = evaluate_text_run(run_dir, data, generator, path, n, seed,
                             list(temperatures) if temperatures else None,
                             "eval_best" if checkpoint == "best" else "eval")
    return text.format_rows(rows)
