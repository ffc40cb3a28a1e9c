"""Expectation-maximisation for negative binomial mixtures, accelerated.

Parameters live in log coordinates as a :class:`Theta` of arrays shaped
``(n_starts, n_components, n_features)`` (log-weights: ``(n_starts,
n_components, 1)`` when the weights are shared), so that several starts - and,
with independent weights, all features - run in one vectorised EM. A *problem*
is one independent maximisation: one start of the shared model, or one
(start, feature) pair of the independent one; convergence and the SQUAREM step
length are decided per problem. Components sit on axis 1, not last: numpy
reduces over a short last axis far more slowly than over a leading one.

With numba installed, the E and M steps and the bookkeeping of a SQUAREM
cycle run as compiled loops (:mod:`sknbmix._em_numba`, the ``fast`` extra);
each function here that has a compiled twin says so by calling
:func:`compiled_kernels` first, and keeps the numpy code as the reference.
"""

# SPDX-License-Identifier: BSD-3-Clause

import copy
import functools
import os
from typing import NamedTuple

import numpy as np

from sknbmix._nbinom import (
    ALPHA_MAX,
    ALPHA_MIN,
    MEAN_MIN,
    _clip,
    digamma_difference,
    log_rising_factorial,
    solve_alpha,
)

# Added to each component's responsibility mass, as scikit-learn's
# GaussianMixture does, so that an emptied component keeps finite parameters.
_MASS_FLOOR = 10 * np.finfo(float).eps
_LOG_B_BOUNDS = (np.log(MEAN_MIN / ALPHA_MAX) - 1.0, 50.0)
_LOG_ALPHA_BOUNDS = (np.log(ALPHA_MIN), np.log(ALPHA_MAX))
# SQUAREM's cap on the step length: it starts at 1 and grows by 4 after a
# successful capped step (as in Varadhan and Roland's SQUAREM package); a
# rejected step shrinks it by 4.
_STEP_MAX_START = 1.0
_STEP_GROWTH = 4.0
_STEP_SHRINK = 4.0
# A start is dropped once it trails the best start of its problem by more than
# _TRAIL_MARGIN plus _TRAIL_GAINS times its own last gain per cycle...
_TRAIL_GAINS, _TRAIL_MARGIN = 10.0, 1.0
# ... or once it is this close, in every log coordinate, to a better start.
_SAME_BASIN = 0.1
# A log-likelihood this far (relative) below another is lower, not rounded.
_ROUND_OFF = 1e-12
# Newton steps for alpha in an exact M step: each moves at most one e-fold,
# and these cross its whole range.
_EXACT_NEWTON_STEPS = 50
# The compiled EM step (sknbmix._em_numba, the ``fast`` extra): None until
# first asked for, then the module, or False without numba or with the
# environment variable SKNBMIX_NUMBA=0.
_kernels = None


def compiled_kernels():
    """The module of compiled EM steps, or None where numba is not installed
    or ``SKNBMIX_NUMBA=0`` turns it off."""
    global _kernels
    if _kernels is None:
        _kernels = False
        if os.environ.get("SKNBMIX_NUMBA", "1") != "0":
            try:
                import numba  # noqa: F401
            except ImportError:
                pass
            else:
                from sknbmix import _em_numba

                _kernels = _em_numba
    return _kernels or None


class Theta(NamedTuple):
    """Mixture parameters in log coordinates, with a leading start axis."""

    log_weights: np.ndarray
    log_alpha: np.ndarray
    log_b: np.ndarray


def _logsumexp_components(a):
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
    return logits - _logsumexp_components(logits)[0]


def _sparse_right_product(dense, sparse_t):
    """``dense @ sparse`` as a C-contiguous array, given ``sparse.T`` in CSR
    (scipy multiplies CSR by dense fastest)."""
    return np.ascontiguousarray((sparse_t @ dense.T).T)


