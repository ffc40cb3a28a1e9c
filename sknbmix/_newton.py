"""Newton's method on the mixture log-likelihood, to finish what EM starts.

EM, even accelerated, crawls where components overlap heavily or a component
nears the Poisson limit: the fits of Rest or Nanog in the built-in data take
more than a hundred iterations. Newton's method converges quadratically there,
and its decrement ``g' (-H)^-1 g / 2`` estimates the gain still to come, so it
also certifies that a fit is within ``tol`` of a maximum.

Problems are independent (one per start of the shared model; one per start
and feature with independent weights), so each column of the Hessian, a
forward difference of the analytic gradient, is computed for all problems at
once: a Newton step costs ``n_params + 1`` gradient evaluations of the whole
batch, where ``n_params`` counts the parameters of one problem.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from sknbmix._em import (
    _LOG_ALPHA_BOUNDS,
    _LOG_B_BOUNDS,
    Theta,
    log_weights_from_logits,
)

# Forward-difference step of the Hessian, in log coordinates.
_HESSIAN_STEP = 1e-5
# Largest change of any coordinate in one step (a factor of e).
_MAX_STEP = 1.0
# Beyond this alpha (1e5) the likelihood is flat in alpha: the Poisson limit.
_LOG_ALPHA_FLAT = np.log(1e5)


def to_vector(problem, theta):
    """One row of unconstrained coordinates per problem.

    The coordinates are the logits of components 2..K against component 1,
    ``log alpha`` and ``log mean``. With the mean held, the Poisson limit is
    ``log alpha`` running to its bound alone, where it can be held fixed.

    Returns
    -------
    vector : ndarray of shape (n_starts, n_params) with shared weights, else
        (n_starts, n_features, n_params)
    """
    logits = theta.log_weights[:, 1:] - theta.log_weights[:, :1]
    log_mean = theta.log_alpha + theta.log_b
    return _flatten(problem, Theta(logits, theta.log_alpha, log_mean))


def _flatten(problem, parts):
    n_starts = parts.log_alpha.shape[0]
    if problem.shared_weights:
        return np.concatenate([x.reshape(n_starts, -1) for x in parts], axis=1)
    return np.concatenate(parts, axis=1).transpose(0, 2, 1)


def from_vector(problem, vector, n_components, n_features):
    """Inverse of :func:`to_vector`, with ``log alpha`` and ``log b`` clipped to
    the bounds of the EM."""
    K = n_components
    if problem.shared_weights:
        n_starts = vector.shape[0]
        size = K * n_features
        logits = vector[:, : K - 1].reshape(n_starts, K - 1, 1)
        log_alpha = vector[:, K - 1 : K - 1 + size].reshape(n_starts, K, n_features)
        log_mean = vector[:, K - 1 + size :].reshape(n_starts, K, n_features)
    else:
        columns = vector.transpose(0, 2, 1)
        logits = columns[:, : K - 1]
        log_alpha = columns[:, K - 1 : 2 * K - 1]
        log_mean = columns[:, 2 * K - 1 :]
    log_alpha = np.clip(log_alpha, *_LOG_ALPHA_BOUNDS)
    return Theta(
        log_weights_from_logits(logits),
        log_alpha,
        np.clip(log_mean - log_alpha, *_LOG_B_BOUNDS),
    )


def _bounds(problem, n_components, n_features, shape):
    """Lower and upper bounds of each coordinate, broadcast to ``shape``."""
    K = n_components
    n_alpha = K * (n_features if problem.shared_weights else 1)
    low = np.concatenate(
        [
            np.full(K - 1, -np.inf),
            np.full(n_alpha, _LOG_ALPHA_BOUNDS[0]),
            np.full(n_alpha, -np.inf),
        ]
    )
    high = np.concatenate(
        [
            np.full(K - 1, np.inf),
            np.full(n_alpha, _LOG_ALPHA_BOUNDS[1]),
            np.full(n_alpha, np.inf),
        ]
    )
    return np.broadcast_to(low, shape), np.broadcast_to(high, shape)


def _problem_values(problem, log_likelihood):
    """Problem-shaped log-likelihoods as an array of the batch shape."""
    return log_likelihood[:, 0, 0] if problem.shared_weights else log_likelihood[:, 0]


def newton_maximise(problem, theta, *, max_iter, tol):
    """Maximise each problem's log-likelihood by modified Newton steps.

    The Hessian's eigenvalues are floored so that every step goes uphill, the
    step is cut to at most one e-fold in any coordinate, and a step that does
    not raise the log-likelihood is shortened (by 4, at most three times).
    Coordinates at a bound with the gradient pointing out of it (``alpha``
    at the Poisson cap) are held fixed.

    Parameters
    ----------
    problem : MixtureProblem
    theta : Theta
        Starting points, one or more starts.
    max_iter : int
        Newton steps at most.
    tol : float
        A problem has converged when the Newton decrement, the gain a full
        step is expected to bring, is below ``tol``.

    Returns
    -------
    theta : Theta
    log_likelihood : ndarray, problem-shaped
    n_iter : int
    converged : ndarray of bool, problem-shaped
    """
    K, n_features = theta.log_alpha.shape[1:]
    vector = to_vector(problem, theta)
    low, high = _bounds(problem, K, n_features, vector.shape)
    n_params = vector.shape[-1]
    alpha_coordinate = high == _LOG_ALPHA_BOUNDS[1]

    def evaluate(vector):
        log_likelihood, gradient = problem.gradient(
            from_vector(problem, vector, K, n_features)
        )
        # From (log alpha, log b) to (log alpha, log mean): log b = log mean -
        # log alpha.
        gradient = Theta(
            gradient.log_weights,
            gradient.log_alpha - gradient.log_b,
            gradient.log_b,
        )
        return log_likelihood, _flatten(problem, gradient)

    log_likelihood, gradient = evaluate(vector)
    converged = np.zeros(vector.shape[:-1], dtype=bool)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        # Deep in the Poisson limit the likelihood is flat in alpha and
        # rising: alpha goes to its cap in one jump, where it is held.
        to_cap = alpha_coordinate & (vector > _LOG_ALPHA_FLAT) & (vector < high)
        to_cap &= gradient > 0
        if to_cap.any():
            jumped = np.where(to_cap, high, vector)
            jumped_ll, jumped_gradient = evaluate(jumped)
            gained = _problem_values(problem, jumped_ll) >= _problem_values(
                problem, log_likelihood
            )
            vector = np.where(gained[..., None], jumped, vector)
            gradient = np.where(gained[..., None], jumped_gradient, gradient)
            log_likelihood = _where_problem(problem, gained, jumped_ll, log_likelihood)
        # Columns of the Hessian by forward differences of the gradient.
        hessian = np.empty(vector.shape + (n_params,))
        for p in range(n_params):
            shifted = vector.copy()
            shifted[..., p] += _HESSIAN_STEP
            hessian[..., p] = (evaluate(shifted)[1] - gradient) / _HESSIAN_STEP
        hessian = 0.5 * (hessian + np.swapaxes(hessian, -1, -2))
        frozen = ((vector >= high) & (gradient > 0)) | (
            (vector <= low) & (gradient < 0)
        )
        free_gradient = np.where(frozen, 0.0, gradient)
        hessian = np.where(frozen[..., None] | frozen[..., None, :], 0.0, hessian)
        # Saddle-free Newton: along each eigenvector of -H, a step of
        # (gradient component) / |curvature|, which goes uphill also where the
        # surface is not concave; directions flat to rounding are left alone.
        curvature, basis = np.linalg.eigh(-hessian)
        size = np.abs(curvature)
        flat = size <= 1e-9 * size.max(axis=-1, keepdims=True)
        component = np.einsum("...pq,...p->...q", basis, free_gradient)
        coefficient = np.where(flat, 0.0, component / np.where(flat, 1.0, size))
        step = np.einsum("...pq,...q->...p", basis, coefficient)
        decrement = 0.5 * np.einsum("...q,...q->...", component, coefficient)
        converged |= decrement < tol
        if converged.all():
            break
        step = np.clip(step, -_MAX_STEP, _MAX_STEP)
        step[converged] = 0.0
        current = _problem_values(problem, log_likelihood)
        for _ in range(4):
            trial = np.clip(vector + step, low, high)
            trial_ll, trial_gradient = evaluate(trial)
            better = _problem_values(problem, trial_ll) > current
            if better[~converged].all():
                break
            step[~better] /= 4.0
        moved = better & ~converged
        vector = np.where(moved[..., None], trial, vector)
        gradient = np.where(moved[..., None], trial_gradient, gradient)
        log_likelihood = _where_problem(problem, moved, trial_ll, log_likelihood)
        # No gain even from a short step: rounding has the last word. Report
        # convergence only if the step promised little anyway.
        stuck = ~better & ~converged
        converged |= stuck & (decrement < 1e3 * tol)
        if (converged | stuck).all():
            break
    theta = from_vector(problem, vector, K, n_features)
    shape = log_likelihood.shape
    if problem.shared_weights:
        converged = converged[:, None, None]
    else:
        converged = converged[:, None, :]
    return theta, log_likelihood, n_iter, np.broadcast_to(converged, shape)


def _where_problem(problem, mask, new, old):
    mask = mask[:, None, None] if problem.shared_weights else mask[:, None, :]
    return np.where(mask, new, old)
