"""The data's interface to the models: one small frozen record that builders read.

Shapes, channel counts, class counts and vocabulary sizes live here and nowhere else, so they
never appear twice in the YAML (NVlabs/edm `interface_kwargs`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ganrun.errors import ConfigError, DataError

# Bounds of what ganrun trains on (docs/reliability.md "Bounds"); data beyond them is a
# wrong file, not a dataset: the class count sizes an embedding, the vocabulary a softmax.
MAX_CLASSES = 10_000
MAX_VOCABULARY = 1_000_000
MAX_DIMENSION = 100_000  # pixels per side, or tokens per sequence (in data_spec.json)
MAX_TEXT_LEN = 1_000  # tokens per training sequence (data.max_len, data.seq_len)


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_memory(nbytes: int, what: str, fix: str) -> None:
    """DataError when `nbytes` (the data about to be held in memory) exceed the memory the
    system has available; `what` names the data, `fix` how to shrink it."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise DataError(f"{what} would take {nbytes / 2**30:.1f} GiB of memory, but "
                        f"{free / 2**30:.1f} GiB are available; {fix}.")


def check_text_bounds(length: int, vocab_size: int, rows: int, length_key: str) -> None:
    """DataError/ConfigError-style checks of a text corpus's sizes before it is encoded."""
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_TEXT_LEN:
        raise DataError(f"data.{length_key}={length!r} must be an integer from 1 to "
                        f"{MAX_TEXT_LEN} (tokens per sequence).")
    if vocab_size > MAX_VOCABULARY:
        raise DataError(f"the vocabulary has {vocab_size} entries, more than {MAX_VOCABULARY}; "
                        "set data.max_size lower (or data.vocab_size for the oracle).")
    check_fits_memory(rows * length * 4, f"{rows} sequences of {length} int32 token ids",
                      f"lower data.{length_key} or use fewer lines")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data.

    Attributes:
      kind: "image" or "text".
      name: short dataset name for logs and metric definitions, e.g. "mnist".
      shape: one example's shape; for images (height, width, channels), for text (max_len,)
        (token ids per sequence).
      num_classes: number of labels, 0 for unlabelled data.
      num_examples: size of the training split.
      source: where the data came from (file path and SHA-256, or "generated"), for
        metric definitions.
      vocab_size: number of token ids (text; ids are 0..vocab_size-1), 0 for images.
      class_frequencies: each class's share of the training split's labels (num_classes
        floats summing to 1), empty for unlabelled data; a conditional generator sampled
        without a chosen class draws its labels in these proportions.
    """

    kind: str
    name: str
    shape: tuple[int, ...]
    num_classes: int
    num_examples: int
    source: str
    vocab_size: int = 0  # defaulted (as is what follows), so older specs still load
    class_frequencies: tuple[float, ...] = ()

    def to_json(self, path: str | Path) -> None:
        """Write the spec so `ganrun sample` can rebuild the models without the data."""
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    def text_shape(self, model: str) -> tuple[int, int]:
        """(max_len L, vocab_size V) of text data; a ConfigError naming `model` otherwise."""
        if self.kind != "text" or len(self.shape) != 1 or self.vocab_size < 2:
            raise ConfigError(f"{model} needs text data, but data {self.name!r} is "
                              f"{self.kind}; choose data=text, coco or oracle.")
        return int(self.shape[0]), int(self.vocab_size)

    @classmethod
    def from_json(cls, path: str | Path) -> DataSpec:
        """The spec written by `to_json`; a DataError naming the file if it is damaged (not
        JSON, a missing or unknown field, a value of the wrong type or out of range)."""
        from ganrun.rundir import read_json  # noqa: PLC0415 (rundir imports no data code)

        fields = read_json(Path(path))
        try:
            problem = _field_problem(fields)
        except (TypeError, ValueError) as exc:
            problem = str(exc)
        if problem:
            raise DataError(f"{path} is damaged ({problem}); restore it from a copy of the "
                            "run, or train into a new hydra.run.dir.")
        return cls(**{**fields, "shape": tuple(fields["shape"]),
                      "class_frequencies": tuple(fields.get("class_frequencies", ()))})


def _field_problem(fields: dict) -> str | None:
    """What is wrong with a data_spec.json's fields, or None."""
    names = {field.name for field in dataclasses.fields(DataSpec)}
    required = {field.name for field in dataclasses.fields(DataSpec)
                if field.default is dataclasses.MISSING}
    if set(fields) - names or required - set(fields):
        return f"fields {sorted(fields)}, expected {sorted(names)}"
    if fields["kind"] not in ("image", "text"):
        return f"kind {fields['kind']!r} is not image or text"
    if not all(isinstance(fields[k], str) for k in ("name", "source")):
        return "name and source must be strings"
    shape = fields["shape"]
    expected = 3 if fields["kind"] == "image" else 1
    if not isinstance(shape, list) or len(shape) != expected or not all(
            _count(v) and 0 < v <= MAX_DIMENSION for v in shape):
        return f"shape {shape!r} is not {expected} positive integers up to {MAX_DIMENSION}"
    for key, top in (("num_classes", MAX_CLASSES), ("num_examples", None),
                     ("vocab_size", MAX_VOCABULARY)):
        value = fields.get(key, 0)
        if not _count(value) or value < 0 or (top and value > top):
            return f"{key} {value!r} is not an integer in 0..{top or 'the data size'}"
    shares = fields.get("class_frequencies", [])
    if not isinstance(shares, list) or len(shares) not in (0, fields["num_classes"]) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
            for v in shares):
        return f"class_frequencies is not {fields['num_classes']} shares in [0, 1]"
    return None


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def label_frequencies(labels, num_classes: int) -> tuple[float, ...]:
    """int (N,) labels in [0, num_classes) -> each class's share, rounded to 6 digits."""
    import numpy as np  # noqa: PLC0415 (the spec itself needs no numpy)

    if labels is None or not num_classes or not len(labels):
        return ()
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    return tuple(round(float(c) / float(counts.sum()), 6) for c in counts)