class MixtureProblem:
    """The data of a fit and the E and M steps on it.

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
    group, start : ndarray of int of shape (n_features,), optional
        For independent mixtures stacked by :meth:`stack_starts`: the real
        feature and the start that each feature of ``table`` stands for.
        Default: every feature is its own, from start 0.
    """

    def __init__(
        self, table, shared_weights, newton_steps=1, *, group=None, start=None
    ):
        self.table = table
        self.newton_steps = newton_steps
        self.shared_weights = shared_weights
        # With one feature both models coincide, and the table form (one row
        # per distinct count) is far cheaper than one row per sample.
        self.per_cell = shared_weights and table.n_features > 1
        self._values = table.values
        self._multiplicity = table.multiplicity
        self._log_factorial = table.log_factorial
        # Independent mixtures run as a stack: each (start, feature) pair is a
        # feature of its own table (see stack_starts), so a problem that is
        # done leaves the batch alone. group and start say which feature and
        # start each column of the stack is.
        n_features = table.n_features
        self.group = np.arange(n_features) if group is None else group
        self.start = np.zeros(n_features, dtype=int) if start is None else start

    def feature_problem(self, feature):
        """The independent mixture of one feature alone."""
        return MixtureProblem(
            self.table.feature_table(feature), False, self.newton_steps
        )

    # -- the batch of problems -----------------------------------------------

    @property
    def batch_axis(self):
        """The axis of parameter arrays along which problems are independent:
        starts with shared weights, the (stacked) features otherwise."""
        return 0 if self.shared_weights else 2

    def stack_starts(self, theta):
        """The stacked problem and parameters of a batch of starts.

        With independent weights, start s of feature g becomes column ``g *
        n_starts + s`` of a table that repeats each feature's entries once
        per start, and ``theta`` gets a single start. With shared weights the
        starts stay on axis 0 and nothing changes.
        """
        if self.shared_weights:
            return self, theta
        n_starts, _, n_features = theta.log_alpha.shape
        group = np.repeat(np.arange(n_features), n_starts)
        stacked = MixtureProblem(
            self.table.take_features(group),
            False,
            self.newton_steps,
            group=group,
            start=np.tile(np.arange(n_starts), n_features),
        )
        return stacked, Theta(
            *(x.transpose(1, 2, 0).reshape(1, x.shape[1], -1) for x in theta)
        )

    def select(self, index):
        """The problem restricted to the batch elements at ``index``."""
        if self.shared_weights:
            return self
        return MixtureProblem(
            self.table.take_features(index),
            False,
            self.newton_steps,
            group=self.group[index],
            start=self.start[index],
        )

    def take(self, array, index):
        """Batch elements ``index`` of a Theta or a parameter-shaped array."""
        if isinstance(array, Theta):
            return Theta(*(self.take(x, index) for x in array))
        return array.take(index, axis=self.batch_axis)

    def put(self, out, index, array):
        """Write ``array`` into batch elements ``index`` of ``out``."""
        if isinstance(out, Theta):
            for whole, part in zip(out, array, strict=True):
                self.put(whole, index, part)
        elif self.shared_weights:
            out[index] = array
        else:
            out[..., index] = array

    def along_batch(self, vector):
        """A vector with one value per batch element, problem-shaped."""
        return vector.reshape((-1, 1, 1) if self.shared_weights else (1, 1, -1))

    def per_batch(self, problem_shaped):
        """Inverse of :meth:`along_batch`."""
        return problem_shaped.reshape(-1)

    def batch_groups(self, n_batch):
        """Which group (a feature; the whole fit with shared weights) and which
        start each batch element is."""
        if self.shared_weights:
            return np.zeros(n_batch, dtype=int), np.arange(n_batch)
        return self.group, self.start

    def problem_sum(self, array):
        """Sum a parameter-shaped array within each problem (keepdims)."""
        # Components (and, with shared weights, features) on the last two axes.
        axes = (-2, -1) if self.shared_weights else (-2,)
        return array.sum(axis=axes, keepdims=True)

    # -- E step ------------------------------------------------------------

    def _gather(self, per_feature):
        """A per-feature array (features last) onto the table's entries; with
        one feature it broadcasts as it is."""
        if self.table.n_features == 1:
            return per_feature
        return per_feature.take(self.table.feature, axis=-1)

    def _entry_log_prob(self, theta, factorial=True):
        """Per distinct count: log NB without the ``-alpha log1p(b)`` term
        (and without ``-log(x!)`` unless ``factorial``)."""
        alpha = np.exp(theta.log_alpha)
        log1p_b = np.log1p(np.exp(theta.log_b))
        one_feature = self.table.n_features == 1
        entry = log_rising_factorial(
            self._values, alpha, None if one_feature else self.table.feature
        ) + self._values * self._gather(theta.log_b - log1p_b)
        if factorial:
            entry -= self._log_factorial
        return entry, alpha * log1p_b

    def e_step(self, theta):
        """Log-likelihood per problem and the statistics of the M step.

        Returns
        -------
        log_likelihood : ndarray, problem-shaped
        mass : ndarray of shape (n_starts, n_components, n_entries)
            Responsibility mass at each distinct count.
        total : ndarray of shape (n_starts, n_components, n_features or 1)
            Responsibility mass per component (and feature).
        """
        # log(x!) is the same in every component: it is added to the
        # log-likelihood once, not to every entry.
        entry, alpha_log1p_b = self._entry_log_prob(theta, factorial=False)
        table = self.table
        if self.per_cell:
            n_starts, n_components, n_entries = entry.shape
            indicator = table.indicator
            # (indicator @ entry.T).T: one row per (start, component), one
            # column per sample. Zero counts all have log-probability
            # -alpha log1p(b): one constant per component over the features.
            joint = np.ascontiguousarray((indicator @ entry.reshape(-1, n_entries).T).T)
            joint = joint.reshape(n_starts, n_components, -1) + (
                theta.log_weights - alpha_log1p_b.sum(axis=2, keepdims=True)
            )
            log_norm, resp = _logsumexp_components(joint)
            log_likelihood = log_norm.sum(axis=2, keepdims=True)
            log_likelihood -= table.log_factorial_sum.sum()
            total = resp.sum(axis=2, keepdims=True) + _MASS_FLOOR
            mass = _sparse_right_product(
                resp.reshape(-1, resp.shape[-1]), table.indicator_t
            )
            return log_likelihood, mass.reshape(n_starts, n_components, -1), total
        joint = entry + self._gather(theta.log_weights - alpha_log1p_b)
        log_norm, resp = _logsumexp_components(joint)
        log_likelihood = table.feature_sum(self._multiplicity * log_norm)
        log_likelihood -= table.log_factorial_sum
        if self.shared_weights:
            log_likelihood = log_likelihood.sum(axis=2, keepdims=True)
        mass = self._multiplicity * resp
        total = table.feature_sum(mass) + _MASS_FLOOR
        return log_likelihood, mass, total

    def log_likelihood(self, theta):
        """Total log-likelihood of each problem (problem-shaped)."""
        compiled = self._compiled_step(theta, m_step=False)
        if compiled is not None:
            return compiled[0]
        return self.e_step(theta)[0]

    def _compiled_step(self, theta, m_step):
        """:meth:`em_step` (or with ``m_step=False`` its log-likelihood only)
        by the compiled kernels, or None without them."""
        kernels = compiled_kernels()
        if kernels is None:
            return None
        table = self.table
        theta = [np.ascontiguousarray(x, dtype=np.float64) for x in theta]
        if self.per_cell:
            indicator = table.indicator
            out = kernels.cell_em_step(
                table.values,
                table.starts,
                indicator.indptr,
                indicator.indices,
                float(table.log_factorial_sum.sum()),
                *theta,
                self.newton_steps,
                m_step,
                _MASS_FLOOR,
            )
        else:
            out = kernels.table_em_step(
                table.values,
                table.multiplicity,
                table.starts,
                table.log_factorial_sum,
                *theta,
                self.newton_steps,
                m_step,
                _MASS_FLOOR,
            )
        return out[0], Theta(*out[1:])

    # -- M step ------------------------------------------------------------

    def m_step(self, mass, total, alpha=None):
        """Maximise the expected complete log-likelihood.

        Parameters
        ----------
        mass, total : ndarray
            As returned by :meth:`e_step`.
        alpha : ndarray or None
            Warm start of the Newton iterations for ``alpha``.
        """
        kernels = compiled_kernels()
        if kernels is not None:
            shape = mass.shape[:2] + (self.table.n_features,)
            return Theta(
                *kernels.m_step(
                    self._values,
                    self.table.starts,
                    np.ascontiguousarray(mass),
                    np.ascontiguousarray(total),
                    np.full(shape, np.inf)
                    if alpha is None
                    else np.ascontiguousarray(np.broadcast_to(alpha, shape)),
                    self.newton_steps,
                )
            )
        # total broadcasts over the features when the weights are shared.
        mean = self.table.feature_sum(mass * self._values) / total
        mean = np.maximum(mean, MEAN_MIN)
        alpha = solve_alpha(
            self.table, mass, total, mean, alpha, max_iter=self.newton_steps
        )
        log_weights = np.log(total) - np.log(total.sum(axis=1, keepdims=True))
        log_alpha = np.log(alpha)
        return Theta(log_weights, log_alpha, np.log(mean) - log_alpha)

    def em_step(self, theta):
        """One EM iteration: the log-likelihood at ``theta`` and the update."""
        compiled = self._compiled_step(theta, m_step=True)
        if compiled is not None:
            return compiled
        log_likelihood, mass, total = self.e_step(theta)
        return log_likelihood, self.m_step(mass, total, np.exp(theta.log_alpha))

    def gradient(self, theta):
        """Log-likelihood and its gradient in the coordinates of ``theta``.

        By Fisher's identity the gradient is that of the expected complete
        log-likelihood at the E step's responsibilities, so it comes from the
        same statistics as the M step.

        Returns
        -------
        log_likelihood : ndarray, problem-shaped
        gradient : Theta
            Its ``log_weights`` field holds the gradient with respect to the
            logits of components 2..K against component 1, shaped
            (n_starts, n_components - 1, n_weight_groups).
        """
        kernels = compiled_kernels()
        if kernels is not None and not self.per_cell:
            log_likelihood, *gradient = kernels.table_gradient(
                self._values,
                self._multiplicity,
                self.table.starts,
                self.table.log_factorial_sum,
                *(np.ascontiguousarray(x, dtype=np.float64) for x in theta),
                _MASS_FLOOR,
            )
            return log_likelihood, Theta(*gradient)
        log_likelihood, mass, total = self.e_step(theta)
        table = self.table
        alpha = np.exp(theta.log_alpha)
        b = np.exp(theta.log_b)
        digamma_sum = table.feature_sum(
            mass * digamma_difference(self._values, alpha, table.feature)
        )
        grad_log_alpha = alpha * (digamma_sum - total * np.log1p(b))
        grad_log_b = (table.feature_sum(mass * self._values) - total * alpha * b) / (
            1.0 + b
        )
        weights = np.exp(theta.log_weights)
        grad_logits = (total - total.sum(axis=1, keepdims=True) * weights)[:, 1:]
        return log_likelihood, Theta(grad_logits, grad_log_alpha, grad_log_b)

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
        entry, alpha_log1p_b = self._entry_log_prob(theta)
        table = self.table
        if self.shared_weights:
            joint = (table.indicator @ entry[0].T).T + (
                theta.log_weights[0] - alpha_log1p_b[0].sum(axis=1, keepdims=True)
            )
            log_norm, resp = _logsumexp_components(joint[None])
            return log_norm[0, 0], resp[0].T if responsibilities else None
        joint = entry + self._gather(theta.log_weights - alpha_log1p_b)
        log_norm, resp = _logsumexp_components(joint)
        log_norm = log_norm[0, 0]
        # Every sample has each feature's zero-count log-probability, replaced
        # by that of its count where the count is not zero: sparse all along.
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


