"""The negative binomial in the (alpha, b) parametrisation.

``NB(x; alpha, b)`` has mean ``alpha * b`` and variance ``alpha * b * (1 + b)``;
it is ``scipy.stats.nbinom(n=alpha, p=1 / (1 + b))``.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.special import digamma, gammaln

#: Largest ``alpha`` a fit may reach. Where a component's weighted variance is
#: not above its mean the likelihood keeps rising as ``alpha`` grows (the
#: Poisson limit); the fit stops here, where the negative binomial is a Poisson
#: to within a relative variance excess of ``mean / ALPHA_MAX``.
ALPHA_MAX = 1e8

#: Smallest ``alpha`` a fit may reach (extreme over-dispersion).
ALPHA_MIN = 1e-8

#: Smallest component mean: a component without counts of a feature would
#: otherwise get ``b = 0`` and ``log b = -inf``.
MEAN_MIN = 1e-12


def at_poisson_limit(alpha):
    """Whether ``alpha`` is at its cap :data:`ALPHA_MAX` (to the rounding of
    ``exp(log(ALPHA_MAX))``): the Poisson limit, with no finite maximum."""
    return alpha >= ALPHA_MAX * (1 - 1e-12)


_LOG_ALPHA_MIN, _LOG_ALPHA_MAX = np.log(ALPHA_MIN), np.log(ALPHA_MAX)
_DIFFERENCE_STEP = 1e-6
_DIFFERENCE_PAIR = np.array([1.0, np.exp(_DIFFERENCE_STEP)])

# Above this alpha, gammaln(x + alpha) - gammaln(alpha) loses digits to
# cancellation; a Stirling difference is used instead.
_STIRLING_ALPHA = 1e4
# Above this alpha digamma differences come from the series, whose first
# omitted term is below 1 / (252 alpha^6), 4e-21: the direct difference,
# accurate to eps * log(alpha) only, would leave the score for alpha, a
# small difference of such sums near the Poisson limit, too noisy for the
# finite-difference slope of Newton's method.
_SERIES_ALPHA = 1e3


def _clip(x, low, high):
    """``np.clip`` without its per-call overhead, which dominates on the small
    arrays of a fit."""
    return np.minimum(np.maximum(x, low), high)


def log_rising_factorial(x, alpha, feature=None):
    """``gammaln(x + alpha) - gammaln(alpha)``, accurate for large ``alpha``.

    Parameters
    ----------
    x : ndarray
        Non-negative counts, broadcastable against ``alpha.take(feature, axis=-1)``.
    alpha : ndarray
        Positive.
    feature : ndarray of int or None
        If given, ``alpha`` is indexed with it on the last axis (one alpha per
        feature, gathered onto that feature's distinct counts); the costly
        ``gammaln(alpha)`` then runs once per feature, not once per count.

    Returns
    -------
    ndarray
    """
    direct, alpha_x = _difference(gammaln, x, alpha, feature)
    if alpha.max() > _STIRLING_ALPHA:
        _patch_large_alpha(direct, x, alpha_x, _stirling_difference, _STIRLING_ALPHA)
    return direct


def digamma_difference(x, alpha, feature=None):
    """``digamma(x + alpha) - digamma(alpha)``, accurate for large ``alpha``.

    Arguments as in :func:`log_rising_factorial`. Near the Poisson limit the
    difference is about ``x / alpha`` while each digamma is about
    ``log(alpha)``: the direct form loses all but a few digits at ``alpha =
    1e8``, which, multiplied by ``alpha`` in a gradient in ``log alpha``,
    turns into noise that derails Newton's method. There the asymptotic
    series of digamma is differenced term by term instead.
    """
    direct, alpha_x = _difference(digamma, x, alpha, feature)
    if alpha.max() > _SERIES_ALPHA:
        _patch_large_alpha(
            direct, x, alpha_x, _digamma_series_difference, _SERIES_ALPHA
        )
    return direct


def _difference(function, x, alpha, feature):
    """``function(x + alpha) - function(alpha)`` directly, with ``alpha``
    gathered onto the counts by ``feature`` (``function(alpha)`` then runs
    once per feature); also returns the gathered alpha."""
    alpha_x = alpha if feature is None else alpha.take(feature, axis=-1)
    at_alpha = function(alpha)
    if feature is not None:
        at_alpha = at_alpha.take(feature, axis=-1)
    return function(x + alpha_x) - at_alpha, alpha_x


def _stirling_difference(x, a):
    # Stirling's series for gammaln(x + a) - gammaln(a), arranged so that
    # nothing cancels: (a - 1/2) log1p(x/a) + x log(a + x) - x
    # - x / (12 a (a + x)) + O(a^-3).
    return (
        (a - 0.5) * np.log1p(x / a)
        + x * (np.log(a + x) - 1.0)
        - x / (12.0 * a * (a + x))
    )


def _digamma_series_difference(x, a):
    # digamma(z) = log z - 1/(2z) - 1/(12 z^2) + 1/(120 z^4) + O(z^-6),
    # differenced term by term so that nothing cancels.
    z = a + x
    az = a * z
    return (
        np.log1p(x / a)
        + x / (2.0 * az)
        + x * (a + z) / (12.0 * az**2)
        - x * (a + z) * (a * a + z * z) / (120.0 * az**4)
    )


def _patch_large_alpha(direct, x, alpha_x, series, threshold):
    """Overwrite the elements of ``direct`` whose alpha is above
    ``threshold`` with ``series(x, alpha)``, element by element (in a stack
    of many problems, few have such an alpha)."""
    large = np.flatnonzero(alpha_x > threshold)
    if not large.size:
        return
    if alpha_x.shape != direct.shape:
        # One alpha per (start, component) broadcast over the counts.
        alpha_x = np.broadcast_to(alpha_x, direct.shape)
        large = np.flatnonzero(alpha_x > threshold)
    x = np.asarray(x, dtype=float)
    if x.ndim <= 1 and x.size == direct.shape[-1]:
        # Counts along the last axis only: index them without broadcasting.
        x = x.reshape(-1)[large % direct.shape[-1]]
    else:
        x = np.broadcast_to(x, direct.shape).reshape(-1)[large]
    flat = direct.reshape(-1)
    flat[large] = series(x, alpha_x.reshape(-1)[large])


def nbinom_logpmf(x, alpha, b):
    """Log-probability of counts ``x`` under ``NB(alpha, b)``.

    Parameters
    ----------
    x : array-like
        Non-negative integer counts.
    alpha, b : array-like
        Positive parameters, broadcastable against ``x``.

    Returns
    -------
    ndarray
        Equal to ``scipy.stats.nbinom.logpmf(x, alpha, 1 / (1 + b))``.
    """
    x, alpha, b = np.broadcast_arrays(np.asarray(x, dtype=float), alpha, b)
    log1p_b = np.log1p(b)
    return (
        log_rising_factorial(x, alpha)
        - gammaln(x + 1.0)
        - alpha * log1p_b
        + x * (np.log(b) - log1p_b)
    )


def solve_alpha(table, mass, total, mean, alpha, *, max_iter=50):
    """Maximise the weighted likelihood over ``alpha`` with ``b = mean / alpha``.

    Solves the profile score

        f(a) = sum_j mass_j [digamma(values_j + a) - digamma(a)]
               + total * log(a / (a + mean)) = 0

    by safeguarded Newton steps in ``log a``, warm-started from ``alpha``.
    Where the weighted variance is not above the weighted mean there is no
    finite root; ``alpha`` goes to :data:`ALPHA_MAX` (the Poisson limit).

    Parameters
    ----------
    table : CountTable
        The distinct counts of each feature.
    mass : ndarray of shape (..., n_components, n_entries)
        Responsibility mass at each distinct count.
    total, mean : ndarray of shape (..., n_components, n_features)
        Total mass and weighted mean per component and feature.
    alpha : ndarray of shape (..., n_components, n_features) or None
        Starting values; None starts from the method of moments.

    Returns
    -------
    alpha : ndarray of shape (..., n_components, n_features)
    """
    second_moment = table.feature_sum(mass * table.values_squared) / total
    excess = second_moment - mean * (mean + 1.0)
    poisson = excess <= mean * 1e-12
    if alpha is None or alpha.max() >= ALPHA_MAX:
        # Warm start, except from the cap (a component leaving the Poisson
        # limit), which is too far away: there, start from the moments.
        moments = _clip(mean**2 / np.where(poisson, 1.0, excess), ALPHA_MIN, ALPHA_MAX)
        alpha = (
            moments if alpha is None else np.where(alpha >= ALPHA_MAX, moments, alpha)
        )
    log_a = np.log(alpha)
    log_a[poisson] = _LOG_ALPHA_MAX
    if poisson.all():
        return np.exp(log_a)
    for iteration in range(max_iter):
        # The slope comes from a forward difference in log a, in the same
        # digamma call as the score: scipy's polygamma(1, .) costs as much as
        # twenty digamma calls, and the root does not depend on the slope.
        a = np.multiply.outer(_DIFFERENCE_PAIR, np.exp(log_a))
        score = _alpha_score(table, mass, total, mean, a)
        slope = (score[1] - score[0]) / _DIFFERENCE_STEP
        # A maximum has a falling score; elsewhere move uphill by one e-fold.
        falling = slope < 0
        newton = np.divide(-score[0], slope, out=np.sign(score[0]), where=falling)
        newton = _clip(newton, -1.0, 1.0)
        newton[poisson] = 0.0
        log_a = _clip(log_a + newton, _LOG_ALPHA_MIN, _LOG_ALPHA_MAX)
        if iteration + 1 < max_iter and np.abs(newton).max() < 1e-10:
            break
    return np.exp(log_a)


def _alpha_score(table, mass, total, mean, alpha):
    """The profile score for ``alpha`` (see :func:`solve_alpha`)."""
    return table.feature_sum(
        mass * digamma_difference(table.values, alpha, table.feature)
    ) - total * np.log1p(mean / alpha)
