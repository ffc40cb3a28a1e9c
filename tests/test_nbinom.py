"""The negative binomial primitives against scipy and exact sums."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import nbinom

from sknbmix._data import build_count_table
from sknbmix._nbinom import (
    ALPHA_MAX,
    _alpha_score,
    _digamma_sums,
    log_rising_factorial,
    nbinom_logpmf,
    solve_alpha,
)


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


def _mixed_table(seed=0):
    """Features of very different lengths; feature 2 has a few huge counts
    (off the grid), feature 4 only zeros."""
    rng = np.random.default_rng(seed)
    n = 300
    X = np.stack(
        [
            rng.negative_binomial(2.0, 0.05, n),
            rng.poisson(0.3, n),
            np.where(rng.random(n) < 0.02, 5000 + rng.integers(0, 9, n), 0),
            rng.negative_binomial(0.5, 0.01, n),
            np.zeros(n, dtype=int),
        ],
        axis=1,
    ).astype(float)
    return build_count_table(X)


def test_grid_tail_mass_is_the_mass_above_each_point():
    table = _mixed_table()
    grid = table.grid
    assert grid is not None
    assert grid.off_features.tolist() == [2]
    mass = np.random.default_rng(1).random((3, 2, table.n_entries))
    tail = grid.tail_mass(mass)
    above = (table.feature[:, None] == grid.feature) & (table.values[:, None] > grid.j)
    np.testing.assert_allclose(tail, mass @ above, rtol=1e-12)


def test_grid_score_matches_digamma():
    # The grid's sums over counts equal the digamma form, and its exact
    # slope agrees with digamma's forward difference.
    table = _mixed_table()
    rng = np.random.default_rng(2)
    mass = rng.random((3, 2, table.n_entries)) * table.multiplicity
    total = table.feature_sum(mass)
    mean = table.feature_sum(mass * table.values) / total
    log_alpha = rng.normal(0.0, 3.0, total.shape)
    grid = table.grid
    score, slope = _alpha_score(
        table, grid, mass, grid.tail_mass(mass), total, mean, log_alpha
    )
    expected_score, expected_slope = _alpha_score(
        table, None, mass, None, total, mean, log_alpha
    )
    np.testing.assert_allclose(score, expected_score, rtol=1e-10, atol=1e-10)
    # digamma's forward difference is good to its rounding (eps |digamma| /
    # step); the exact slope against a central difference of the grid score.
    np.testing.assert_allclose(slope, expected_slope, rtol=1e-3, atol=1e-4)
    step = 1e-5
    up, down = (
        _alpha_score(
            table, grid, mass, grid.tail_mass(mass), total, mean, log_alpha + h
        )[0]
        for h in (step, -step)
    )
    np.testing.assert_allclose(slope, (up - down) / (2 * step), rtol=1e-6, atol=1e-6)
    # And the digamma sums themselves are exact sums of reciprocals.
    sums, _ = _digamma_sums(table, mass, np.exp(log_alpha))
    a = np.exp(log_alpha)[1, 0, 0]
    first = slice(0, table.starts[1])
    exact = sum(
        m * (1.0 / (a + np.arange(k))).sum()
        for m, k in zip(mass[1, 0, first], table.values[first], strict=True)
    )
    assert sums[1, 0, 0] == pytest.approx(exact, rel=1e-12)


def test_grid_sums_do_not_depend_on_the_other_features():
    # A feature gets the same bits in any table: stacks of starts, blocks of
    # a parallel fit and bootstrap batches rely on it.
    table = _mixed_table()
    mass = np.random.default_rng(3).random((2, 2, table.n_entries))
    alpha = np.exp(np.random.default_rng(4).normal(0, 2, (2, 2, table.n_features)))
    total = table.feature_sum(mass)
    mean = table.feature_sum(mass * table.values) / total
    whole = _alpha_score(
        table, table.grid, mass, table.grid.tail_mass(mass), total, mean, np.log(alpha)
    )
    for features in ([0], [3, 0], [1, 0, 0, 2]):
        part = table.take_features(np.array(features))
        entries = np.concatenate([np.flatnonzero(table.feature == f) for f in features])
        sub_mass = mass[..., entries]
        got = _alpha_score(
            part,
            part.grid,
            sub_mass,
            part.grid.tail_mass(sub_mass),
            total[..., features],
            mean[..., features],
            np.log(alpha[..., features]),
        )
        for got_part, whole_part in zip(got, whole, strict=True):
            np.testing.assert_array_equal(got_part, whole_part[..., features])