# -- initialisation ---------------------------------------------------------


def quantile_responsibilities(lower, upper, cuts):
    """Split values at quantile levels into soft groups.

    A value occupies the block ``[F(v-), F(v)]`` of the empirical distribution
    function; a block that straddles a cut is shared between the groups in
    proportion to the overlap, so ties are split without regard to the order
    of the samples.

    Parameters
    ----------
    lower, upper : ndarray of shape (n_values,)
        ``F(v-)`` and ``F(v)`` of each distinct value.
    cuts : ndarray of shape (n_starts, n_components - 1)
        Increasing levels in (0, 1).

    Returns
    -------
    resp : ndarray of shape (n_starts, n_components, n_values)
    """
    n_starts = cuts.shape[0]
    edges = np.concatenate(
        [np.zeros((n_starts, 1)), cuts, np.ones((n_starts, 1))], axis=1
    )
    low, high = edges[:, :-1, None], edges[:, 1:, None]
    overlap = np.clip(np.minimum(upper, high) - np.maximum(lower, low), 0, None)
    width = upper - lower
    n_components = edges.shape[1] - 1
    # Values with no mass (a feature's unused zero entry): any split will do.
    return np.divide(
        overlap,
        width,
        out=np.full_like(overlap, 1.0 / n_components),
        where=width > 0,
    )


