"""Text-GAN BLEU metrics (Texygen definitions), exact to nltk but fast; numpy + pure Python.

This file owns the BLEU-n and Self-BLEU numbers that ganrun reports for text GANs. The
text-GAN literature (Texygen; SeqGAN, LeakGAN, RelGAN, ...) defines them as

* BLEU-n: for every generated sentence, nltk's ``sentence_bleu`` against ALL test sentences
  as references, uniform weights ``(1/n,) * n``, ``SmoothingFunction().method1``
  (epsilon 0.1), then the plain mean over the generated sentences;
* Self-BLEU-n: the same, but every generated sentence is scored against all OTHER generated
  sentences of the pool.

Calling nltk directly costs O(hypotheses x references) Counter builds (hours for 10k x 10k).
Here the reference side is summarised once: per n-gram order, a dict n-gram -> maximum count
over all references (for Self-BLEU the top-2 counts and the owner of the top count, which gives
every leave-one-out maximum), plus the sorted reference lengths for the brevity penalty. Each
hypothesis then costs O(its length x max_n). Every floating-point step mirrors nltk's
(``num / den``, ``w * log(p)``, ``math.fsum``, ``exp``, brevity penalty), so per-sentence scores
match nltk to rounding (tested to 1e-9).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

import numpy as np

Tokens = Sequence[str]
NGram = tuple[str, ...]

# nltk SmoothingFunction().method1 default: epsilon counts added to zero-match precisions.
METHOD1_EPSILON = 0.1


# ---------------------------------------------------------------------------------------------
# Per-sentence building blocks (each mirrors one nltk function)
# ---------------------------------------------------------------------------------------------


def _ngram_counts(tokens: Tokens, n: int) -> Counter[NGram]:
    """Counts of the n-grams of ``tokens`` (empty when len(tokens) < n, as nltk does)."""
    if len(tokens) < n:
        return Counter()
    # The shifted slices differ in length on purpose: zip stops at the shortest (the last n-gram).
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False))


def _closest_length(candidates: Sequence[int], hyp_len: int) -> int:
    """nltk ``closest_ref_length``: the nearest length, ties broken toward the shorter one."""
    return min(candidates, key=lambda ref_len: (abs(ref_len - hyp_len), ref_len))


def _closest_in_sorted(sorted_lengths: Sequence[int], hyp_len: int) -> int:
    """Closest length among the distinct, ascending ``sorted_lengths`` (non-empty) in O(log n)."""
    idx = bisect_left(sorted_lengths, hyp_len)
    # Only the neighbours around the insertion point can be closest.
    return _closest_length(sorted_lengths[max(0, idx - 1) : idx + 1], hyp_len)


def _brevity_penalty(closest_ref_len: int, hyp_len: int) -> float:
    """nltk ``brevity_penalty``: 1 if longer than the reference, 0 if empty, else exp(1 - r/c)."""
    if hyp_len > closest_ref_len:
        return 1
    if hyp_len == 0:
        return 0
    return math.exp(1 - closest_ref_len / hyp_len)


def _bleu_from_matches(matches: Sequence[int], hyp_len: int, ref_len: int, max_n: int) -> float:
    """BLEU-max_n of one sentence from its clipped n-gram matches, in [0, 1].

    ``matches[k]`` is the clipped match count of order k+1 (length >= max_n). Mirrors nltk's
    ``corpus_bleu`` for one hypothesis with method1 smoothing and uniform weights.
    """
    # nltk returns 0 when no unigram matches (this also covers the empty hypothesis).
    if matches[0] == 0:
        return 0.0
    weight = 1 / max_n
    log_terms = []
    for n in range(1, max_n + 1):
        # nltk: denominator = max(1, number of hypothesis n-grams).
        denominator = max(1, hyp_len - n + 1)
        numerator = matches[n - 1]
        precision = (METHOD1_EPSILON if numerator == 0 else numerator) / denominator
        log_terms.append(weight * math.log(precision))
    return _brevity_penalty(ref_len, hyp_len) * math.exp(math.fsum(log_terms))


# ---------------------------------------------------------------------------------------------
# BLEU against a fixed reference set
# ---------------------------------------------------------------------------------------------


def _reference_max_counts(references: Sequence[Tokens], max_n: int) -> list[dict[NGram, int]]:
    """Per order n (list index n-1): n-gram -> maximum count over all references."""
    max_counts: list[dict[NGram, int]] = [{} for _ in range(max_n)]
    for reference in references:
        for n in range(1, max_n + 1):
            table = max_counts[n - 1]
            for ngram, count in _ngram_counts(reference, n).items():
                if count > table.get(ngram, 0):
                    table[ngram] = count
    return max_counts


def _clipped_matches(hypothesis: Tokens, max_counts: list[dict[NGram, int]]) -> list[int]:
    """Clipped match counts of orders 1..len(max_counts): sum of min(count, max ref count)."""
    matches = []
    for n, table in enumerate(max_counts, start=1):
        counts = _ngram_counts(hypothesis, n)
        matches.append(sum(min(count, table.get(ngram, 0)) for ngram, count in counts.items()))
    return matches


def _check_inputs(hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_n: int) -> None:
    """Raise ValueError for inputs on which nltk would fail or the mean is undefined."""
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}.")
    if len(hypotheses) == 0:
        raise ValueError("BLEU needs at least one hypothesis.")
    if len(references) == 0:
        raise ValueError("BLEU needs at least one reference.")


def _scores_vs_references(
    hypotheses: Sequence[Tokens], references: Sequence[Tokens], orders: Sequence[int]
) -> dict[int, np.ndarray]:
    """Per-sentence BLEU for several orders at once: order -> float64 array (N,) in [0, 1]."""
    max_n = max(orders)
    _check_inputs(hypotheses, references, max_n)
    max_counts = _reference_max_counts(references, max_n)
    sorted_lengths = sorted({len(reference) for reference in references})
    scores = {n: np.empty(len(hypotheses), dtype=np.float64) for n in orders}
    for i, hypothesis in enumerate(hypotheses):
        matches = _clipped_matches(hypothesis, max_counts)
        ref_len = _closest_in_sorted(sorted_lengths, len(hypothesis))
        for n in orders:
            scores[n][i] = _bleu_from_matches(matches, len(hypothesis), ref_len, n)
    return scores


def sentence_bleu_scores(
    hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_n: int
) -> np.ndarray:
    """Per-hypothesis BLEU-max_n against all references, float64 array (N,) in [0, 1].

    Entry i equals ``nltk.translate.bleu_score.sentence_bleu(references, hypotheses[i],
    weights=(1/max_n,)*max_n, smoothing_function=SmoothingFunction().method1)``.
    Hypotheses and references are token lists (any hashable tokens; strings in practice).
    """
    return _scores_vs_references(hypotheses, references, (max_n,))[max_n]


def corpus_bleu_vs_references(
    hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_n: int
) -> float:
    """Texygen BLEU-max_n in [0, 1]: the mean of ``sentence_bleu_scores`` over the hypotheses.

    Not nltk's ``corpus_bleu`` (which pools counts): this is the text-GAN literature's mean of
    sentence-level scores, every hypothesis against ALL references.
    """
    return math.fsum(sentence_bleu_scores(hypotheses, references, max_n)) / len(hypotheses)


# ---------------------------------------------------------------------------------------------
# Self-BLEU: every sample against all the other samples
# ---------------------------------------------------------------------------------------------


def _top2_counts(samples: Sequence[Tokens], max_n: int) -> list[dict[NGram, list[int]]]:
    """Per order: n-gram -> [top count, index of a sample holding it, second-best count].

    The second-best count is taken over the other samples, so it equals the top count when two
    samples tie; the maximum over "all samples but j" is then top2 if j is the owner, else top.
    """
    tables: list[dict[NGram, list[int]]] = [{} for _ in range(max_n)]
    for index, sample in enumerate(samples):
        for n in range(1, max_n + 1):
            table = tables[n - 1]
            for ngram, count in _ngram_counts(sample, n).items():
                entry = table.get(ngram)
                if entry is None:
                    table[ngram] = [count, index, 0]
                elif count > entry[0]:
                    entry[2], entry[0], entry[1] = entry[0], count, index
                elif count > entry[2]:
                    entry[2] = count
    return tables


def _leave_one_out_matches(
    sample: Tokens, index: int, tables: list[dict[NGram, list[int]]]
) -> list[int]:
    """Clipped matches of sample ``index`` against all other samples, orders 1..len(tables)."""
    matches = []
    for n, table in enumerate(tables, start=1):
        total = 0
        for ngram, count in _ngram_counts(sample, n).items():
            top, owner, second = table[ngram]
            total += min(count, second if owner == index else top)
        matches.append(total)
    return matches


def _leave_one_out_closest(length_counts: Counter[int], sorted_lengths: list[int], h: int) -> int:
    """Closest length to ``h`` among the other samples (the sample itself has length ``h``)."""
    if length_counts[h] >= 2:
        return h  # another sample has exactly the same length
    idx = bisect_left(sorted_lengths, h)  # sorted_lengths[idx] == h, held only by this sample
    neighbours = sorted_lengths[max(0, idx - 1) : idx] + sorted_lengths[idx + 1 : idx + 2]
    return _closest_length(neighbours, h)


def _select_pool(samples: Sequence[Tokens], pool_size: int | None, seed: int) -> list[Tokens]:
    """All samples, or a seeded uniform subset of ``pool_size`` kept in the original order."""
    if pool_size is None or pool_size >= len(samples):
        return list(samples)
    if pool_size < 2:
        raise ValueError(f"Self-BLEU pool_size must be >= 2, got {pool_size}.")
    chosen = np.random.default_rng(seed).choice(len(samples), size=pool_size, replace=False)
    return [samples[i] for i in np.sort(chosen)]


def self_bleu_scores(
    samples: Sequence[Tokens], max_n: int, pool_size: int | None = None, seed: int = 0
) -> np.ndarray:
    """Per-sample Self-BLEU-max_n, float64 array (P,) in [0, 1], P = size of the pool.

    The pool is all samples when ``pool_size`` is None or >= len(samples), otherwise a uniform
    random subset of ``pool_size`` samples drawn with ``numpy.random.default_rng(seed)`` (kept
    in the original order). Entry i equals nltk's method1 ``sentence_bleu`` of pool[i] with
    references = the pool without entry i (duplicates of pool[i] elsewhere still count).
    """
    pool = _select_pool(samples, pool_size, seed)
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}.")
    if len(pool) < 2:
        raise ValueError("Self-BLEU needs at least two samples.")
    tables = _top2_counts(pool, max_n)
    length_counts = Counter(len(sample) for sample in pool)
    sorted_lengths = sorted(length_counts)
    scores = np.empty(len(pool), dtype=np.float64)
    for index, sample in enumerate(pool):
        matches = _leave_one_out_matches(sample, index, tables)
        ref_len = _leave_one_out_closest(length_counts, sorted_lengths, len(sample))
        scores[index] = _bleu_from_matches(matches, len(sample), ref_len, max_n)
    return scores


def self_bleu(
    samples: Sequence[Tokens], max_n: int, pool_size: int | None = None, seed: int = 0
) -> float:
    """Texygen Self-BLEU-max_n in [0, 1] (higher = less diverse): mean of ``self_bleu_scores``."""
    scores = self_bleu_scores(samples, max_n, pool_size=pool_size, seed=seed)
    return math.fsum(scores) / len(scores)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def bleu_report(
    hypotheses: Sequence[Tokens],
    references: Sequence[Tokens],
    orders: Sequence[int] = (2, 3, 4, 5),
    *,
    tokenization: str = "word (lowercase + nltk word_tokenize, preserve_line=True)",
) -> dict[str, float | str]:
    """BLEU-n for each n in ``orders`` (keys ``bleu2`` ... , values in [0, 1]) plus ``definition``.

    All orders share one pass over the data. ``definition`` is a human-readable sentence that
    makes the numbers reproducible: counts, tokenization, smoothing and weights.
    """
    orders = tuple(sorted(set(orders)))
    if not orders or orders[0] < 1:
        raise ValueError(f"BLEU orders must be positive integers, got {orders}.")
    scores = _scores_vs_references(hypotheses, references, orders)
    report: dict[str, float | str] = {
        f"bleu{n}": math.fsum(scores[n]) / len(hypotheses) for n in orders
    }
    report["definition"] = (
        f"Texygen BLEU-n: mean over {len(hypotheses)} hypotheses of nltk sentence_bleu against "
        f"all {len(references)} references, tokenization {tokenization}, uniform weights "
        f"(1/n,)*n, SmoothingFunction().method1 (epsilon {METHOD1_EPSILON})."
    )
    return report
