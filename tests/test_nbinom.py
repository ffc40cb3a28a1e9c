"""The negative binomial primitives against scipy and exact sums."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import nbinom

from sknbmix._data import build_count_table
from sknbmix._nbinom import ALPHA_MAX, log_rising_factorial, nbinom_logpmf, solve_alpha


@pytest.mark.parametrize("alpha", [0.05, 0.8, 3.5, 40.0, 900.0])
@pytest.mark.parametrize("b", [0.01, 1.0, 32.0])
def test_logpmf_matches_scipy(alpha, b):
    x = np.arange(0, 400)
    expected = nbinom.logpmf(x, alpha, 1 / (1 + b))
    np.testing.assert_allclose(nbinom_logpmf(x, alpha, b), expected, rtol=1e-12)


@pytest.mark.parametrize("alpha", [2e4, 1e6, 1e8])
def test_log_rising_factorial_is_exact_for_large_alpha(alpha):
    # log of alpha (alpha + 1) ... (alpha + x - 1), summed term by term.
    x = np.array([0, 1, 5, 40, 300])
    exact = np.array([np.log(alpha + np.arange(k)).sum() for k in x])
    got = log_rising_factorial(x.astype(float), np.full(x.shape, alpha))
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=1e-12)


def _weighted_table(counts):
    X = np.asarray(counts, dtype=float)[:, None]
    table = build_count_table(X)
    mass = table.multiplicity[None, None, :]
    total = np.array([[[X.shape[0]]]], dtype=float)
    mean = np.array([[[X.mean()]]])
    return table, mass, total, mean


def test_solve_alpha_is_the_maximum_likelihood_estimate():
    counts = np.random.default_rng(1).negative_binomial(2.5, 0.1, size=500)
    table, mass, total, mean = _weighted_table(counts)
    alpha = solve_alpha(table, mass, total, mean, None)[0, 0, 0]

    def negative_profile(log_alpha):
        a = np.exp(log_alpha)
        return -nbinom.logpmf(counts, a, a / (a + mean[0, 0, 0])).sum()

    reference = np.exp(minimize_scalar(negative_profile, bracket=(0, 2)).x)
    assert alpha == pytest.approx(reference, rel=1e-6)


def test_solve_alpha_under_dispersed_goes_to_the_cap():
    counts = np.random.default_rng(2).binomial(20, 0.5, size=300)
    table, mass, total, mean = _weighted_table(counts)
    alpha = solve_alpha(table, mass, total, mean, None)[0, 0, 0]
    assert alpha == pytest.approx(ALPHA_MAX, rel=1e-12)