def initial_responsibilities(problem, X, cuts):
    """Quantile-split responsibilities for each row of ``cuts``.

    The per-sample problem splits the samples by their total count; the table
    form splits each feature's distinct counts by their own quantiles.
    """
    table = problem.table
    if problem.per_cell:
        totals = np.asarray(X.sum(axis=1)).ravel()
        _, inverse, counts = np.unique(totals, return_inverse=True, return_counts=True)
        upper = np.cumsum(counts) / totals.size
        resp = quantile_responsibilities(upper - counts / totals.size, upper, cuts)
        return resp[..., inverse]
    # Each feature's multiplicities add up to n_samples.
    cumulative = np.cumsum(table.multiplicity)
    before = (cumulative - table.multiplicity)[table.starts]
    upper = (cumulative - before[table.feature]) / table.n_samples
    lower = upper - table.multiplicity / table.n_samples
    return quantile_responsibilities(lower, upper, cuts)


@functools.lru_cache
def default_cuts(n_components, layered=False):
    """Deterministic quantile levels of the default screen of starts.

    The equal split, and splits with one small group at the low or at the
    high end (5% to 30% of the samples), the rest split equally: local optima
    of these mixtures differ mostly in how large a minor component is and
    which end of the distribution it takes. With ``layered`` and three or
    more components, also splits with all but one group small (5%, 10% or
    20% each) at the low or the high end, and with small groups at both
    ends: one feature's minor components tend to sit side by side at one
    end (a low and a middle group below one large one), which the other
    splits do not start near.
    """
    K = n_components
    cuts = [np.arange(1, K) / K]
    for p in (0.05, 0.1, 0.2, 0.3):
        cuts.append(np.concatenate([[p], p + (1 - p) * np.arange(1, K - 1) / (K - 1)]))
        cuts.append(np.concatenate([(1 - p) * np.arange(1, K - 1) / (K - 1), [1 - p]]))
    if layered and K >= 3:
        for p in (0.05, 0.1, 0.2):
            # The small groups leave at least 40% of the samples to the rest.
            small = min(p, 0.6 / (K - 1)) * np.arange(1, K)
            cuts.extend([small, 1 - small[::-1], np.linspace(p, 1 - p, K - 1)])
    # Many components make some of these coincide: keep the first of each.
    cuts = np.array(cuts)
    _, first = np.unique(cuts.round(12), axis=0, return_index=True)
    # Cached (np.unique is slow for the milliseconds of a fit): read-only.
    cuts = cuts[np.sort(first)]
    cuts.flags.writeable = False
    return cuts


