"""The synthetic "oracle LSTM" benchmark of SeqGAN/Texygen: its weights, samples and NLL.

The oracle is a fixed LSTM language model (vocabulary 5000, embedding 32, hidden 32, length
20, start token 0, zero initial state). Its samples are the training data, and NLL-oracle, the
oracle's mean per-token negative log-likelihood of a generator's samples, measures how close
the generator is to it. The canonical weights are SeqGAN's `target_params` (15 arrays, layout
below); without a file a random oracle is drawn from a seed (as SeqGAN drew its own: normal
weights, std 1 — large weights give a low-entropy, learnable oracle).

Pure numpy (float32 weights, float64 sums), so numbers do not depend on TensorFlow's kernels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ganrun.errors import DataError

GATES = ("i", "f", "o", "c")  # the file's order: input, forget, output gates, then the cell


@dataclasses.dataclass(frozen=True)
class Oracle:
    """Oracle LSTM weights. embedding (V, E); per gate W (E, H), U (H, H), b (H,);
    out_w (H, V), out_b (V,). Sequences start from `start_token` with a zero state."""

    embedding: np.ndarray
    gates: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    out_w: np.ndarray
    out_b: np.ndarray
    start_token: int = 0

    @property
    def vocab_size(self) -> int:
        return self.embedding.shape[0]

    def _step(self, tokens, h, c):
        """One LSTM step from int tokens (B,): (logits (B, V), h, c), float64."""
        x = self.embedding[tokens]
        act = {g: x @ w + h @ u + b for g, (w, u, b) in self.gates.items()}
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        c = sig(act["f"]) * c + sig(act["i"]) * np.tanh(act["c"])
        h = sig(act["o"]) * np.tanh(c)
        return h @ self.out_w + self.out_b, h, c

    def _start(self, count):
        hidden = self.out_w.shape[0]
        return (np.full(count, self.start_token), np.zeros((count, hidden), np.float32),
                np.zeros((count, hidden), np.float32))

    def sample(self, count: int, length: int, seed: int, chunk: int = 500) -> np.ndarray:
        """int32 (count, length) token ids in [0, V), sampled at temperature 1."""
        rng = np.random.default_rng(seed)
        out = np.empty((count, length), np.int32)
        for start in range(0, count, chunk):  # chunks keep the (B, V) arrays in cache
            part = out[start:start + chunk]
            tokens, h, c = self._start(len(part))
            for t in range(length):
                logits, h, c = self._step(tokens, h, c)
                # Inverse-CDF sampling: one uniform per row (cheaper than Gumbel over V).
                # Rows' CDFs are laid end to end (row r shifted by r) so one searchsorted
                # call finds every row's token.
                cdf = np.cumsum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)
                cdf /= cdf[:, -1:]
                rows = np.arange(len(part))
                flat = (cdf + rows[:, None]).ravel()
                u = np.minimum(rng.random(len(part)), 1 - 1e-7) + rows
                tokens = np.searchsorted(flat, u, side="right") - rows * self.vocab_size
                tokens = np.minimum(tokens, self.vocab_size - 1)
                part[:, t] = tokens
        return out

    def nll(self, ids: np.ndarray, chunk: int = 500) -> tuple[float, float]:
        """(NLL-oracle, entropy estimate) in nats per token for int ids (N, L) in [0, V).

        NLL-oracle = mean over all N*L positions of -log p_oracle(token | prefix). The second
        value is the mean over the same positions of the oracle's exact next-token entropy
        H(p_oracle(. | prefix)); on the oracle's own samples both estimate its entropy rate.
        """
        ids = np.asarray(ids)
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise DataError(f"token ids must be in [0, {self.vocab_size}) to be scored by the "
                            "oracle; sample from a generator trained on data=oracle.")
        nll_sum = entropy_sum = 0.0
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            tokens, h, c = self._start(len(part))
            for t in range(part.shape[1]):
                logits, h, c = self._step(tokens, h, c)
                log_p = _log_softmax(logits)
                tokens = part[:, t]
                nll_sum -= log_p[np.arange(len(part)), tokens].sum(dtype=np.float64)
                entropy_sum -= (np.exp(log_p) * log_p).sum(dtype=np.float64)
        return nll_sum / ids.size, entropy_sum / ids.size


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def load_oracle_params(path: Path) -> Oracle:
    """The SeqGAN `target_params` npz: arr_0 embedding, arr_1..12 (W, U, b) per gate in the
    order i, f, o, c, arr_13 output weights, arr_14 output bias."""
    try:
        arrays = np.load(path)
        values = [np.asarray(arrays[f"arr_{k}"], np.float32) for k in range(15)]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path} is not a SeqGAN oracle npz ({exc}); point data.path at "
                        "seqgan_target_params.npz or set data.random_oracle=true.") from None
    gates = {g: tuple(values[1 + 3 * k: 4 + 3 * k]) for k, g in enumerate(GATES)}
    return Oracle(values[0], gates, values[13], values[14])


def random_oracle(vocab_size: int, embed_dim: int, hidden_dim: int, seed: int) -> Oracle:
    """A random oracle: every weight N(0, 1) from `numpy.random.default_rng(seed)`."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(0.0, 1.0, shape).astype(np.float32)  # noqa: E731
    gates = {g: (normal(embed_dim, hidden_dim), normal(hidden_dim, hidden_dim),
                 normal(hidden_dim)) for g in GATES}
    return Oracle(normal(vocab_size, embed_dim), gates, normal(hidden_dim, vocab_size),
                  normal(vocab_size))
