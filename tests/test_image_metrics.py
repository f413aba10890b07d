"""Tests of ganrun.evaluate.image_metrics against closed forms and hand-computed cases."""

import math

import numpy as np
import pytest

from ganrun.evaluate import image_metrics as im


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero():
    feats = 10.0 * _rng().normal(size=(2000, 16)) + 3.0
    scale = np.trace(np.cov(feats, rowvar=False))
    assert abs(im.frechet_distance(feats, feats)) < 1e-6 * scale


def test_fid_diagonal_covariances_match_closed_form():
    rng = _rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 4.0, size=5), rng.uniform(0.1, 4.0, size=5)
    # Diagonal covariances commute, so sqrtm(S1 S2) = diag(sqrt(var1 * var2)).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = im.frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_full_covariances_match_closed_forms():
    zero = np.zeros(2)
    sigma = np.array([[2.0, 1.0], [1.0, 2.0]])
    # sigma2 = 4 sigma: sqrtm(4 sigma^2) = 2 sigma, so FID = (1 - 2)^2 tr(sigma) = 4.
    assert im.frechet_distance_from_stats(zero, sigma, zero, 4 * sigma) == pytest.approx(4.0)
    # Same eigenvectors (45 degree rotation), eigenvalues (1, 9) and (4, 1):
    # FID = (1 - 2)^2 + (3 - 1)^2 = 5.
    rotation = np.array([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2)
    s1 = rotation @ np.diag([1.0, 9.0]) @ rotation.T
    s2 = rotation @ np.diag([4.0, 1.0]) @ rotation.T
    assert im.frechet_distance_from_stats(zero, s1, zero, s2) == pytest.approx(5.0)


def test_fid_non_commuting_covariances_match_two_by_two_formula():
    # For a 2x2 M with non-negative eigenvalues, tr sqrtm(M) = sqrt(tr M + 2 sqrt(det M)).
    # M = [[2, 1], [1, 2]] @ diag(1, 3) = [[2, 3], [1, 6]]: tr 8, det 9, so tr sqrtm = sqrt(14);
    # with ||mu1 - mu2||^2 = 5 and traces 4 + 4: FID = 5 + 8 - 2 sqrt(14).
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.diag([1.0, 3.0])
    mu1, mu2 = np.zeros(2), np.array([1.0, -2.0])
    expected = 13.0 - 2.0 * math.sqrt(14.0)
    assert im.frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_fid_of_gaussian_samples_converges_to_closed_form():
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.diag([1.0, 3.0])
    mu1, mu2 = np.zeros(2), np.array([1.0, -2.0])
    rng = _rng(2)
    feats_a = rng.multivariate_normal(mu1, s1, size=200_000)
    feats_b = rng.multivariate_normal(mu2, s2, size=200_000)
    # Over 30 seeds the estimate's standard deviation at n = 200,000 was 0.019, so 0.1 is ~5 sigma.
    assert im.frechet_distance(feats_a, feats_b) == pytest.approx(13.0 - 2 * math.sqrt(14), abs=0.1)


def test_fid_gaussian_stats_are_mean_and_unbiased_covariance():
    feats = _rng(3).normal(size=(50, 4))
    mu, sigma = im.gaussian_stats(feats)
    np.testing.assert_allclose(mu, feats.mean(axis=0))
    centred = feats - mu
    np.testing.assert_allclose(sigma, centred.T @ centred / 49)
    one_dim_mu, one_dim_sigma = im.gaussian_stats(feats[:, :1])
    assert one_dim_mu.shape == (1,) and one_dim_sigma.shape == (1, 1)


def test_fid_raises_on_large_imaginary_part():
    # A "covariance" with a negative eigenvalue makes sqrtm(S1 S2) = diag(i, 1).
    with pytest.raises(ValueError, match="imaginary diagonal"):
        im.frechet_distance_from_stats(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_fid_drops_roundoff_sized_imaginary_part():
    # sqrtm gives diag(1e-5 i, 1): below the 1e-3 limit, so the real part is used.
    # FID = tr S1 + tr S2 - 2 tr Re(sqrtm) = (1 - 1e-10) + 2 - 2.
    got = im.frechet_distance_from_stats(
        np.zeros(2), np.diag([-1e-10, 1.0]), np.zeros(2), np.eye(2)
    )
    assert isinstance(got, float)
    assert got == pytest.approx(1.0 - 1e-10, abs=1e-12)


def test_fid_singular_product_adds_eps_to_both_covariances():
    sigma = np.diag([1.0, 0.0, 0.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        got = im.frechet_distance_from_stats(np.zeros(3), sigma, np.zeros(3), sigma)
    # eps is added to both covariances and to the traces, so identical stats still give 0
    # (pytorch-fid, which regularises only inside sqrtm, would return -6e-6 here).
    assert abs(got) < 1e-9


def test_fid_non_finite_sqrtm_takes_eps_path():
    # Both are valid rank-deficient covariances, but SciPy's sqrtm of this product is all NaN.
    # The product is v v^T S2 with v^T S2 v = 13, so its true root is product / sqrt(13) and
    # FID = tr S1 + tr S2 - 2 sqrt(13) = 22 - 2 sqrt(13). eps = 1e-6 moves zero eigenvalues
    # of the product to O(eps), whose roots are O(1e-3): hence the tolerance.
    direction = np.array([2.0, -1.0, 0.0])
    s1 = np.outer(direction, direction)
    s2 = np.array([[4.0, 2.0, 4.0], [2.0, 5.0, -2.0], [4.0, -2.0, 8.0]])
    with pytest.warns(RuntimeWarning, match="singular"):
        got = im.frechet_distance_from_stats(np.zeros(3), s1, np.zeros(3), s2)
    assert got == pytest.approx(22.0 - 2.0 * math.sqrt(13.0), abs=0.02)


def test_fid_with_fewer_samples_than_dimensions_warns_but_returns_a_value():
    rng = _rng(4)
    with pytest.warns(RuntimeWarning, match="more samples than feature dimensions"):
        got = im.frechet_distance(rng.normal(size=(10, 32)), rng.normal(size=(10, 32)))
    assert math.isfinite(got) and got > 0


def test_fid_rejects_bad_inputs():
    rng = _rng(5)
    with pytest.raises(ValueError, match="same feature dimension"):
        im.frechet_distance(rng.normal(size=(20, 3)), rng.normal(size=(20, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        im.frechet_distance(rng.normal(size=(1, 3)), rng.normal(size=(20, 3)))
    with pytest.raises(ValueError, match="2-D"):
        im.frechet_distance(rng.normal(size=20), rng.normal(size=20))
    with pytest.raises(ValueError, match="NaN"):
        im.frechet_distance(np.full((20, 3), np.nan), rng.normal(size=(20, 3)))
    with pytest.raises(ValueError, match="same dimension"):
        im.frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"shape \(d, d\)"):
        im.frechet_distance_from_stats(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


# --------------------------------------------------------------------------- KID


def test_kid_matches_hand_computed_mmd_on_tiny_sets():
    # d = 1, k(a, b) = (a b + 1)^3, x = (0, 1), y = (1, 2); every subset is the whole set.
    # within x: 2 k(0,1) / 2 = 1; within y: 2 k(1,2) / 2 = 27;
    # across: 2 (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = 2 (1 + 1 + 8 + 27) / 4 = 18.5.
    mean, std_error = im.kernel_inception_distance([[0.0], [1.0]], [[1.0], [2.0]], num_subsets=5)
    assert mean == pytest.approx(1.0 + 27.0 - 18.5)
    assert std_error == pytest.approx(0.0, abs=1e-12)


def test_kid_is_unbiased_on_samples_of_one_distribution():
    rng = _rng(6)
    feats_a, feats_b = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 16))
    # 50 subsets of 200 out of 4000 barely overlap, so the standard error is honest.
    mean, std_error = im.kernel_inception_distance(feats_a, feats_b, 50, 200, seed=0)
    assert abs(mean) < 3 * std_error
    # The biased V-statistic (diagonal kept) on one subset pair is off by far more than that,
    # so the check above would catch an estimator that forgot to drop the diagonal.
    x, y = feats_a[:200], feats_b[:200]

    def kernel(p, q):
        return (p @ q.T / 16 + 1) ** 3

    biased = kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()
    assert biased > 10 * std_error


def test_kid_is_clearly_positive_for_shifted_distributions():
    rng = _rng(7)
    feats_a, feats_b = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 16)) + 0.3
    mean, std_error = im.kernel_inception_distance(feats_a, feats_b, 50, 200, seed=0)
    assert mean > 10 * std_error > 0


def test_kid_is_deterministic_from_the_seed():
    rng = _rng(8)
    feats_a, feats_b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    first = im.kernel_inception_distance(feats_a, feats_b, 10, 100, seed=3)
    assert im.kernel_inception_distance(feats_a, feats_b, 10, 100, seed=3) == first
    assert im.kernel_inception_distance(feats_a, feats_b, 10, 100, seed=4) != first


def test_kid_caps_subset_size_and_validates():
    rng = _rng(9)
    small, large = rng.normal(size=(30, 4)), rng.normal(size=(300, 4))
    mean, _ = im.kernel_inception_distance(small, large, num_subsets=3, subset_size=1000)
    assert math.isfinite(mean)
    mean, std_error = im.kernel_inception_distance(small, large, num_subsets=1)
    assert math.isfinite(mean) and math.isnan(std_error)
    with pytest.raises(ValueError, match="same feature dimension"):
        im.kernel_inception_distance(small, rng.normal(size=(30, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        im.kernel_inception_distance(small[:1], large)
    with pytest.raises(ValueError, match="num_subsets"):
        im.kernel_inception_distance(small, large, num_subsets=0)


# --------------------------------------------------------------------------- class scores


def test_classifier_score_of_confident_uniform_predictions_is_k():
    num_classes = 10
    # Classes cycle, so each of the 10 splits of 100 holds every class 10 times.
    probs = np.eye(num_classes)[np.arange(1000) % num_classes]
    mean, std = im.classifier_score(probs, num_splits=10)
    assert mean == pytest.approx(num_classes)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_classifier_score_of_one_class_or_uncertain_predictions_is_one():
    one_class = np.eye(10)[np.zeros(1000, dtype=int)]
    assert im.classifier_score(one_class)[0] == pytest.approx(1.0)
    uncertain = np.full((1000, 10), 0.1)
    assert im.classifier_score(uncertain)[0] == pytest.approx(1.0)


def test_classifier_score_matches_hand_computed_kl():
    # Half the samples predict (0.9, 0.1), half (0.1, 0.9): p(y) = (0.5, 0.5) and
    # KL = 0.9 ln(0.9 / 0.5) + 0.1 ln(0.1 / 0.5) for every sample.
    probs = np.array([[0.9, 0.1], [0.1, 0.9]] * 50)
    expected = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    assert im.classifier_score(probs, num_splits=1)[0] == pytest.approx(expected)


def test_classifier_score_rejects_logits_and_too_many_splits():
    with pytest.raises(ValueError, match="not logits"):
        im.classifier_score(np.array([[2.0, -1.0], [0.5, 3.0]]), num_splits=1)
    with pytest.raises(ValueError, match="num_splits"):
        im.classifier_score(np.eye(3), num_splits=4)


def test_class_coverage_on_hand_made_histograms():
    # Soft predictions: only the argmax matters. Classes 0, 0, 1, 1 out of 4.
    probs = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1], [0.2, 0.5, 0.2, 0.1]]
    )
    coverage = im.class_coverage(probs)
    np.testing.assert_array_equal(coverage["counts"], [2, 2, 0, 0])
    assert coverage["entropy"] == pytest.approx(math.log(2))
    assert coverage["normalized_entropy"] == pytest.approx(0.5)  # log 2 / log 4
    assert coverage["classes_covered"] == 2
    assert coverage["num_classes"] == 4


def test_class_coverage_extremes():
    even = im.class_coverage(np.eye(3)[[0, 1, 2, 0, 1, 2]])
    assert even["entropy"] == pytest.approx(math.log(3))
    assert even["normalized_entropy"] == pytest.approx(1.0)
    assert even["classes_covered"] == 3
    collapsed = im.class_coverage(np.eye(5)[[2] * 7])
    np.testing.assert_array_equal(collapsed["counts"], [0, 0, 7, 0, 0])
    assert collapsed["entropy"] == 0.0 and collapsed["normalized_entropy"] == 0.0
    assert collapsed["classes_covered"] == 1


# --------------------------------------------------------------------------- precision/recall


def _naive_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Reference: full distance matrices, k-th neighbour by sorting (index 0 is the point)."""

    def distances(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))

    real_radii = np.sort(distances(real, real), axis=1)[:, k]
    fake_radii = np.sort(distances(fake, fake), axis=1)[:, k]
    precision = (distances(fake, real) <= real_radii).any(axis=1).mean()
    recall = (distances(real, fake) <= fake_radii).any(axis=1).mean()
    return precision, recall


def test_blockwise_distances_equal_naive_computation():
    rng = _rng(10)
    a, b = rng.normal(size=(23, 5)) + 4.0, rng.normal(size=(17, 5))
    blocks = list(im.squared_distance_blocks(a, b, block_rows=7))
    assert [start for start, _ in blocks] == [0, 7, 14, 21]
    naive = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(np.vstack([block for _, block in blocks]), naive, rtol=1e-10)
    self_distances = np.vstack([block for _, block in im.squared_distance_blocks(a, a, 5)])
    assert (self_distances >= 0).all()  # the expansion is clipped at 0
    np.testing.assert_allclose(np.diag(self_distances), 0.0, atol=1e-12)


def test_precision_recall_of_identical_and_far_apart_sets():
    feats = _rng(11).normal(size=(300, 8))
    assert im.precision_recall(feats, feats.copy()) == (1.0, 1.0)
    assert im.precision_recall(feats, feats + 1000.0) == (0.0, 0.0)


def test_precision_recall_on_hand_checked_one_dimensional_points():
    real = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 50.0])[:, None]
    fake = np.array([0.4, 5.5, -2.3, -20.0])[:, None]
    # k = 1, so each radius is the distance to the nearest other point of the same set.
    # Real radii: 0, 1, 2, 3 -> 1; 10 -> 7 (to 3); 50 -> 40 (to 10).
    # Fake 0.4 is 0.4 from 0 (in); 5.5 is 4.5 from 10 (in, radius 7); -2.3 and -20 are more
    # than 1 from 0, more than 7 from 10 and more than 40 from 50 (out). Precision = 2/4.
    # Fake radii: -20 -> 17.7, -2.3 -> 2.7, 0.4 -> 2.7, 5.5 -> 5.1.
    # Real 0, 1, 2, 3 are within 2.7 of 0.4; 10 is 4.5 from 5.5 (radius 5.1, in);
    # 50 is 44.5 from 5.5 and 70 from -20 (out). Recall = 5/6.
    precision, recall = im.precision_recall(real, fake, k=1)
    assert precision == pytest.approx(2 / 4)
    assert recall == pytest.approx(5 / 6)


def test_precision_recall_matches_naive_reference_across_block_boundaries():
    rng = _rng(12)
    real, fake = rng.normal(size=(61, 6)), rng.normal(size=(45, 6)) + 0.7
    expected = _naive_precision_recall(real, fake, k=3)
    assert im.precision_recall(real, fake, k=3, block_rows=8) == pytest.approx(expected)
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # a non-trivial case


def test_precision_recall_validates_inputs():
    rng = _rng(13)
    with pytest.raises(ValueError, match="same feature dimension"):
        im.precision_recall(rng.normal(size=(10, 2)), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="at least 4"):
        im.precision_recall(rng.normal(size=(3, 2)), rng.normal(size=(10, 2)), k=3)
    with pytest.raises(ValueError, match="k must be at least 1"):
        im.precision_recall(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), k=0)


def test_unconditional_samples_of_a_conditional_generator_follow_the_class_proportions():
    from ganrun.sample import proportional_labels

    labels = proportional_labels(1000, (0.5, 0.3, 0.2))
    assert np.bincount(labels).tolist() == [500, 300, 200]
    assert np.bincount(labels[:100], minlength=3).min() > 5  # mixed, not sorted by class
    odd = proportional_labels(7, (0.1, 0.45, 0.45))  # largest remainders: exact to one image
    assert len(odd) == 7 and np.abs(np.bincount(odd, minlength=3) - np.array(
        [0.7, 3.15, 3.15])).max() < 1


def test_the_data_spec_records_the_training_labels_class_frequencies(tmp_path):
    from ganrun.data.images import make_fake_images
    from ganrun.data.spec import DataSpec

    data = make_fake_images(num_examples=200, seed=3)
    expected = np.bincount(data.y_train, minlength=data.spec.num_classes) / 200
    np.testing.assert_allclose(data.spec.class_frequencies, expected, atol=1e-6)
    data.spec.to_json(tmp_path / "spec.json")
    assert DataSpec.from_json(tmp_path / "spec.json") == data.spec
