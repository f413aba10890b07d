"""Text-GAN metrics of a generator: BLEU-2..5, Self-BLEU-2..5, NLL-gen, NLL-oracle; the
temperature sweep (quality-diversity curve, PNG plot); evaluation during and after training.

Every number carries its definition (sample count, seed, temperature, references, pool size,
tokenization). BLEU and Self-BLEU are ganrun.evaluate.bleu's exact re-implementation of nltk's
`sentence_bleu` (method1 smoothing, all test sentences as references); NLL-oracle uses the
oracle of ganrun.data.oracle. The training data itself is scored the same way as a reference
row (`data_section`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from ganrun import pruning, summaries
from ganrun.data.corpora import TextData
from ganrun.errors import ConfigError
from ganrun.evaluate.best import BEST_DIR, BestCheckpoint, read_best, resolve_metric
from ganrun.evaluate.bleu import bleu_report, self_bleu
from ganrun.models.text_conv import argmax_ids
from ganrun.text_train import sample_ids

log = logging.getLogger(__name__)

ORDERS = (2, 3, 4, 5)


def nll_gen(generator, ids: np.ndarray, pad_id: int | None, batch: int = 250) -> float:
    """The generator's mean per-token NLL (nats) of int ids (N, L) under teacher forcing,
    over every position that is not padding (`pad_id`; None = every position)."""
    total, count = 0.0, 0
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            part, generator(part, training=False)).numpy().astype(np.float64)
        mask = np.ones_like(part, bool) if pad_id is None else part != pad_id
        total, count = total + float(nll[mask].sum()), count + int(mask.sum())
    return total / max(count, 1)


def bleu_entries(tokens: list[list[str]], data: TextData, pool_size: int) -> dict:
    """BLEU-n vs all test sentences and Self-BLEU-n on a pool of `pool_size` of `tokens`."""
    report = bleu_report(tokens, data.test_tokens, ORDERS, tokenization=data.tokenization)
    pool = min(pool_size, len(tokens))
    entries = {f"bleu{n}": {"value": report[f"bleu{n}"], "definition": report["definition"]}
               for n in ORDERS}
    for n in ORDERS:
        entries[f"self_bleu{n}"] = {
            "value": self_bleu(tokens, n, pool_size=pool, seed=0),
            "definition": f"Texygen Self-BLEU-{n}: each of a pool of {pool} samples (seeded "
                          "subset) scored by nltk sentence_bleu (method1) against the other "
                          f"{pool - 1}; higher = less diverse"}
    return entries


def _nll_entries(generator, data: TextData, ids: np.ndarray, n_test: int) -> dict:
    test = data.x_test[:n_test]
    entries = {"nll_gen": {
        "value": nll_gen(generator, test, data.pad_id),
        "definition": f"generator's mean per-token NLL (nats) of the first {len(test)} test "
                      "sequences, teacher forcing, "
                      + ("padding excluded, <eos> included" if data.pad_id is not None
                         else f"all {data.spec.shape[0]} positions")}}
    if data.oracle is not None:
        value, entropy = data.oracle.nll(ids)
        entries["nll_oracle"] = {"value": value, "definition": f"oracle's mean per-token NLL "
                                 f"(nats) of the {len(ids)} generated sequences"}
        _, own = data.oracle.nll(data.x_test[:len(ids)])
        entries["oracle_entropy"] = {"value": own, "definition": "the oracle's entropy rate "
                                     "(nats/token): mean exact next-token entropy along "
                                     f"{min(len(ids), len(data.x_test))} oracle samples; the "
                                     "floor of NLL-oracle"}
    return entries


def autoregressive(generator) -> bool:
    """Whether the generator samples token by token (relgan: it has NLL-gen and temperatures)
    rather than emitting every position from a latent at once (model=wgan_char)."""
    return hasattr(generator, "rollout")


def draw_ids(generator, n: int, seed: int, temperature: float = 1.0) -> tuple[np.ndarray, str]:
    """int32 (n, L) ids and how they were drawn. An autoregressive generator (relgan) samples
    at `temperature`; a latent one (model=wgan_char) emits all positions at once and is decoded
    by argmax per position (as Gulrajani et al.'s gan_language.py), where no temperature applies."""
    if autoregressive(generator):
        return sample_ids(generator, n, seed, temperature), (
            f"{n} sequences sampled at temperature {temperature} (seed {seed}), decoded up to "
            "<eos>")
    if temperature != 1.0:
        raise ConfigError("temperatures apply to autoregressive generators (model=relgan); this "
                          "run's generator is decoded by argmax, so drop temperatures=.")
    return argmax_ids(generator, n, seed), (
        f"{n} sequences: the most probable token at each position of the generator's softmax, "
        f"for the fixed latents of seed {seed}, decoded up to <eos>")


def generator_section(generator, data: TextData, n: int, temperature: float = 1.0,
                      seed: int = 0, pool_size: int = 10000, n_test: int | None = None,
                      with_nll: bool = True) -> dict:
    """Every text metric of `n` samples drawn at `temperature` with `seed`."""
    ids, drawn = draw_ids(generator, n, seed, temperature)
    tokens = [data.decode(row) for row in ids]
    section = {"temperature": temperature, **bleu_entries(tokens, data, pool_size)}
    has_nll = autoregressive(generator)
    if with_nll and has_nll:
        section.update(_nll_entries(generator, data, ids, n_test or len(data.x_test)))
    section["definition"] = {
        "samples": drawn,
        "references": f"{len(data.test_tokens)} test sentences of {data.spec.name}",
        "tokenization": data.tokenization}
    if with_nll and not has_nll:
        section["definition"]["nll_gen"] = (
            "not computed: the generator is not autoregressive (it maps a latent to every "
            "position at once), so it assigns no likelihood to a test sentence")
    return section


def data_section(data: TextData, n: int, pool_size: int = 10000) -> dict:
    """The same BLEU / Self-BLEU of `n` training sentences (the literature's reference row)."""
    tokens = data.train_tokens[:n]
    return {**bleu_entries(tokens, data, pool_size),
            "definition": {"samples": f"the first {len(tokens)} training sentences (not "
                                      "truncated), as hypotheses",
                           "references": f"{len(data.test_tokens)} test sentences",
                           "tokenization": data.tokenization}}


def flat(section: dict, prefix: str) -> dict[str, float]:
    return {f"{prefix}/{name}": entry["value"] for name, entry in section.items()
            if isinstance(entry, dict) and "value" in entry}


def temperature_sweep(generator, data: TextData, temperatures, n: int, seed: int,
                      pool_size: int, plot: Path | None = None) -> dict:
    """Sections per temperature plus the training data's row; optional PNG of BLEU-5 vs
    Self-BLEU-5 (the quality-diversity curve: up = better quality, left = more diverse)."""
    rows = {f"{t:g}": generator_section(generator, data, n, float(t), seed, pool_size,
                                        with_nll=False) for t in temperatures}
    result = {"temperatures": rows, "training_data": data_section(data, n, pool_size)}
    if plot is not None:
        plot_sweep(result, plot)
    return result


def plot_sweep(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only the sweep needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = result["temperatures"]
    xs = [row["self_bleu5"]["value"] for row in rows.values()]
    ys = [row["bleu5"]["value"] for row in rows.values()]
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(xs, ys, "o-", label="generator, temperature sweep")
    for label, x, y in zip(rows, xs, ys, strict=True):
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    real = result["training_data"]
    axes.plot([real["self_bleu5"]["value"]], [real["bleu5"]["value"]], "k*", markersize=12,
              label="training data")
    axes.set_xlabel("Self-BLEU-5 (lower = more diverse)")
    axes.set_ylabel("BLEU-5 vs test set (higher = better)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


class TextEvaluation:
    """fit's evaluation hook for text runs: BLEU + NLL-gen of `n` samples every `every` steps,
    and every metric of `final_n` samples at the end (metrics.json "eval")."""

    def __init__(self, data: TextData, every: int, n: int, final_n: int, seed: int = 0,
                 best_metric: str = "auto", has_nll: bool = True):
        self.data, self.every, self.n, self.final_n, self.seed = data, every, n, final_n, seed
        # checkpoints/best needs the periodic evaluation: without it there is nothing to rank.
        self.best = BestCheckpoint(*resolve_metric(best_metric, "text", data.oracle is not None,
                                                   has_nll), n) if every else None

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def periodic(self, trainer, step: int, writer, run_dir: Path) -> None:
        section = generator_section(trainer.generator, self.data, self.n, 1.0, self.seed,
                                    self.n, n_test=min(self.n, 1000))
        summaries.write_scalars(writer, flat(section, "eval_periodic"), step)
        log.info("step %d  eval (%d samples): %s", step, self.n, "  ".join(
            f"{k} {v:.4g}" for k, v in flat(section, "").items()))
        self.best.offer(trainer.generator, step, section, run_dir,
                        f"{self.n} samples at temperature 1, seed {self.seed}; NLL-gen on "
                        f"{min(self.n, 1000)} test sequences")
        pruning.report(step, flat(section, "eval_periodic"))  # an Optuna trial's pruner

    def final_entries(self, trainer, step: int, writer, run_dir: Path) -> dict:
        """metrics.json's "eval" (every metric of `final_n` samples of the final generator),
        its flat "eval/<metric>" entries (sweep objectives) and "best" (checkpoints/best)."""
        entries = {}
        if self.final_n:
            section = generator_section(trainer.generator, self.data, self.final_n, 1.0,
                                        self.seed, self.final_n)
            section = {"step": step, **section}
            summaries.write_scalars(writer, flat(section, "eval"), step)
            entries = {"eval": section,
                       **{k: {"value": v, "definition": section[k[5:]]["definition"]}
                          for k, v in flat(section, "eval").items()}}
        best = read_best(Path(run_dir) / BEST_DIR)
        if best is not None:
            entries["best"] = best
        return entries


def make_text_evaluation(data: TextData, options, has_nll: bool = True) -> TextEvaluation | None:
    """The evaluation `options` ask for (None when off); `has_nll`: see `autoregressive`."""
    resolve_metric(options.best_metric, "text", data.oracle is not None)  # a bad name, even off
    if not options.eval_every and not options.eval_final_n:
        return None
    return TextEvaluation(data, options.eval_every, options.eval_n, options.eval_final_n,
                          options.seed, options.best_metric, has_nll)


def format_rows(rows: dict[str, dict]) -> str:
    """A table: one row per section, BLEU-2..5, Self-BLEU-2..5 and NLLs where present."""
    names = [f"bleu{n}" for n in ORDERS] + [f"self_bleu{n}" for n in ORDERS]
    names += [k for k in ("nll_gen", "nll_oracle", "oracle_entropy")
              if any(k in row for row in rows.values())]
    widths = [max(12, len(name) + 2) for name in names]
    lines = [f"{'':<16}" + "".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True))]
    for label, row in rows.items():
        cells = [row[name]["value"] if name in row else math.nan for name in names]
        lines.append(f"{label:<16}" + "".join(f"{value:>{w}.4f}"
                                               for value, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def evaluate_text_run(run_dir: Path, data: TextData, generator, checkpoint_path: str, n: int,
                      seed: int = 0, temperatures=None, key: str = "eval") -> dict:
    """`ganrun eval` on a text run: every metric of `n` samples at temperature 1 (metrics.json
    `key`: "eval" for the latest checkpoint, "eval_best" for the best); with `temperatures`,
    the sweep (metrics.json "<key>_temperatures", the PNG `<run>/<key>_temperatures.png`).
    Returns {label: section} rows for `format_rows`."""
    from ganrun.evaluate.run_eval import update_metrics_json  # noqa: PLC0415

    step = int(Path(checkpoint_path).name.rsplit("-", 1)[-1])
    section = {"step": step, "checkpoint": str(checkpoint_path),
               **generator_section(generator, data, n, 1.0, seed, n)}
    update_metrics_json(run_dir, key, section)
    writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
    summaries.write_scalars(writer, flat(section, key), step)
    rows = {"generator T=1": section}
    if temperatures:
        sweep = temperature_sweep(generator, data, temperatures, n, seed, n,
                                  Path(run_dir) / f"{key}_temperatures.png")
        update_metrics_json(run_dir, f"{key}_temperatures", sweep)
        rows.update({f"T={label}": row for label, row in sweep["temperatures"].items()})
        rows["training data"] = sweep["training_data"]
    writer.flush()
    return rows


def evaluate_text_run_dir(run_dir: Path, data: TextData, n: int, checkpoint: str,
                          seed: int = 0, temperatures=None) -> str:
    """`ganrun eval` for a run whose data is text: restore the generator of the run's latest
    or best checkpoint (as `ganrun sample` does), score it, return the printed table."""
    from ganrun.evaluate.run_eval import check_same_data  # noqa: PLC0415
    from ganrun.sample import load_generator  # noqa: PLC0415 (sample imports the training stack)

    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ConfigError(f"n={n!r} must be an integer of at least 2 (10000 for numbers "
                          "comparable with the literature).")
    check_same_data(run_dir, data)
    generator, _, path = load_generator(Path(run_dir), checkpoint)
    rows = evaluate_text_run(run_dir, data, generator, path, n, seed,
                             list(temperatures) if temperatures else None,
                             "eval_best" if checkpoint == "best" else "eval")
    return format_rows(rows)
