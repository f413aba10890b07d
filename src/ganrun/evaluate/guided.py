"""`ganrun eval guide=drs|mh|is`: the run's metrics on discriminator-guided samples.

Image runs: every image metric of `n` guided images against the test split (metrics.json
"eval_guided", or "eval_best_guided" for checkpoint=best), plus a grid of guided and unguided
samples in TensorBoard. Text runs: BLEU-2..5 / Self-BLEU-2..5 (and NLL-oracle on the oracle;
NLL-gen is not defined for a guided sampler, whose normaliser is unknown) of `n` guided samples
at temperature 1; with `temperatures`, the unguided and the guided temperature sweeps on one
plot (<run>/<key>_guided_temperatures.png, also a TensorBoard image). Every section carries
"guide": the guide's definition, samples/s and acceptance (ganrun.guide.COST_DEFINITIONS).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from ganrun import summaries
from ganrun.errors import ConfigError
from ganrun.evaluate.run_eval import _step_of
from ganrun.guide import COST_DEFINITIONS
from ganrun.guide_sources import draw_guided, run_source
from ganrun.jsonfile import update_json
from ganrun.sample import check_same_data


def _cost(stats: dict) -> dict:
    return {**stats, "definitions": COST_DEFINITIONS}


def _write_cost(writer, key: str, stats: dict, step: int) -> None:
    summaries.write_scalars(writer, {f"{key}/samples_per_second": stats["samples_per_second"],
                                     f"{key}/acceptance": stats["acceptance"]}, step)


def evaluate_guided_images(run_dir: Path, data, n: int, checkpoint: str, evaluator, seed: int,
                           options) -> dict:
    """Score `n` guided images of the run's `checkpoint`; returns the written section."""
    from ganrun.evaluate import scores  # noqa: PLC0415
    from ganrun.evaluate.during_training import write_section  # noqa: PLC0415
    from ganrun.evaluate.feature_net import load_or_train  # noqa: PLC0415
    from ganrun.sampling import generate  # noqa: PLC0415

    if not isinstance(n, int) or isinstance(n, bool) or n < 2 * scores.PR_K:
        raise ConfigError(f"n={n!r} must be an integer of at least {2 * scores.PR_K} "
                          "(10000 for numbers comparable with ganrun's defaults).")
    source = run_source(Path(run_dir), checkpoint)
    check_same_data(run_dir, data)
    scorer = scores.Scorer(load_or_train(data, evaluator), data, n)
    arrays, stats = draw_guided(run_dir, checkpoint, options, n, seed, source=source)
    step = _step_of(source.checkpoint)
    section = scorer.score(arrays[0], f"{checkpoint} checkpoint {source.checkpoint} (step "
                                      f"{step}), guided: {options.definition()}, seed {seed}")
    section = {"step": step, "checkpoint": checkpoint, "guide": _cost(stats), **section}
    key = ("eval" if checkpoint == "latest" else "eval_best") + "_guided"
    update_json(Path(run_dir) / "metrics.json", key, section)
    writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
    write_section(writer, key, section, step)
    _write_cost(writer, key, stats, step)
    plain = generate(source.generator, source.pixel_range, 64, seed,
                     frequencies=data.spec.class_frequencies)
    summaries.write_image(writer, f"{key}/samples_unguided", summaries.image_grid(plain), step)
    summaries.write_image(writer, f"{key}/samples_{options.name}",
                          summaries.image_grid(arrays[0][:64]), step)
    writer.flush()
    return section


def guided_draw(source, options, costs: list, drawn: list | None = None):
    """A `draw_ids`-compatible function drawing guided ids; appends each cost record to
    `costs` (and the ids to `drawn`)."""
    def draw(generator, n: int, seed: int, temperature: float = 1.0):
        arrays, stats = draw_guided(None, None, options, n, seed, temperature, source=source)
        costs.append(stats)
        if drawn is not None:
            drawn.append(arrays[0])
        return arrays[0], (f"{n} sequences, {options.definition()}; proposals sampled at "
                           f"temperature {temperature} (seed {seed}), decoded up to <eos>")
    return draw


def _guided_section(source, data, n: int, temperature: float, seed: int, options) -> dict:
    from ganrun.evaluate.text import generator_section  # noqa: PLC0415

    costs, drawn = [], []
    section = generator_section(source.generator, data, n, temperature, seed, n,
                                with_nll=False, draw=guided_draw(source, options, costs, drawn))
    if data.oracle is not None:
        section["nll_oracle"] = {"value": data.oracle.nll(drawn[0])[0], "definition":
                                 f"oracle's mean per-token NLL (nats) of the {n} guided "
                                 "sequences"}
    section["guide"] = _cost(costs[0])
    return section


def evaluate_guided_text(run_dir: Path, data, n: int, checkpoint: str, seed: int,
                         temperatures, options) -> str:
    """`ganrun eval guide=...` on a text run; returns the printed table."""
    from ganrun.evaluate.text import flat, format_rows, plot_sweep, temperature_sweep  # noqa

    check_same_data(run_dir, data)
    source = run_source(Path(run_dir), checkpoint)
    step = _step_of(source.checkpoint)
    key = ("eval" if checkpoint == "latest" else "eval_best") + "_guided"
    section = {"step": step, "checkpoint": str(source.checkpoint),
               **_guided_section(source, data, n, 1.0, seed, options)}
    update_json(Path(run_dir) / "metrics.json", key, section)
    writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
    summaries.write_scalars(writer, flat(section, key), step)
    _write_cost(writer, key, section["guide"], step)
    rows = {f"{options.name} T=1": section}
    if temperatures:
        plot = Path(run_dir) / f"{key}_temperatures.png"
        plain = temperature_sweep(source.generator, data, temperatures, n, seed, n)
        costs: list = []
        guided = temperature_sweep(source.generator, data, temperatures, n, seed, n,
                                   draw=guided_draw(source, options, costs))
        for row, cost in zip(guided["temperatures"].values(), costs, strict=True):
            row["guide"] = _cost(cost)
        plot_sweep(plain, plot, guided, f"guide={options.name}")
        update_json(Path(run_dir) / "metrics.json", f"{key}_temperatures",
                            {"unguided": plain, "guided": guided, "plot": str(plot)})
        picture = tf.io.decode_png(tf.io.read_file(str(plot))).numpy()
        summaries.write_image(writer, f"{key}/temperature_curves", picture, step)
        rows.update({f"T={t}": r for t, r in plain["temperatures"].items()})
        rows.update({f"{options.name} T={t}": r for t, r in guided["temperatures"].items()})
        rows["training data"] = plain["training_data"]
    writer.flush()
    return format_rows(rows) + "\n" + "\n".join(
        f"{label}: {row['guide']['samples_per_second']:.1f} samples/s, acceptance "
        f"{row['guide']['acceptance']:.4f}" for label, row in rows.items() if "guide" in row)

