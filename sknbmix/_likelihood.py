"""The log-likelihood of a negative binomial mixture on a table of counts.

Parameters live in log coordinates as a :class:`Theta` of arrays shaped
``(n_starts, n_components, n_features)`` (log-weights: ``(n_starts,
n_components, 1)`` when the weights are shared), so that several starts run
in one call. Components sit on axis 1, not last: the compiled loops read a
start's parameters for one feature together.

:class:`MixtureLikelihood` wires a :class:`~sknbmix._data.CountTable` to the
compiled loops of :mod:`sknbmix._kernels`: the EM step, the log-likelihood,
its gradient, and the per-sample log-probabilities of prediction. How
several independent maximisations share a batch is not its business (see
:mod:`sknbmix._stack`).
"""

# SPDX-License-Identifier: BSD-3-Clause

import copy
from typing import NamedTuple

import numpy as np

from sknbmix import _kernels
from sknbmix._nbinom import ALPHA_MAX, ALPHA_MIN, MEAN_MIN, clip

# Added to each component's responsibility mass, as scikit-learn's
# GaussianMixture does, so that an emptied component keeps finite parameters.
MASS_FLOOR = 10 * np.finfo(float).eps
LOG_ALPHA_BOUNDS = (np.log(ALPHA_MIN), np.log(ALPHA_MAX))
LOG_B_BOUNDS = (np.log(MEAN_MIN / ALPHA_MAX) - 1.0, 50.0)


class Theta(NamedTuple):
    """Mixture parameters in log coordinates, with a leading start axis."""

    log_weights: np.ndarray
    log_alpha: np.ndarray
    log_b: np.ndarray


def logsumexp_components(a):
    """``logsumexp`` over axis 1 (keepdims) and the normalised exponent.

    One ``exp`` per element: ``np.logaddexp.reduce`` would take an ``exp`` and
    a ``log1p`` per element, three times slower here.
    """
    top = a.max(axis=1, keepdims=True)
    exp = np.exp(a - top)
    total = exp.sum(axis=1, keepdims=True)
    return np.log(total) + top, exp / total


def log_weights_from_logits(logits):
    """Log-weights from the logits of components 2..K against component 1
    (axis 1), for the solvers that work in unconstrained coordinates."""
    first = np.zeros((logits.shape[0], 1) + logits.shape[2:])
    logits = np.concatenate([first, logits], axis=1)
    return logits - logsumexp_components(logits)[0]


def clip_theta(log_weights, log_alpha, log_b):
    """A :class:`Theta` with ``log alpha`` and ``log b`` clipped to the
    bounds that every solver keeps."""
    return Theta(
        log_weights, clip(log_alpha, *LOG_ALPHA_BOUNDS), clip(log_b, *LOG_B_BOUNDS)
    )


def contiguous(theta):
    """The arrays of ``theta`` as C-contiguous float64, as the compiled loops
    take them."""
    return tuple(np.ascontiguousarray(x, dtype=np.float64) for x in theta)


