"""Statistics behind ganrun's image scores: FID, KID, Inception-Score analogue, coverage, P/R.

This module owns the numerical part of image evaluation and nothing else. Its inputs are
feature vectors, float arrays of shape (n, d) taken from some embedding network, and class
probabilities, arrays of shape (n, k) whose rows sum to 1. Which network produced them, and
how images were batched through it, is decided elsewhere. The module uses only numpy and
scipy, so the metrics can be tested and reused without TensorFlow.

Scores and the direction in which they are better:

* ``frechet_distance`` (FID): lower is better, 0 for identical Gaussian statistics.
* ``kernel_inception_distance`` (KID): lower is better, unbiased so it can be slightly < 0.
* ``classifier_score`` (Inception Score analogue): higher is better, in [1, k].
* ``class_coverage``: how evenly generated samples spread over k classes (1.0 = evenly).
* ``precision_recall``: both higher is better, in [0, 1] (fidelity and diversity).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from scipy import linalg, special

# pytorch-fid's limit: an imaginary diagonal this small in sqrtm(S_a S_b) is roundoff.
_MAX_IMAGINARY_DIAGONAL = 1e-3
# Softmax outputs in float32 sum to 1 within ~1e-6; a looser bound still catches logits.
_PROBABILITY_SUM_TOLERANCE = 1e-3


# --------------------------------------------------------------------------- validation


def _as_matrix(values, name: str) -> np.ndarray:
    """Return ``values`` as a finite float64 array of shape (n, d), or raise ValueError."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d), got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the feature extractor.")
    return array


def _require_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same feature dimension, "
            f"got {a.shape[1]} and {b.shape[1]}."
        )


def _require_samples(array: np.ndarray, minimum: int, name: str, purpose: str) -> None:
    if array.shape[0] < minimum:
        raise ValueError(
            f"{name} has {array.shape[0]} samples but {purpose} needs at least {minimum}."
        )


def _as_probabilities(probs) -> np.ndarray:
    """Return ``probs`` as float64 (n, k) with non-negative rows summing to 1, or raise."""
    probs = _as_matrix(probs, "probs")
    _require_samples(probs, 1, "probs", "a class-probability score")
    row_sums = probs.sum(axis=1)
    if (probs < 0).any() or not np.allclose(row_sums, 1.0, atol=_PROBABILITY_SUM_TOLERANCE):
        raise ValueError(
            "probs must hold non-negative rows that sum to 1 (softmax outputs, not logits); "
            f"row sums range from {row_sums.min():.4g} to {row_sums.max():.4g}."
        )
    return probs


# --------------------------------------------------------------------------- FID


def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set, the Gaussian that FID compares.

    Args:
        feats: features of shape (n, d), n >= 2.

    Returns:
        ``(mu, sigma)``: mean of shape (d,) and unbiased sample covariance (ddof=1) of shape
        (d, d), as pytorch-fid and TF-GAN compute them. Cache these for a fixed reference set
        and pass them to :func:`frechet_distance_from_stats`.

    Warns:
        RuntimeWarning if n <= d: the covariance is then rank-deficient, FID is biased upwards
        and not comparable with scores computed from more samples.
    """
    feats = _as_matrix(feats, "feats")
    _require_samples(feats, 2, "feats", "a covariance estimate")
    n, d = feats.shape
    if n <= d:
        warnings.warn(
            f"FID statistics from {n} samples of dimension {d} give a singular covariance; "
            "use more samples than feature dimensions for a meaningful score.",
            RuntimeWarning,
            stacklevel=2,
        )
    mu = feats.mean(axis=0)
    # atleast_2d because np.cov returns a 0-d array when d == 1.
    sigma = np.atleast_2d(np.cov(feats, rowvar=False))
    return mu, sigma


def _check_stats(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"{name} statistics must be a mean of shape (d,) and a covariance of shape (d, d), "
            f"got {mu.shape} and {sigma.shape}."
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name} statistics contain NaN or infinite values.")
    return mu, sigma


def _sqrtm_or_none(matrix: np.ndarray) -> np.ndarray | None:
    """``sqrtm(matrix)``, or None if the matrix is singular or the root is not finite."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = linalg.sqrtm(matrix)
    # SciPy >= 1.16 flags an exactly singular Schur factor with LinAlgWarning; its root is
    # then unreliable even when finite. Older SciPy only shows it as NaN/inf.
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(root).all():
        return None
    return root


