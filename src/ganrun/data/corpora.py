"""Text datasets for text GANs: `data=text` (any sentence file), `data=coco`, `data=oracle`.

Each loader returns a `TextData`: int32 id matrices (N, max_len) for training and test, the
token lists BLEU compares (tokenized exactly as the vocabulary was built), the vocabulary (saved
as `vocab.json` in the run directory) and a `DataSpec(kind="text", shape=(max_len,),
vocab_size=V)`. Tokenization and the vocabulary live in `ganrun.data.text`; the oracle in
`ganrun.data.oracle`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ganrun.data.oracle import Oracle, load_oracle_params, random_oracle
from ganrun.data.spec import MAX_VOCABULARY, DataSpec, check_text_bounds
from ganrun.data.text import (
    PAD_ID,
    Vocabulary,
    encode_tokens,
    read_lines,
    split_holdout,
    tokenize,
)
from ganrun.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TextData:
    """A tokenized corpus.

    Attributes:
      spec: DataSpec(kind="text", shape=(max_len,), vocab_size=V).
      x_train, x_test: int32 (N, max_len), (M, max_len) ids in [0, V).
      train_tokens, test_tokens: the sentences as token lists (BLEU's hypotheses/references).
      vocab: the Vocabulary (None for the oracle, whose tokens are the ids 0..V-1).
      tokenization: how the tokens were made, for metric definitions.
      pad_id: the padding id excluded from NLL-gen (None: sequences have no padding).
      oracle: the oracle LSTM (data=oracle only).
      separator: what joins decoded tokens into a line of text ("" at character level).
    """

    spec: DataSpec
    x_train: np.ndarray
    x_test: np.ndarray
    train_tokens: list[list[str]]
    test_tokens: list[list[str]]
    vocab: Vocabulary | None
    tokenization: str
    pad_id: int | None = PAD_ID
    oracle: Oracle | None = None
    separator: str = " "

    def decode(self, ids) -> list[str]:
        """Tokens of one id sequence (stops at <eos>, drops padding; oracle: ids as strings)."""
        if self.vocab is None:
            return [str(int(i)) for i in ids]
        return self.vocab.decode(ids)

    def text(self, ids) -> str:
        """One id sequence as a line of text (`decode`, joined by `separator`)."""
        return self.separator.join(self.decode(ids))

    def save(self, run_dir: Path) -> None:
        """Write what a run directory needs to decode samples: `vocab.json`."""
        if self.vocab is not None:
            self.vocab.to_json(Path(run_dir) / "vocab.json")


def _source(path: Path) -> str:
    return f"{path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"


def load_text(path: str | None, test_path: str | None = None, level: str = "word",
              max_len: int = 32, max_size: int | None = None, min_count: int = 1,
              holdout: float = 0.1, seed: int = 0, name: str = "text") -> TextData:
    """A sentence file (one per line, UTF-8) as a TextData.

    The vocabulary comes from the training lines only. Without `test_path`, a `holdout`
    fraction of the lines (chosen with `seed`) is the test set. Lines longer than `max_len`
    tokens are truncated (counted in the log).
    """
    if not path:
        raise ConfigError("data=text needs a training file; set data.path=<file with one "
                          "sentence per line>.")
    path = Path(path)
    lines = read_lines(path)
    if test_path:
        train_lines, test_lines = lines, read_lines(Path(test_path))
    else:
        train_lines, test_lines = split_holdout(lines, holdout, seed)
        if not test_lines:
            raise ConfigError("data.holdout=0 with no data.test_path leaves no test set; set "
                              "data.test_path or a holdout fraction above 0.")
    train_tokens = [tokenize(line, level) for line in train_lines]
    test_tokens = [tokenize(line, level) for line in test_lines]
    vocab = Vocabulary.build(train_tokens, max_size=max_size, min_count=min_count)
    check_text_bounds(max_len, vocab.size, len(train_tokens) + len(test_tokens), "max_len")
    x_train, cut_train = encode_tokens(train_tokens, vocab, max_len)
    x_test, cut_test = encode_tokens(test_tokens, vocab, max_len)
    log.info("Text %s: %d train / %d test lines, vocabulary %d, %d / %d lines truncated to "
             "%d tokens.", name, len(x_train), len(x_test), vocab.size, cut_train, cut_test,
             max_len)
    tokenization = ("word (lowercase + nltk word_tokenize, preserve_line=True)"
                    if level == "word" else "char (the characters of each line)")
    spec = DataSpec("text", name, (max_len,), 0, len(x_train), _source(path), vocab.size)
    return TextData(spec, x_train, x_test, train_tokens, test_tokens, vocab, tokenization,
                    separator="" if level == "char" else " ")


def _data_file(path: str | None, relative: str, what: str) -> Path:
    """`path`, else `$GANRUN_DATA_DIR/<relative>`; DataError naming both when neither exists."""
    if path:
        return Path(path)
    root = os.environ.get("GANRUN_DATA_DIR")
    if root and (Path(root) / relative).is_file():
        return Path(root) / relative
    raise DataError(f"no {what} found; set data.path or point GANRUN_DATA_DIR at a directory "
                    f"holding {relative}.")


def load_coco(path: str | None = None, test_path: str | None = None, max_len: int = 32,
              max_size: int | None = None, min_count: int = 1, level: str = "word") -> TextData:
    """The COCO-captions text-GAN split (Texygen's image_coco / test_coco, 10k lines each),
    word level (or `level="char"`), from `data.path`/`data.test_path` or
    `$GANRUN_DATA_DIR/text/coco/`."""
    train = _data_file(path, "text/coco/train.txt", "COCO captions train.txt")
    test = Path(test_path) if test_path else _data_file(
        str(train.with_name("test.txt")) if path else None, "text/coco/test.txt",
        "COCO captions test.txt")
    return load_text(str(train), str(test), level, max_len, max_size, min_count, name="coco")


def load_oracle(path: str | None = None, random_oracle_seed: int | None = None,
                num_examples: int = 10000, test_examples: int = 10000, seq_len: int = 20,
                vocab_size: int = 5000, embed_dim: int = 32, hidden_dim: int = 32,
                seed: int = 0) -> TextData:
    """The synthetic oracle benchmark: `num_examples` training and `test_examples` test
    sequences of length `seq_len` sampled from the oracle (seeds `seed` and `seed + 1`).

    Weights from `data.path`, else `$GANRUN_DATA_DIR/text/oracle/seqgan_target_params.npz`;
    with `random_oracle_seed` set, a random oracle (`vocab_size`, `embed_dim`, `hidden_dim`).
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or \
            not 1 <= vocab_size <= MAX_VOCABULARY:
        raise ConfigError(f"data.vocab_size={vocab_size!r} must be an integer from 1 to "
                          f"{MAX_VOCABULARY}.")
    if random_oracle_seed is not None:
        oracle = random_oracle(vocab_size, embed_dim, hidden_dim, random_oracle_seed)
        source = (f"random oracle (seed {random_oracle_seed}, vocabulary {vocab_size}, "
                  f"embedding {embed_dim}, hidden {hidden_dim})")
    else:
        file = _data_file(path, "text/oracle/seqgan_target_params.npz", "oracle weights "
                          "(or set data.random_oracle_seed=0 for a random oracle)")
        oracle, source = load_oracle_params(file), _source(file)
    if min(num_examples, test_examples, seq_len) < 1:
        raise ConfigError("data.num_examples, data.test_examples and data.seq_len must be "
                          "positive.")
    check_text_bounds(seq_len, oracle.vocab_size, num_examples + test_examples, "seq_len")
    x_train = oracle.sample(num_examples, seq_len, seed)
    x_test = oracle.sample(test_examples, seq_len, seed + 1)
    to_tokens = lambda x: [[str(i) for i in row] for row in x]  # noqa: E731
    spec = DataSpec("text", "oracle", (seq_len,), 0, num_examples, source, oracle.vocab_size)
    return TextData(spec, x_train, x_test, to_tokens(x_train), to_tokens(x_test), None,
                    "oracle token ids", pad_id=None, oracle=oracle)