def random_cuts(n_starts, n_components, random_state):
    """Random increasing quantile levels, for restarts after the first."""
    return np.sort(random_state.uniform(0.02, 0.98, (n_starts, n_components - 1)))


def initial_theta(problem, resp_cells_or_entries):
    """M step from initial responsibilities.

    Parameters
    ----------
    resp_cells_or_entries : ndarray
        Shape (n_starts, n_components, n_samples) for the per-cell problem,
        (n_starts, n_components, n_entries) otherwise.
    """
    resp = resp_cells_or_entries
    if problem.per_cell:
        n_starts, n_components, n_samples = resp.shape
        mass = _sparse_right_product(
            resp.reshape(-1, n_samples), problem.table.indicator_t
        )
        mass = mass.reshape(n_starts, n_components, -1)
        total = resp.sum(axis=2, keepdims=True) + _MASS_FLOOR
    else:
        mass = problem._multiplicity * resp
        total = problem.table.feature_sum(mass) + _MASS_FLOOR
        if problem.shared_weights:
            total = total.sum(axis=2, keepdims=True)
    return problem.m_step(mass, total)


# -- the accelerated loop ---------------------------------------------------


def _extrapolate(problem, theta0, theta1, theta2, step_max):
    """SQUAREM (Varadhan and Roland, 2008, scheme S3) step from three iterates.

    The step length is at most ``step_max`` (per problem), as in the
    authors' SQUAREM package: long steps along a curved ridge overshoot and
    are rejected, and the cap grows only as steps succeed.

    Returns
    -------
    proposal : Theta
    capped : ndarray of bool, problem-shaped
        Where the step length was cut to ``step_max``.
    """
    kernels = compiled_kernels()
    if kernels is not None:
        *proposal, capped = kernels.extrapolate(
            *(
                tuple(np.ascontiguousarray(x) for x in t)
                for t in (theta0, theta1, theta2)
            ),
            np.ascontiguousarray(problem.per_batch(step_max)),
            problem.shared_weights,
            _LOG_ALPHA_BOUNDS,
            _LOG_B_BOUNDS,
        )
        return Theta(*proposal), problem.along_batch(capped)
    r = [t1 - t0 for t0, t1 in zip(theta0, theta1, strict=True)]
    v = [t2 - 2 * t1 + t0 for t0, t1, t2 in zip(theta0, theta1, theta2, strict=True)]
    r_norm2 = sum(problem.problem_sum(x**2) for x in r)
    v_norm2 = sum(problem.problem_sum(x**2) for x in v)
    with np.errstate(divide="ignore", invalid="ignore"):
        length = np.sqrt(r_norm2 / v_norm2)
    # Length 1 gives theta2, the plain EM point; never go below it.
    length = np.where(np.isfinite(length), np.maximum(length, 1.0), 1.0)
    capped = length >= step_max
    step = -np.minimum(length, step_max)
    new = [
        t0 - 2 * step * dr + step**2 * dv
        for t0, dr, dv in zip(theta0, r, v, strict=True)
    ]
    proposal = Theta(
        new[0] - _logsumexp_components(new[0])[0],
        _clip(new[1], *_LOG_ALPHA_BOUNDS),
        _clip(new[2], *_LOG_B_BOUNDS),
    )
    return proposal, capped