class MixtureLikelihood:
    """The log-likelihood of a mixture on a table of counts, and EM on it.

    Parameters
    ----------
    table : CountTable
        The compressed counts.
    shared_weights : bool
        One latent component per sample shared by all features, or an
        independent mixture per feature.
    newton_steps : int, default=1
        Newton steps for ``alpha`` per M step. One suffices: the M step need
        only raise the expected log-likelihood (a generalised EM), and EM's
        fixed point does not depend on it.
    """

    def __init__(self, table, shared_weights, newton_steps=1):
        self.table = table
        self.shared_weights = shared_weights
        self.newton_steps = newton_steps
        # With one feature both models coincide, and the table form (one row
        # per distinct count) is far cheaper than one row per sample.
        self.per_cell = shared_weights and table.n_features > 1

    def take_features(self, features):
        """The independent mixtures of the given features, in that order
        (repeats allowed)."""
        return MixtureLikelihood(
            self.table.take_features(features), False, self.newton_steps
        )

    def exact(self):
        """The same likelihood with alpha solved to convergence in the M step
        (an exact M step, which cannot lower the likelihood)."""
        exact = copy.copy(self)
        # Each Newton step moves at most one e-fold: these cross alpha's range.
        exact.newton_steps = 50
        return exact

    # -- the compiled loops ----------------------------------------------------

    def _pass(self, theta, mode):
        """The E step at ``theta``, then what ``mode`` asks for (see
        :func:`sknbmix._kernels.table_step`)."""
        table = self.table
        if self.per_cell:
            indicator = table.indicator
            return _kernels.cell_step(
                table.values,
                table.log_factorial,
                table.starts,
                indicator.indptr,
                indicator.indices,
                *contiguous(theta),
                self.newton_steps,
                mode,
                MASS_FLOOR,
            )
        return _kernels.table_step(
            table.values,
            table.log_factorial,
            table.multiplicity,
            table.starts,
            *contiguous(theta),
            self.newton_steps,
            mode,
            MASS_FLOOR,
        )

    def em_step(self, theta):
        """One EM iteration: the log-likelihood at ``theta`` (per start, and
        per feature with independent weights, shaped (n_starts, 1, 1 or
        n_features)) and the updated parameters."""
        log_likelihood, *new = self._pass(theta, _kernels.M_STEP)
        return log_likelihood, Theta(*new)

    def log_likelihood(self, theta):
        """The log-likelihood at ``theta``, shaped as by :meth:`em_step`."""
        return self._pass(theta, _kernels.LOG_LIKELIHOOD)[0]

    def gradient(self, theta):
        """Log-likelihood and its gradient in the coordinates of ``theta``.

        By Fisher's identity the gradient is that of the expected complete
        log-likelihood at the E step's responsibilities, so it comes from the
        same statistics as the M step.

        Returns
        -------
        log_likelihood : ndarray, shaped as by :meth:`em_step`
        gradient : Theta
            Its ``log_weights`` field holds the gradient with respect to the
            logits of components 2..K against component 1, shaped
            (n_starts, n_components - 1, n_weight_groups).
        """
        log_likelihood, logits, log_alpha, log_b = self._pass(theta, _kernels.GRADIENT)
        return log_likelihood, Theta(logits[:, 1:], log_alpha, log_b)

    def from_responsibilities(self, resp):
        """The M step from responsibilities of samples or of distinct counts.

        Parameters
        ----------
        resp : ndarray
            Shape (n_starts, n_components, n_samples) for the per-sample
            model (shared weights, several features), (n_starts,
            n_components, n_entries) otherwise.

        Returns
        -------
        theta : Theta
        """
        table = self.table
        if self.per_cell:
            n_starts, n_components, n_samples = resp.shape
            # (indicator.T @ resp.T).T, with scipy's fast CSR-by-dense product.
            mass = (table.indicator_t @ resp.reshape(-1, n_samples).T).T
            mass = mass.reshape(n_starts, n_components, -1)
            total = resp.sum(axis=2, keepdims=True) + MASS_FLOOR
        else:
            mass = table.multiplicity * resp
            total = table.feature_sum(mass) + MASS_FLOOR
            if self.shared_weights:
                total = total.sum(axis=2, keepdims=True)
        shape = mass.shape[:2] + (table.n_features,)
        return Theta(
            *_kernels.m_step(
                table.values,
                table.starts,
                np.ascontiguousarray(mass),
                np.ascontiguousarray(total),
                # inf: Newton's method starts from the method of moments.
                np.full(shape, np.inf),
                self.newton_steps,
            )
        )

    # -- per-sample quantities ----------------------------------------------

    def cell_log_prob(self, theta, *, responsibilities=True):
        """Per-sample log-likelihood and responsibilities, for one start.

        Parameters
        ----------
        theta : Theta
            One start.
        responsibilities : bool, default=True
            Whether to compute the responsibilities too.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        resp : ndarray of shape (n_samples, n_components) with shared weights,
            else (n_samples, n_features, n_components); None when not asked
            for.
        """
        table = self.table
        entry, zero = _kernels.entry_log_prob(
            table.values, table.log_factorial, table.starts, *contiguous(theta[1:])
        )
        if self.shared_weights:
            # Every sample has the zero-count log-probability of each feature,
            # plus the excess of its non-zero counts: sparse all along.
            joint = (table.indicator @ entry[0].T).T + (
                theta.log_weights[0] + zero[0].sum(axis=1, keepdims=True)
            )
            log_norm, resp = logsumexp_components(joint[None])
            return log_norm[0, 0], resp[0].T if responsibilities else None
        joint = entry + (theta.log_weights + zero).take(table.feature, axis=-1)
        log_norm, resp = logsumexp_components(joint)
        log_norm = log_norm[0, 0]
        log_norm_zero = log_norm[table.starts]
        log_prob = log_norm_zero.sum() + table.indicator @ (
            log_norm - log_norm_zero[table.feature]
        )
        if not responsibilities:
            return log_prob, None
        # The (n_samples, n_features, n_components) answer is dense by nature.
        entries = np.tile(table.starts, (table.n_samples, 1))
        nonzero = table.indicator.tocoo()
        entries[nonzero.row, table.feature[nonzero.col]] = nonzero.col
        return log_prob, resp[0].T[entries]


def sample_mixture(rng, n_samples, weights, alpha, b):
    """Draw ``(X, y)`` from a mixture with ``rng``, a RandomState or a
    Generator.

    ``weights`` has shape (n_components,) when shared by the features, else
    (n_features, n_components); ``alpha`` and ``b`` (n_components,
    n_features). ``y`` is the component of each sample (of each count when
    the weights are per feature).
    """
    K, n_features = alpha.shape
    # Inverse-CDF draws of the components work alike for both kinds of
    # random source (their ``choice`` methods differ).
    if weights.ndim == 1:
        cumulative = np.cumsum(weights)
        uniform = rng.uniform(size=(n_samples, 1))
        y = np.minimum((uniform * cumulative[-1] > cumulative).sum(-1), K - 1)
        component_alpha, component_b = alpha[y], b[y]
    else:
        cumulative = np.cumsum(weights, axis=1)
        uniform = rng.uniform(size=(n_samples, n_features, 1))
        y = np.minimum((uniform * cumulative[:, -1:] > cumulative).sum(-1), K - 1)
        columns = np.arange(n_features)
        component_alpha, component_b = alpha[y, columns], b[y, columns]
    X = rng.negative_binomial(component_alpha, 1.0 / (1.0 + component_b))
    return X, y
