"""Text data for text GANs: reading sentence files, tokenization, vocabulary, integer encoding.

This file owns everything between a UTF-8 file with one sentence per line and the int32 id
matrix a text GAN trains on: ``read_lines`` (with user-fixable ``DataError`` messages),
``tokenize`` (word level = lowercase + nltk ``word_tokenize``, the text-GAN literature's
tokenizer; char level = the characters), the ``Vocabulary`` (special ids pad=0, bos=1, eos=2,
unk=3; JSON on disk), ``encode_tokens`` and the seeded ``split_holdout``. Pure Python + numpy:
no TensorFlow import, so the CLI and the metrics can use it cheaply.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ganrun.errors import ConfigError, DataError

LEVELS = ("word", "char")

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

# A "sentence" longer than this is a wrong file (a JSON dump, text without newlines): the
# longest COCO caption has a few hundred characters.
MAX_LINE_CHARS = 10_000

_VOCAB_FORMAT = "ganrun.vocabulary"
_VOCAB_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------


@cache
def _nltk_word_tokenize():
    """nltk's ``word_tokenize``, imported on first use (importing nltk costs ~1 s)."""
    from nltk.tokenize import word_tokenize

    return word_tokenize


def _check_level(level: str) -> None:
    """Raise ConfigError unless ``level`` is one of ``LEVELS``."""
    if level not in LEVELS:
        raise ConfigError(
            f"Unknown tokenization level {level!r}; set it to one of {', '.join(LEVELS)}."
        )


def tokenize(line: str, level: str = "word") -> list[str]:
    """Split one sentence into tokens.

    ``word``: lowercase, then nltk ``word_tokenize(line, preserve_line=True)`` (Treebank rules:
    punctuation split off, "it's" -> "it", "'s"; needs no punkt download).
    ``char``: the characters of the line with the trailing newline removed, case kept.
    Returns an empty list for an empty (or, at word level, whitespace-only) line.
    """
    _check_level(level)
    if level == "char":
        return list(line.rstrip("\r\n"))
    return _nltk_word_tokenize()(line.lower(), preserve_line=True)


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """An immutable token <-> id mapping; ``tokens[i]`` is the token with id i.

    ids 0..3 are the special tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``; ids 4.. are
    corpus tokens by descending count, ties alphabetical. Valid ids are 0 <= id < ``size``.
    """

    tokens: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    pad_id: ClassVar[int] = PAD_ID
    bos_id: ClassVar[int] = BOS_ID
    eos_id: ClassVar[int] = EOS_ID
    unk_id: ClassVar[int] = UNK_ID

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        if tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"A vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:4]}.")
        if len(set(tokens)) != len(tokens):
            raise ValueError("A vocabulary must not contain duplicate tokens.")
        # Frozen dataclass: set the normalised tuple and the derived index via object.__setattr__.
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_index", {token: i for i, token in enumerate(tokens)})

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """Vocabulary of the tokens seen in ``token_lists``.

        ``max_size`` caps the TOTAL size including the 4 special tokens (so it equals the
        embedding/softmax size); None = no cap. Tokens seen fewer than ``min_count`` times are
        left out (they encode as ``<unk>``). Literal special tokens in the data are not counted.
        """
        if max_size is not None and max_size <= len(SPECIAL_TOKENS):
            raise ConfigError(
                f"Vocabulary max_size={max_size} leaves no room for words; set it above "
                f"{len(SPECIAL_TOKENS)} (it counts the special tokens) or leave it unset."
            )
        if min_count < 1:
            raise ConfigError(f"Vocabulary min_count={min_count} is invalid; set it to 1 or more.")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        words = sorted(
            (token for token, count in counts.items() if count >= min_count),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls(SPECIAL_TOKENS + tuple(words))

    @property
    def size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def lookup(self, token: str) -> int:
        """The id of ``token``, or ``UNK_ID`` (3) for unknown tokens."""
        return self._index.get(token, UNK_ID)

    def encode(self, tokens: Sequence[str], max_len: int) -> tuple[list[int], bool]:
        """Fixed-length ids for one sentence.

        Returns (ids, truncated): ``ids`` has exactly ``max_len`` ints in [0, size): the token
        ids, then ``<eos>`` if there is room for it, then ``<pad>``. ``truncated`` is True when
        tokens were dropped (len(tokens) > max_len); exactly max_len tokens fit without eos.
        """
        if max_len < 1:
            raise ConfigError(f"max_len={max_len} is invalid; set the sequence length to >= 1.")
        ids = [self._index.get(token, UNK_ID) for token in tokens[:max_len]]
        if len(ids) < max_len:
            ids.append(EOS_ID)
        ids.extend([PAD_ID] * (max_len - len(ids)))
        return ids, len(tokens) > max_len

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ``ids`` (ints or numpy ints): stops at ``<eos>``, skips ``<pad>``/``<bos>``.

        ``<unk>`` is kept as the string "<unk>". Raises ValueError for ids outside [0, size).
        """
        tokens = []
        for raw_id in ids:
            token_id = int(raw_id)
            if token_id == EOS_ID:
                break
            if token_id in (PAD_ID, BOS_ID):
                continue
            if not 0 <= token_id < self.size:
                raise ValueError(f"Token id {token_id} is outside [0, {self.size}).")
            tokens.append(self.tokens[token_id])
        return tokens

    def to_json(self, path: str | Path) -> None:
        """Write the vocabulary as plain UTF-8 JSON (creating parent directories)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": _VOCAB_FORMAT, "version": _VOCAB_VERSION, "tokens": list(self.tokens)}
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by ``to_json``; raises DataError if missing or malformed."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"Vocabulary file {path} does not exist; point to the vocab.json written with "
                "the run or rebuild the vocabulary from the training text."
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(
                f"Vocabulary file {path} is not readable JSON ({error}); replace it with the "
                "vocab.json written with the run or rebuild the vocabulary."
            ) from None
        return cls._from_payload(payload, path)

    @classmethod
    def _from_payload(cls, payload: Any, path: Path) -> Vocabulary:
        """Validate the decoded JSON of ``path`` and build the vocabulary from it."""
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        is_valid = (
            isinstance(payload, dict)
            and payload.get("format") == _VOCAB_FORMAT
            and isinstance(tokens, list)
            and all(isinstance(token, str) for token in tokens)
        )
        try:
            if not is_valid:
                raise ValueError(f"expected {{'format': {_VOCAB_FORMAT!r}, 'tokens': [...]}}")
            return cls(tuple(tokens))
        except ValueError as error:
            raise DataError(
                f"Vocabulary file {path} is malformed ({error}); replace it with the vocab.json "
                "written with the run or rebuild the vocabulary."
            ) from None


# ---------------------------------------------------------------------------------------------
# Files and corpora
# ---------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, with DataError for a missing or unreadable file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"Text file {path} does not exist; set the data path to an existing UTF-8 file "
            "with one sentence per line."
        ) from None
    except OSError as error:
        raise DataError(
            f"Text file {path} cannot be read ({error.strerror}); point the data path at a "
            "readable regular file with one sentence per line."
        ) from None


