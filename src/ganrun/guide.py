"""Discriminator-guided sampling: pick among generator proposals with a calibrated classifier.

A classifier trained with logistic loss to tell real data (label 1) from the generator's
samples (label 0), on balanced classes, has logit(x) = log p_data(x) / p_g(x) at its optimum,
so exp(logit) is a density ratio. The guides below turn generator proposals into samples of
(approximately) p_g(x) * exp(logit(x)) / Z, which is p_data when the ratio is exact:

  none  every proposal is kept (the plain generator).
  drs   Discriminator Rejection Sampling (Azadi et al. 2019, arXiv:1810.06758): accept x with
        probability sigmoid(F(x) - gamma), F = l - l_max - log(1 - exp(l - l_max - eps)),
        l = logit, l_max its maximum (estimated on a burn-in batch, raised when a proposal
        exceeds it). gamma is solved (bisection) so that the mean acceptance probability on the
        burn-in batch equals `accept`; the paper's gamma is a percentile of F, chosen for the
        same purpose. Guiding within labels, l_max and gamma are estimated per label.
  mh    independence Metropolis-Hastings (Turner et al. 2019, arXiv:1811.11357): one chain per
        output, started at a generator proposal; each of `steps` proposals x' replaces the
        state x with probability min(1, exp(l(x') - l(x))); the output is the final state.
  is    self-normalised importance resampling (the residual-EBM view, Deng et al. 2020,
        arXiv:2004.11714): per output, `candidates` proposals, one kept with probability
        softmax(l) over them.

Everything here is numpy over a `propose(count, seed[, labels]) -> (arrays, logits)` callable:
arrays is a list of numpy arrays whose first axis is `count` (images, labels, token ids...),
logits float (count,) are the calibrated logits of those proposals. The same seed always gives
the same samples.

Conditional generators are guided within each label: `guided_sample(..., labels=y)` with y int
(n,) the requested labels makes output i keep label y[i], and every proposal that competes for
it (its is candidates, its mh chain, the drs proposals filling its slot) is drawn with that
label (`propose(count, seed, labels)`). The target is then p_data(x | y) with y in the
requested proportions; selecting across labels would shift the class proportions toward the
classes the classifier prefers, which FID against real data punishes. drs then keeps one l_max
and one gamma per label: the calibrated logit is l(x, y) = log p_data(x | y) / p_g(x | y) +
log p_data(y) / p_g(y), and the second term, constant within a label, does not change label y's
target but would set its acceptance under a shared l_max and gamma (a label the classifier
dislikes by 8 nats would need e^8 times the proposals).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from ganrun.errors import ConfigError

GUIDES = ("none", "drs", "mh", "is")
# propose(count, seed) or, when guiding within labels, propose(count, seed, labels int (count,))
Propose = Callable[..., tuple[list[np.ndarray], np.ndarray]]


@dataclasses.dataclass(frozen=True)
class GuideOptions:
    """The `guide:` config node (configs/guide/<name>.yaml)."""

    name: str = "none"
    accept: float = 0.1        # drs: target mean acceptance probability on the burn-in batch
    burn_in: int = 10000       # drs: proposals scored to estimate l_max and gamma
    epsilon: float = 1e-6      # drs: keeps log(1 - exp(...)) finite at l = l_max
    steps: int = 20            # mh: proposals per chain after its first state
    candidates: int = 10       # is: proposals per output
    batch: int = 2000          # proposals generated and scored per call (memory bound)

    def __post_init__(self):
        if self.name not in GUIDES:
            raise ConfigError(f"guide={self.name!r} is not a guide; use one of "
                              f"{', '.join(GUIDES)}.")
        if not 0.0 < self.accept <= 1.0:
            raise ConfigError(f"guide.accept={self.accept} must be in (0, 1].")
        for key in ("burn_in", "steps", "candidates", "batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"guide.{key}={value!r} must be a positive integer.")
        if not 0.0 < self.epsilon < 1.0:
            raise ConfigError(f"guide.epsilon={self.epsilon} must be in (0, 1).")

    def definition(self) -> str:
        """One sentence saying what the guide does with these settings."""
        return {
            "none": "unguided: every generator proposal is kept",
            "drs": f"discriminator rejection sampling (Azadi et al. 2019), gamma set for a mean "
                   f"acceptance of {self.accept} on {self.burn_in} burn-in proposals, "
                   f"epsilon {self.epsilon}",
            "mh": f"independence Metropolis-Hastings (Turner et al. 2019), one chain of "
                  f"{self.steps} proposals after its first state per output, last state kept",
            "is": f"self-normalised importance resampling: one of {self.candidates} proposals "
                  "per output, drawn with probability softmax(calibrated logit)",
        }[self.name]


def sub_seed(seed: int, index: int) -> int:
    """A distinct int seed per proposal call, so no two calls share their randomness."""
    return (int(seed) * 1_000_003 + 7919 * (index + 1)) % (2**31 - 1)


def drs_scores(logits: np.ndarray, logit_max: float | np.ndarray,
               epsilon: float) -> np.ndarray:
    """F(x) of DRS, float (n,), for float logits (n,): l - l_max - log(1 - exp(l - l_max -
    eps)). logit_max is a float, or float (n,) with each proposal's own l_max (its label's)."""
    shifted = np.minimum(np.asarray(logits, np.float64) - logit_max, 0.0) - epsilon
    return shifted + epsilon - np.log(-np.expm1(shifted))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))  # stable for any |x|


def solve_gamma(scores: np.ndarray, accept: float) -> float:
    """gamma with mean(sigmoid(scores - gamma)) = accept (bisection; the mean falls as
    gamma rises)."""
    low, high = float(np.min(scores)) - 50.0, float(np.max(scores)) + 50.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if sigmoid(scores - middle).mean() > accept:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


MIN_BURN_IN_PER_LABEL = 100  # drs: a rare label's l_max and gamma need this many proposals


def burn_in_counts(need: np.ndarray, burn_in: int) -> np.ndarray:
    """drs burn-in proposals per label, int (k,), for need int (k,) (outputs requested per
    label, all >= 1): in proportion to need, at least min(MIN_BURN_IN_PER_LABEL, burn_in)
    each; the total is burn_in, plus what that floor adds for rare labels. One label (the
    unconditional case) gets exactly burn_in."""
    share = np.round(burn_in * need / need.sum()).astype(np.int64)
    return np.maximum(share, min(MIN_BURN_IN_PER_LABEL, burn_in))


def _call(propose: Propose, count: int, seed: int, labels: np.ndarray | None):
    """propose's proposals, of the given labels when guiding within labels."""
    return propose(count, seed) if labels is None else propose(count, seed, labels)