def _where(mask, a, b):
    return Theta(*(np.where(mask, x, y) for x, y in zip(a, b, strict=True)))


def _accept_extrapolation(
    problem, ll1, ll_proposal, capped, step_max, theta1, theta2, proposal, theta3
):
    """Where the SQUAREM proposal beats the plain EM iterate ``theta1``, keep
    it and the EM step from it (``theta3``) and let the step cap grow if the
    step was capped; elsewhere fall back to ``theta1`` and ``theta2`` and
    shrink the cap.

    Returns ``source`` (the point the next E step checks), ``claim`` (its
    log-likelihood), the next cycle's start and the new cap.
    """
    kernels = compiled_kernels()
    if kernels is not None:
        flat = problem.per_batch
        source, claim, theta, step_max = kernels.accept_extrapolation(
            flat(ll1),
            flat(ll_proposal),
            flat(capped),
            flat(step_max),
            *(
                tuple(np.ascontiguousarray(x) for x in t)
                for t in (theta1, theta2, proposal, theta3)
            ),
            problem.shared_weights,
            _STEP_GROWTH,
            _STEP_SHRINK,
            _STEP_MAX_START,
        )
        along = problem.along_batch
        return Theta(*source), along(claim), Theta(*theta), along(step_max)
    accept = ll_proposal >= ll1
    step_max = np.where(
        accept,
        np.where(capped, _STEP_GROWTH * step_max, step_max),
        np.maximum(step_max / _STEP_SHRINK, _STEP_MAX_START),
    )
    return (
        _where(accept, proposal, theta1),
        np.maximum(ll_proposal, ll1),
        _where(accept, theta3, theta2),
        step_max,
    )


