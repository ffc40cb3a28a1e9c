"""The fitting engine: starts, the fit of a batch of starts, reseeding of
degenerate components, the best of several initialisations, and the
canonical order of samples, features and components.

Everything here takes plain settings (:class:`FitSettings`) and arrays; the
estimator (:class:`sknbmix.NegBinomMixture`) validates, calls :func:`fit` and
turns its result into fitted attributes, and the bootstrap calls the same
functions for its replicates.
"""

# SPDX-License-Identifier: BSD-3-Clause

import functools
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from joblib import effective_n_jobs
from sklearn.cluster import KMeans
from sklearn.utils.parallel import Parallel, delayed

from sknbmix._em import run_em
from sknbmix._likelihood import MixtureLikelihood, Theta
from sknbmix._nbinom import MEAN_MIN
from sknbmix._newton import newton_maximise
from sknbmix._powell import powell_maximise
from sknbmix._stack import ProblemStack

# EM iterations a start gets before Newton's method takes over.
_EM_ITER_BEFORE_NEWTON = 30
# Newton's finite-difference Hessian costs one E step per parameter of a
# problem: beyond this many, EM alone continues.
_NEWTON_MAX_PARAMS = 32
# A best start with an alpha above this (1e3, on its way to the Poisson limit)
# gets a Newton step to tell a maximum from a saddle point.
_LOG_ALPHA_CERTIFY = np.log(1e3)
# Two components this close in every log alpha and log b are one component
# twice (a smaller mixture, where EM from random responsibilities can stop).
_COINCIDE = 1e-3
# An emptied component is moved to this share of the samples with the highest
# counts, with this alpha, and refit (see _reseed_degenerate).
_RESEED_SHARE = 0.01
_RESEED_ALPHA = 10.0
# ... and refit from this many seeded random soft splits as well.
_N_RESCUE_STARTS = 10
_RESCUE_SEED = 0
# A component whose mean is below this (1e-4) has collapsed onto zero.
_LOG_COLLAPSED = np.log(1e-4)
# With shared weights and at least this many features, the default starts
# include this many random soft splits of the samples.
_RANDOM_MIN_FEATURES = 10
_N_RANDOM_STARTS = 3
# Seeds the weights of the canonical order of samples (see canonical_order).
_ORDER_SEED = 20141120


@dataclass(frozen=True)
class FitSettings:
    """The settings of a fit: the estimator's hyperparameters that the
    engine reads (see :class:`sknbmix.NegBinomMixture` for their meaning)."""

    n_components: int = 1
    shared_weights: bool = True
    solver: str = "em"
    tol: float = 1e-9
    max_iter: int = 1000
    n_init: int = 1
    init_params: str = "quantile"
    n_jobs: int = None
    verbose: int = 0

    @classmethod
    def from_params(cls, params):
        """The settings among ``params`` (e.g. an estimator's ``get_params()``)."""
        return cls(**{field.name: params[field.name] for field in fields(cls)})


class StartsFit(NamedTuple):
    """The fit of a batch of starts (see :func:`fit_starts`).

    ``theta`` holds the best start of each group (one with shared weights,
    one per feature otherwise); ``log_likelihood`` and ``converged`` are
    shaped (1, 1, 1 or n_features), ``n_iter`` has one entry per group, and
    ``start_log_likelihoods`` (n_starts, 1, n_groups) is where each start
    ended (``-inf`` for none).
    """

    theta: Theta
    log_likelihood: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    start_log_likelihoods: np.ndarray


class FitResult(NamedTuple):
    """What :func:`fit` found.

    Attributes
    ----------
    parameters : dict
        ``weights``, ``alpha``, ``b`` and ``means`` (see
        :func:`theta_to_parameters`), components in canonical order
        (:func:`order_components`), features in the order of ``X``.
    n_iter : int
        Iterations used by the kept initialisation (with independent
        weights, the largest over the features of those of each feature's
        kept initialisation).
    converged : bool
        Whether every problem of the kept initialisations converged.
    lower_bound : float
        Mean log-likelihood per sample at ``theta``.
    start_log_likelihoods : ndarray of shape (n_starts, 1, n_groups)
        Where each start of the first initialisation ended (extra starts
        first).
    labels : ndarray or None
        The most probable component of each sample (of each sample and
        feature with independent weights), when asked for.
    """

    parameters: dict
    n_iter: int
    converged: bool
    lower_bound: float
    start_log_likelihoods: np.ndarray
    labels: np.ndarray | None


# -- parameters ----------------------------------------------------------------


