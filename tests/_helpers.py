"""Independent reference computations for the tests.

Everything here uses scipy alone (``scipy.stats.nbinom`` and
``scipy.special.logsumexp``), never sknbmix code, so that the tests check the
package against a second implementation of the model.
"""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp
from scipy.stats import nbinom

# Known optima on the built-in data: the "Known maximum-likelihood fits" of
# load_singer().DESCR, also in docs/method.rst.
REX1_K1_LOGLIK = -1638.678352600
REX1_K2_LOGLIK = -1590.352137603
FOUR_GENES_K2_LOGLIK = -5025.819341247


def dense(X):
    """A dense float copy of X (array, frame or sparse matrix)."""
    if sp.issparse(X):
        return X.toarray().astype(float)
    return np.asarray(X, dtype=float)


# Above this alpha, scipy's nbinom.logpmf loses digits: gammaln(x + alpha) -
# gammaln(alpha) cancels (at alpha = 1e8, gammaln(alpha) ~ 1.7e9, an error of
# ~4e-7 per count), and so does log1p(-p) for p = 1 / (1 + b) near 1.
_SCIPY_ALPHA_MAX = 1e4


def _nb_logpmf_large_alpha(x, alpha, b):
    """``log NB(x; alpha, b)`` for one large alpha, without cancellation.

    ``gammaln(x + a) - gammaln(a) = x log a + sum_{j < x} log1p(j / a)``
    exactly for integer x; the sum is a cumulative sum over 0..max(x).
    """
    x = x.astype(np.int64)
    terms = np.log1p(np.arange(max(int(x.max()), 1)) / alpha)
    partial = np.concatenate([[0.0], np.cumsum(terms)])
    log_rising = x * np.log(alpha) + partial[x]
    return (
        log_rising
        - gammaln(x + 1.0)
        - alpha * np.log1p(b)
        + x * (np.log(b) - np.log1p(b))
    )


def nb_logpmf(X, alpha, b):
    """``log NB(x_ig; alpha_kg, b_kg)`` of shape (n_samples, K, n_features).

    ``scipy.stats.nbinom.logpmf(x, alpha, 1 / (1 + b))``, except that
    components in the Poisson limit (alpha above 1e4, e.g. at the fit's cap of
    1e8) use an exact rising-factorial sum, where scipy is off by ~1e-7.
    """
    X = dense(X)
    alpha = np.asarray(alpha, dtype=float)
    b = np.asarray(b, dtype=float)
    log_pmf = nbinom.logpmf(X[:, None, :], alpha[None], 1.0 / (1.0 + b[None]))
    for k, g in zip(*np.nonzero(alpha > _SCIPY_ALPHA_MAX), strict=True):
        log_pmf[:, k, g] = _nb_logpmf_large_alpha(X[:, g], alpha[k, g], b[k, g])
    return log_pmf


def mixture_log_joint(X, weights, alpha, b, shared_weights=True):
    """Log joint of each sample (and feature) with each component.

    Shape (n_samples, K) with shared weights, (n_samples, K, n_features)
    without.
    """
    log_pmf = nb_logpmf(X, alpha, b)
    weights = np.asarray(weights, dtype=float)
    if shared_weights:
        return np.log(weights)[None, :] + log_pmf.sum(axis=2)
    # weights has shape (n_features, K).
    return np.log(weights.T)[None] + log_pmf


def mixture_score_samples(X, weights, alpha, b, shared_weights=True):
    """Per-sample mixture log-likelihood.

    shared:      logsumexp_k [log w_k + sum_g logpmf]
    independent: sum_g logsumexp_k [log w_gk + logpmf]
    """
    joint = mixture_log_joint(X, weights, alpha, b, shared_weights)
    if shared_weights:
        return logsumexp(joint, axis=1)
    return logsumexp(joint, axis=1).sum(axis=1)


def mixture_predict_proba(X, weights, alpha, b, shared_weights=True):
    """Posterior component probabilities, shaped like ``predict_proba``."""
    joint = mixture_log_joint(X, weights, alpha, b, shared_weights)
    proba = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    if shared_weights:
        return proba
    return proba.transpose(0, 2, 1)


def mixture_loglik(X, weights, alpha, b, shared_weights=True):
    """Total mixture log-likelihood of X."""
    return float(mixture_score_samples(X, weights, alpha, b, shared_weights).sum())


def estimator_loglik(est, X):
    """Total log-likelihood of X at a fitted estimator's parameters."""
    return mixture_loglik(X, est.weights_, est.alpha_, est.b_, est.shared_weights)


# -- an independent Powell polish ------------------------------------------


def _pack(weights, alpha, b):
    weights = np.asarray(weights, dtype=float)
    logits = np.log(weights[1:]) - np.log(weights[0])
    return np.concatenate([np.log(alpha).ravel(), np.log(b).ravel(), logits])


def _unpack(vector, n_components, n_features):
    size = n_components * n_features
    log_alpha = vector[:size].reshape(n_components, n_features)
    log_b = vector[size : 2 * size].reshape(n_components, n_features)
    logits = np.concatenate([[0.0], vector[2 * size :]])
    weights = np.exp(logits - logsumexp(logits))
    return weights, np.exp(log_alpha), np.exp(log_b)


def powell_polish(X, weights, alpha, b, n_rounds=3):
    """Maximise the shared-weights mixture log-likelihood with scipy's Powell.

    Works in unconstrained coordinates (log alpha, log b, weight logits
    against the first component), starting exactly at the given parameters,
    and restarts Powell from its own answer a few times (its direction set
    degenerates on curved ridges). Counts are compressed to distinct rows
    with multiplicities, which changes nothing in the likelihood.

    Returns
    -------
    start, best : float
        The log-likelihood at the start and the best one found.
    """
    rows, multiplicity = np.unique(dense(X), axis=0, return_counts=True)
    n_components, n_features = np.shape(alpha)

    def negative(vector):
        w, a, bb = _unpack(vector, n_components, n_features)
        joint = np.log(w)[None] + nb_logpmf(rows, a, bb).sum(axis=2)
        value = float(multiplicity @ logsumexp(joint, axis=1))
        return -value if np.isfinite(value) else np.inf

    vector = _pack(weights, alpha, b)
    start = best = -negative(vector)
    for _ in range(n_rounds):
        result = minimize(
            negative,
            vector,
            method="Powell",
            options={"xtol": 1e-10, "ftol": 1e-15, "maxfev": 200_000},
        )
        if -result.fun > best:
            vector, best = result.x, -result.fun
    return start, best
