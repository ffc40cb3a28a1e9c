"""The negative binomial in the (alpha, b) parametrisation.

``NB(x; alpha, b)`` has mean ``alpha * b`` and variance ``alpha * b * (1 + b)``;
it is ``scipy.stats.nbinom(n=alpha, p=1 / (1 + b))``. Its bounds, and the
series that the compiled kernels (:mod:`sknbmix._kernels`) use where
``lgamma`` and ``digamma`` differences cancel.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

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

#: The box every solver keeps ``log alpha`` and ``log b`` in.
LOG_ALPHA_BOUNDS = (float(np.log(ALPHA_MIN)), float(np.log(ALPHA_MAX)))
LOG_B_BOUNDS = (float(np.log(MEAN_MIN / ALPHA_MAX)) - 1.0, 50.0)


def at_poisson_limit(alpha):
    """Whether ``alpha`` is at its cap :data:`ALPHA_MAX` (to the rounding of
    ``exp(log(ALPHA_MAX))``): the Poisson limit, with no finite maximum."""
    return alpha >= ALPHA_MAX * (1 - 1e-12)


# Above this alpha, lgamma(x + alpha) - lgamma(alpha) loses digits to
# cancellation; a Stirling difference is used instead.
STIRLING_ALPHA = 1e4
# Above this alpha digamma differences come from the series, whose first
# omitted term is below 1 / (252 alpha^6), 4e-21: the direct difference,
# accurate to eps * log(alpha) only, would leave the score for alpha, a
# small difference of such sums near the Poisson limit, too noisy for the
# finite-difference slope of Newton's method (digamma is about log(alpha)
# where the difference is about x / alpha).
SERIES_ALPHA = 1e3


def clip(x, low, high):
    """``np.clip`` without its per-call overhead, which dominates on the small
    arrays of a fit."""
    return np.minimum(np.maximum(x, low), high)


def stirling_difference(x, a):
    # Stirling's series for gammaln(x + a) - gammaln(a), arranged so that
    # nothing cancels: (a - 1/2) log1p(x/a) + x log(a + x) - x
    # - x / (12 a (a + x)) + O(a^-3).
    return (
        (a - 0.5) * np.log1p(x / a)
        + x * (np.log(a + x) - 1.0)
        - x / (12.0 * a * (a + x))
    )


def digamma_series_difference(x, a):
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