def _take(parts: list[list[np.ndarray]], n: int) -> list[np.ndarray]:
    """The first n rows of each array kind, concatenated over the collected parts."""
    return [np.concatenate([part[k] for part in parts])[:n] for k in range(len(parts[0]))]


def _drs(propose: Propose, n: int, options: GuideOptions, seed: int,
         rng: np.random.Generator, labels: np.ndarray | None) -> tuple[list[np.ndarray], dict]:
    """Rejection sampling slot by slot: proposals are drawn with the labels of the slots still
    empty (in their proportions) until every label has as many accepted proposals as requested.
    Each label has its own l_max and gamma, estimated on its own burn-in proposals (see
    burn_in_counts), so each label's mean acceptance on its burn-in is `accept` and
    exp(l - l_max[y]) is the tight bound for label y's target p_data(x | y) (the module
    docstring says why a shared pair is wrong). Unconditional (labels None) is one label.

    Stats: proposals (burn-in included), acceptance (after the burn-in); unconditional:
    gamma and logit_max (floats, l_max after the run's updates); conditional: gamma_by_label,
    logit_max_by_label and acceptance_by_label ({label: float}) and no single gamma or
    logit_max, since no single value was used."""
    keys = np.zeros(n, np.int64) if labels is None else np.unique(labels, return_inverse=True)[1]
    values = None if labels is None else np.unique(labels)
    need = np.bincount(keys)  # outputs requested per label, int (k,)
    every_label = np.arange(len(need))

    def draw(count: int, index: int, wanted_keys: np.ndarray):
        wanted = None if values is None else values[wanted_keys]
        return _call(propose, count, sub_seed(seed, index), wanted)

    # The burn-in covers every label even when the requested labels come sorted.
    burn_keys = np.repeat(every_label, burn_in_counts(need, options.burn_in))
    _, burn_logits = draw(len(burn_keys), 0, burn_keys)
    burn_logits = np.asarray(burn_logits, np.float64)
    logit_max = np.array([burn_logits[burn_keys == k].max() for k in every_label])
    gamma = np.array([solve_gamma(drs_scores(burn_logits[burn_keys == k], logit_max[k],
                                             options.epsilon), options.accept)
                      for k in every_label])
    # n / accept proposals are expected; after the burn-in l_max can only rise, which lowers
    # the acceptance somewhat (0.066 for a 0.1 target on MNIST). Ten times the expected cost
    # means the acceptance collapsed (e.g. a proposal far above the burn-in's l_max), so stop
    # with the fix instead of appearing to hang; at least 10 batches, so a small n is not
    # failed by the luck of one batch.
    proposal_limit = max(10 * n / options.accept, 10 * options.batch)
    kept, kept_keys, have = [], [], np.zeros_like(need)
    proposed, taken, index = np.zeros_like(need), np.zeros_like(need), 1
    while (have < need).any():
        batch_keys = np.resize(np.repeat(every_label, need - have), options.batch)
        arrays, logits = draw(options.batch, index, batch_keys)
        logits = np.asarray(logits, np.float64)
        np.maximum.at(logit_max, batch_keys, logits)  # the paper's update of l_max, per label
        chosen = rng.random(len(logits)) < sigmoid(
            drs_scores(logits, logit_max[batch_keys], options.epsilon) - gamma[batch_keys])
        kept.append([array[chosen] for array in arrays])
        kept_keys.append(batch_keys[chosen])
        proposed += np.bincount(batch_keys, minlength=len(need))
        taken += np.bincount(batch_keys[chosen], minlength=len(need))
        have, index = np.minimum(taken, need), index + 1
        if (have < need).any() and proposed.sum() > proposal_limit:
            rates = taken / np.maximum(proposed, 1)
            short = np.flatnonzero(have < need)
            worst = short[np.argmin(rates[short])]
            where = "acceptance" if values is None else f"label {values[worst]}:"
            raise ConfigError(f"guide=drs accepted {int(taken.sum())} of {int(proposed.sum())} "
                              f"proposals ({where} {rates[worst]:.2g}); raise guide.accept.")
    # Slot i gets the next accepted proposal of its label, in the order they were accepted.
    accepted_keys, rows = np.concatenate(kept_keys), np.empty(n, np.int64)
    for key in every_label:
        rows[keys == key] = np.flatnonzero(accepted_keys == key)[:need[key]]
    stats = {"proposals": len(burn_keys) + int(proposed.sum()),
             "acceptance": float(taken.sum() / proposed.sum())}
    if values is None:
        stats = {"gamma": float(gamma[0]), "logit_max": float(logit_max[0]), **stats}
    else:
        def by_label(per_label):
            return {int(v): float(x) for v, x in zip(values, per_label, strict=True)}

        stats.update(gamma_by_label=by_label(gamma), logit_max_by_label=by_label(logit_max),
                     acceptance_by_label=by_label(taken / proposed))
    return [np.concatenate([part[k] for part in kept])[rows] for k in range(len(kept[0]))], \
        stats


