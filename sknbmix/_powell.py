"""Direct maximisation of the mixture log-likelihood with Powell's method.

The reference the EM is checked against, and a fallback. All parameters are
mapped to unconstrained coordinates (``log alpha``, ``log b`` and weight
logits against the first component) by one pair of functions,
:func:`pack` and :func:`unpack`, so that the layout can never disagree.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.optimize import minimize

from sknbmix._likelihood import clip_theta, log_weights_from_logits


def pack(theta):
    """Flatten one start of ``theta`` into an unconstrained vector.

    Layout: ``log_alpha`` (n_components x n_features, row-major), then
    ``log_b`` likewise, then the logits of components 2..K against component
    1 for each weight group (one group, or one per feature).
    """
    logits = theta.log_weights[0, 1:] - theta.log_weights[0, :1]
    return np.concatenate(
        [theta.log_alpha[0].ravel(), theta.log_b[0].ravel(), logits.ravel()]
    )


def unpack(vector, n_components, n_features, n_weight_groups):
    """Inverse of :func:`pack`; ``log alpha`` and ``log b`` are clipped to the
    bounds the EM uses, so the two solvers search the same parameter space."""
    size = n_components * n_features
    shape = (1, n_components, n_features)
    logits = vector[2 * size :].reshape(1, n_components - 1, n_weight_groups)
    return clip_theta(
        log_weights_from_logits(logits),
        vector[:size].reshape(shape),
        vector[size : 2 * size].reshape(shape),
    )


def powell_maximise(likelihood, theta, *, max_iter, tol, max_restarts=20):
    """Maximise the total log-likelihood from one start by Powell's method.

    Powell's direction set degenerates on long curved ridges and stops short,
    so it is restarted from its own answer (with fresh directions) until a
    restart gains less than ``tol``.

    Parameters
    ----------
    likelihood : MixtureLikelihood
    theta : Theta
        One start (leading axis of length 1).
    max_iter : int
        Powell iterations per run.
    tol : float
        Gain in total log-likelihood below which a restart ends the search.

    Returns
    -------
    theta : Theta
    log_likelihood : float
    n_iter : int
        Powell iterations over all runs.
    converged : bool
    """
    n_components, n_features = theta.log_alpha.shape[1:]
    n_weight_groups = theta.log_weights.shape[2]

    def negative_log_likelihood(vector):
        value = likelihood.log_likelihood(
            unpack(vector, n_components, n_features, n_weight_groups)
        ).sum()
        return -value if np.isfinite(value) else np.inf

    vector = pack(theta)
    best = negative_log_likelihood(vector)
    n_iter = 0
    converged = False
    for _ in range(max_restarts):
        result = minimize(
            negative_log_likelihood,
            vector,
            method="Powell",
            options={"maxiter": max_iter, "xtol": 1e-10, "ftol": 1e-15},
        )
        n_iter += result.nit
        gain = best - result.fun
        if result.fun <= best:
            vector, best = result.x, result.fun
        if not result.success:
            # Out of iterations or evaluations: report it, do not raise.
            break
        if gain < tol:
            converged = True
            break
    theta = unpack(vector, n_components, n_features, n_weight_groups)
    return theta, -best, n_iter, converged
