"""A plain numpy implementation of the compiled kernels, to test them against.

The package computes every E step, M step and gradient in compiled loops
(``sknbmix._kernels``). This module computes the same quantities the simple
way, with scipy's special functions on whole arrays, for one table of counts
at a time (no stacks, no shortcuts): the log-likelihood and responsibility
mass of the E step, the M step with alpha solved by Newton's method, the
gradient by Fisher's identity, and the SQUAREM extrapolation.

Where scipy's ``gammaln`` and ``digamma`` differences cancel (alpha large,
near the Poisson limit), the asymptotic series of ``sknbmix._nbinom`` take
over, as in the package; ``test_nbinom`` checks those series against exact
sums.
"""

import numpy as np
from scipy.special import digamma, gammaln, logsumexp

from sknbmix._likelihood import LOG_ALPHA_BOUNDS, LOG_B_BOUNDS, MASS_FLOOR, Theta
from sknbmix._nbinom import (
    ALPHA_MAX,
    ALPHA_MIN,
    MEAN_MIN,
    SERIES_ALPHA,
    STIRLING_ALPHA,
    digamma_series_difference,
    stirling_difference,
)


def _difference(function, series, threshold, x, alpha):
    direct = function(x + alpha) - function(alpha)
    alpha = np.broadcast_to(alpha, direct.shape)
    large = alpha > threshold
    if large.any():
        x = np.broadcast_to(x, direct.shape)
        direct = np.where(large, series(x, np.where(large, alpha, 1.0)), direct)
    return direct


def log_rising_factorial(x, alpha):
    """``gammaln(x + alpha) - gammaln(alpha)``, broadcast."""
    return _difference(gammaln, stirling_difference, STIRLING_ALPHA, x, alpha)


def digamma_difference(x, alpha):
    """``digamma(x + alpha) - digamma(alpha)``, broadcast."""
    return _difference(digamma, digamma_series_difference, SERIES_ALPHA, x, alpha)


def nbinom_logpmf(x, alpha, b):
    """``log NB(x; alpha, b)``, broadcast."""
    x = np.asarray(x, dtype=float)
    log1p_b = np.log1p(b)
    return (
        log_rising_factorial(x, alpha)
        - gammaln(x + 1.0)
        - alpha * log1p_b
        + x * (np.log(b) - log1p_b)
    )


def _per_entry(table, per_feature):
    """A (..., n_features) array onto the table's entries."""
    return per_feature.take(table.feature, axis=-1)


def e_step(table, shared_weights, theta):
    """The E step: the log-likelihood (per start, and per feature with
    independent weights), the responsibility mass at each distinct count
    (n_starts, n_components, n_entries) and the total mass per component
    (and feature, with independent weights)."""
    alpha = np.exp(theta.log_alpha)
    b = np.exp(theta.log_b)
    values = table.values
    log_prob = nbinom_logpmf(values, _per_entry(table, alpha), _per_entry(table, b))
    if shared_weights and table.n_features > 1:
        # One row per sample: a sample's log-probability sums its features',
        # zeros included (the zero entry of each feature).
        zero = log_prob[..., table.starts]
        excess = log_prob - _per_entry(table, zero)
        indicator = table.indicator.sparse()
        joint = (indicator @ excess.reshape(-1, table.n_entries).T).T
        joint = joint.reshape(log_prob.shape[:2] + (-1,))
        joint += theta.log_weights + zero.sum(axis=2, keepdims=True)
        log_norm = logsumexp(joint, axis=1, keepdims=True)
        resp = np.exp(joint - log_norm)
        mass = (indicator.T @ resp.reshape(-1, table.n_samples).T).T
        mass = mass.reshape(resp.shape[:2] + (-1,))
        total = resp.sum(axis=2, keepdims=True) + MASS_FLOOR
        return log_norm.sum(axis=2, keepdims=True), mass, total
    joint = log_prob + _per_entry(table, np.broadcast_to(theta.log_weights, b.shape))
    log_norm = logsumexp(joint, axis=1, keepdims=True)
    mass = table.multiplicity * np.exp(joint - log_norm)
    log_likelihood = table.feature_sum(table.multiplicity * log_norm)
    if shared_weights:
        log_likelihood = log_likelihood.sum(axis=2, keepdims=True)
    return log_likelihood, mass, table.feature_sum(mass) + MASS_FLOOR


