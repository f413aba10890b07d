"""The best checkpoint: the generator whose periodic evaluation scored best on one metric.

Image and text runs share it. `train.best_metric` names the metric (`auto`: FID for images,
NLL-gen for text, i.e. early stopping on held-out likelihood); its direction is fixed by the
metric (lower FID, higher BLEU, ...). Every `train.eval_every` steps the evaluation offers its
result; when it beats the record the generator is saved to `checkpoints/best/` (a TensorFlow
checkpoint holding only `generator`, written atomically by CheckpointManager) and
`checkpoints/best/best.json` records step, metric, value and sample count, so a resumed run
keeps competing with it. Values from another sample count or another metric are not
comparable, so the first of those replaces the record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from ganrun.checkpoints import Checkpoints
from ganrun.errors import ConfigError, GanrunError
from ganrun.jsonfile import write_json_atomic
from ganrun.rundir import read_json

log = logging.getLogger(__name__)

BEST_DIR = Path("checkpoints") / "best"

# The periodic metrics per data kind, each with True when higher is better.
METRICS = {
    "image": {"fid": False, "kid": False, "classifier_score": True, "class_coverage": True,
              "precision": True, "recall": True},
    "text": {**{f"bleu{n}": True for n in (2, 3, 4, 5)},
             **{f"self_bleu{n}": False for n in (2, 3, 4, 5)},
             "nll_gen": False, "nll_oracle": False},
}
AUTO = {"image": "fid", "text": "nll_gen"}


def resolve_metric(name: str, kind: str, has_oracle: bool = False,
                   has_nll: bool = True) -> tuple[str, bool]:
    """(metric, higher_is_better) for `train.best_metric=name` on `kind` data; NLL-oracle needs
    oracle data, NLL-gen an autoregressive generator (model=wgan_char's has none)."""
    known = [m for m in METRICS[kind] if (m != "nll_oracle" or has_oracle)
             and (m != "nll_gen" or has_nll)]
    if name == "auto" and AUTO[kind] not in known:
        raise ConfigError(f"train.best_metric=auto means {AUTO[kind]}, which this model does not "
                          f"have (its generator is not autoregressive); set one of "
                          f"{', '.join(known)}.")
    name = AUTO[kind] if name == "auto" else name
    if name not in known:
        raise ConfigError(f"train.best_metric={name!r} is not a periodic metric of this {kind} "
                          f"run; use auto or one of {', '.join(known)}.")
    return name, METRICS[kind][name]


def read_best(best_dir: Path) -> dict | None:
    """The best checkpoint's record (step, metric, value, n_fake, ...), or None."""
    path = Path(best_dir) / "best.json"
    if not path.is_file():
        return None
    record = read_json(path)  # a damaged file is one sentence naming it
    value = record.get("value")
    if not isinstance(record.get("metric"), str) or isinstance(value, bool) or \
            not isinstance(value, int | float):
        raise GanrunError(f"{path} is damaged (no metric name and numeric value); delete it to "
                          "start a new best record, or restore it from a copy of the run.")
    return record


class BestCheckpoint:
    """Keeps `run_dir/checkpoints/best` at the generator with the best `metric` so far."""

    def __init__(self, metric: str, higher_is_better: bool, n: int):
        self.metric, self.higher_is_better, self.n = metric, higher_is_better, n

    def _beats(self, value: float, record: dict | None) -> bool:
        if record is None or record.get("n_fake") != self.n or record.get("metric") != self.metric:
            return True
        return value > record["value"] if self.higher_is_better else value < record["value"]

    def offer(self, generator, step: int, section: dict, run_dir: Path,
              definition: str) -> bool:
        """Save `generator` as best if `section[metric]` beats the record; True if saved.

        `definition` says how the section was measured (samples, references)."""
        value = float(section[self.metric]["value"])
        best_dir = Path(run_dir) / BEST_DIR
        if not self._beats(value, read_best(best_dir)):
            return False
        path = Checkpoints(tf.train.Checkpoint(generator=generator), best_dir, keep=1).save(step)
        write_json_atomic(best_dir / "best.json", {
            "step": step, "metric": self.metric, "value": value, self.metric: value,
            "n_fake": self.n, "checkpoint": Path(path).name,
            "definition": f"{'highest' if self.higher_is_better else 'lowest'} periodic "
                          f"{self.metric} so far ({definition})"})
        log.info("New best %s %.4g at step %d: saved %s.", self.metric, value, step, path)
        return True
