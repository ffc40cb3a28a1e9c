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
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from sknbmix import _kernels
from sknbmix._data import build_count_table, build_scaled_table
from sknbmix._nbinom import LOG_ALPHA_BOUNDS, LOG_B_BOUNDS, MEAN_MIN, clip

# Added to each component's responsibility mass, as scikit-learn's
# GaussianMixture does, so that an emptied component keeps finite parameters.
MASS_FLOOR = 10 * np.finfo(float).eps


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


class SizeFactorNodes(NamedTuple):
    """Chebyshev nodes in ``log s`` over the samples' range, with the weights
    of the barycentric interpolation formula."""

    log_scale: np.ndarray
    barycentric: np.ndarray


# The bound on the curvature of the count terms with size factors in an
# exact M step, whose steps in log b then stay within log(COUNT_BOUND) (see
# sknbmix._kernels.scaled_cell_step).
COUNT_BOUND = math.exp(0.5)
# Interpolation error below exp(-_NODE_DIGITS) of the largest value (e^-37 is
# 1e-16): see size_factor_nodes.
_NODE_DIGITS = 37.0
_MAX_NODES = 512


def size_factor_nodes(log_scale):
    """The nodes that sums over samples of functions of ``log s`` are
    interpolated from.

    Such sums here are of ``log1p(s b)`` and its derivatives, analytic in
    ``t = log s`` except at ``t = -log b + i pi (2 j + 1)``: a distance
    ``pi`` from the real line, whatever ``b``. On an interval of width
    ``W`` the Chebyshev interpolant of degree ``m - 1`` then converges as
    ``rho**-m``, ``rho = d + sqrt(1 + d**2)``, ``d = 2 pi / W`` (the
    Bernstein ellipse through the singularities), so ``m`` is chosen for an
    error of ``exp(-_NODE_DIGITS)`` relative to the function: 35 nodes for
    size factors spread over a factor of 100 (``W = 4.6``).
    """
    finite = log_scale[np.isfinite(log_scale)]
    if not finite.size or finite.max() == finite.min():
        at = finite[:1] if finite.size else np.zeros(1)
        return SizeFactorNodes(at.astype(np.float64), np.ones(1))
    low, high = float(finite.min()), float(finite.max())
    d = 2 * np.pi / (high - low)
    rho = d + np.sqrt(1 + d * d)
    n_nodes = int(min(max(np.ceil(_NODE_DIGITS / np.log(rho)) + 1, 3), _MAX_NODES))
    j = np.arange(n_nodes)
    nodes = (high + low) / 2 + (high - low) / 2 * np.cos(np.pi * j / (n_nodes - 1))
    # Chebyshev points of the second kind; the ends exactly at the range's.
    nodes[0], nodes[-1] = high, low
    barycentric = np.where(j % 2 == 0, 1.0, -1.0)
    barycentric[[0, -1]] *= 0.5
    return SizeFactorNodes(nodes, barycentric)