def run_em(problem, theta, *, max_iter, tol, accelerate=True, n_protected=0):
    """Iterate EM (with SQUAREM acceleration) until every problem converges.

    All problems run in one batch (starts with shared weights; stacked
    (start, feature) pairs otherwise, see :meth:`MixtureProblem.stack_starts`);
    a problem leaves the batch once it has converged or been outpaced by a
    better start of its own (see :func:`_outpaced`). Convergence: EM converges
    linearly, so the gain still to come is estimated from the last two gains
    ``g1, g2`` as ``g2 q / (1 - q)``, ``q = g2 / g1``; a problem has converged
    when both its last gain and that estimate are below ``tol``, or when it
    gains nothing within rounding.

    Parameters
    ----------
    problem : MixtureProblem
    theta : Theta
        A batch of starts (stacked, with independent weights).
    max_iter : int
        EM iterations (M steps) at most, per start.
    tol : float
        Threshold on the total log-likelihood of each problem.
    accelerate : bool, default=True
        Whether to use SQUAREM.
    n_protected : int, default=0
        Starts numbered below ``n_protected`` run to convergence even when a
        better start outpaces them (the bootstrap asks where its start from
        the point estimate ends).

    Returns
    -------
    theta : Theta
    log_likelihood : ndarray
        Problem-shaped: the log-likelihood at the returned ``theta``. No
        iteration lowers it: steps that did are redone exactly (see
        :func:`_redo_lowering_steps`).
    n_iter : ndarray of int with one entry per batch element
    converged : ndarray of bool, problem-shaped
        True where a problem converged, or was given up for a better start
        (which then has the higher log-likelihood).
    """
    axis = problem.batch_axis
    n_batch = theta.log_alpha.shape[axis]
    result = Theta(*(x.copy() for x in theta))
    if max_iter == 0:
        reached = problem.log_likelihood(theta)
        return (
            result,
            reached,
            np.zeros(n_batch, dtype=int),
            np.zeros_like(reached, dtype=bool),
        )
    problem_shape = (1, 1, n_batch) if axis else (n_batch, 1, 1)
    # Each cycle starts from an EM step of the best point it verified
    # (`source`, log-likelihood `claim`); the next E step checks it.
    source = claim = None
    final_reached = np.empty(problem_shape)
    final_converged = np.zeros(problem_shape, dtype=bool)
    n_iter = np.zeros(n_batch, dtype=int)
    active = np.arange(n_batch)
    protected = problem.batch_groups(n_batch)[1] < n_protected
    reached = last_gain = None
    converged = np.zeros(problem_shape, dtype=bool)
    step_max = np.full(problem_shape, _STEP_MAX_START)
    done_iter = 0
    while done_iter < max_iter and active.size:
        accelerated = accelerate and max_iter - done_iter >= 3
        if accelerated:
            ll0, theta1 = problem.em_step(theta)
            if source is not None:
                _redo_lowering_steps(problem, source, claim, theta, ll0, theta1)
            ll1, theta2 = problem.em_step(theta1)
            _redo_lowering_steps(problem, theta, ll0, theta1, ll1, theta2)
            proposal, capped = _extrapolate(problem, theta, theta1, theta2, step_max)
            ll_proposal, theta3 = problem.em_step(proposal)
            # Keep the extrapolation only where it beats the plain EM iterate
            # it started from; EM from there is then monotone again.
            source, claim, theta, step_max = _accept_extrapolation(
                problem,
                ll1,
                ll_proposal,
                capped,
                step_max,
                theta1,
                theta2,
                proposal,
                theta3,
            )
            new_reached = claim
            done_iter += 3
        else:
            ll0, theta1 = problem.em_step(theta)
            if source is not None:
                _redo_lowering_steps(problem, source, claim, theta, ll0, theta1)
            source, claim, theta = theta, ll0, theta1
            new_reached = ll0
            done_iter += 1
        n_iter[active] = done_iter
        if reached is None and not accelerated:
            # A plain step tells the log-likelihood where it started only;
            # its gain shows at the next step.
            reached = new_reached
        else:
            # Judge each cycle by what it reached, without waiting for the
            # log-likelihood at its end, which the next cycle would compute.
            gain = new_reached - (ll0 if reached is None else reached)
            reached = (
                new_reached if reached is None else np.maximum(reached, new_reached)
            )
            converged |= _converged(gain, last_gain, tol)
            outpaced = _outpaced(problem, theta, reached, gain)
            converged |= outpaced & ~problem.along_batch(protected[active])
            last_gain = gain
        leaving = problem.per_batch(converged)
        if leaving.any() or done_iter >= max_iter:
            leaving = leaving | (done_iter >= max_iter)
            gone, index = active[leaving], np.flatnonzero(leaving)
            # A converged problem returns the last point an E step checked
            # (the step beyond gains less than tol); one stopped by max_iter
            # returns the last step, checked here as the next E step would.
            problem.put(result, gone, problem.take(source, index))
            problem.put(final_reached, gone, problem.take(claim, index))
            problem.put(final_converged, gone, problem.take(converged, index))
            stopped = index[~problem.per_batch(converged)[index]]
            if stopped.size:
                done = problem.select(stopped)
                end = problem.take(theta, stopped)
                ll_end = done.log_likelihood(end)
                _redo_lowering_steps(
                    done,
                    problem.take(source, stopped),
                    problem.take(claim, stopped),
                    end,
                    ll_end,
                )
                problem.put(result, active[stopped], end)
                problem.put(final_reached, active[stopped], ll_end)
            staying = np.flatnonzero(~leaving)
            active = active[staying]
            theta = problem.take(theta, staying)
            reached, step_max, converged, claim = (
                problem.take(x, staying) for x in (reached, step_max, converged, claim)
            )
            source = problem.take(source, staying)
            if last_gain is not None:
                last_gain = problem.take(last_gain, staying)
            problem = problem.select(staying)
    return result, final_reached, n_iter, final_converged