def parameters_to_theta(weights, alpha, b, shared_weights):
    """A one-start :class:`Theta` from fitted parameters (``weights`` of
    shape (n_components,), or (n_features, n_components) when not
    ``shared_weights``; ``alpha`` and ``b`` (n_components, n_features))."""
    weights = np.asarray(weights)
    weights = weights if shared_weights else weights.T
    log_weights = np.log(weights).reshape(1, alpha.shape[0], -1)
    return Theta(log_weights, np.log(alpha)[None], np.log(b)[None])


def theta_to_parameters(theta, shared_weights):
    """``weights``, ``alpha``, ``b`` and ``means`` of one start of ``theta``,
    in the shapes of the estimator's attributes."""
    weights = np.exp(theta.log_weights[0])
    alpha = np.exp(theta.log_alpha[0])
    b = np.exp(theta.log_b[0])
    return {
        "weights": weights[:, 0] if shared_weights else weights.T,
        "alpha": alpha,
        "b": b,
        "means": alpha * b,
    }


def order_components(theta, shared_weights):
    """One start of ``theta`` with its components in canonical order: by
    ascending total mean, or per feature by ascending mean when not
    ``shared_weights``."""
    log_mean = theta.log_alpha[0] + theta.log_b[0]
    if shared_weights:
        order = np.argsort(np.exp(log_mean).sum(axis=1), kind="stable")
        return Theta(*(x[:, order] for x in theta))
    order = np.argsort(np.exp(log_mean), axis=0, kind="stable")[None]
    return Theta(*(np.take_along_axis(x, order, axis=1) for x in theta))


def degenerate_components(weights, alpha, b, n_samples=None):
    """Which fitted components are not estimates of a component of the data,
    in the shape of ``weights`` (per feature when ``weights`` is 2-D).

    A component is degenerate when it is empty (its weight is below one of
    ``n_samples``; not checked when None), has collapsed onto zero (a mean
    below 1e-4 in every feature: a point mass at zero, whatever its alpha),
    or repeats an earlier one (its log alpha and log b within ``_COINCIDE``
    of it; with shared weights, in every feature).
    """
    shared_weights = weights.ndim == 1
    means = alpha * b
    if shared_weights:
        collapsed = (np.log(means) < _LOG_COLLAPSED).all(axis=1)
    else:
        collapsed = (np.log(means) < _LOG_COLLAPSED).T
    out = collapsed | _repeated_components(alpha, b, shared_weights)
    if n_samples is not None:
        out |= weights * n_samples < 1.0
    return out


def _repeated_components(alpha, b, shared_weights):
    """Which components repeat an earlier one (their log alpha and log b
    within ``_COINCIDE`` of it), in the shape of the estimator's
    ``weights_``: with shared weights a repeat must coincide with one
    component in every feature."""
    log_alpha, log_b = np.log(alpha), np.log(b)
    if shared_weights:
        return _repeats_earlier(log_alpha, log_b, axis=None)
    return _repeats_earlier(log_alpha, log_b, axis=-1).T


def _repeats_earlier(log_alpha, log_b, axis):
    """Whether each component repeats an earlier one.

    Components are on axis -2 and features on axis -1; ``axis=-1`` compares
    feature by feature (the result has the input's shape), ``axis=None``
    requires the same earlier component in every feature (the result has
    one entry per component).
    """
    gap = np.maximum(
        np.abs(log_alpha[..., :, None, :] - log_alpha[..., None, :, :]),
        np.abs(log_b[..., :, None, :] - log_b[..., None, :, :]),
    )
    if axis is None:
        gap = gap.max(axis=-1)
    else:
        gap = np.moveaxis(gap, -1, -3)
    n_components = log_alpha.shape[-2]
    earlier = np.tril(np.ones((n_components, n_components), dtype=bool), k=-1)
    repeats = ((gap < _COINCIDE) & earlier).any(axis=-1)
    return repeats if axis is None else np.moveaxis(repeats, -2, -1)


def _take_features(theta, features):
    """``theta`` with its features in the order ``features`` (None: as is)."""
    if features is None:
        return theta
    return theta._replace(
        log_alpha=theta.log_alpha[..., features], log_b=theta.log_b[..., features]
    )


# -- canonical order of the data ---------------------------------------------------


def canonical_order(X, features, size_factors=None):
    """An order of the rows of X that depends on their contents alone.

    Rows go by their sum, then by a fixed random weighting of their counts,
    on which two different rows tie only by chance (equal rows may go in any
    order: they sum alike), then by their size factors. The weights go by
    column in the order ``features``, an order of the columns' own contents
    (:func:`canonical_feature_order`).
    """
    return order_of_row_keys(*row_keys(X, row_key_weights(features)), size_factors)


def row_key_weights(features):
    """The fixed random weight of each column in :func:`canonical_order`,
    given the columns' canonical order ``features``."""
    weights = np.empty(features.size)
    weights[features] = np.random.default_rng(_ORDER_SEED).uniform(
        1.0, 2.0, features.size
    )
    return weights


