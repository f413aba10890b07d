"""Golden values for every loss in configs/loss/, in one shared test.

The golden numbers were computed by hand from the probability form of each formula
(log sigmoid, means over the batch) for real logits [2, -1, 0.5] and fake logits [-3, 0, 1];
the reference functions below restate those formulas independently of ganrun.losses.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganrun import losses
from tests.conftest import group_options

REAL = [2.0, -1.0, 0.5]
FAKE = [-3.0, 0.0, 1.0]


def _log_sigmoid(x):
    return math.log(1.0 / (1.0 + math.exp(-x)))


def _mean(values):
    return sum(values) / len(values)


def _reference(name):
    r, f = REAL, FAKE
    bce_d = -_mean([_log_sigmoid(x) for x in r]) - _mean([math.log(1 - 1 / (1 + math.exp(-x)))
                                                          for x in f])
    mean_r, mean_f = _mean(r), _mean(f)
    return {
        "minimax": (bce_d, _mean([math.log(1 - 1 / (1 + math.exp(-x))) for x in f])),
        "nonsaturating": (bce_d, -_mean([_log_sigmoid(x) for x in f])),
        "wasserstein": (mean_f - mean_r, -mean_f),
        "hinge": (_mean([max(0, 1 - x) for x in r]) + _mean([max(0, 1 + x) for x in f]),
                  -mean_f),
        "least_squares": (0.5 * _mean([(x - 1) ** 2 for x in r]) + 0.5 * _mean([x * x for x in f]),
                          0.5 * _mean([(x - 1) ** 2 for x in f])),
        "relativistic": (-_mean([_log_sigmoid(a - b) for a, b in zip(r, f)]),
                         -_mean([_log_sigmoid(b - a) for a, b in zip(r, f)])),
        "relativistic_average": (
            -_mean([_log_sigmoid(x - mean_f) for x in r]) - _mean([_log_sigmoid(mean_r - x)
                                                                   for x in f]),
            -_mean([_log_sigmoid(x - mean_r) for x in f]) - _mean([_log_sigmoid(mean_f - x)
                                                                   for x in r])),
    }[name]


# Literal goldens (d_loss, g_loss), rounded to 6 decimals; the first five were also checked
# with pencil and paper (e.g. minimax D: mean softplus(-real) 0.638089 + mean softplus(fake)
# 0.684999).
GOLDEN = {
    "minimax": (1.323088, -0.684999),
    "nonsaturating": (1.323088, 1.351665),
    "wasserstein": (-1.166667, 0.666667),
    "hinge": (1.833333, 0.666667),
    "least_squares": (2.541667, 2.833333),
    "relativistic": (0.764685, 1.931351),
    "relativistic_average": (0.896606, 3.229939),
}


def test_every_loss_config_has_a_golden_value():
    assert set(group_options("loss")) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_loss_golden_values(name):
    real = tf.constant(REAL)[:, None]  # (B, 1) as the discriminators return
    fake = tf.constant(FAKE)[:, None]
    d_loss, g_loss = getattr(losses, name)(real, fake)
    np.testing.assert_allclose([float(d_loss), float(g_loss)], _reference(name), rtol=1e-6)
    np.testing.assert_allclose([float(d_loss), float(g_loss)], GOLDEN[name], atol=2e-6)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_losses_are_finite_for_extreme_logits(name):
    real = tf.constant([[1e4], [-1e4]])
    fake = tf.constant([[-1e4], [1e4]])
    d_loss, g_loss = getattr(losses, name)(real, fake)
    assert np.isfinite(float(d_loss)) and np.isfinite(float(g_loss))


def test_only_relativistic_generators_read_real_logits():
    reading = {name for name in GOLDEN if losses.generator_reads_real(getattr(losses, name))}
    assert reading == {"relativistic", "relativistic_average"}