def solve_alpha(table, mass, total, mean, alpha, max_iter=50):
    """Safeguarded Newton steps in ``log alpha`` on the profile score
    ``sum mass [digamma(x + a) - digamma(a)] - total log1p(mean / a)``, its
    slope by a forward difference; the Poisson cap where the weighted
    variance is not above the weighted mean."""
    second = table.feature_sum(mass * table.values**2) / total
    excess = second - mean * (mean + 1.0)
    poisson = excess <= mean * 1e-12
    moments = np.clip(mean**2 / np.where(poisson, 1.0, excess), ALPHA_MIN, ALPHA_MAX)
    alpha = moments if alpha is None else np.where(alpha >= ALPHA_MAX, moments, alpha)
    log_a = np.where(poisson, np.log(ALPHA_MAX), np.log(alpha))

    def score(a):
        difference = digamma_difference(table.values, _per_entry(table, a))
        return table.feature_sum(mass * difference) - total * np.log1p(mean / a)

    for _ in range(max_iter):
        value = score(np.exp(log_a))
        slope = (score(np.exp(log_a + 1e-6)) - value) / 1e-6
        step = np.where(slope < 0, -value / np.where(slope < 0, slope, 1.0), 0.0)
        step = np.where(slope < 0, step, np.sign(value))
        step = np.where(poisson, 0.0, np.clip(step, -1.0, 1.0))
        log_a = np.clip(log_a + step, *LOG_ALPHA_BOUNDS)
        if np.abs(step).max() < 1e-10:
            break
    return np.exp(log_a)


def m_step(table, mass, total, alpha=None, newton_steps=1):
    """The M step from the statistics of :func:`e_step`."""
    mean = np.maximum(table.feature_sum(mass * table.values) / total, MEAN_MIN)
    alpha = solve_alpha(table, mass, total, mean, alpha, max_iter=newton_steps)
    log_weights = np.log(total) - np.log(total.sum(axis=1, keepdims=True))
    return Theta(log_weights, np.log(alpha), np.log(mean) - np.log(alpha))


def em_step(table, shared_weights, theta, newton_steps=1):
    """One EM iteration: the log-likelihood at ``theta`` and the update."""
    log_likelihood, mass, total = e_step(table, shared_weights, theta)
    return log_likelihood, m_step(
        table, mass, total, np.exp(theta.log_alpha), newton_steps
    )


def gradient(table, shared_weights, theta):
    """The log-likelihood and its gradient in the logits of components 2..K
    against 1, in ``log alpha`` and in ``log b`` (Fisher's identity)."""
    log_likelihood, mass, total = e_step(table, shared_weights, theta)
    alpha, b = np.exp(theta.log_alpha), np.exp(theta.log_b)
    digamma_sum = table.feature_sum(
        mass * digamma_difference(table.values, _per_entry(table, alpha))
    )
    grad_log_alpha = alpha * (digamma_sum - total * np.log1p(b))
    first = table.feature_sum(mass * table.values)
    grad_log_b = (first - total * alpha * b) / (1.0 + b)
    weights = np.exp(theta.log_weights)
    grad_logits = (total - total.sum(axis=1, keepdims=True) * weights)[:, 1:]
    return log_likelihood, Theta(grad_logits, grad_log_alpha, grad_log_b)


def extrapolate(theta0, theta1, theta2, step_max):
    """The SQUAREM step (Varadhan and Roland 2008, scheme S3) of one problem
    from three iterates, with the step length capped at ``step_max``;
    returns the proposal and whether the cap cut it."""
    r = [t1 - t0 for t0, t1 in zip(theta0, theta1, strict=True)]
    v = [t2 - 2 * t1 + t0 for t0, t1, t2 in zip(theta0, theta1, theta2, strict=True)]
    r_norm2 = sum((x**2).sum() for x in r)
    v_norm2 = sum((x**2).sum() for x in v)
    length = np.sqrt(r_norm2 / v_norm2) if v_norm2 > 0 else np.inf
    length = max(length, 1.0) if np.isfinite(length) else 1.0
    step = -min(length, step_max)
    new = [
        t0 - 2 * step * dr + step**2 * dv
        for t0, dr, dv in zip(theta0, r, v, strict=True)
    ]
    proposal = Theta(
        new[0] - logsumexp(new[0], axis=1, keepdims=True),
        np.clip(new[1], *LOG_ALPHA_BOUNDS),
        np.clip(new[2], *LOG_B_BOUNDS),
    )
    return proposal, length >= step_max