def row_keys(X, weights):
    """Each row's total and its total with the columns weighted by
    ``weights``: what :func:`canonical_order` sorts the rows by."""
    total = np.asarray(X.sum(axis=1), dtype=float).ravel()
    weighted = np.asarray(X @ weights, dtype=float).ravel()
    return total, weighted


def order_of_row_keys(total, weighted, size_factors=None):
    """The order of rows by their :func:`row_keys` (and size factors)."""
    keys = (
        (weighted, total) if size_factors is None else (size_factors, weighted, total)
    )
    return np.lexsort(keys)


def canonical_feature_order(X):
    """An order of the columns of X that depends on their counts alone, in
    any order of the rows: by their sums of x, x**2 and x**3 (exact in any
    order for integers below 2**53, and nearly so above)."""
    return np.lexsort(power_sums(X))


def power_sums(X):
    """The sums of x**3, x**2 and x of each column of X (rows of the
    result), which add up over blocks of rows."""
    # Validated counts are float64 already: no copy of the data for this.
    X = X.astype(np.float64, copy=False)
    power = X.power if sp.issparse(X) else X.__pow__
    return np.array([np.asarray(power(k).sum(axis=0)).ravel() for k in (3, 2, 1)])


# -- starts ------------------------------------------------------------------------


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


def initial_responsibilities(likelihood, cuts):
    """Quantile-split responsibilities of the table form's distinct counts,
    for each row of ``cuts``: each feature's counts split by their own
    quantiles."""
    table = likelihood.table
    # Each feature's multiplicities add up to n_samples.
    cumulative = np.cumsum(table.multiplicity)
    before = (cumulative - table.multiplicity)[table.starts]
    upper = (cumulative - before[table.feature]) / table.n_samples
    lower = upper - table.multiplicity / table.n_samples
    return quantile_responsibilities(lower, upper, cuts)


