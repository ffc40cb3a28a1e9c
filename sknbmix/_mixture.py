"""Mixture of negative binomial distributions, as a scikit-learn estimator."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from sknbmix._data import build_count_table, validate_counts
from sknbmix._em import (
    MixtureProblem,
    Theta,
    default_cuts,
    initial_responsibilities,
    initial_theta,
    random_cuts,
    run_em,
)
from sknbmix._nbinom import ALPHA_MAX, MEAN_MIN, at_poisson_limit
from sknbmix._newton import newton_maximise
from sknbmix._powell import powell_maximise
from sknbmix.exceptions import DegenerateComponentWarning, PoissonLimitWarning

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
# counts, with this alpha, and refit (see NegBinomMixture._reseed_emptied).
_RESEED_SHARE = 0.01
_RESEED_ALPHA = 10.0
# A component whose mean is below this (1e-4) has collapsed onto zero.
_LOG_COLLAPSED = np.log(1e-4)
# With shared weights and at least this many features, the default starts
# include this many random soft splits of the samples.
_RANDOM_MIN_FEATURES = 10
_N_RANDOM_STARTS = 3
# Seeds the weights of the canonical order of samples (see _canonical_order).
_ORDER_SEED = 20141120


class NegBinomMixture(DensityMixin, BaseEstimator):
    """Mixture of negative binomial distributions for count data.

    Fits, by maximum likelihood, a mixture of ``n_components`` negative
    binomials to non-negative integer counts: one feature (a gene), or many
    features that share one latent component per sample (a cell type), or
    many features with a mixture each. Each component ``k`` and feature ``g``
    has a negative binomial with mean ``alpha[k, g] * b[k, g]`` and variance
    ``alpha[k, g] * b[k, g] * (1 + b[k, g])``, which is
    ``scipy.stats.nbinom(n=alpha, p=1 / (1 + b))``.

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.

    shared_weights : bool, default=True
        If True, every sample belongs to one latent component shared by all
        features, which are independent given it (a cell type for many genes).
        If False, each feature gets a mixture of its own, with its own weights:
        the same as fitting each feature alone, in one vectorised run.

    solver : {"em", "powell"}, default="em"
        ``"em"``: expectation-maximisation, accelerated with SQUAREM, with
        Newton steps for ``alpha``. ``"powell"``: direct maximisation of the
        log-likelihood with :func:`scipy.optimize.minimize` (``method="Powell"``)
        in unconstrained coordinates; slow, a reference and a fallback.

    tol : float, default=1e-9
        Convergence threshold on the mean log-likelihood per sample: EM stops
        once the gain still to come (estimated from the rate of the last
        gains) is below ``tol``, i.e. the total log-likelihood is within
        ``tol * n_samples`` of the local maximum.

    max_iter : int, default=1000
        The maximum number of EM iterations per initialisation (for
        ``solver="powell"``, of Powell iterations per run).

    n_init : int, default=1
        The number of initialisations to perform; the best result is kept.
        Each initialisation screens several starts already (see Notes).

    init_params : {"quantile", "kmeans", "random"}, default="quantile"
        How the starts are made. ``"quantile"``: the samples are split into
        groups at quantiles of their total count (of each feature's count when
        ``shared_weights=False``) and one negative binomial is fitted per
        group; the first initialisation uses a fixed set of splits, later ones
        random splits. ``"kmeans"``: k-means on ``log1p`` of the counts.
        ``"random"``: random responsibilities.

    random_state : int, RandomState instance or None, default=None
        Controls the random splits and responsibilities of initialisations,
        and :meth:`sample`. With the default ``init_params`` and ``n_init=1``
        no randomness is used. Pass an int for reproducible results across
        multiple function calls. None seeds a generator of its own from the
        operating system: unlike scikit-learn's convention, numpy's global
        random state is never drawn from. See :term:`Glossary <random_state>`.

    warm_start : bool, default=False
        If True, the solution of the last fit is the start of the next call
        of :meth:`fit`, and ``n_init`` is ignored.

    n_jobs : int, default=None
        Workers for the initialisations (``n_init``) and, with
        ``shared_weights=False``, for blocks of features, through joblib.
        The answer does not depend on it. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context (e.g. ``"dask"``, for a
        cluster). ``-1`` means using all processors.

    verbose : int, default=0
        Enable verbose output: 1 prints a line per initialisation.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,) or (n_features, n_components)
        The weight of each component (per feature if ``shared_weights=False``).

    alpha_ : ndarray of shape (n_components, n_features)
        The negative binomial ``alpha`` (``n`` in scipy) of each component and
        feature.

    b_ : ndarray of shape (n_components, n_features)
        The negative binomial ``b`` (``1 / p - 1`` in scipy).

    means_ : ndarray of shape (n_components, n_features)
        ``alpha_ * b_``. Components are ordered by ascending total mean
        (``means_.sum(axis=1)``), or per feature by ascending mean when
        ``shared_weights=False``, so a fit is deterministic.

    poisson_limit_ : ndarray of bool of shape (n_components, n_features)
        True where ``alpha_`` stopped at its cap, the Poisson limit (the
        component's counts vary no more than their mean): there ``alpha_``
        and ``b_`` are not estimates, though ``means_`` is. A
        :class:`~sknbmix.exceptions.PoissonLimitWarning` says so at fit.

    degenerate_components_ : ndarray of bool, of the shape of ``weights_``
        True for a component that is empty (weight below one sample) or
        repeats an earlier one: the data support fewer components. A
        :class:`~sknbmix.exceptions.DegenerateComponentWarning` says so at
        fit.

    converged_ : bool
        True when the best initialisation converged.

    n_iter_ : int
        Iterations used by the best initialisation.

    lower_bound_ : float
        Mean log-likelihood per sample of the training data at the fitted
        parameters (for a mixture, EM's lower bound is the log-likelihood).

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Mixture of Gaussians, for continuous data.

    Notes
    -----
    A single start often ends on a local optimum. With the default
    ``init_params="quantile"`` each initialisation therefore runs nine starts
    (an equal quantile split, and splits with a small group of 5% to 30% of
    the samples at either end) in one vectorised EM. A start leaves once it
    has converged, or once a better start of the same problem outpaces it
    (it trails by far more than it still gains, or it has come within 0.1 in
    every log coordinate of the better one); starts that EM has not finished
    in 30 iterations are finished by a saddle-free Newton method. With shared
    weights and 10 or more features, three seeded random soft splits join
    them (cell types may differ in which genes go up or down rather than in
    total count). A best fit whose component has emptied or collapsed onto
    zero is refit with that component moved, and the better fit is kept.
    With ``shared_weights=False`` every (feature, start) pair is a problem of
    its own in one stacked EM.

    EM for ``alpha`` has no closed-form M step: with ``b = mean / alpha``, the
    profile score ``sum r [digamma(x + alpha) - digamma(alpha)] + R log(alpha
    / (alpha + mean))`` is solved by a Newton step per iteration. Where a
    component's variance is not above its mean there is no finite maximum
    (the Poisson limit) and ``alpha`` stops at ``sknbmix._nbinom.ALPHA_MAX``
    (1e8). All sums run over the distinct counts of each feature, and zero
    counts cost nothing, so sparse input is never densified.

    References
    ----------
    .. [1] Varadhan R, Roland C. Simple and globally convergent methods for
       accelerating the convergence of any EM algorithm. Scand J Stat 35,
       335-353 (2008).
    .. [2] Singer ZS et al. Dynamic heterogeneity and DNA methylation in
       embryonic stem cells. Mol Cell 55, 319-331 (2014).

    Examples
    --------
    >>> from sknbmix import NegBinomMixture
    >>> from sknbmix.datasets import load_singer
    >>> X = load_singer(return_X_y=True)
    >>> rex1 = X[:, :1]
    >>> model = NegBinomMixture(n_components=2).fit(rex1)
    >>> model.weights_.round(4)
    array([0.1601, 0.8399])
    >>> model.means_.round(1)
    array([[ 14.3],
           [162. ]])
    >>> round(model.score(rex1) * len(rex1), 6)
    -1590.352138
    >>> model.predict(rex1[:5])
    array([0, 1, 1, 1, 1])
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "shared_weights": ["boolean"],
        "solver": [StrOptions({"em", "powell"})],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"quantile", "kmeans", "random"})],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=1,
        *,
        shared_weights=True,
        solver="em",
        tol=1e-9,
        max_iter=1000,
        n_init=1,
        init_params="quantile",
        random_state=None,
        warm_start=False,
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.shared_weights = shared_weights
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        # Counts are integers. The "categorical" tag is the one that makes
        # scikit-learn's estimator checks feed integer data instead of floats
        # such as 3 * uniform, which a count model must reject.
        tags.input_tags.categorical = True
        return tags

    # -- fitting ------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Estimate the mixture parameters from counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts (whole floats are accepted), one row
            per sample (cell) and one column per feature (gene).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted mixture.
        """
        self._fit(X, labels=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None):
        """Estimate the mixture parameters and predict the components of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        labels : ndarray of shape (n_samples,) or (n_samples, n_features)
            The most probable component of each sample (of each sample and
            feature when ``shared_weights=False``).
        """
        return self._fit(X)

    def _fit(self, X, extra_starts=None, labels=True):
        """Fit, with ``extra_starts`` (a Theta) added to every initialisation's
        starts; returns the labels of X if asked for (with independent
        weights they are dense, n_samples x n_features). The log-likelihood
        each start ended at is kept in ``_start_log_likelihoods`` (extra
        starts first)."""
        X = validate_counts(self, X, ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        order = features = None
        if self.shared_weights and X.shape[1] > 1:
            # Sums over samples and features round differently in another
            # order, which can tip EM towards another local maximum: the fit
            # sees features and samples in an order set by their counts alone.
            features = _canonical_feature_order(X)
            X = X[:, features]
            order = _canonical_order(X)
            X = X[order]
            if sp.issparse(X):
                # Indexing leaves each row's columns unsorted; a row sums
                # its features in column order, as a dense one does.
                X.sort_indices()
            if extra_starts is not None:
                extra_starts = _take_features(extra_starts, features)
        problem = MixtureProblem(build_count_table(X), self.shared_weights)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        # Only random starts draw (seeding a generator from the operating
        # system costs a tenth of a millisecond, a few percent of a fit).
        random_state = (
            _check_random_state(self.random_state)
            if n_init > 1 or self.init_params != "quantile"
            else None
        )
        tol = self.tol * X.shape[0]

        # All starts are made here, in order, so that random initialisations
        # do not depend on how the work is split below.
        init_starts = []
        for init in range(n_init):
            starts = (
                self._initial_starts(problem, X, init, random_state)
                if do_init
                else _take_features(self._get_theta(), features)
            )
            if extra_starts is not None:
                starts = Theta(
                    *(
                        np.concatenate([extra, new])
                        for extra, new in zip(extra_starts, starts, strict=True)
                    )
                )
            init_starts.append(starts)
        n_protected = 0 if extra_starts is None else len(extra_starts[0])
        if do_init and self._has_random_starts(problem, X):
            n_protected += _N_RANDOM_STARTS
        fits = self._fit_in_parallel(problem, init_starts, tol, n_protected)

        best = None
        for init, (theta, log_likelihood, n_iter, converged, start_ll) in enumerate(
            fits
        ):
            if self.verbose:
                print(
                    f"Initialization {init}: log-likelihood "
                    f"{log_likelihood.sum():.6f}, {n_iter} iterations, "
                    f"converged={bool(np.all(converged))}"
                )
            if best is None:
                best = (theta, log_likelihood, n_iter, converged)
                self._start_log_likelihoods = start_ll
            else:
                # Problems are independent: each keeps its best initialisation
                # (one problem with shared weights, one per feature otherwise).
                better = log_likelihood > best[1]
                best = (
                    Theta(
                        *(
                            np.where(better, new, old)
                            for new, old in zip(theta, best[0], strict=True)
                        )
                    ),
                    np.maximum(log_likelihood, best[1]),
                    n_iter if better.all() else best[2],
                    np.where(better, converged, best[3]),
                )
        theta, _, n_iter, converged = best
        if features is not None:
            theta = _take_features(theta, np.argsort(features))
        self.converged_ = bool(np.all(converged))
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"{type(self).__name__} did not converge within "
                f"max_iter={self.max_iter} iterations. Increase max_iter or "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self._set_theta(theta)
        self.n_iter_ = n_iter
        self._report_degeneracies(X.shape[0])
        # The labels come from a final E step at the fitted parameters, so
        # that fit_predict(X) is consistent with fit(X).predict(X); fit alone
        # needs the log-likelihood only.
        fitted = _take_features(self._get_theta(), features)
        if not labels:
            log_likelihood = problem.log_likelihood(fitted).sum()
            self.lower_bound_ = float(log_likelihood) / X.shape[0]
            return None
        log_prob, resp = problem.cell_log_prob(fitted)
        self.lower_bound_ = float(log_prob.mean())
        labels = resp.argmax(axis=-1)
        if order is not None:
            labels[order] = labels.copy()
        return labels

    def _has_random_starts(self, problem, X):
        """Whether the default starts include random soft splits."""
        return (
            problem.per_cell
            and X.shape[1] >= _RANDOM_MIN_FEATURES
            and self.init_params == "quantile"
            and self.n_components > 1
        )

    def _initial_starts(self, problem, X, init, random_state):
        """The starts an initialisation screens, as a batch of parameters."""
        K = self.n_components
        if K == 1:
            return initial_theta(
                problem, initial_responsibilities(problem, X, np.empty((1, 0)))
            )
        # One feature's components tend to sit side by side: layered splits
        # find them, for the cost of more starts on its small table.
        cuts = default_cuts(K, layered=not problem.per_cell)
        n_starts = len(cuts)
        if self.init_params == "quantile":
            if init > 0:
                cuts = random_cuts(n_starts, K, random_state)
            resp = initial_responsibilities(problem, X, cuts)
            if self._has_random_starts(problem, X):
                # Splits by total count find components that differ in overall
                # level; cell types that differ in which genes go up or down
                # are found from soft random responsibilities, which let EM
                # sort the samples by all genes at once (seeded, so the
                # default stays deterministic).
                # They come first and run to convergence (see _fit): they
                # start far behind and overtake late.
                seeded = (
                    np.random.RandomState(0) if init == 0 else random_state
                ).dirichlet(np.ones(K), size=(_N_RANDOM_STARTS, X.shape[0]))
                resp = np.concatenate([seeded.transpose(0, 2, 1), resp])
        elif self.init_params == "random":
            n_values = X.shape[0] if problem.per_cell else problem.table.n_entries
            resp = random_state.dirichlet(np.ones(K), size=(n_starts, n_values))
            resp = resp.transpose(0, 2, 1)
        else:
            resp = self._kmeans_responsibilities(problem, X, random_state)
        return initial_theta(problem, resp)

    def _kmeans_responsibilities(self, problem, X, random_state):
        K = self.n_components
        kmeans = KMeans(n_clusters=K, n_init=1, random_state=random_state)
        if problem.per_cell:
            log_counts = X.log1p() if hasattr(X, "log1p") else np.log1p(X)
            labels = kmeans.fit(log_counts).labels_
            return (labels == np.arange(K)[:, None])[None].astype(float)
        # One k-means per feature, on its distinct counts weighted by how
        # often they occur.
        table = problem.table
        labels = np.empty(table.n_entries, dtype=int)
        for start, stop in zip(
            table.starts, np.append(table.starts[1:], table.n_entries), strict=True
        ):
            values = np.log1p(table.values[start:stop, None])
            weights = table.multiplicity[start:stop]
            n_clusters = min(K, stop - start)
            kmeans.set_params(n_clusters=n_clusters)
            labels[start:stop] = kmeans.fit(values, sample_weight=weights).labels_
        return (labels == np.arange(K)[:, None])[None].astype(float)

    def _fit_in_parallel(self, problem, init_starts, tol, n_protected):
        """Run :meth:`_fit_one` for each initialisation, through joblib.

        With independent weights the features are also split into blocks,
        one task per block and initialisation: their problems are separate,
        and each is computed the same way in any block, so the answer does
        not depend on ``n_jobs``.
        """
        n_workers = effective_n_jobs(self.n_jobs)
        n_features = problem.table.n_features
        if self.shared_weights or n_workers == 1 or n_features == 1:
            blocks = [None]
        else:
            blocks = np.array_split(np.arange(n_features), min(n_workers, n_features))
        tasks = [(starts, block) for starts in init_starts for block in blocks]
        if len(tasks) == 1:
            return [self._fit_one(problem, init_starts[0], tol, n_protected)]

        def task(starts, block):
            if block is None:
                return delayed(self._fit_one)(problem, starts, tol, n_protected)
            return delayed(self._fit_one)(
                problem.select(block),
                problem.take(starts, block),
                tol,
                n_protected,
            )

        results = Parallel(n_jobs=self.n_jobs)(task(*t) for t in tasks)
        # Put the blocks of each initialisation back together, on the
        # feature axis (axis 2 of every array; n_iter is a maximum).
        fits = []
        for i in range(len(init_starts)):
            parts = results[i * len(blocks) : (i + 1) * len(blocks)]
            theta, log_likelihood, n_iter, converged, start_ll = zip(
                *parts, strict=True
            )
            fits.append(
                (
                    Theta(
                        *(np.concatenate(x, axis=2) for x in zip(*theta, strict=True))
                    ),
                    np.concatenate(log_likelihood, axis=2),
                    max(n_iter),
                    np.concatenate(converged, axis=2),
                    np.concatenate(start_ll, axis=2),
                )
            )
        return fits

    def _fit_one(self, problem, starts, tol, n_protected=0, reseed=True):
        """Fit from a batch of starts and keep the best of each problem.

        The first ``n_protected`` starts run to convergence even when
        outpaced. Returns the parameters, their log-likelihood per problem (a
        lower bound, within ``tol``), the iterations used, whether each
        problem converged, and the log-likelihood each start ended at, shaped
        (n_starts, 1, n_problems).
        """
        if self.solver == "powell":
            theta = _take_start(
                starts, _best_start(problem, problem.log_likelihood(starts))
            )
            if self.shared_weights or problem.table.n_features == 1:
                theta, log_likelihood, n_iter, converged = powell_maximise(
                    problem, theta, max_iter=self.max_iter, tol=tol
                )
                log_likelihood = np.full((1, 1, 1), log_likelihood)
                return theta, log_likelihood, n_iter, converged, log_likelihood
            theta, n_iter, converged = _powell_per_feature(
                problem, theta, self.max_iter, tol
            )
            log_likelihood = problem.log_likelihood(theta)
            return theta, log_likelihood, n_iter, converged, log_likelihood
        # Every start runs to convergence: on genes like Rest or Prdm14 of
        # the built-in data, the start that leads after a dozen iterations
        # ends on a worse optimum in one data set in thirty.
        problem, theta = problem.stack_starts(starts)
        theta, reached, n_iter, converged = run_em(
            problem,
            theta,
            max_iter=min(self.max_iter, _EM_ITER_BEFORE_NEWTON),
            tol=tol,
            n_protected=n_protected,
        )

        def continue_from(index, maximise):
            if not index.size:
                return
            budget = self.max_iter - n_iter[index].max()
            if budget <= 0:
                return
            new_theta, new_reached, new_iter, new_converged = maximise(
                problem.select(index),
                problem.take(theta, index),
                max_iter=budget,
                tol=tol,
            )
            problem.put(theta, index, new_theta)
            problem.put(reached, index, new_reached)
            problem.put(converged, index, new_converged)
            n_iter[index] += new_iter

        def continue_unfinished(maximise):
            continue_from(np.flatnonzero(~problem.per_batch(converged)), maximise)

        # Problems that EM has not finished by then crawl (heavy overlap, or a
        # component nearing the Poisson limit): Newton's method finishes them
        # where its Hessian is affordable, EM the rest (and whatever Newton
        # leaves, e.g. at degenerate optima with emptying components).
        use_newton = _n_params_per_problem(problem, theta) <= _NEWTON_MAX_PARAMS
        if use_newton:
            continue_unfinished(newton_maximise)
        continue_unfinished(run_em)
        # The best start of each group: the fit with shared weights, each
        # feature otherwise. Starts are unique within a group and groups come
        # in order.
        group, start = problem.batch_groups(n_iter.size)
        by_start = np.full((start.max() + 1, group.max() + 1), -np.inf)
        by_start[start, group] = problem.per_batch(reached)
        best = np.flatnonzero(start == by_start.argmax(axis=0)[group])
        if use_newton:
            # EM's stopping rule cannot tell a maximum from a saddle point
            # where EM stalls, which happens where a component is at or on
            # its way to the Poisson limit: there a Newton step certifies the
            # best start of each group, and goes on where it is not at a
            # maximum.
            log_alpha = np.moveaxis(theta.log_alpha, problem.batch_axis, 0)[best]
            near_poisson = (log_alpha > _LOG_ALPHA_CERTIFY).any(axis=(1, 2))
            continue_from(best[near_poisson], newton_maximise)
            by_start[start[best], group[best]] = problem.per_batch(reached)[best]
        result = [
            problem.take(theta, best),
            problem.take(reached, best),
            int(n_iter[best].max()),
            problem.take(converged, best),
            by_start[:, None, :],
        ]
        if reseed and not problem.per_cell and self.n_components > 1:
            self._reseed_emptied(problem, best, result, tol)
        return tuple(result)

    def _reseed_emptied(self, problem, best, result, tol):
        """Refit the groups whose best start has a degenerate component, from
        two starts with that component moved, and keep what is better.

        A component is degenerate when it has emptied (less than one
        sample's weight, or less than one count in all), collapsed onto zero
        (a mean below 1e-4, a point mass) or coincides with another (the
        stationary point of a smaller mixture, where EM from random
        responsibilities can stop). The likelihood is then flat in its own
        parameters, so no optimiser moves it, yet the optimum may have a
        small component of a few outlying cells, a low but non-zero one, or
        a second group. The two starts move it, with 1% of the weight, to the
        mean of the top 1% of the counts (as k-means relocates an empty
        cluster to the farthest points), or, keeping its weight, to a tenth
        of the feature's mean.
        """
        theta, reached = result[0], result[1]
        # One column per group, in the table form of independent features.
        if problem.shared_weights:
            columns = MixtureProblem(problem.table, shared_weights=False)
        else:
            columns = problem.select(best)
        table = columns.table
        mass = np.exp(theta.log_weights) * table.n_samples
        log_mean = theta.log_alpha + theta.log_b
        degenerate = (
            (mass < 1.0) | (mass * np.exp(log_mean) < 1.0) | (log_mean < _LOG_COLLAPSED)
        )
        # The second of two coinciding components is spare as well.
        degenerate |= _repeats_earlier(theta.log_alpha, theta.log_b, axis=-1)
        groups = np.flatnonzero(degenerate.any(axis=1)[0])
        if not groups.size:
            return
        sub = MixtureProblem(table.take_features(groups), shared_weights=False)
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
            np.log(_top_mean(sub.table, _RESEED_SHARE)),
            np.log(0.1 * _top_mean(sub.table, 1.0)),
        ]
        starts = Theta(
            np.concatenate([top, low]),
            np.concatenate([log_alpha, log_alpha]),
            np.concatenate(
                [
                    np.where(degenerate, m, log_mean[..., groups]) - log_alpha
                    for m in moved_mean
                ]
            ),
        )
        new = self._fit_one(sub, starts, tol, reseed=False)
        better = new[1][0, 0] > reached[0, 0, groups]
        if not better.any():
            return
        chosen = groups[better]
        for whole, part in zip(theta, new[0], strict=True):
            whole[..., chosen] = part[..., better]
        reached[..., chosen] = new[1][..., better]
        result[3][..., chosen] = new[3][..., better]
        result[2] = max(result[2], new[2])

    def _report_degeneracies(self, n_samples):
        """Set ``poisson_limit_`` and ``degenerate_components_``, and warn
        about them: the fit is a maximum, but some of its parameters are not
        estimates."""
        self.poisson_limit_ = at_poisson_limit(self.alpha_)
        if self.poisson_limit_.any():
            warnings.warn(
                f"alpha reached its cap {ALPHA_MAX:g} (the Poisson limit) in "
                f"{np.count_nonzero(self.poisson_limit_)} of "
                f"{self.poisson_limit_.size} components x features: their "
                "variance is not above their mean, so alpha and b are not "
                "estimates there (see poisson_limit_).",
                PoissonLimitWarning,
                stacklevel=5,
            )
        empty = self.weights_ * n_samples < 1.0
        self.degenerate_components_ = empty | self._repeated_components()
        if self.degenerate_components_.any():
            of = "components" if self.shared_weights else "features x components"
            warnings.warn(
                f"{np.count_nonzero(self.degenerate_components_)} of "
                f"{self.degenerate_components_.size} {of} are empty (weight "
                "below one sample) or repeat another component: the data "
                f"support fewer than n_components={self.n_components} (see "
                "degenerate_components_).",
                DegenerateComponentWarning,
                stacklevel=5,
            )

    def _repeated_components(self):
        """Which fitted components repeat an earlier one, in the shape of
        ``weights_``."""
        log_alpha, log_b = np.log(self.alpha_), np.log(self.b_)
        if self.shared_weights:
            # A repeat must coincide with one component in every feature.
            return _repeats_earlier(log_alpha, log_b, axis=None)
        return _repeats_earlier(log_alpha, log_b, axis=-1).T

    # -- parameters -----------------------------------------------------------

    def _get_theta(self):
        """The fitted parameters as a one-start :class:`Theta`."""
        weights = self.weights_ if self.shared_weights else self.weights_.T
        log_weights = np.log(weights).reshape(1, self.n_components, -1)
        return Theta(log_weights, np.log(self.alpha_)[None], np.log(self.b_)[None])

    def _set_theta(self, theta):
        """Store one start of ``theta`` in canonical component order."""
        weights = np.exp(theta.log_weights[0])
        alpha = np.exp(theta.log_alpha[0])
        b = np.exp(theta.log_b[0])
        means = alpha * b
        if self.shared_weights:
            order = np.argsort(means.sum(axis=1), kind="stable")
            self.weights_ = weights[order, 0]
            self.alpha_, self.b_ = alpha[order], b[order]
        else:
            order = np.argsort(means, axis=0, kind="stable")
            self.weights_ = np.take_along_axis(weights, order, axis=0).T
            self.alpha_ = np.take_along_axis(alpha, order, axis=0)
            self.b_ = np.take_along_axis(b, order, axis=0)
        self.means_ = self.alpha_ * self.b_

    def _n_parameters(self):
        """Number of free parameters of the model."""
        K, n_features = self.alpha_.shape
        n_weight_groups = 1 if self.shared_weights else n_features
        return n_weight_groups * (K - 1) + 2 * K * n_features

    # -- prediction -------------------------------------------------------------

    def _cell_log_prob(self, X, responsibilities):
        """Validate X and compute its per-sample log-likelihood (and
        responsibilities) under the fitted parameters."""
        check_is_fitted(self)
        X = validate_counts(self, X, reset=False)
        problem = MixtureProblem(build_count_table(X), self.shared_weights)
        return problem.cell_log_prob(
            self._get_theta(), responsibilities=responsibilities
        )

    def score_samples(self, X):
        """Log-likelihood of each sample under the fitted mixture.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            Log-probability of each sample's counts (summed over features
            when ``shared_weights=False``).
        """
        return self._cell_log_prob(X, responsibilities=False)[0]

    def score(self, X, y=None):
        """Mean log-likelihood per sample of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples`; higher is better, so
            :class:`~sklearn.model_selection.GridSearchCV` can select
            ``n_components``.
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Posterior probability of each component given the counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            With ``shared_weights=False``, of shape (n_samples, n_features,
            n_components): each feature has a mixture of its own.
        """
        return self._cell_log_prob(X, responsibilities=True)[1]

    def predict(self, X):
        """Most probable component of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            With ``shared_weights=False``, of shape (n_samples, n_features).
        """
        return self.predict_proba(X).argmax(axis=-1)

    def sample(self, n_samples=1):
        """Draw counts from the fitted mixture.

        The draws come from ``random_state``, re-seeded on every call (as in
        scikit-learn's mixtures): with a fixed ``random_state``, repeated calls
        return the same sample.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Integer counts.

        y : ndarray of shape (n_samples,) or (n_samples, n_features)
            The component each sample (each count, with
            ``shared_weights=False``) was drawn from.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                "requires at least one sample."
            )
        return self._draw(_check_random_state(self.random_state), n_samples)

    def _draw(self, rng, n_samples):
        """Draw ``(X, y)`` with ``rng``, a RandomState or a Generator."""
        K, n_features = self.alpha_.shape
        if self.shared_weights:
            # Inverse-CDF draws of the components work alike for both kinds
            # of random source (their ``choice`` methods differ).
            cumulative = np.cumsum(self.weights_)
            uniform = rng.uniform(size=(n_samples, 1))
            y = np.minimum((uniform * cumulative[-1] > cumulative).sum(-1), K - 1)
            alpha, b = self.alpha_[y], self.b_[y]
        else:
            cumulative = np.cumsum(self.weights_, axis=1)
            uniform = rng.uniform(size=(n_samples, n_features, 1))
            y = np.minimum((uniform * cumulative[:, -1:] > cumulative).sum(-1), K - 1)
            columns = np.arange(n_features)
            alpha, b = self.alpha_[y, columns], self.b_[y, columns]
        X = rng.negative_binomial(alpha, 1.0 / (1.0 + b))
        return X, y

    def bootstrap(self, X, **kwargs):
        """Bootstrap confidence intervals for the fitted parameters.

        A shortcut for :func:`sknbmix.bootstrap` ``(self, X, **kwargs)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The counts the mixture was fitted on.
        **kwargs
            ``n_resamples``, ``method``, ``confidence_level``, ``ci_method``,
            ``n_jobs``, ``random_state``, ``verbose``: see
            :func:`sknbmix.bootstrap`.

        Returns
        -------
        result : BootstrapResult
        """
        from sknbmix._bootstrap import bootstrap

        return bootstrap(self, X, **kwargs)

    def _feature_log_likelihood(self, X):
        """Total log-likelihood of each feature's own mixture on X."""
        if self.shared_weights:
            raise ValueError(
                "per_feature=True needs shared_weights=False: with shared "
                "weights the features share one mixture and one likelihood."
            )
        check_is_fitted(self)
        X = validate_counts(self, X, reset=False)
        problem = MixtureProblem(build_count_table(X), shared_weights=False)
        return problem.log_likelihood(self._get_theta())[0, 0]

    def _information_criterion(self, X, per_feature, penalty_per_parameter):
        if per_feature:
            log_likelihood = self._feature_log_likelihood(X)
            n_parameters = 3 * self.n_components - 1
        else:
            log_likelihood = self.score(X) * X.shape[0]
            n_parameters = self._n_parameters()
        return -2 * log_likelihood + penalty_per_parameter * n_parameters

    def aic(self, X, per_feature=False):
        """Akaike information criterion of the model on X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        per_feature : bool, default=False
            With ``shared_weights=False``, return one value per feature: the
            criterion of that feature's own mixture (a bimodality screen
            compares these between numbers of components).

        Returns
        -------
        aic : float or ndarray of shape (n_features,)
            ``-2 * log-likelihood + 2 * n_parameters``; lower is better.
        """
        return self._information_criterion(X, per_feature, 2.0)

    def bic(self, X, per_feature=False):
        """Bayesian information criterion of the model on X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        per_feature : bool, default=False
            With ``shared_weights=False``, return one value per feature: the
            criterion of that feature's own mixture.

        Returns
        -------
        bic : float or ndarray of shape (n_features,)
            ``-2 * log-likelihood + n_parameters * log(n_samples)``; lower is
            better.

        Examples
        --------
        A per-gene bimodality screen: which genes does a second component
        explain better than one?

        >>> from sknbmix import NegBinomMixture
        >>> from sknbmix.datasets import load_singer
        >>> X = load_singer().data
        >>> one = NegBinomMixture(1, shared_weights=False).fit(X)
        >>> two = NegBinomMixture(2, shared_weights=False).fit(X)
        >>> (one.bic(X, per_feature=True) - two.bic(X, per_feature=True)).round(1)
        array([ 79.8,  -6.3,   8.1, -14.1])
        """
        return self._information_criterion(X, per_feature, np.log(X.shape[0]))


def _top_mean(table, share):
    """Mean count of each feature's top ``share`` of the samples."""
    n_samples = table.n_samples
    cumulative = np.cumsum(table.multiplicity)
    before = (cumulative - table.multiplicity)[table.starts]
    # Samples with a count above each entry's, within its feature.
    above = n_samples - (cumulative - before[table.feature])
    taken = np.clip(share * n_samples - above, 0.0, table.multiplicity)
    total = table.feature_sum(taken * table.values)
    return np.maximum(total / table.feature_sum(taken), MEAN_MIN)


def _best_start(problem, log_likelihood):
    """Index of the best start of each problem, shaped to pick along axis 0."""
    if problem.shared_weights:
        return np.full((1, 1, 1), np.argmax(log_likelihood[:, 0, 0]))
    # Independent features: the best start of each feature.
    return np.argmax(log_likelihood, axis=0)[None]


def _n_params_per_problem(problem, theta):
    """Free parameters of one problem: a start, or a start and feature."""
    n_components, n_features = theta.log_alpha.shape[1:]
    if not problem.shared_weights:
        n_features = 1
    return n_components - 1 + 2 * n_components * n_features


def _take_start(arrays, best):
    """Pick one start (per problem) from a Theta or a problem-shaped array."""
    if isinstance(arrays, Theta):
        return Theta(*(np.take_along_axis(x, best, axis=0) for x in arrays))
    return np.take_along_axis(arrays, best, axis=0)


def _powell_per_feature(problem, theta, max_iter, tol):
    """Powell on each feature's own mixture (their likelihoods are separate)."""
    n_iter, converged = 0, []
    parts = [np.array(x) for x in theta]
    for feature in range(problem.table.n_features):
        sub_problem = problem.feature_problem(feature)
        sub_theta = Theta(*(x[..., feature : feature + 1] for x in parts))
        sub_theta, _, sub_iter, sub_converged = powell_maximise(
            sub_problem, sub_theta, max_iter=max_iter, tol=tol
        )
        for whole, part in zip(parts, sub_theta, strict=True):
            whole[..., feature : feature + 1] = part
        n_iter = max(n_iter, sub_iter)
        converged.append(sub_converged)
    return Theta(*parts), n_iter, np.array(converged)[None, None, :]


def _repeats_earlier(log_alpha, log_b, axis):
    """Whether each component repeats an earlier one: its log alpha and
    log b within ``_COINCIDE`` of that component's.

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


def _canonical_order(X):
    """An order of the rows of X that depends on their contents alone.

    Rows go by their sum, then by a fixed random weighting of their counts,
    on which two different rows tie only by chance (equal rows may go in any
    order: they sum alike). The weights go by column, so the columns must be
    in an order of their own contents first (:func:`_canonical_feature_order`).
    """
    weights = np.random.default_rng(_ORDER_SEED).uniform(1.0, 2.0, X.shape[1])
    total = np.asarray(X.sum(axis=1), dtype=float).ravel()
    weighted = np.asarray(X @ weights, dtype=float).ravel()
    return np.lexsort((weighted, total))


def _canonical_feature_order(X):
    """An order of the columns of X that depends on their counts alone, in
    any order of the rows: by their sums of x, x**2 and x**3 (exact in any
    order for integers below 2**53, and nearly so above)."""
    # Validated counts are float64 already: no copy of the data for this.
    X = X.astype(np.float64, copy=False)
    power = X.power if sp.issparse(X) else X.__pow__
    sums = [np.asarray(power(k).sum(axis=0)).ravel() for k in (3, 2, 1)]
    return np.lexsort(sums)


def _take_features(theta, features):
    """``theta`` with its features in the order ``features`` (None: as is)."""
    if features is None:
        return theta
    return theta._replace(
        log_alpha=theta.log_alpha[..., features], log_b=theta.log_b[..., features]
    )


def _check_random_state(seed):
    """:func:`sklearn.utils.check_random_state`, except that None gives a
    generator of its own, seeded from the operating system: a fit never
    draws from, or moves, numpy's global random state."""
    if seed is None:
        return np.random.RandomState(np.random.MT19937(np.random.SeedSequence()))
    return check_random_state(seed)
