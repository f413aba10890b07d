"""Tokenization, vocabulary, encoding and file reading in ganrun.data.text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ganrun.data.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Vocabulary,
    encode_tokens,
    read_lines,
    split_holdout,
    tokenize,
)
from ganrun.errors import ConfigError, DataError, GanrunError


def assert_one_sentence(error: pytest.ExceptionInfo) -> str:
    """User-facing errors are a single line ending in a period; returns the message."""
    message = str(error.value)
    assert isinstance(error.value, GanrunError)
    assert "\n" not in message and message.endswith(".")
    return message


# ---------------------------------------------------------------------------------------------
# tokenize
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A man, riding a horse.", ["a", "man", ",", "riding", "a", "horse", "."]),
        ("The CAT sat!", ["the", "cat", "sat", "!"]),
        ("it's a dog's toy", ["it", "'s", "a", "dog", "'s", "toy"]),
        ("two cats (black) ; one dog?", ["two", "cats", "(", "black", ")", ";", "one", "dog", "?"]),
        ("Crème BRÛLÉE at the café\n", ["crème", "brûlée", "at", "the", "café"]),
        ("   ", []),
        ("", []),
    ],
)
def test_word_tokenize_lowercases_and_splits_punctuation(line, expected):
    assert tokenize(line) == expected
    assert tokenize(line, level="word") == expected


def test_word_tokenize_does_not_split_sentences_inside_a_line():
    # preserve_line=True: no sentence splitting, so an inner "." stays attached Treebank-style.
    assert tokenize("A dog. A cat.") == ["a", "dog.", "a", "cat", "."]


def test_char_tokenize_keeps_case_and_strips_newline():
    assert tokenize("Ab c.\n", level="char") == ["A", "b", " ", "c", "."]
    assert tokenize("Hé\r\n", level="char") == ["H", "é"]
    assert tokenize("", level="char") == []


def test_unknown_level_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        tokenize("a b", level="subword")
    assert "word" in assert_one_sentence(error)


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

CORPUS = [["b", "a", "c"], ["a", "b", "d"], ["a", "e"], ["c"]]  # a:3 b:2 c:2 d:1 e:1


def test_vocabulary_special_ids_and_ordering():
    vocab = Vocabulary.build(CORPUS)
    assert vocab.tokens[:4] == SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    # Descending count, ties alphabetical.
    assert vocab.tokens[4:] == ("a", "b", "c", "d", "e")
    assert vocab.size == 9
    assert vocab.lookup("c") == 6 and vocab.lookup("zzz") == UNK_ID
    assert "a" in vocab and "zzz" not in vocab


def test_vocabulary_min_count_and_max_size():
    assert Vocabulary.build(CORPUS, min_count=2).tokens[4:] == ("a", "b", "c")
    # max_size counts the four special tokens.
    capped = Vocabulary.build(CORPUS, max_size=6)
    assert capped.size == 6 and capped.tokens[4:] == ("a", "b")
    assert Vocabulary.build(CORPUS, max_size=1000).size == 9


def test_vocabulary_ignores_literal_special_tokens_in_data():
    vocab = Vocabulary.build([["<unk>", "a", "<pad>"], ["<eos>", "a"]])
    assert vocab.tokens == SPECIAL_TOKENS + ("a",)


@pytest.mark.parametrize(("max_size", "min_count"), [(4, 1), (0, 1), (None, 0)])
def test_vocabulary_bad_settings_are_config_errors(max_size, min_count):
    with pytest.raises(ConfigError) as error:
        Vocabulary.build(CORPUS, max_size=max_size, min_count=min_count)
    assert_one_sentence(error)


def test_vocabulary_rejects_missing_specials_and_duplicates():
    with pytest.raises(ValueError):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError):
        Vocabulary(SPECIAL_TOKENS + ("a", "a"))


def test_vocabulary_is_frozen():
    vocab = Vocabulary.build(CORPUS)
    with pytest.raises(AttributeError):
        vocab.tokens = ()  # type: ignore[misc]


def test_encode_pads_and_appends_eos_when_it_fits():
    vocab = Vocabulary.build(CORPUS)
    ids, truncated = vocab.encode(["a", "b", "zzz"], max_len=6)
    assert ids == [4, 5, UNK_ID, EOS_ID, PAD_ID, PAD_ID]
    assert truncated is False


def test_encode_exact_fit_has_no_eos_and_is_not_truncated():
    vocab = Vocabulary.build(CORPUS)
    assert vocab.encode(["a", "b", "c"], max_len=3) == ([4, 5, 6], False)


def test_encode_truncates_long_sentences():
    vocab = Vocabulary.build(CORPUS)
    assert vocab.encode(["a", "b", "c", "d"], max_len=2) == ([4, 5], True)
    assert vocab.encode([], max_len=3) == ([EOS_ID, PAD_ID, PAD_ID], False)
    with pytest.raises(ConfigError):
        vocab.encode(["a"], max_len=0)


def test_decode_round_trip_and_special_handling():
    vocab = Vocabulary.build(CORPUS)
    tokens = ["c", "a", "e"]
    ids, _ = vocab.encode(tokens, max_len=8)
    assert vocab.decode(ids) == tokens
    assert vocab.decode(np.array(ids, dtype=np.int32)) == tokens
    # bos/pad skipped anywhere, everything after eos ignored, unknown ids decode as <unk>.
    assert vocab.decode([BOS_ID, 4, PAD_ID, UNK_ID, 5, EOS_ID, 6, 7]) == ["a", "<unk>", "b"]
    with pytest.raises(ValueError):
        vocab.decode([4, vocab.size])


def test_json_round_trip_is_plain_json(tmp_path):
    vocab = Vocabulary.build([["café", "naïve", "a"], ["a"]])
    path = tmp_path / "sub" / "vocab.json"
    vocab.to_json(path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["tokens"] == list(vocab.tokens)
    assert "café" in path.read_text(encoding="utf-8")  # not \u-escaped
    assert Vocabulary.from_json(path) == vocab


def test_from_json_errors(tmp_path):
    with pytest.raises(DataError) as error:
        Vocabulary.from_json(tmp_path / "missing.json")
    assert "does not exist" in assert_one_sentence(error)

    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError) as error:
        Vocabulary.from_json(bad_json)
    assert_one_sentence(error)

    wrong_specials = tmp_path / "wrong.json"
    wrong_specials.write_text(
        json.dumps({"format": "ganrun.vocabulary", "version": 1, "tokens": ["a", "b"]}),
        encoding="utf-8",
    )
    with pytest.raises(DataError) as error:
        Vocabulary.from_json(wrong_specials)
    assert "malformed" in assert_one_sentence(error)

    not_a_vocab = tmp_path / "list.json"
    not_a_vocab.write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(DataError):
        Vocabulary.from_json(not_a_vocab)


# ---------------------------------------------------------------------------------------------
# read_lines
# ---------------------------------------------------------------------------------------------


def test_read_lines_skips_blank_lines_and_line_endings(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"\xef\xbb\xbfa cat\r\n\n   \r\nthe dog \n\t\nlast line without newline")
    assert read_lines(path) == ["a cat", "the dog ", "last line without newline"]


def test_read_lines_keeps_unicode_line_separator_inside_a_sentence(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("a\u2028b\nc\n", encoding="utf-8")
    assert read_lines(str(path)) == ["a\u2028b", "c"]


def test_read_lines_missing_file(tmp_path):
    with pytest.raises(DataError) as error:
        read_lines(tmp_path / "nope.txt")
    message = assert_one_sentence(error)
    assert "nope.txt" in message and "does not exist" in message


def test_read_lines_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError) as error:
        read_lines(tmp_path)
    assert_one_sentence(error)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n\t\r\n"])
def test_read_lines_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_lines(path)
    assert "no non-blank lines" in assert_one_sentence(error)


def test_read_lines_non_utf8_names_line_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    content = "first line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1")
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_lines(path)
    message = assert_one_sentence(error)
    assert "line 3" in message
    bad_byte_offset = content.index(b"\xe9")
    assert f"byte offset {bad_byte_offset}" in message
    assert "UTF-8" in message


# ---------------------------------------------------------------------------------------------
# encode_tokens and split_holdout
# ---------------------------------------------------------------------------------------------


def encode_corpus(lines, vocab, max_len, level="word"):
    """Tokenize, then encode, as ganrun.data.corpora does."""
    return encode_tokens([tokenize(line, level) for line in lines], vocab, max_len)


def test_encode_corpus_shape_dtype_and_truncation_count():
    lines = ["A cat.", "a dog runs in the big park", "the cat"]
    vocab = Vocabulary.build([tokenize(line) for line in lines])
    ids, n_truncated = encode_corpus(lines, vocab, max_len=4, level="word")
    assert ids.shape == (3, 4) and ids.dtype == np.int32
    assert ids.min() >= 0 and ids.max() < vocab.size
    assert n_truncated == 1
    assert vocab.decode(ids[0]) == ["a", "cat", "."]
    assert ids[2].tolist() == [vocab.lookup("the"), vocab.lookup("cat"), EOS_ID, PAD_ID]


def test_encode_corpus_char_level():
    lines = ["Ab", "ba"]
    vocab = Vocabulary.build([tokenize(line, "char") for line in lines])
    ids, n_truncated = encode_corpus(lines, vocab, max_len=3, level="char")
    assert n_truncated == 0
    assert [vocab.decode(row) for row in ids] == [["A", "b"], ["b", "a"]]


def test_encode_corpus_all_unknown_is_a_data_error():
    vocab = Vocabulary.build([["x", "y"]])
    with pytest.raises(DataError) as error:
        encode_corpus(["a cat", "the dog"], vocab, max_len=5)
    assert "vocabulary" in assert_one_sentence(error)
    with pytest.raises(DataError):
        encode_corpus([], vocab, max_len=5)


def test_split_holdout_is_deterministic_disjoint_and_ordered():
    lines = [f"sentence {i}" for i in range(50)]
    train, test = split_holdout(lines, fraction=0.2, seed=3)
    assert len(test) == 10 and len(train) == 40
    assert sorted(train + test) == sorted(lines) and not set(train) & set(test)
    assert train == [line for line in lines if line in set(train)]  # original order kept
    assert split_holdout(lines, 0.2, seed=3) == (train, test)
    assert split_holdout(lines, 0.2, seed=4) != (train, test)


def test_split_holdout_edge_fractions():
    lines = ["a", "b", "c"]
    assert split_holdout(lines, 0.0, seed=0) == (lines, [])
    assert len(split_holdout(lines, 0.01, seed=0)[1]) == 1  # a positive fraction holds out >= 1
    for fraction in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError):
            split_holdout(lines, fraction, seed=0)
    with pytest.raises(DataError):
        split_holdout(["only"], 0.5, seed=0)


# ---------------------------------------------------------------------------------------------
# Real data (skipped unless GANRUN_DATA_DIR points at the shared data)
# ---------------------------------------------------------------------------------------------


def test_coco_train_reads_and_encodes():
    root = os.environ.get("GANRUN_DATA_DIR")
    if not root:
        pytest.skip("GANRUN_DATA_DIR is not set")
    path = Path(root) / "text" / "coco" / "train.txt"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    lines = read_lines(path)
    assert len(lines) == 10_000
    sample = lines[:500]
    vocab = Vocabulary.build([tokenize(line) for line in sample], max_size=300)
    ids, n_truncated = encode_corpus(sample, vocab, max_len=20)
    assert ids.shape == (500, 20) and 0 <= n_truncated < 500
    assert np.all((ids >= 0) & (ids < 300))