def _decode_utf8(data: bytes, path: Path) -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped); DataError names line and byte offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"Text file {path} is not valid UTF-8 at line {line_number} (byte offset "
            f"{error.start} in the file, counting from 0); re-encode it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > fixed.txt`."
        ) from None
    return text.removeprefix("\ufeff")


def read_lines(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file, one sentence per line, line endings removed.

    Lines are split on "\\n" only (a trailing "\\r" is dropped) so Unicode line separators
    inside a sentence do not split it. Other whitespace is kept (it matters at char level).
    Raises DataError if the file is missing, unreadable, not UTF-8, has no non-blank line, or a
    line longer than MAX_LINE_CHARS characters.
    """
    path = Path(path)
    text = _decode_utf8(_read_bytes(path), path)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    if len(lines[longest]) > MAX_LINE_CHARS:
        raise DataError(
            f"Text file {path} has a line (line {longest + 1}) of {len(lines[longest])} "
            f"characters, more than the {MAX_LINE_CHARS} a sentence may have; split the text "
            "into one sentence per line."
        )
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError(
            f"Text file {path} has no non-blank lines; fill it with one sentence per line or "
            "point the data path at the right file."
        )
    return lines


def encode_tokens(token_lists: Sequence[Sequence[str]], vocab: Vocabulary,
                  max_len: int) -> tuple[np.ndarray, int]:
    """Encode tokenized lines (see ``tokenize``; nltk tokenization is the slow part, so the
    caller tokenizes once and keeps the tokens for BLEU).

    Returns (ids, n_truncated): ``ids`` is int32 of shape (len(token_lists), max_len) with
    values in [0, vocab.size), laid out as ``Vocabulary.encode`` describes; ``n_truncated``
    counts the lines longer than ``max_len`` tokens. Raises DataError when no token at all is
    in the vocabulary (every one would be ``<unk>``), an empty corpus included.
    """
    if not any(token in vocab for tokens in token_lists for token in tokens):
        raise DataError("no token of the corpus is in the vocabulary built from the training "
                        "file; check data.path, data.level and data.min_count.")
    rows = [vocab.encode(tokens, max_len) for tokens in token_lists]
    ids = np.array([row for row, _ in rows], np.int32).reshape(len(rows), max_len)
    return ids, sum(truncated for _, truncated in rows)


def split_holdout(lines: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic random split into (train, test); each part keeps the original line order.

    The test part has round(fraction * len(lines)) lines (at least 1 when fraction > 0), chosen
    by ``numpy.random.default_rng(seed).permutation``; fraction must be in [0, 1). Raises
    ConfigError for a bad fraction and DataError when the split would leave no training line.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"Holdout fraction {fraction} is invalid; set it in [0, 1).")
    n_test = max(1, round(fraction * len(lines))) if fraction > 0 else 0
    if n_test >= len(lines):
        raise DataError(
            f"Holding out {n_test} of {len(lines)} lines leaves nothing to train on; add more "
            "sentences or lower the holdout fraction."
        )
    permutation = np.random.default_rng(seed).permutation(len(lines))
    is_test = np.zeros(len(lines), dtype=bool)
    is_test[permutation[:n_test]] = True
    train = [line for line, test in zip(lines, is_test, strict=True) if not test]
    test = [line for line, test in zip(lines, is_test, strict=True) if test]
    return train, test
