"""Counts up to 2**53 give log-likelihoods exact to 1e-9 (relative), checked
against arbitrary precision (mpmath); above 2**53 they are refused."""

import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest

from sknbmix import NegBinomMixture

mpmath.mp.dps = 40


def exact_log_prob(x, weights, alpha, b):
    """Per-sample log-likelihood of one feature's mixture, in mpmath."""
    out = []
    for value in x:
        value = mpmath.mpf(int(value))
        terms = []
        for w, a, scale in zip(weights, alpha, b, strict=True):
            a, scale = mpmath.mpf(a), mpmath.mpf(scale)
            terms.append(
                mpmath.log(w)
                + mpmath.loggamma(value + a)
                - mpmath.loggamma(a)
                - mpmath.loggamma(value + 1)
                - a * mpmath.log1p(scale)
                + value * (mpmath.log(scale) - mpmath.log1p(scale))
            )
        top = max(terms)
        out.append(top + mpmath.log(sum(mpmath.exp(t - top) for t in terms)))
    return np.array([float(v) for v in out]), sum(out)


def _draw(scale, n=400, seed=0):
    """Two over-dispersed groups (weights 0.3 / 0.7) at counts of order
    ``scale``."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.7
    alpha = np.where(y, 8.0, 3.0)
    mean = np.where(y, 4.0, 1.0) * scale
    X = rng.negative_binomial(alpha, alpha / (alpha + mean)).astype(float)
    return X[:, None]


@pytest.mark.parametrize("scale", [1e3, 1e9, 1e12, 1e14, 5e14])
def test_log_likelihood_is_exact_at_huge_counts(scale):
    X = _draw(scale)
    assert X.max() < 2.0**53
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NegBinomMixture(2).fit(X)
    want, total = exact_log_prob(
        X[:, 0], model.weights_, model.alpha_[:, 0], model.b_[:, 0]
    )
    got = model.score_samples(X)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert model.score(X) * len(X) == pytest.approx(float(total), rel=1e-10)
    # The fit finds the two groups, whatever the scale of the counts.
    np.testing.assert_allclose(model.weights_, [0.3, 0.7], atol=0.06)
    np.testing.assert_allclose(model.means_[:, 0] / scale, [1.0, 4.0], rtol=0.15)


def test_fit_does_not_depend_on_the_scale_of_huge_counts():
    # At such counts a negative binomial is its gamma limit: scaling the
    # counts by c scales b by c and leaves the weights, alpha and the
    # log-likelihood (less n log c) unchanged, up to the discreteness of
    # the counts, which is below 1e-9 here.
    X = _draw(1e12, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = NegBinomMixture(2).fit(X)
        large = NegBinomMixture(2).fit(np.round(X * 1000.0))
    np.testing.assert_allclose(large.weights_, small.weights_, rtol=1e-6)
    np.testing.assert_allclose(large.alpha_, small.alpha_, rtol=1e-6)
    gain = (large.score(X * 1000.0) - small.score(X)) + np.log(1000.0)
    assert abs(gain) < 1e-7


def test_counts_above_two_to_the_53_are_refused():
    X = _draw(1e3)
    X[3, 0] = 2.0**53
    NegBinomMixture(1).fit(X)  # the largest exact integer is accepted
    X[3, 0] = 2.0**53 + 2
    with pytest.raises(ValueError, match=r"2\*\*53"):
        NegBinomMixture(1).fit(X)


def test_public_counts_scaled_to_huge_values():
    # pscl's bioChemists$ment (tests/data), made continuous with a uniform
    # jitter and scaled by 1e9 to 1e14: at such counts the negative binomial
    # is its gamma limit, so the fit must not depend on the scale (weights
    # and alpha alike, the log-likelihood less n log(scale)), and its
    # log-likelihood must be exact.
    path = Path(__file__).parent / "data" / "biochemists_ment.csv"
    ment = np.loadtxt(path, skiprows=1)
    jitter = np.random.default_rng(0).random(ment.size)
    fits = {}
    for scale in (1e9, 1e12, 1e14):
        X = np.round((ment + jitter) * scale)[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[scale] = (NegBinomMixture(2).fit(X), X)
    reference, _ = fits[1e9]
    for scale, (model, X) in fits.items():
        np.testing.assert_allclose(model.weights_, reference.weights_, rtol=1e-6)
        np.testing.assert_allclose(model.alpha_, reference.alpha_, rtol=1e-5)
        per_sample = model.score(X) + np.log(scale)
        assert per_sample == pytest.approx(
            reference.score(fits[1e9][1]) + np.log(1e9), rel=1e-8
        )
    model, X = fits[1e14]
    rows = np.arange(0, len(X), 7)
    want, _ = exact_log_prob(
        X[rows, 0], model.weights_, model.alpha_[:, 0], model.b_[:, 0]
    )
    np.testing.assert_allclose(model.score_samples(X)[rows], want, rtol=1e-10)