def _splitmix64(x):
    """Steele, Lea and Flood's SplitMix64 finaliser of uint64 ``x``: a
    counter-based random number per element."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def seeded_dirichlet(seed, ranks, n_starts, n_components):
    """Dirichlet(1, ..., 1) responsibilities of the samples of canonical rank
    ``ranks``, shaped (n_starts, n_components, n_ranks).

    Each value is a function of ``seed``, the sample's rank, the start and
    the component alone (a counter-based generator), so any subset of the
    samples (a block of a distributed array) draws what it would in the
    whole data set.
    """
    counter = np.asarray(ranks, dtype=np.uint64)[None, None, :] * np.uint64(
        n_starts * n_components
    ) + np.arange(n_starts * n_components, dtype=np.uint64).reshape(
        n_starts, n_components, 1
    )
    bits = _splitmix64(counter ^ _splitmix64(np.uint64(seed)))
    # Uniform on (0, 1), then Exp(1); normalised Exp(1) draws are Dirichlet.
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    draws = -np.log(uniform)
    return draws / draws.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class SampleSplits:
    """The starts of the per-sample model as responsibilities that each
    sample gets from its canonical rank and its score (see
    :meth:`~sknbmix._likelihood.MixtureLikelihood.sample_scores`) alone, so
    that a block of the samples makes its share anywhere.

    ``n_random`` random soft splits (:func:`seeded_dirichlet` with
    ``seed``) come first, then one quantile split of the scores per row of
    ``cuts``. ``scores`` are the distinct scores of all samples, ascending,
    with the empirical distribution function below (``lower``) and at
    (``upper``) each.
    """

    n_components: int
    cuts: np.ndarray
    scores: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_random: int = 0
    seed: int = 0

    def responsibilities(self, ranks, scores):
        """Shaped (n_starts, n_components, n_samples), for the samples of
        canonical rank ``ranks`` and score ``scores``."""
        parts = []
        if self.n_random:
            parts.append(
                seeded_dirichlet(self.seed, ranks, self.n_random, self.n_components)
            )
        if len(self.cuts):
            index = np.searchsorted(self.scores, scores)
            parts.append(
                quantile_responsibilities(
                    self.lower[index], self.upper[index], self.cuts
                )
            )
        return np.concatenate(parts)


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


def has_random_starts(likelihood, settings):
    """Whether the default starts include random soft splits of the samples
    (shared weights with many features)."""
    return (
        likelihood.per_cell
        and likelihood.table.n_features >= _RANDOM_MIN_FEATURES
        and settings.init_params == "quantile"
        and settings.n_components > 1
    )


def initial_starts(likelihood, settings, init, random_state, n_quantile=None):
    """The starts that initialisation ``init`` screens, as a batch of
    parameters (``random_state`` is drawn from by random starts only);
    ``n_quantile`` keeps only the first that many quantile splits."""
    K = settings.n_components
    if likelihood.per_cell:
        if settings.init_params == "kmeans":
            return likelihood.from_responsibilities(
                _kmeans_responsibilities(likelihood, K, random_state)
            )
        return likelihood.from_splits(
            _sample_splits(likelihood, settings, init, random_state, n_quantile)
        )
    if K == 1:
        return likelihood.from_responsibilities(
            initial_responsibilities(likelihood, np.empty((1, 0)))
        )
    # One feature's components tend to sit side by side: layered splits
    # find them, for the cost of more starts on its small table.
    cuts = default_cuts(K, layered=True)[:n_quantile]
    n_starts = len(cuts)
    if settings.init_params == "quantile":
        if init > 0:
            cuts = random_cuts(n_starts, K, random_state)
        resp = initial_responsibilities(likelihood, cuts)
    elif settings.init_params == "random":
        n_values = likelihood.table.n_entries
        resp = random_state.dirichlet(np.ones(K), size=(n_starts, n_values))
        resp = resp.transpose(0, 2, 1)
    else:
        resp = _kmeans_responsibilities(likelihood, K, random_state)
    return likelihood.from_responsibilities(resp)


def _sample_splits(likelihood, settings, init, random_state, n_quantile):
    """The :class:`SampleSplits` of the per-sample model's starts.

    Splits of the samples by score find components that differ in overall
    level; cell types that differ in which genes go up or down are found
    from soft random responsibilities, which let EM sort the samples by all
    genes at once (seeded, so the default stays deterministic). They come
    first and outlast the screen (see :func:`fit_likelihood`): they start
    far behind and overtake late.
    """
    K = settings.n_components
    scores, lower, upper = likelihood.score_distribution()
    if K == 1:
        return SampleSplits(1, np.empty((1, 0)), scores, lower, upper)
    cuts = default_cuts(K)[:n_quantile]
    n_random, seed = 0, 0
    if settings.init_params == "random":
        n_random, cuts = len(cuts), cuts[:0]
    elif init > 0:
        cuts = random_cuts(len(cuts), K, random_state)
    if has_random_starts(likelihood, settings):
        n_random = _N_RANDOM_STARTS
    if n_random and (init > 0 or settings.init_params == "random"):
        seed = int(random_state.randint(np.iinfo(np.int32).max))
    return SampleSplits(K, cuts, scores, lower, upper, n_random, seed)


def _kmeans_responsibilities(likelihood, K, random_state):
    kmeans = KMeans(n_clusters=K, n_init=1, random_state=random_state)
    if likelihood.per_cell:
        X = likelihood.table.counts()
        if likelihood.scaled:
            log_counts = likelihood.normalised_log_counts(X)
        else:
            log_counts = X.log1p()
        labels = kmeans.fit(log_counts).labels_
        return (labels == np.arange(K)[:, None])[None].astype(float)
    # One k-means per feature, on its distinct counts weighted by how
    # often they occur.
    table = likelihood.table
    labels = np.empty(table.n_entries, dtype=int)
    for start, stop in zip(
        table.starts, np.append(table.starts[1:], table.n_entries), strict=True
    ):
        values = table.values[start:stop, None]
        if table.log_scales is not None:
            # Counts per unit size factor (a sample without counts has 0).
            values = values * np.exp(-table.entry_log_scale[start:stop, None])
        values = np.log1p(np.nan_to_num(values))
        weights = table.multiplicity[start:stop]
        kmeans.set_params(n_clusters=min(K, stop - start))
        labels[start:stop] = kmeans.fit(values, sample_weight=weights).labels_
    return (labels == np.arange(K)[:, None])[None].astype(float)


# -- the fit of a batch of starts ----------------------------------------------


def fit_starts(
    likelihood,
    starts,
    settings,
    tol,
    n_protected=0,
    reseed=True,
    n_protected_in_screen=None,
):
    """Fit from a batch of starts and keep the best of each problem.

    Every start first runs ``_EM_ITER_BEFORE_NEWTON`` EM iterations, or until
    a better start of its group outpaces it (the first ``n_protected`` starts
    are never outpaced, the first ``n_protected_in_screen`` not in the
    screen): the screen. With ``solver="em"`` the starts go on to
    convergence (on genes like Rest or Prdm14 of the built-in data, the start
    that leads after a dozen iterations ends on a worse optimum in one data
    set in thirty), finished by Newton's method where its Hessian is
    affordable and by EM elsewhere; with ``solver="powell"``, Powell's method
    finishes each of them. A best fit with a degenerate component is refit
    with that component moved, and from random soft splits
    (:func:`_reseed_degenerate`).

    Parameters
    ----------
    likelihood : MixtureLikelihood
    starts : Theta
        ``n_starts`` starts on axis 0.
    settings : FitSettings
    tol : float
        Threshold on the total log-likelihood of each problem.
    n_protected : int, default=0
    reseed : bool, default=True
    n_protected_in_screen : int, optional
        At least ``n_protected`` (the default).

    Returns
    -------
    StartsFit
    """
    stack, theta = ProblemStack.of_starts(likelihood, starts)
    theta, reached, n_iter, converged = run_em(
        stack,
        theta,
        max_iter=min(settings.max_iter, _EM_ITER_BEFORE_NEWTON),
        tol=tol,
        n_protected=max(n_protected, n_protected_in_screen or 0),
    )
    if settings.solver == "powell":
        best = _finish_by_powell(
            stack, theta, reached, n_iter, converged, settings, tol
        )
    else:
        best = _finish_by_em(
            stack, theta, reached, n_iter, converged, settings, tol, n_protected
        )
    fitted = StartsFit(
        stack.take(theta, best),
        stack.take(reached, best),
        n_iter[best],
        stack.take(converged, best),
        stack.by_start(stack.flat(reached))[:, None, :],
    )
    if reseed and not likelihood.per_cell and settings.n_components > 1:
        fitted = _reseed_degenerate(likelihood, fitted, settings, tol)
    return fitted


def _finish_by_em(stack, theta, reached, n_iter, converged, settings, tol, n_protected):
    """Run the screened problems that have not converged on to convergence,
    in place, and return the best start of each group.

    Problems that EM has not finished by then crawl (heavy overlap, or a
    component nearing the Poisson limit): Newton's method finishes them
    where its Hessian is affordable, EM the rest (and whatever Newton leaves,
    e.g. at degenerate optima with emptying components). Either leaves a
    start for a better one in its basin, except the first ``n_protected``.
    """

    def continue_from(index, maximise, **kwargs):
        if not index.size:
            return
        budget = settings.max_iter - n_iter[index].max()
        if budget <= 0:
            return
        new_theta, new_reached, new_iter, new_converged = maximise(
            stack.select(index),
            stack.take(theta, index),
            max_iter=budget,
            tol=tol,
            n_protected=n_protected,
            **kwargs,
        )
        stack.put(theta, index, new_theta)
        stack.put(reached, index, new_reached)
        stack.put(converged, index, new_converged)
        n_iter[index] += new_iter

    def unfinished():
        return np.flatnonzero(~stack.flat(converged))

    n_params = settings.n_components - 1 + 2 * stack.rows(theta.log_alpha).shape[1]
    use_newton = n_params <= _NEWTON_MAX_PARAMS
    if use_newton:
        continue_from(unfinished(), newton_maximise)
    # EM's trail rule holds the starts that go on against those that have
    # finished, too: a start left alone would otherwise crawl on to max_iter.
    index = unfinished()
    continue_from(index, run_em, finished=_best_elsewhere(stack, reached, index))
    best = stack.best_start(stack.flat(reached))
    if use_newton:
        # EM's stopping rule cannot tell a maximum from a saddle point where
        # EM stalls, which happens where a component is at or on its way to
        # the Poisson limit: there a Newton step certifies the best start of
        # each group, and goes on where it is not at a maximum.
        log_alpha = stack.rows(theta.log_alpha)[best]
        continue_from(
            best[(log_alpha > _LOG_ALPHA_CERTIFY).any(axis=1)], newton_maximise
        )
    return best


def _best_elsewhere(stack, reached, index):
    """For each problem at ``index``, the best log-likelihood ``reached`` by
    the problems of its group that are not at ``index`` (-inf where none)."""
    others = np.ones(stack.n_problems, dtype=bool)
    others[index] = False
    return stack.group_best(stack.flat(reached), others)[index]


def _finish_by_powell(stack, theta, reached, n_iter, converged, settings, tol):
    """Finish every screened problem by Powell's method, in place, and return
    the best start of each group.

    Powell's method runs from where the screen left each start, converged or
    not: from the raw starts it ended 0.01 to 7 units short of the optimum on
    public count data (bioChemists, quine, epil), at local maxima, from all
    but one of up to eighteen starts, and the screen's iterations take the
    starts into the basins that EM would go on in.
    """
    for problem in range(stack.n_problems):
        index = np.array([problem])
        new_theta, new_reached, new_iter, new_converged = powell_maximise(
            stack.select(index).likelihood,
            stack.take(theta, index),
            max_iter=settings.max_iter,
            tol=tol,
        )
        stack.put(theta, index, new_theta)
        stack.put(reached, index, new_reached)
        stack.put(converged, index, new_converged)
        n_iter[problem] += new_iter
    return stack.best_start(stack.flat(reached))


def window_mean(table, low, high):
    """Mean count of each feature's samples from quantile ``low`` to
    ``high`` of its counts (in ascending order; a sample straddling an end
    counts with its share), at least ``MEAN_MIN``."""
    n_samples = table.n_samples
    cumulative = np.cumsum(table.multiplicity)
    before = (cumulative - table.multiplicity)[table.starts]
    # Samples of the feature with a count up to each entry's, and below it.
    end = cumulative - before[table.feature]
    begin = end - table.multiplicity
    taken = np.clip(
        np.minimum(end, high * n_samples) - np.maximum(begin, low * n_samples),
        0.0,
        None,
    )
    total = table.feature_sum(taken * table.values)
    return np.maximum(total / table.feature_sum(taken), MEAN_MIN)


def _seeded_soft_splits(table, n_components):
    """``_N_RESCUE_STARTS`` random soft splits of each feature's distinct
    counts, as responsibilities shaped (n_starts, n_components, n_entries).

    Dirichlet(1, ..., 1) responsibilities from a fixed seed, drawn entry by
    entry so that a feature's splits depend on its own number of distinct
    counts alone, not on the other features of the table: a feature is
    reseeded alike in any batch (a screen's block, a stacked bootstrap).
    """
    n_entries = np.diff(np.append(table.starts, table.n_entries))
    rng = np.random.RandomState(_RESCUE_SEED)
    # One row per offset within a feature: -log(uniform) is Exp(1), and
    # normalised Exp(1) draws are Dirichlet(1, ..., 1).
    draws = -np.log(
        rng.random_sample((n_entries.max(), _N_RESCUE_STARTS, n_components))
    )
    offset = np.arange(table.n_entries) - np.repeat(table.starts, n_entries)
    resp = draws[offset] / draws[offset].sum(axis=-1, keepdims=True)
    return resp.transpose(1, 2, 0)


def _reseed_degenerate(likelihood, fitted, settings, tol):
    """Refit the groups whose best start has a degenerate component, from
    two starts with that component moved, and keep what is better.

    A component is degenerate when it has emptied (less than one sample's
    weight, or less than one count in all), collapsed onto zero (a mean
    below 1e-4, a point mass) or coincides with another (the stationary
    point of a smaller mixture, where EM from random responsibilities can
    stop). The likelihood is then flat in its own parameters, so no
    optimiser moves it, yet the optimum may have a small component of a few
    outlying cells, a low but non-zero one, or a second group. The two
    starts move it, with 1% of the weight, to the mean of the top 1% of the
    counts (as k-means relocates an empty cluster to the farthest points),
    or, keeping its weight, to a tenth of the feature's mean. Seeded random
    soft splits of the counts join them: a component that collapsed onto
    zero marks a basin that quantile splits lead into, while the optimum
    may hold components that differ in dispersion more than in level, which
    EM from random responsibilities finds.
    """
    theta, reached = fitted.theta, fitted.log_likelihood
    # One column per group, in the table form of independent features: the
    # fit's own table (one feature, or the features side by side).
    table = likelihood.table
    mass = np.exp(theta.log_weights) * table.n_samples
    log_mean = theta.log_alpha + theta.log_b
    degenerate = (
        (mass < 1.0) | (mass * np.exp(log_mean) < 1.0) | (log_mean < _LOG_COLLAPSED)
    )
    # The second of two coinciding components is spare as well.
    degenerate |= _repeats_earlier(theta.log_alpha, theta.log_b, axis=-1)
    groups = np.flatnonzero(degenerate.any(axis=1)[0])
    if not groups.size:
        return fitted
    sub = MixtureLikelihood(table, shared_weights=False).take_features(groups)
    start = Theta(*(x[..., groups] for x in theta))
    degenerate = degenerate[..., groups]
    log_alpha = np.where(degenerate, np.log(_RESEED_ALPHA), start.log_alpha)
    # Start 0: to the top counts with weight _RESEED_SHARE; start 1: to
    # a tenth of the mean, with the weight it has (at least that share).
    share = np.log(_RESEED_SHARE)
    kept = start.log_weights + np.log1p(-_RESEED_SHARE * degenerate.sum(axis=1))
    top = np.where(degenerate, share, kept)
    low = np.where(degenerate, np.maximum(start.log_weights, share), kept)
    low = low - np.log(np.exp(low).sum(axis=1, keepdims=True))
    moved_mean = [
        np.log(window_mean(sub.table, 1.0 - _RESEED_SHARE, 1.0)),
        np.log(0.1 * window_mean(sub.table, 0.0, 1.0)),
    ]
    moved = Theta(
        np.concatenate([top, low]),
        np.concatenate([log_alpha, log_alpha]),
        np.concatenate(
            [
                np.where(degenerate, m, log_mean[..., groups]) - log_alpha
                for m in moved_mean
            ]
        ),
    )
    random = sub.from_responsibilities(
        _seeded_soft_splits(sub.table, settings.n_components)
    )
    # The random splits come first and outlast the screen: they start far
    # behind and overtake late. After it they leave where they trail
    # hopelessly, like the random starts of a fit.
    starts = Theta(
        *(np.concatenate([x, y]) for x, y in zip(random, moved, strict=True))
    )
    new = fit_starts(
        sub,
        starts,
        settings,
        tol,
        n_protected_in_screen=_N_RESCUE_STARTS,
        reseed=False,
    )
    better = new.log_likelihood[0, 0] > reached[0, 0, groups]
    if not better.any():
        return fitted
    chosen = groups[better]
    theta = Theta(*(x.copy() for x in theta))
    for whole, part in zip(theta, new.theta, strict=True):
        whole[..., chosen] = part[..., better]
    reached, converged = reached.copy(), fitted.converged.copy()
    reached[..., chosen] = new.log_likelihood[..., better]
    converged[..., chosen] = new.converged[..., better]
    # The refit's iterations add to those that led to it.
    n_iter = fitted.n_iter.copy()
    n_iter[chosen] += new.n_iter[better]
    return fitted._replace(
        theta=theta, log_likelihood=reached, n_iter=n_iter, converged=converged
    )


# -- the fit of a data set ----------------------------------------------------


def fit(
    X,
    settings,
    random_state=None,
    *,
    size_factors=None,
    warm_start=None,
    extra_starts=None,
    n_protected=None,
    n_quantile=None,
    labels=False,
):
    """Fit a mixture to validated counts.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Validated counts (float64; CSR or CSC when sparse).
    settings : FitSettings
    size_factors : ndarray of shape (n_samples,) or None
        Validated size factors (positive, or 0 for a sample without counts).
    random_state : RandomState or None
        Drawn from by random starts only (``n_init > 1`` or ``init_params``
        other than ``"quantile"``).
    warm_start : Theta or None
        If given, the only start (``n_init`` is ignored).
    extra_starts : Theta or None
        Starts added to every initialisation's, first; they run to
        convergence even when outpaced (the bootstrap starts each replicate
        from the point estimate so).
    n_protected : int or None
        How many of the extra starts (the first) run to convergence even
        when outpaced; None: all of them.
    n_quantile : int or None
        Screen only the first this many quantile splits of the default
        starts (see :func:`default_cuts`; None: all), where extra starts
        stand for the rest.
    labels : bool, default=False
        Whether to compute the labels of X.

    Returns
    -------
    FitResult
    """
    order = features = None
    if settings.shared_weights and X.shape[1] > 1:
        # Sums over samples and features round differently in another
        # order, which can tip EM towards another local maximum: the fit
        # sees features and samples in an order set by their counts alone.
        features = canonical_feature_order(X)
        order = canonical_order(X, features, size_factors)
        if size_factors is not None:
            size_factors = size_factors[order]
    likelihood = MixtureLikelihood.of_counts(
        X,
        settings.shared_weights,
        size_factors,
        # The table of X in that order, without a copy of X.
        order=None if order is None else (order, features),
    )
    result = fit_likelihood(
        likelihood,
        settings,
        random_state,
        features=features,
        warm_start=warm_start,
        extra_starts=extra_starts,
        n_protected=n_protected,
        n_quantile=n_quantile,
        labels=labels,
    )
    if labels and order is not None:
        result.labels[order] = result.labels.copy()
    return result


def fit_likelihood(
    likelihood,
    settings,
    random_state=None,
    *,
    features=None,
    warm_start=None,
    extra_starts=None,
    n_protected=None,
    n_quantile=None,
    labels=False,
):
    """Fit a mixture to the samples of ``likelihood`` (see :func:`fit`).

    ``features`` is the order of the features in the likelihood's table (None:
    as in the data); the parameters that go in and come out are in the order
    of the data. Labels are in the likelihood's order of the samples.
    """
    n_samples = likelihood.table.n_samples
    n_init = settings.n_init if warm_start is None else 1
    tol = settings.tol * n_samples

    # All starts are made here, in order, so that random initialisations
    # do not depend on how the work is split below.
    init_starts = []
    for init in range(n_init):
        starts = (
            initial_starts(likelihood, settings, init, random_state, n_quantile)
            if warm_start is None
            else _take_features(warm_start, features)
        )
        if extra_starts is not None:
            starts = Theta(
                *(
                    np.concatenate([extra, new])
                    for extra, new in zip(
                        _take_features(extra_starts, features), starts, strict=True
                    )
                )
            )
        init_starts.append(starts)
    if extra_starts is None:
        n_protected = 0
    elif n_protected is None:
        n_protected = len(extra_starts[0])
    # The random starts come right after the extra ones. They start far
    # behind and overtake late, so they outlast the screen; after it they
    # leave where they trail hopelessly, like any start (run to convergence,
    # they can crawl on for hundreds of iterations far behind the winner).
    n_protected_in_screen = n_protected
    if warm_start is None and has_random_starts(likelihood, settings):
        n_protected_in_screen += _N_RANDOM_STARTS
    fits = _fit_in_parallel(
        likelihood, init_starts, settings, tol, n_protected, n_protected_in_screen
    )

    best = None
    for init, candidate in enumerate(fits):
        if settings.verbose:
            print(
                f"Initialization {init}: log-likelihood "
                f"{candidate.log_likelihood.sum():.6f}, "
                f"{candidate.n_iter.max()} iterations, "
                f"converged={bool(np.all(candidate.converged))}"
            )
        if best is None:
            best = candidate
            continue
        # Problems are independent: each keeps its best initialisation (one
        # problem with shared weights, one per feature otherwise).
        better = candidate.log_likelihood > best.log_likelihood
        best = best._replace(
            theta=Theta(
                *(
                    np.where(better, new, old)
                    for new, old in zip(candidate.theta, best.theta, strict=True)
                )
            ),
            log_likelihood=np.maximum(candidate.log_likelihood, best.log_likelihood),
            n_iter=np.where(better.reshape(-1), candidate.n_iter, best.n_iter),
            converged=np.where(better, candidate.converged, best.converged),
        )
    theta = best.theta
    if features is not None:
        theta = _take_features(theta, np.argsort(features))
    # The final E step runs at the parameters as the estimator stores them
    # (exponentiated), so that the labels of fit_predict(X) are those that
    # fit(X).predict(X) gives; fit alone needs the log-likelihood only.
    parameters = theta_to_parameters(
        order_components(theta, settings.shared_weights), settings.shared_weights
    )
    fitted = _take_features(
        parameters_to_theta(
            parameters["weights"],
            parameters["alpha"],
            parameters["b"],
            settings.shared_weights,
        ),
        features,
    )
    if labels:
        log_prob, resp = likelihood.cell_log_prob(fitted)
        lower_bound = float(log_prob.mean())
        labels = resp.argmax(axis=-1)
    else:
        lower_bound = float(likelihood.log_likelihood(fitted).sum()) / n_samples
        labels = None
    return FitResult(
        parameters,
        int(best.n_iter.max()),
        bool(np.all(best.converged)),
        lower_bound,
        fits[0].start_log_likelihoods,
        labels,
    )


def _fit_in_parallel(
    likelihood, init_starts, settings, tol, n_protected, n_protected_in_screen
):
    """Run :func:`fit_starts` for each initialisation, through joblib.

    With independent weights the features are also split into blocks, one
    task per block and initialisation: their problems are separate, and each
    is computed the same way in any block, so the answer does not depend on
    ``n_jobs``.
    """
    n_workers = effective_n_jobs(settings.n_jobs)
    n_features = likelihood.table.n_features
    if settings.shared_weights or n_workers == 1 or n_features == 1:
        blocks = [None]
    else:
        blocks = np.array_split(np.arange(n_features), min(n_workers, n_features))
    tasks = [(starts, block) for starts in init_starts for block in blocks]
    protection = {
        "n_protected": n_protected,
        "n_protected_in_screen": n_protected_in_screen,
    }
    if len(tasks) == 1:
        return [fit_starts(likelihood, init_starts[0], settings, tol, **protection)]

    def task(starts, block):
        if block is not None:
            starts = Theta(*(x[..., block] for x in starts))
            return delayed(fit_starts)(
                likelihood.take_features(block), starts, settings, tol, **protection
            )
        return delayed(fit_starts)(likelihood, starts, settings, tol, **protection)

    results = Parallel(n_jobs=settings.n_jobs)(task(*t) for t in tasks)
    # Put the blocks of each initialisation back together, on the feature
    # axis (axis 2 of every array; n_iter has one entry per feature).
    fits = []
    for i in range(len(init_starts)):
        parts = results[i * len(blocks) : (i + 1) * len(blocks)]
        fits.append(
            StartsFit(
                Theta(
                    *(
                        np.concatenate(x, axis=2)
                        for x in zip(*(part.theta for part in parts), strict=True)
                    )
                ),
                *(
                    np.concatenate(
                        [getattr(part, name) for part in parts],
                        axis=0 if name == "n_iter" else 2,
                    )
                    for name in StartsFit._fields[1:]
                ),
            )
        )
    return fits
