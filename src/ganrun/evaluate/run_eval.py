"""`ganrun eval`: score a run's generator against the test split, with floors and definitions.

The images come from the run's own data (loaded by the caller from the run's
experiment.yaml), which must be the data the run was trained on. The result is written to
the run's metrics.json — section "eval" for the latest checkpoint, "eval_best" for the best
one, leaving the training entries alone — and to TensorBoard (`eval/<metric>` or
`eval_best/<metric>`, with `<prefix>/definition` as text) at the checkpoint's step.
"""

from __future__ import annotations

import re
from pathlib import Path

import tensorflow as tf

from ganrun.data.images import ImageData
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError, DataError
from ganrun.evaluate import scores
from ganrun.evaluate.during_training import write_section
from ganrun.evaluate.feature_net import EvaluatorOptions, load_or_train, write_json_atomic
from ganrun.rundir import read_json
from ganrun.sample import generate, load_generator, num_classes


def _identity(spec: DataSpec) -> tuple:
    """What must agree between two loads of the same data (the file's SHA-256, not its path)."""
    digest = re.search(r"sha256 ([0-9a-f]{64})", spec.source)
    return (spec.kind, spec.name, tuple(spec.shape), spec.num_classes, spec.num_examples,
            digest.group(1) if digest else spec.source)


def check_same_data(run_dir: Path, data: ImageData) -> None:
    """Raise DataError unless `data` is the data the run in `run_dir` was trained on."""
    saved = DataSpec.from_json(run_dir / "data_spec.json")
    if _identity(saved) != _identity(data.spec):
        raise DataError(
            f"the data loaded from {run_dir / 'experiment.yaml'} ({data.spec.source}) is not "
            f"the data this run was trained on ({saved.source}); restore that file or point "
            "data.path / GANRUN_DATA_DIR at it.")


def _step_of(checkpoint_path: str) -> int:
    return int(Path(checkpoint_path).name.rsplit("-", 1)[-1])


def update_metrics_json(run_dir: Path, key: str, section: dict) -> None:
    """Set metrics.json[key] = section, keeping every other entry."""
    path = Path(run_dir) / "metrics.json"
    content = read_json(path) if path.is_file() else {}  # damaged: one sentence naming it
    content[key] = section
    write_json_atomic(path, content)


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
    update_metrics_json(run_dir, key, section)
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
