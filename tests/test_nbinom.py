"""The negative binomial primitives of the kernels against scipy and exact
sums."""

import math

import _reference as reference
import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import nbinom

from sknbmix import _kernels
from sknbmix._data import build_count_table
from sknbmix._likelihood import MixtureLikelihood
from sknbmix._nbinom import ALPHA_MAX


@pytest.mark.parametrize("alpha", [0.05, 0.8, 3.5, 40.0, 900.0])
@pytest.mark.parametrize("b", [0.01, 1.0, 32.0])
def test_logpmf_matches_scipy(alpha, b):
    x = np.arange(0, 400, dtype=float)
    expected = nbinom.logpmf(x, alpha, 1 / (1 + b))
    np.testing.assert_allclose(
        reference.nbinom_logpmf(x, alpha, b), expected, rtol=1e-12
    )
    # The kernels' log-probability of each distinct count (less log(x!) and
    # less the zero count's), as prediction uses it.
    log_alpha = np.full((1, 1, 1), np.log(alpha))
    log_b = np.full((1, 1, 1), np.log(b))
    log_factorial = np.array([math.lgamma(v + 1) for v in x])
    entry, zero = _kernels.entry_log_prob(
        x, log_factorial, np.zeros(1, dtype=np.intp), log_alpha, log_b
    )
    got = entry[0, 0] + zero[0, 0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [2e4, 1e6, 1e8])
def test_log_rising_factorial_is_exact_for_large_alpha(alpha):
    # log of alpha (alpha + 1) ... (alpha + x - 1), summed term by term.
    x = np.array([0, 1, 5, 40, 300])
    exact = np.array([np.log(alpha + np.arange(k)).sum() for k in x])
    lgamma_alpha = math.lgamma(alpha)
    got = [_kernels._log_rising_factorial(float(k), alpha, lgamma_alpha) for k in x]
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(
        reference.log_rising_factorial(x.astype(float), alpha), exact, rtol=1e-13
    )


@pytest.mark.parametrize("alpha", [2e3, 1e5, 1e8])
def test_digamma_difference_is_exact_for_large_alpha(alpha):
    # digamma(x + a) - digamma(a) = sum_{j < x} 1 / (a + j) for integer x.
    x = np.array([1, 5, 40, 300])
    exact = np.array([(1.0 / (alpha + np.arange(k))).sum() for k in x])
    mass = np.ones(1)
    got = [_kernels._digamma_sum(np.array([float(k)]), mass, alpha) for k in x]
    np.testing.assert_allclose(got, exact, rtol=1e-12)


def _one_component(counts):
    """The M step of one component over all of ``counts``, alpha solved to
    convergence."""
    X = np.asarray(counts, dtype=float)[:, None]
    likelihood = MixtureLikelihood(build_count_table(X), True).exact()
    resp = np.ones((1, 1, likelihood.table.n_entries))
    theta = likelihood.from_responsibilities(resp)
    return np.exp(theta.log_alpha[0, 0, 0]), np.exp(theta.log_b[0, 0, 0])


@pytest.mark.parametrize("scale", [10.0, 1e5])
def test_m_step_alpha_is_the_maximum_likelihood_estimate(scale):
    # A large scale puts the largest count far beyond four per distinct
    # count: the score comes from digamma sums, not the integer grid.
    rng = np.random.default_rng(1)
    counts = rng.negative_binomial(2.5, 1 / (1 + scale), size=500)
    alpha, b = _one_component(counts)
    mean = counts.mean()
    assert alpha * b == pytest.approx(mean, rel=1e-12)

    def negative_profile(log_alpha):
        a = np.exp(log_alpha)
        return -nbinom.logpmf(counts, a, a / (a + mean)).sum()

    best = np.exp(minimize_scalar(negative_profile, bracket=(0, 2), tol=1e-12).x)
    assert alpha == pytest.approx(best, rel=1e-6)


def test_m_step_under_dispersed_goes_to_the_cap():
    counts = np.random.default_rng(2).binomial(20, 0.5, size=300)
    alpha, _ = _one_component(counts)
    assert alpha == pytest.approx(ALPHA_MAX, rel=1e-12)
