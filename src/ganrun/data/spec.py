"""The data's interface to the models: one small frozen record that builders read.

Shapes, channel counts, class counts and vocabulary sizes live here and nowhere else, so they
never appear twice in the YAML (NVlabs/edm `interface_kwargs`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ganrun.errors import ConfigError


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
    """

    kind: str
    name: str
    shape: tuple[int, ...]
    num_classes: int
    num_examples: int
    source: str
    vocab_size: int = 0  # last and defaulted, so specs written before it still load

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
        fields = json.loads(Path(path).read_text())
        fields["shape"] = tuple(fields["shape"])
        return cls(**fields)