class MixtureLikelihood:
    """The log-likelihood of a mixture on a table of counts, and EM on it.

    Parameters
    ----------
    table : CountTable
        The compressed counts; with size factors in the table form, made by
        :func:`~sknbmix._data.build_scaled_table`.
    shared_weights : bool
        One latent component per sample shared by all features, or an
        independent mixture per feature.
    newton_steps : int, default=1
        Newton steps for ``alpha`` per M step. One suffices: the M step need
        only raise the expected log-likelihood (a generalised EM), and EM's
        fixed point does not depend on it.
    sample_log_scale : ndarray of shape (n_samples,) or None
        The log size factor of each sample, for the per-sample form (shared
        weights, several features); ``-inf`` for a sample without counts.
    """

    def __init__(self, table, shared_weights, newton_steps=1, sample_log_scale=None):
        self.table = table
        self.shared_weights = shared_weights
        self.newton_steps = newton_steps
        # With one feature both models coincide, and the table form (one row
        # per distinct count) is far cheaper than one row per sample.
        self.per_cell = shared_weights and table.n_features > 1
        self.sample_log_scale = sample_log_scale
        self.nodes = self.repeated = None
        if sample_log_scale is not None:
            self.nodes = size_factor_nodes(sample_log_scale)
            indicator = table.indicator
            self.repeated = _kernels.repeated_counts(
                indicator.indptr, indicator.indices, table.values
            )
        # Newton's model of the count terms with size factors (see
        # sknbmix._kernels.scaled_cell_step); exact() bounds them instead.
        self.count_bound = 1.0

    @classmethod
    def of_counts(cls, X, shared_weights, size_factors=None, order=None):
        """The likelihood of validated counts, with the table of the form the
        model takes (``size_factors``: one per sample, or None). ``order``
        (samples, features), for the per-sample model only, makes it that of
        ``X[samples][:, features]`` without a copy of X; ``size_factors``
        are then in the new order."""
        per_cell = shared_weights and X.shape[1] > 1
        if order is not None and not per_cell:
            raise ValueError("order is for the per-sample model only")
        if size_factors is None:
            return cls(build_count_table(X, *(order or ())), shared_weights)
        if per_cell:
            with np.errstate(divide="ignore"):
                log_scale = np.log(np.asarray(size_factors, dtype=np.float64))
            return cls(
                build_count_table(X, *(order or ())),
                True,
                sample_log_scale=log_scale,
            )
        return cls(build_scaled_table(X, size_factors), shared_weights)

    @property
    def scaled(self):
        """Whether the samples have size factors."""
        return self.sample_log_scale is not None or self.table.log_scales is not None

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
        exact.count_bound = COUNT_BOUND
        return exact

    # -- the compiled loops ----------------------------------------------------

    def _scaled_cell_data(self):
        """The data arguments of the per-sample loops with size factors."""
        table = self.table
        return (
            table.values,
            table.log_factorial,
            table.feature,
            table.starts,
            table.indicator.indptr,
            table.indicator.indices,
            self.repeated,
            self.sample_log_scale,
            *self.nodes,
        )

    def _pass(self, theta, mode):
        """The E step at ``theta``, then what ``mode`` asks for (see
        :func:`sknbmix._kernels.table_step`)."""
        table = self.table
        if self.sample_log_scale is not None:
            return self._scaled_cell_pass(theta, mode)
        if table.log_scales is not None:
            return _kernels.scaled_table_step(
                table.values,
                table.log_factorial,
                table.multiplicity,
                table.scale_index,
                table.log_scales,
                table.starts,
                *contiguous(theta),
                self.newton_steps,
                mode,
                MASS_FLOOR,
            )
        if self.per_cell:
            return self._cell_pass(theta, mode)
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

    def _cell_pass(self, theta, mode):
        """:meth:`_pass` of the per-sample model without size factors, on
        the threads that the work is worth (see :func:`_sample_blocks`)."""
        table = self.table
        indicator = table.indicator
        theta = contiguous(theta)
        blocks = _sample_blocks(table.n_samples)
        n_threads = _threads_for(theta[1].shape[0] * indicator.indices.size)
        data = (
            table.values,
            table.log_factorial,
            table.starts,
            indicator.indptr,
            indicator.indices,
        )
        if len(blocks) == 2:
            # One pass over the samples, each start alone: as one call.
            return _by_start_groups(
                lambda *part: _kernels.cell_step(
                    *data, *part, self.newton_steps, mode, MASS_FLOOR
                ),
                theta,
                n_threads,
            )
        constant, entry = _kernels.cell_terms(*data[:3], *theta)
        responsibilities = mode != _kernels.LOG_LIKELIHOOD
        log_likelihood, mass, totals = _sum_over_blocks(
            lambda low, high: _kernels.cell_block_statistics(
                entry,
                constant,
                indicator.indptr[low : high + 1],
                indicator.indices,
                responsibilities,
            ),
            blocks,
            n_threads,
        )
        if not responsibilities:
            return _only_log_likelihood(log_likelihood, theta)
        new = self.update_from_statistics(Theta(*theta), mass, totals, mode)
        return (log_likelihood.reshape(-1, 1, 1), *new)

    def _scaled_cell_pass(self, theta, mode):
        """:meth:`_cell_pass` with size factors."""
        theta = contiguous(theta)
        data = self._scaled_cell_data()
        blocks = _sample_blocks(self.table.n_samples)
        n_threads = _threads_for(theta[1].shape[0] * self.table.indicator.indices.size)
        if len(blocks) == 2:
            return _by_start_groups(
                lambda *part: _kernels.scaled_cell_step(
                    *data,
                    *part,
                    self.newton_steps,
                    mode,
                    MASS_FLOOR,
                    self.count_bound,
                ),
                theta,
                n_threads,
            )
        values, log_factorial, feature, starts, indptr, indices, repeated = data[:7]
        log_scale, node_t, barycentric = data[7:]
        responsibilities = mode != _kernels.LOG_LIKELIHOOD
        log_likelihood, *statistics = _sum_over_blocks(
            lambda low, high: _kernels.scaled_cell_block_statistics(
                values,
                log_factorial,
                feature,
                starts,
                indptr[low : high + 1],
                indices,
                (repeated[0][low : high + 1], repeated[1], repeated[2][low:high]),
                log_scale[low:high],
                node_t,
                barycentric,
                *theta,
                responsibilities,
                0.0,
            ),
            blocks,
            n_threads,
        )
        if not responsibilities:
            return _only_log_likelihood(log_likelihood, theta)
        statistics[1] = statistics[1] + MASS_FLOOR
        new = _kernels.scaled_update_from_statistics(
            values,
            starts,
            node_t,
            tuple(statistics),
            *theta,
            self.newton_steps,
            mode,
            self.count_bound,
        )
        return (log_likelihood.reshape(-1, 1, 1), *new)

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

    @property
    def has_hessian(self):
        """Whether :meth:`hessian` is available: in the table form (one
        feature per problem)."""
        return not self.per_cell and self.sample_log_scale is None

    def hessian(self, theta):
        """The Hessian of each problem's log-likelihood in Newton's
        coordinates (see :func:`sknbmix._kernels.table_hessian`), shaped
        (n_problems, n_params, n_params), problems in the order of
        :meth:`sknbmix._stack.ProblemStack.rows`. Table form only."""
        table = self.table
        scaled = table.log_scales is not None
        empty = np.empty(0)
        hessian = _kernels.table_hessian(
            table.values,
            table.log_factorial,
            table.multiplicity,
            table.scale_index if scaled else np.empty(0, dtype=np.int64),
            table.log_scales if scaled else empty,
            table.starts,
            *contiguous(theta),
        )
        # One start (independent weights) or one feature (shared weights).
        return hessian.reshape((-1,) + hessian.shape[2:])

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
        if self.scaled:
            return self._moments(resp)
        if self.per_cell:
            mass, total = self.responsibility_mass(resp)
            return self.from_mass(mass, total + MASS_FLOOR)
        mass = table.multiplicity * resp
        total = table.feature_sum(mass) + MASS_FLOOR
        if self.shared_weights:
            total = total.sum(axis=2, keepdims=True)
        return self.from_mass(mass, total)

    def responsibility_mass(self, resp):
        """The per-sample model's responsibilities (n_starts, n_components,
        n_samples) added up at each entry (n_starts, n_components,
        n_entries) and in all (n_starts, n_components, 1)."""
        n_starts, n_components, n_samples = resp.shape
        mass = self.table.indicator.sum_columns(resp.reshape(-1, n_samples))
        return (
            mass.reshape(n_starts, n_components, -1),
            resp.sum(axis=2, keepdims=True),
        )

    def from_mass(self, mass, total):
        """The M step from responsibility mass at each entry and its total
        (with the mass floor; per weight group, see
        :func:`sknbmix._kernels.m_step`), with alpha by Newton's method from
        the method of moments."""
        shape = mass.shape[:2] + (self.table.n_features,)
        return Theta(
            *_kernels.m_step(
                self.table.values,
                self.table.starts,
                np.ascontiguousarray(mass),
                np.ascontiguousarray(total),
                # inf: Newton's method starts from the method of moments.
                np.full(shape, np.inf),
                self.newton_steps,
            )
        )

    def statistics(self, theta, responsibilities=True):
        """The per-sample model's E step at ``theta`` (without size factors)
        as statistics that add up over blocks of samples: the log-likelihood
        per start, and with ``responsibilities`` the responsibility mass at
        each entry and its total per component (see
        :func:`sknbmix._kernels.cell_block_statistics`)."""
        table = self.table
        indicator = table.indicator
        constant, entry = _kernels.cell_terms(
            table.values, table.log_factorial, table.starts, *contiguous(theta)
        )
        return _kernels.cell_block_statistics(
            entry, constant, indicator.indptr, indicator.indices, responsibilities
        )

    def update_from_statistics(self, theta, mass, totals, mode=_kernels.M_STEP):
        """The M step (or gradient, by ``mode``) from the added-up
        :meth:`statistics` of all samples at ``theta``, as :meth:`em_step`
        (or :meth:`gradient`) would make it."""
        return Theta(
            *_kernels.update_from_mass(
                self.table.values,
                self.table.starts,
                np.ascontiguousarray(mass),
                np.ascontiguousarray(totals + MASS_FLOOR),
                *contiguous(theta),
                self.newton_steps,
                mode,
            )
        )

    def from_splits(self, splits):
        """The M step from the responsibilities of
        :class:`~sknbmix._fit.SampleSplits` (per-sample model): the samples
        are in canonical order, so their ranks are their positions."""
        return self.from_responsibilities(
            splits.responsibilities(
                np.arange(self.table.n_samples), self.sample_scores()
            )
        )

    def sample_scores(self):
        """What quantile splits of the samples sort them by (per-sample
        model): their total count, or with size factors ``sum_g log1p(x_g /
        s)`` (the total of counts per unit size factor is the same for every
        sample when the size factors are the totals)."""
        table = self.table
        if self.sample_log_scale is None:
            return table.indicator.sum_rows(table.values[None])[0]
        log_counts = self.normalised_log_counts(table.counts())
        return np.asarray(log_counts.sum(axis=1)).ravel()

    def score_distribution(self):
        """The distinct :meth:`sample_scores`, ascending, and the empirical
        distribution function of the scores below and at each."""
        return score_distribution(*np.unique(self.sample_scores(), return_counts=True))

    def normalised_log_counts(self, X):
        """``log1p(x / s)`` of every count of X, this likelihood's samples
        (sparse stays sparse; 0 for a sample without counts)."""
        with np.errstate(over="ignore"):
            inverse = np.exp(-self.sample_log_scale)
        inverse[~np.isfinite(inverse)] = 0.0
        if sp.issparse(X):
            return sp.csr_matrix(X.multiply(inverse[:, None])).log1p()
        return np.log1p(X * inverse[:, None])

    def _moments(self, resp):
        """With size factors: the method-of-moments estimates of each
        component from responsibilities (as :meth:`from_responsibilities`).

        Given ``s``, a count has mean ``s mu`` and variance ``s mu + s**2
        mu**2 / alpha``, ``mu = alpha b``: ``mu`` is the weighted total
        count over the weighted total size factor, and ``mu**2 / alpha`` the
        weighted excess of the squared residuals over ``s mu``, per unit of
        ``s**2``. Without excess, ``alpha`` is at its cap (Poisson).
        """
        table = self.table
        values = table.values
        if self.per_cell:
            n_starts, n_components, n_samples = resp.shape
            scale = np.exp(self.sample_log_scale)
            flat = resp.reshape(-1, n_samples)

            def per_feature(weights):
                # sum_i r_i w_i x_ig**p for p = 1, 2, through the entries.
                mass = table.indicator.sum_columns(weights)
                mass = mass.reshape(n_starts, n_components, -1)
                return [table.feature_sum(mass * values**p) for p in (1, 2)]

            first, second = per_feature(flat)
            cross = per_feature(flat * scale)[0]
            total, by_scale, by_square = (
                (resp @ scale**p)[..., None] for p in (0, 1, 2)
            )
        else:
            mass = table.multiplicity * resp
            scale = np.exp(table.entry_log_scale)
            total, by_scale, by_square, first, second, cross = (
                table.feature_sum(mass * w)
                for w in (1.0, scale, scale**2, values, values**2, values * scale)
            )
            if self.shared_weights:
                total = total.sum(axis=2, keepdims=True)
        mean = np.maximum(first / np.maximum(by_scale, MEAN_MIN), MEAN_MIN)
        excess = second - 2 * mean * cross + mean**2 * by_square - mean * by_scale
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(
                excess > 1e-12 * mean * by_scale, mean**2 * by_square / excess, np.inf
            )
        log_alpha = clip(np.log(alpha), *LOG_ALPHA_BOUNDS)
        total = total + MASS_FLOOR
        log_weights = np.log(total) - np.log(total.sum(axis=1, keepdims=True))
        return clip_theta(log_weights, log_alpha, np.log(mean) - log_alpha)

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
        if self.scaled:
            return self._scaled_cell_log_prob(theta, responsibilities)
        entry, zero = _kernels.entry_log_prob(
            table.values, table.log_factorial, table.starts, *contiguous(theta[1:])
        )
        if self.shared_weights:
            # Every sample has the zero-count log-probability of each feature,
            # plus the excess of its non-zero counts: sparse all along.
            joint = table.indicator.sum_rows(entry[0]) + (
                theta.log_weights[0] + zero[0].sum(axis=1, keepdims=True)
            )
            log_norm, resp = logsumexp_components(joint[None])
            return log_norm[0, 0], resp[0].T if responsibilities else None
        joint = entry + (theta.log_weights + zero).take(table.feature, axis=-1)
        log_norm, resp = logsumexp_components(joint)
        log_norm = log_norm[0, 0]
        log_norm_zero = log_norm[table.starts]
        excess = log_norm - log_norm_zero[table.feature]
        log_prob = log_norm_zero.sum() + table.indicator.sum_rows(excess[None])[0]
        if not responsibilities:
            return log_prob, None
        # The (n_samples, n_features, n_components) answer is dense by nature.
        entries = np.tile(table.starts, (table.n_samples, 1))
        indicator = table.indicator
        entries[indicator.rows(), table.feature[indicator.indices]] = indicator.indices
        return log_prob, resp[0].T[entries]

    def _scaled_cell_log_prob(self, theta, responsibilities):
        """:meth:`cell_log_prob` with size factors."""
        table = self.table
        if self.per_cell:
            log_prob, resp = _kernels.scaled_cell_log_prob(
                *self._scaled_cell_data(),
                *contiguous((theta.log_weights[0, :, 0], *(x[0] for x in theta[1:]))),
            )
            return log_prob, resp if responsibilities else None
        entry = _kernels.scaled_entry_log_prob(
            table.values,
            table.log_factorial,
            table.entry_log_scale,
            table.starts,
            *contiguous(theta[1:]),
        )
        groups = (
            table.feature
            if theta.log_weights.shape[2] > 1
            else np.zeros_like(table.feature)
        )
        log_norm, resp = logsumexp_components(
            entry + theta.log_weights.take(groups, axis=-1)
        )
        # Each sample's entry of each feature: its size factor's zero entry,
        # or the entry of its non-zero count.
        entries = table.starts + table.sample_group[:, None]
        indicator = table.indicator
        entries[indicator.rows(), table.feature[indicator.indices]] = indicator.indices
        log_prob = log_norm[0, 0][entries].sum(axis=1)
        if not responsibilities:
            return log_prob, None
        resp = resp[0].T[entries]
        return log_prob, resp[:, 0] if self.shared_weights else resp


