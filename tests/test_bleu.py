"""ganrun.evaluate.bleu must reproduce nltk's sentence_bleu (method1, uniform weights) exactly."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, closest_ref_length, sentence_bleu

from ganrun.evaluate.bleu import (
    bleu_report,
    corpus_bleu_vs_references,
    self_bleu,
    self_bleu_scores,
    sentence_bleu_scores,
)

ORDERS = (2, 3, 4, 5)
TOLERANCE = 1e-9
METHOD1 = SmoothingFunction().method1


def nltk_bleu(references, hypothesis, n):
    """The reference implementation: one nltk sentence_bleu call for BLEU-n."""
    return sentence_bleu(references, hypothesis, weights=(1 / n,) * n, smoothing_function=METHOD1)


def nltk_bleu_all_orders(references, hypothesis, orders=ORDERS):
    """nltk BLEU for several orders in one call (nltk shares the n-gram counts across weights)."""
    scores = sentence_bleu(
        references,
        hypothesis,
        weights=[(1 / n,) * n for n in orders],
        smoothing_function=METHOD1,
    )
    return dict(zip(orders, scores, strict=True))


def words(*sentences):
    """Whitespace-tokenized sentences: words("a b", "c") == [["a", "b"], ["c"]]."""
    return [sentence.split() for sentence in sentences]


def case(name, hypothesis, *references):
    """(name, hypothesis tokens, reference token lists) from whitespace-separated strings."""
    return name, hypothesis.split(), words(*references)


# (name, hypothesis, references): each targets one branch of nltk's computation.
TINY_CASES = [
    case("hypothesis shorter than n", "a cat", "a cat sat on the mat"),
    case("single token", "cat", "a cat", "cat"),
    case("no overlap at all", "x y z w v u", "a b c d e f"),
    case("exact match", "a man riding a horse on the beach", "a man riding a horse on the beach"),
    case(
        "repeated n-grams clipped",
        "the the the the the the the",
        "the cat is on the mat",
        "there is a cat on the mat",
    ),
    case("repeated bigrams clipped", "a b a b a b a b", "a b a b c", "a b x a b a b"),
    case(
        "references of different lengths",
        "a dog runs in the park",
        "dog",
        "a dog runs in a big green park today",
        "the dog is running in the park now",
    ),
    case("longer than every reference", "a b c d e f g h i j", "a b c", "b c d e"),
    case(
        "tie in closest length picks shorter", "a cat on a mat", "a cat on mat", "a cat is on a mat"
    ),
    case("tie decides brevity penalty", "a cat on a mat", "cat mat on", "a cat is on the red mat"),
    ("empty reference among references", words("a cat on a mat")[0], [[], ["a", "cat"]]),
    case("empty hypothesis", "", "a cat on a mat"),
    case("unigram overlap only", "cat dog bird fish", "fish bird dog cat"),
    ("characters as tokens", list("a cat sat"), [list("a bat sat"), list("the cats")]),
]


@pytest.mark.parametrize("n", ORDERS)
@pytest.mark.parametrize(
    ("hypothesis", "references"),
    [case[1:] for case in TINY_CASES],
    ids=[case[0] for case in TINY_CASES],
)
def test_sentence_bleu_equals_nltk_on_tiny_cases(hypothesis, references, n):
    expected = nltk_bleu(references, hypothesis, n)
    got = sentence_bleu_scores([hypothesis], references, n)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=TOLERANCE, rel=0)
    assert corpus_bleu_vs_references([hypothesis], references, n) == pytest.approx(
        expected, abs=TOLERANCE, rel=0
    )


def test_tiny_cases_hit_the_special_branches():
    """Guard that the hand-made cases really exercise zero, one and in-between scores."""
    assert nltk_bleu(TINY_CASES[2][2], TINY_CASES[2][1], 4) == 0  # no overlap -> 0
    assert nltk_bleu(TINY_CASES[3][2], TINY_CASES[3][1], 4) == pytest.approx(1.0)
    # Closest-length tie (3 vs 7 around 5): the shorter wins, so no brevity penalty applies.
    hypothesis, references = TINY_CASES[9][1], TINY_CASES[9][2]
    assert closest_ref_length(references, len(hypothesis)) == 3


def test_corpus_bleu_is_mean_of_sentence_scores_on_random_tokens():
    """Small alphabet -> many shared n-grams, repeats and length ties; several refs per hyp."""
    rng = np.random.default_rng(0)
    alphabet = list("abcde")

    def sentence():
        return [str(t) for t in rng.choice(alphabet, size=int(rng.integers(0, 9)))]

    hypotheses = [sentence() for _ in range(40)]
    references = [sentence() for _ in range(25)]
    for n in ORDERS:
        expected = [nltk_bleu(references, hypothesis, n) for hypothesis in hypotheses]
        got = sentence_bleu_scores(hypotheses, references, n)
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
        assert corpus_bleu_vs_references(hypotheses, references, n) == pytest.approx(
            float(np.mean(expected)), abs=TOLERANCE, rel=0
        )


def test_multi_weight_nltk_call_matches_single_weight_calls():
    """The COCO test uses one nltk call for all orders; it must equal separate calls."""
    for _, hypothesis, references in TINY_CASES:
        combined = nltk_bleu_all_orders(references, hypothesis)
        for n in ORDERS:
            assert combined[n] == nltk_bleu(references, hypothesis, n)


POOL = words(
    "a cat sits on the mat",
    "a cat sits on a mat",  # same length as the first: leave-one-out length ties
    "the dog sleeps",
    "a cat sits on the mat",  # duplicate of the first: its top count is shared
)


@pytest.mark.parametrize("n", ORDERS)
def test_self_bleu_equals_nltk_each_sample_against_the_others(n):
    expected = [nltk_bleu(POOL[:i] + POOL[i + 1 :], POOL[i], n) for i in range(len(POOL))]
    np.testing.assert_allclose(self_bleu_scores(POOL, n), expected, atol=TOLERANCE, rtol=0)
    assert self_bleu(POOL, n) == pytest.approx(np.mean(expected), abs=TOLERANCE, rel=0)


def test_self_bleu_on_random_tokens_matches_nltk():
    rng = np.random.default_rng(1)
    samples = [
        [str(t) for t in rng.choice(list("abcd"), size=int(rng.integers(1, 8)))] for _ in range(30)
    ]
    for n in ORDERS:
        expected = [nltk_bleu(samples[:i] + samples[i + 1 :], samples[i], n) for i in range(30)]
        np.testing.assert_allclose(self_bleu_scores(samples, n), expected, atol=TOLERANCE, rtol=0)


def test_self_bleu_pool_is_a_seeded_subset():
    samples = words(*(f"w{i} common words here x{i % 3}" for i in range(12)))
    chosen = np.sort(np.random.default_rng(7).choice(len(samples), size=5, replace=False))
    pool = [samples[i] for i in chosen]
    assert self_bleu(samples, 3, pool_size=5, seed=7) == pytest.approx(
        self_bleu(pool, 3), abs=TOLERANCE, rel=0
    )
    assert self_bleu(samples, 3, pool_size=5, seed=7) == self_bleu(samples, 3, pool_size=5, seed=7)
    assert self_bleu(samples, 3, pool_size=100) == self_bleu(samples, 3)


def test_invalid_inputs_raise_value_error():
    with pytest.raises(ValueError):
        corpus_bleu_vs_references([], words("a b"), 2)
    with pytest.raises(ValueError):
        corpus_bleu_vs_references(words("a b"), [], 2)
    with pytest.raises(ValueError):
        self_bleu(words("a b"), 2)
    with pytest.raises(ValueError):
        bleu_report(words("a b"), words("a b"), orders=(0, 2))


def test_bleu_report_keys_values_and_definition():
    hypotheses = words("a cat on a mat", "the dog sleeps", "a man rides a horse")
    references = words("a cat sits on the mat", "a dog sleeps", "a man is riding a horse")
    report = bleu_report(hypotheses, references)
    assert set(report) == {"bleu2", "bleu3", "bleu4", "bleu5", "definition"}
    for n in ORDERS:
        assert report[f"bleu{n}"] == pytest.approx(
            corpus_bleu_vs_references(hypotheses, references, n), abs=TOLERANCE, rel=0
        )
    assert report["bleu2"] >= report["bleu3"] >= report["bleu4"] >= report["bleu5"]
    definition = report["definition"]
    assert "3 hypotheses" in definition and "3 references" in definition
    assert "method1" in definition and "uniform weights" in definition
    assert "tokenization" in definition


# ---------------------------------------------------------------------------------------------
# Real data (skipped unless GANRUN_DATA_DIR points at the shared data)
# ---------------------------------------------------------------------------------------------


def coco_file(name: str) -> Path:
    root = os.environ.get("GANRUN_DATA_DIR")
    if not root:
        pytest.skip("GANRUN_DATA_DIR is not set")
    path = Path(root) / "text" / "coco" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def test_bleu_equals_nltk_on_coco_sample():
    """200 random COCO test captions against 2,000 random COCO train captions (~8 s in nltk)."""
    from ganrun.data.text import read_lines, tokenize

    rng = np.random.default_rng(2024)
    train = read_lines(coco_file("train.txt"))
    test = read_lines(coco_file("test.txt"))
    references = [tokenize(train[i]) for i in rng.choice(len(train), 2000, replace=False)]
    hypotheses = [tokenize(test[i]) for i in rng.choice(len(test), 200, replace=False)]

    expected = [nltk_bleu_all_orders(references, hypothesis) for hypothesis in hypotheses]
    report = bleu_report(hypotheses, references)
    for n in ORDERS:
        nltk_scores = [scores[n] for scores in expected]
        got = sentence_bleu_scores(hypotheses, references, n)
        np.testing.assert_allclose(got, nltk_scores, atol=TOLERANCE, rtol=0)
        assert report[f"bleu{n}"] == pytest.approx(
            math.fsum(nltk_scores) / len(nltk_scores), abs=TOLERANCE, rel=0
        )
