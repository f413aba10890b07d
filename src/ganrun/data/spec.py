"""The data's interface to the models: one small frozen record that builders read.

Shapes, channel counts, class counts and vocabulary sizes live here and nowhere else, so they
never appear twice in the YAML (NVlabs/edm `interface_kwargs`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


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

    @classmethod
    def from_json(cls, path: str | Path) -> DataSpec:
        fields = json.loads(Path(path).read_text())
        fields["shape"] = tuple(fields["shape"])
        fields["class_frequencies"] = tuple(fields.get("class_frequencies", ()))
        return cls(**fields)


def label_frequencies(labels, num_classes: int) -> tuple[float, ...]:
    """int (N,) labels in [0, num_classes) -> each class's share, rounded to 6 digits."""
    import numpy as np  # noqa: PLC0415 (the spec itself needs no numpy)

    if labels is None or not num_classes or not len(labels):
        return ()
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    return tuple(round(float(c) / float(counts.sum()), 6) for c in counts)