# A pass over the samples of the per-sample model takes one thread per this
# many non-zeros times starts (thread pools cost tens of microseconds)...
_THREAD_WORK = 2_000_000
# ... and from this many samples on, it adds them up in at most
# _MAX_SAMPLE_BLOCKS blocks of at least _MIN_SAMPLE_BLOCK, in a fixed order,
# so that the answer does not depend on the number of threads.
_MIN_SAMPLE_BLOCK = 4096
_MAX_SAMPLE_BLOCKS = 16
_THREADS = None


def available_threads():
    """The threads a pass may use: ``OMP_NUM_THREADS`` if set (joblib's
    worker processes set it to their share of the cores), else the cores
    this process may run on."""
    setting = os.environ.get("OMP_NUM_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _threads_for(work):
    """The threads a pass over ``work`` non-zeros times starts is worth."""
    return max(min(available_threads(), -(-work // _THREAD_WORK)), 1)


def _by_start_groups(kernel, theta, n_threads):
    """``kernel(*theta)`` (a pass that returns arrays with a leading start
    axis, each start computed alone) on up to ``n_threads`` groups of the
    starts at once: the same answer, bit for bit."""
    n_starts = theta[1].shape[0]
    groups = np.array_split(np.arange(n_starts), min(n_threads, n_starts))
    parts = _map_in_threads(
        lambda group: kernel(*(x[group[0] : group[-1] + 1] for x in theta)), groups
    )
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


def _sum_over_blocks(statistics, blocks, n_threads):
    """The sum of ``statistics(low, high)`` (a tuple of arrays) over the
    blocks of samples between ``blocks`` bounds, added in their order
    whatever the number of threads, a few blocks at a time (for the memory
    of their statistics)."""
    n_blocks = len(blocks) - 1
    sums = None
    for first in range(0, n_blocks, n_threads):
        parts = _map_in_threads(
            lambda b: statistics(blocks[b], blocks[b + 1]),
            range(first, min(first + n_threads, n_blocks)),
        )
        for part in parts:
            sums = (
                part
                if sums is None
                else tuple(x + y for x, y in zip(sums, part, strict=True))
            )
    return sums


def _only_log_likelihood(log_likelihood, theta):
    """What a pass in ``LOG_LIKELIHOOD`` mode returns: the log-likelihood per
    start, and empty parameters."""
    empty = np.empty((0,) + theta[1].shape[1:])
    return log_likelihood.reshape(-1, 1, 1), empty[..., :1], empty, empty


def _sample_blocks(n_samples):
    """The bounds of the blocks of samples a pass adds up (one block below
    twice ``_MIN_SAMPLE_BLOCK``): a function of ``n_samples`` alone."""
    n_blocks = min(_MAX_SAMPLE_BLOCKS, max(n_samples // _MIN_SAMPLE_BLOCK, 1))
    return np.linspace(0, n_samples, n_blocks + 1).round().astype(np.int64)


def _map_in_threads(function, items):
    """``[function(item) for item in items]``, on threads when there are
    several items (the compiled loops release the GIL)."""
    global _THREADS
    items = list(items)
    if len(items) == 1:
        return [function(items[0])]
    # A forked child inherits the pool but not its threads: a pool of its own.
    if _THREADS is None or _THREADS[0] != os.getpid():
        _THREADS = os.getpid(), ThreadPoolExecutor(thread_name_prefix="sknbmix")
    return list(_THREADS[1].map(function, items))


def score_distribution(scores, counts):
    """Distinct ``scores`` (ascending) with how many samples have each, and
    the empirical distribution function below and at each."""
    n_samples = counts.sum()
    upper = np.cumsum(counts) / n_samples
    return scores, upper - counts / n_samples, upper


def sample_mixture(rng, n_samples, weights, alpha, b, size_factors=None):
    """Draw ``(X, y)`` from a mixture with ``rng``, a RandomState or a
    Generator.

    ``weights`` has shape (n_components,) when shared by the features, else
    (n_features, n_components); ``alpha`` and ``b`` (n_components,
    n_features). ``y`` is the component of each sample (of each count when
    the weights are per feature). With ``size_factors`` (one per sample) a
    count of sample ``i`` is drawn with ``b`` scaled by its size factor.
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
    if size_factors is not None:
        component_b = component_b * np.asarray(size_factors, dtype=float)[:, None]
    X = rng.negative_binomial(component_alpha, 1.0 / (1.0 + component_b))
    return X, y