def _mh(propose: Propose, n: int, options: GuideOptions, seed: int,
        rng: np.random.Generator, labels: np.ndarray | None) -> tuple[list[np.ndarray], dict]:
    parts, moves, index = [], 0, 0
    for start in range(0, n, options.batch):
        count = min(options.batch, n - start)
        wanted = None if labels is None else labels[start:start + count]  # the chain's label
        state, state_logits = _call(propose, count, sub_seed(seed, index), wanted)
        index += 1
        for _ in range(options.steps):
            candidate, logits = _call(propose, count, sub_seed(seed, index), wanted)
            index += 1
            move = np.log(rng.random(count)) < logits - state_logits  # min(1, ratio)
            state = [np.where(move.reshape((-1,) + (1,) * (s.ndim - 1)), c, s)
                     for s, c in zip(state, candidate, strict=True)]
            state_logits = np.where(move, logits, state_logits)
            moves += int(move.sum())
        parts.append(state)
    return _take(parts, n), {"proposals": n * (options.steps + 1),
                             "acceptance": moves / (n * options.steps)}


def importance_indices(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For float logits (m, N): one column per row drawn with probability softmax(row)."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random((len(logits), 1))
    return np.minimum((cumulative < draws).sum(axis=1), logits.shape[1] - 1)


def _importance(propose: Propose, n: int, options: GuideOptions, seed: int,
                rng: np.random.Generator, labels: np.ndarray | None
                ) -> tuple[list[np.ndarray], dict]:
    parts, per_call = [], max(1, options.batch // options.candidates)
    weights_ess = []
    for index, start in enumerate(range(0, n, per_call)):
        count = min(per_call, n - start)
        # Row i's candidates are rows i*N..i*N+N-1, all of output i's label.
        wanted = None if labels is None else np.repeat(labels[start:start + count],
                                                       options.candidates)
        arrays, logits = _call(propose, count * options.candidates, sub_seed(seed, index),
                               wanted)
        logits = np.asarray(logits, np.float64).reshape(count, options.candidates)
        rows = np.arange(count) * options.candidates + importance_indices(logits, rng)
        parts.append([array[rows] for array in arrays])
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights_ess.append(weights.sum(1) ** 2 / (weights ** 2).sum(1))
    return _take(parts, n), {"proposals": n * options.candidates,
                             "acceptance": 1.0 / options.candidates,
                             "effective_sample_size": float(np.concatenate(weights_ess).mean())}


def guided_sample(propose: Propose, n: int, options: GuideOptions, seed: int = 0,
                  labels: np.ndarray | None = None) -> tuple[list[np.ndarray], dict]:
    """n samples (the arrays `propose` returns, n rows each) and the cost record. With labels
    int (n,) (a conditional generator), output i has label labels[i] and is selected among
    proposals of that label only (see the module docstring). The record: proposals
    drawn, acceptance (drs: accepted / proposed after burn-in; mh: accepted moves / proposed
    moves; is: 1 / candidates; none: 1), seconds and samples_per_second (outputs / wall
    seconds, proposing and scoring included)."""
    rng, started = np.random.default_rng([int(seed), 0x6D1DE]), time.perf_counter()
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels has shape {labels.shape}, expected ({n},)")
    if options.name == "none":
        arrays, _ = _call(propose, n, sub_seed(seed, 0), labels)
        arrays, stats = [np.asarray(a) for a in arrays], {"proposals": n, "acceptance": 1.0}
    else:
        method = {"drs": _drs, "mh": _mh, "is": _importance}[options.name]
        arrays, stats = method(propose, n, options, seed, rng, labels)
    seconds = time.perf_counter() - started
    return arrays, {"guide": options.name, "definition": options.definition(), **stats,
                    "within_label": labels is not None,
                    "samples": n, "seconds": seconds, "samples_per_second": n / seconds}


COST_DEFINITIONS = {
    "acceptance": "drs: accepted / proposed after the burn-in; mh: accepted moves / proposed "
                  "moves; is: 1 / candidates (one output per candidate set); none: 1",
    "samples_per_second": "guided outputs / wall seconds, generating and scoring every "
                          "proposal (and the drs burn-in) included",
}