def _redo_lowering_steps(problem, source, claim, theta, ll, theta_next=None):
    """Redo, with alpha solved exactly, the EM steps that lowered the
    log-likelihood.

    ``theta`` came from ``source`` (log-likelihood ``claim``) by one EM step,
    and ``ll`` is its log-likelihood; ``theta_next``, if given, is the step
    from it. The M step takes one Newton step for alpha, which can overshoot
    the root of its score and then lower the likelihood (about once in
    10,000 steps of a bootstrap, more often from far starts). Where it did,
    the step is redone with alpha solved to convergence, an exact M step,
    which cannot lower the likelihood; ``theta``, ``ll`` and ``theta_next``
    are updated in place.
    """
    kernels = compiled_kernels()
    if kernels is not None:
        lower = kernels.lowered(
            problem.per_batch(ll), problem.per_batch(claim), _ROUND_OFF
        )
    else:
        round_off = _ROUND_OFF * np.maximum(np.abs(claim), 1.0)
        lower = np.flatnonzero(problem.per_batch(ll < claim - round_off))
    if not lower.size:
        return
    sub = problem.select(lower)
    exact = copy.copy(sub)
    exact.newton_steps = _EXACT_NEWTON_STEPS
    redone = exact.em_step(problem.take(source, lower))[1]
    if theta_next is None:
        ll_redone = sub.log_likelihood(redone)
    else:
        ll_redone, next_redone = sub.em_step(redone)
        problem.put(theta_next, lower, next_redone)
    problem.put(theta, lower, redone)
    problem.put(ll, lower, ll_redone)


def _outpaced(problem, theta, reached, last_gain):
    """Problems that a better start of the same group makes moot.

    Two cases: the start is within ``_SAME_BASIN`` of a better one (the
    largest differences in log-weights, in log alpha and in log b, added), so
    both are in one basin; or it trails the best start by more than
    ``_TRAIL_MARGIN`` plus ``_TRAIL_GAINS`` times its last gain per cycle, so
    that it cannot catch up at the rate EM slows down. On 404 data
    sets simulated from K=2 fits of the four genes of the built-in data, the
    second rule never dropped all of the starts that reach the best optimum;
    on 244 more, the first gave the same optima as with a distance of 1e-3.
    """
    n_batch = reached.size
    group, start = problem.batch_groups(n_batch)
    n_slots = start.max() + 1
    if n_slots < 2:
        return np.zeros(reached.shape, dtype=bool)
    parameters = [
        (np.moveaxis(x, problem.batch_axis, 0) if problem.batch_axis else x).reshape(
            n_batch, -1
        )
        for x in theta
    ]
    kernels = compiled_kernels()
    if kernels is not None:
        return problem.along_batch(
            kernels.outpaced(
                group,
                start,
                np.ascontiguousarray(problem.per_batch(reached)),
                np.ascontiguousarray(problem.per_batch(last_gain)),
                tuple(np.ascontiguousarray(x) for x in parameters),
                _TRAIL_GAINS,
                _TRAIL_MARGIN,
                _SAME_BASIN,
            )
        )
    # Groups come in ascending order: number them 0, 1, ...
    group = np.concatenate([[0], np.cumsum(group[1:] != group[:-1])])
    # Batch elements laid out as (group, start); absent slots point at
    # element 0 and are masked.
    slot = np.zeros((group[-1] + 1, n_slots), dtype=np.intp)
    present = np.zeros(slot.shape, dtype=bool)
    slot[group, start] = np.arange(n_batch)
    present[group, start] = True
    value = np.where(present, problem.per_batch(reached)[slot], -np.inf)
    deficit = value.max(axis=1, keepdims=True) - value
    trails = deficit > _TRAIL_GAINS * problem.per_batch(last_gain)[slot] + _TRAIL_MARGIN
    # The largest difference in each of the three kinds of parameter, added.
    distance = 0.0
    for x in parameters:
        x = x[slot]
        distance = distance + np.abs(x[:, :, None] - x[:, None, :]).max(axis=-1)
    # j is better than i: higher log-likelihood, ties to the lower start.
    order = np.arange(n_slots)
    better = (value[:, None, :] > value[:, :, None]) | (
        (value[:, None, :] == value[:, :, None]) & (order[None, :] < order[:, None])
    )
    duplicate = ((distance < _SAME_BASIN) & better & present[:, None, :]).any(axis=2)
    return problem.along_batch((trails | duplicate)[group, start])


def _converged(gain, last_gain, tol):
    kernels = compiled_kernels()
    if kernels is not None:
        return kernels.converged(
            gain.reshape(-1),
            np.empty(0) if last_gain is None else last_gain.reshape(-1),
            tol,
        ).reshape(gain.shape)
    # Rounding noise of a log-likelihood sum; gains below it mean nothing.
    stalled = gain <= tol * 1e-3
    if last_gain is None:
        return stalled
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = gain / last_gain
        remaining = np.where(ratio < 1, gain * ratio / (1 - ratio), np.inf)
    return stalled | ((gain < tol) & (remaining < tol))