def _real_part_or_raise(root: np.ndarray) -> np.ndarray:
    """Drop a roundoff imaginary part of sqrtm(S_a S_b); raise if it is too large to be one."""
    if not np.iscomplexobj(root):
        return root
    worst = float(np.max(np.abs(np.diagonal(root).imag)))
    if worst > _MAX_IMAGINARY_DIAGONAL:
        raise ValueError(
            f"sqrtm of the covariance product has an imaginary diagonal of up to {worst:.3g} "
            f"(limit {_MAX_IMAGINARY_DIAGONAL}), so the covariances are not valid "
            "positive semi-definite matrices."
        )
    return root.real


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): FID from cached stats.

    FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium") is ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)).

    Args:
        mu1, mu2: means of shape (d,).
        sigma1, sigma2: covariances of shape (d, d).
        eps: if the product sigma1 sigma2 is singular or its square root is not finite,
            eps * I is added to both covariances (as pytorch-fid does) and a RuntimeWarning
            is emitted. Unlike pytorch-fid, the traces use the same regularised covariances,
            so the result stays the exact distance between two Gaussians and is >= 0.

    Returns:
        FID in [0, inf); lower is better, 0 means identical statistics. Roundoff can give
        values a hair below 0 (about 1e-12 times the covariance scale).

    Raises:
        ValueError: on mismatched shapes, or if sqrtm has an imaginary diagonal above 1e-3,
            which means a covariance is not positive semi-definite.
    """
    mu1, sigma1 = _check_stats(mu1, sigma1, "first")
    mu2, sigma2 = _check_stats(mu2, sigma2, "second")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"Both statistics must have the same dimension, got {mu1.shape[0]} and {mu2.shape[0]}."
        )
    root = _sqrtm_or_none(sigma1 @ sigma2)
    if root is None:
        warnings.warn(
            f"FID: the covariance product is singular; adding {eps:g} to the diagonal of both "
            "covariances. Use more samples than feature dimensions to avoid this.",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = eps * np.eye(sigma1.shape[0])
        sigma1, sigma2 = sigma1 + offset, sigma2 + offset
        root = _sqrtm_or_none(sigma1 @ sigma2)
        if root is None:
            raise ValueError(f"FID: sqrtm failed even after adding eps={eps:g}; try a larger eps.")
    covariance_mean = _real_part_or_raise(root)
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covariance_mean)
    return float(diff @ diff + trace)


def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """FID between two feature sets (Heusel et al. 2017), each summarised as a Gaussian.

    Args:
        feats_a, feats_b: features of shapes (n_a, d) and (n_b, d), n >= 2. Use n > d
            (e.g. >= 10,000 samples for 2048-d Inception features); n <= d only warns.
        eps: diagonal regulariser for a singular covariance product, see
            :func:`frechet_distance_from_stats`.

    Returns:
        FID in [0, inf); lower is better. FID is biased upwards for small n, so only compare
        scores computed from the same number of samples with the same feature extractor.
    """
    feats_a = _as_matrix(feats_a, "feats_a")
    feats_b = _as_matrix(feats_b, "feats_b")
    _require_same_dim(feats_a, feats_b, "feats_a", "feats_b")
    return frechet_distance_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b), eps)


# --------------------------------------------------------------------------- KID


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel k(x, y) = (x . y / d + 1)^3 for all row pairs: shape (len(x), len(y))."""
    base = x @ y.T
    base /= x.shape[1]
    base += 1.0
    # Two in-place products are about 3x faster than `** 3`, which goes through pow().
    kernel = base * base
    kernel *= base
    return kernel


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-sized samples x and y of shape (m, d), m >= 2."""
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    # Dropping the diagonal k(x_i, x_i) is what removes the bias of the plain V-statistic;
    # the cross term keeps all m^2 pairs because x_i and y_j are independent.
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    across = 2.0 * _polynomial_kernel(x, y).sum() / (m * m)
    return float(within - across)


def kernel_inception_distance(
    feats_a, feats_b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): unbiased MMD^2, cubic kernel.

    The kernel is k(x, y) = (x . y / d + 1)^3. MMD^2 is estimated on ``num_subsets`` pairs of
    random subsets drawn without replacement and averaged, as in the paper's reference code.

    Args:
        feats_a, feats_b: features of shapes (n_a, d) and (n_b, d), n >= 2.
        num_subsets: number of subset pairs, >= 1.
        subset_size: samples per subset, >= 2; capped at min(n_a, n_b).
        seed: seed of the subset sampler; the same inputs and seed give the same result.

    Returns:
        ``(mean, std_error)``. mean estimates MMD^2 without bias: lower is better, 0 when both
        sets come from the same distribution, and it can be slightly negative by chance
        (papers often report it x 1000). std_error is the standard deviation over subsets
        divided by sqrt(num_subsets) (NaN for one subset); subsets overlap when
        num_subsets * subset_size exceeds n, which makes it an underestimate.
    """
    feats_a = _as_matrix(feats_a, "feats_a")
    feats_b = _as_matrix(feats_b, "feats_b")
    _require_same_dim(feats_a, feats_b, "feats_a", "feats_b")
    _require_samples(feats_a, 2, "feats_a", "KID")
    _require_samples(feats_b, 2, "feats_b", "KID")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(
            f"KID needs num_subsets >= 1 and subset_size >= 2, got {num_subsets} and {subset_size}."
        )
    m = min(subset_size, feats_a.shape[0], feats_b.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        subset_a = feats_a[rng.choice(feats_a.shape[0], m, replace=False)]
        subset_b = feats_b[rng.choice(feats_b.shape[0], m, replace=False)]
        estimates[i] = _unbiased_mmd2(subset_a, subset_b)
    if num_subsets == 1:
        return float(estimates[0]), float("nan")
    return float(estimates.mean()), float(estimates.std(ddof=1) / np.sqrt(num_subsets))


# --------------------------------------------------------------------------- class scores


def classifier_score(probs, num_splits: int = 10) -> tuple[float, float]:
    """Inception-Score analogue (Salimans et al. 2016, "Improved Techniques for Training GANs").

    For each of ``num_splits`` contiguous splits: exp(mean_x KL(p(y|x) || p(y))), where p(y)
    is the split's mean prediction. Confident predictions (low-entropy p(y|x)) spread over
    many classes (high-entropy p(y)) score high.

    Args:
        probs: class probabilities of shape (n, k), rows sum to 1, n >= num_splits.
        num_splits: number of splits, >= 1 (10 in the paper).

    Returns:
        ``(mean, std)`` over splits (std with ddof=0, as the reference code). The score lies in
        [1, k]; higher is better. k means every sample is classified with certainty and all
        classes appear equally often; 1 means every sample gets the same prediction.
    """
    probs = _as_probabilities(probs)
    if not 1 <= num_splits <= probs.shape[0]:
        raise ValueError(
            f"num_splits must be between 1 and the number of samples ({probs.shape[0]}), "
            f"got {num_splits}."
        )
    scores = []
    for split in np.array_split(probs, num_splits):
        marginal = split.mean(axis=0, keepdims=True)
        # rel_entr defines 0 * log(0 / q) = 0, so one-hot predictions do not give NaN.
        mean_kl = special.rel_entr(split, marginal).sum(axis=1).mean()
        scores.append(np.exp(mean_kl))
    return float(np.mean(scores)), float(np.std(scores))


def class_coverage(probs) -> dict:
    """How evenly the predicted (argmax) classes of a sample set spread over k classes.

    A mode-collapsed generator shows up here as a low entropy and few covered classes, even
    when its samples look sharp.

    Args:
        probs: class probabilities of shape (n, k), rows sum to 1.

    Returns:
        A dict with
        ``counts``: int array of shape (k,), how many samples have each class as argmax;
        ``entropy``: entropy of counts / n in nats, in [0, log k];
        ``normalized_entropy``: entropy / log k in [0, 1]; higher is better, 1.0 means all
        classes occur equally often, 0.0 means one class only (defined as 1.0 when k == 1);
        ``classes_covered``: number of classes with count > 0, in [1, k];
        ``num_classes``: k.
    """
    probs = _as_probabilities(probs)
    num_classes = probs.shape[1]
    counts = np.bincount(probs.argmax(axis=1), minlength=num_classes)
    frequencies = counts / counts.sum()
    entropy = float(special.entr(frequencies).sum())
    normalized = entropy / np.log(num_classes) if num_classes > 1 else 1.0
    return {
        "counts": counts,
        "entropy": entropy,
        "normalized_entropy": float(normalized),
        "classes_covered": int(np.count_nonzero(counts)),
        "num_classes": int(num_classes),
    }


# --------------------------------------------------------------------------- precision/recall


def squared_distance_blocks(
    a: np.ndarray, b: np.ndarray, block_rows: int = 1000
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` with block[i, j] = ||a[start + i] - b[j]||^2, clipped at 0.

    Uses ||a||^2 - 2 a.b + ||b||^2 so each block is one matrix product, and keeps only
    ``block_rows`` x len(b) values in memory (80 MB for 1000 x 10,000 in float64).

    Args:
        a: array of shape (n_a, d); b: array of shape (n_b, d); block_rows >= 1.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}.")
    b_norms = np.einsum("ij,ij->i", b, b)
    for start in range(0, a.shape[0], block_rows):
        rows = a[start : start + block_rows]
        block = rows @ b.T
        block *= -2.0
        block += np.einsum("ij,ij->i", rows, rows)[:, None]
        block += b_norms[None, :]
        # The expansion can go slightly negative for (near-)identical points.
        np.maximum(block, 0.0, out=block)
        yield start, block


def _kth_neighbour_sq_radii(feats: np.ndarray, k: int, block_rows: int) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point in the same set."""
    sq_radii = np.empty(feats.shape[0])
    for start, block in squared_distance_blocks(feats, feats, block_rows):
        rows = np.arange(block.shape[0])
        # Exclude the point itself explicitly; duplicates of it still count as neighbours.
        block[rows, start + rows] = np.inf
        block.partition(k - 1, axis=1)  # in place: the block is a fresh array, no copy needed
        sq_radii[start : start + block.shape[0]] = block[:, k - 1]
    return sq_radii


def _fraction_inside(
    queries: np.ndarray, centres: np.ndarray, sq_radii: np.ndarray, block_rows: int
) -> float:
    """Fraction of queries within sqrt(sq_radii[j]) of some centres[j] (boundary included)."""
    inside = 0
    for _, block in squared_distance_blocks(queries, centres, block_rows):
        inside += int(np.count_nonzero((block <= sq_radii[None, :]).any(axis=1)))
    return inside / queries.shape[0]


def precision_recall(
    real_feats, fake_feats, k: int = 3, block_rows: int = 1000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, NeurIPS).

    Each set's manifold is the union of balls around its points, each ball's radius being
    the distance to that point's k-th nearest neighbour in the same set (itself excluded).
    Distances are computed ``block_rows`` rows at a time, so 10,000 x 10,000 points fit in
    memory.

    Args:
        real_feats: features of shape (n_real, d), n_real > k.
        fake_feats: features of shape (n_fake, d), n_fake > k.
        k: neighbourhood size, >= 1 (3 in the paper).
        block_rows: rows of the distance matrix held in memory at once.

    Returns:
        ``(precision, recall)``, each in [0, 1], higher is better. precision is the fraction of
        fake points inside the real manifold (sample quality); recall is the fraction of real
        points inside the fake manifold (how much of the real data the generator covers).
    """
    real = _as_matrix(real_feats, "real_feats")
    fake = _as_matrix(fake_feats, "fake_feats")
    _require_same_dim(real, fake, "real_feats", "fake_feats")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    _require_samples(real, k + 1, "real_feats", f"precision/recall with k={k}")
    _require_samples(fake, k + 1, "fake_feats", f"precision/recall with k={k}")
    real_sq_radii = _kth_neighbour_sq_radii(real, k, block_rows)
    fake_sq_radii = _kth_neighbour_sq_radii(fake, k, block_rows)
    precision = _fraction_inside(fake, real, real_sq_radii, block_rows)
    recall = _fraction_inside(real, fake, fake_sq_radii, block_rows)
    return precision, recall
