"""Mixture of negative binomial distributions, as a scikit-learn estimator."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sknbmix._data import (
    check_size_factors,
    is_dask_array,
    resolve_size_factors,
    validate_counts,
)
from sknbmix._fit import (
    FitSettings,
    degenerate_components,
    fit,
    parameters_to_theta,
)
from sknbmix._likelihood import MixtureLikelihood, sample_mixture
from sknbmix._nbinom import ALPHA_MAX, at_poisson_limit
from sknbmix.exceptions import DegenerateComponentWarning, PoissonLimitWarning


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
        in unconstrained coordinates, finishing every start after EM's
        screen of it (see Notes) and keeping the best; seconds where EM takes
        milliseconds, a reference and a fallback.

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

    size_factors : {None, "total"}, default=None
        The size factor of each sample when none is passed to a method (an
        array passed as ``size_factors=`` to :meth:`fit`, :meth:`predict`,
        :meth:`score` and the others wins). None: every sample has size
        factor 1. ``"total"``: each sample's total count over the mean total
        of the samples of the ``X`` passed to the method, so that pipelines
        and cross-validation need not route anything; a sample without
        counts gets 0 and carries no information (its counts have
        probability 1 under every component, its responsibilities are the
        weights). With size factors ``s`` the counts of sample ``i`` in
        component ``k`` are ``NB(alpha[k, g], s[i] * b[k, g])``, with mean
        ``s[i] * means_[k, g]``: sequencing depth or capture efficiency
        scales the counts of a cell without changing its type. ``b_`` and
        ``means_`` are then per unit of size factor: scaling every size
        factor by ``c`` divides them by ``c`` and leaves the likelihood
        unchanged. Size factors cost time: with shared weights an EM
        iteration takes about five times as long (every non-zero count has
        a term of its own per component); with ``shared_weights=False``
        each feature's counts compress to distinct (count, size factor)
        pairs instead of distinct counts, about one per non-zero count, so a
        screen of many genes takes some thirty times as long (see the
        method page).

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
        True for a component that is empty (weight below one sample),
        collapsed onto zero (a mean below 1e-4 in every feature: a point mass
        at zero, where ``alpha_`` and ``b_`` mean nothing) or repeats an
        earlier one: the data support fewer negative binomials. A
        :class:`~sknbmix.exceptions.DegenerateComponentWarning` says so at
        fit.

    converged_ : bool
        True when the best initialisation converged.

    n_iter_ : int
        Iterations (EM and Newton steps) used by the kept initialisation,
        including the refit of a degenerate component. With
        ``shared_weights=False`` each feature keeps its own best
        initialisation, and ``n_iter_`` is the largest over the features of
        the iterations of each feature's kept initialisation.

    lower_bound_ : float
        Mean log-likelihood per sample of the training data at the fitted
        parameters (for a mixture, EM's lower bound is the log-likelihood).

    size_factors_used_ : {"none", "total", "given"}
        How the fit got its size factors: none (all 1), from the total
        counts (``size_factors="total"``), or as an array given to
        :meth:`fit`.

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

    ``fit``, ``fit_predict``, ``predict``, ``predict_proba``,
    ``score_samples``, ``score``, ``aic`` and ``bic`` also take a
    :class:`dask.array.Array` chunked along the samples (all features in one
    chunk), and run as map-reduce on dask's active scheduler: each block of
    samples stays where it is, and only sums over its samples travel. The
    fit equals the in-memory fit of the same data up to rounding (size
    factors and ``init_params="kmeans"`` need the data in memory); the
    predictions are dask arrays. See :doc:`/scaling`.

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
    >>> X = load_singer().data
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
        "size_factors": [None, StrOptions({"total"})],
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
        size_factors=None,
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
        self.size_factors = size_factors

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
    def fit(self, X, y=None, *, size_factors=None):
        """Estimate the mixture parameters from counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts (whole floats are accepted), one row
            per sample (cell) and one column per feature (gene); or a dask
            array of them chunked along the samples (see Notes).

        y : Ignored
            Not used, present for API consistency by convention.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        self : object
            The fitted mixture.
        """
        self._fit(X, size_factors, labels=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None, *, size_factors=None):
        """Estimate the mixture parameters and predict the components of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        y : Ignored
            Not used, present for API consistency by convention.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        labels : ndarray of shape (n_samples,) or (n_samples, n_features)
            The most probable component of each sample (of each sample and
            feature when ``shared_weights=False``).
        """
        return self._fit(X, size_factors)

    def _fit(self, X, size_factors, labels=True):
        """Validate X, run the engine, set the fitted attributes and warn;
        returns the labels of X if asked for (with independent weights they
        are dense, n_samples x n_features)."""
        distributed = is_dask_array(X)
        if distributed:
            self._check_dask(X, size_factors, reset=True)
            if X.shape[0] < 2:
                raise ValueError(
                    f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) "
                    f"while a minimum of 2 is required by {type(self).__name__}."
                )
        else:
            X = validate_counts(self, X, ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        if distributed:
            size_factors, self.size_factors_used_ = None, "none"
        else:
            size_factors, self.size_factors_used_ = self._size_factors(X, size_factors)
        settings = FitSettings.from_params(self.get_params())
        warm = self.warm_start and hasattr(self, "converged_")
        n_init = 1 if warm else self.n_init
        # Only random starts draw (seeding a generator from the operating
        # system costs a tenth of a millisecond, a few percent of a fit).
        random_state = (
            _check_random_state(self.random_state)
            if n_init > 1 or self.init_params != "quantile"
            else None
        )
        warm_start = self._theta() if warm else None
        if distributed:
            from sknbmix._distributed import fit_dask

            result = fit_dask(
                X, settings, random_state, warm_start=warm_start, labels=labels
            )
        else:
            result = fit(
                X,
                settings,
                random_state,
                size_factors=size_factors,
                warm_start=warm_start,
                labels=labels,
            )
        self.converged_ = result.converged
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"{type(self).__name__} did not converge within "
                f"max_iter={self.max_iter} iterations. Increase max_iter or "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        parameters = result.parameters
        self.weights_ = parameters["weights"]
        self.alpha_, self.b_ = parameters["alpha"], parameters["b"]
        self.means_ = parameters["means"]
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self._report_degeneracies(X.shape[0])
        return result.labels

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
        self.degenerate_components_ = degenerate_components(
            self.weights_, self.alpha_, self.b_, n_samples
        )
        if self.degenerate_components_.any():
            of = (
                "components"
                if self._fitted_shared_weights()
                else "features x components"
            )
            warnings.warn(
                f"{np.count_nonzero(self.degenerate_components_)} of "
                f"{self.degenerate_components_.size} {of} are empty (weight "
                "below one sample), collapsed onto zero (a mean below 1e-4: a "
                "point mass) or repeat another component: the data "
                f"support fewer than n_components={self.alpha_.shape[0]} (see "
                "degenerate_components_).",
                DegenerateComponentWarning,
                stacklevel=5,
            )

    def _size_factors(self, X, size_factors):
        """The size factors of validated X (an array given to a method wins
        over the ``size_factors`` hyperparameter), or None, and where they
        came from."""
        return resolve_size_factors(X, size_factors, self.size_factors)

    def _check_dask(self, X, size_factors, *, reset):
        """The checks of a dask array X that need none of its values (its
        blocks are checked as the workers read them), and of its number of
        features against the fit's (``reset=False``) or as the fit's."""
        from sknbmix._distributed import check_dask_counts

        name = type(self).__name__
        check_dask_counts(X, name)
        if size_factors is not None or self.size_factors is not None:
            raise ValueError(
                f"{name} does not take size factors with a dask array yet: "
                "fit in memory, or without size factors."
            )
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )

    # -- parameters -----------------------------------------------------------

    def _fitted_shared_weights(self):
        """Whether the fit shares its weights among the features: read off the
        fitted weights, not the hyperparameter, which may have changed."""
        return self.weights_.ndim == 1

    def _theta(self):
        """The fitted parameters as a one-start Theta (the fitted attributes
        say how many components there are, not ``n_components``)."""
        return parameters_to_theta(
            self.weights_, self.alpha_, self.b_, self._fitted_shared_weights()
        )

    def _n_parameters(self):
        """Number of free parameters of the model."""
        K, n_features = self.alpha_.shape
        n_weight_groups = 1 if self._fitted_shared_weights() else n_features
        return n_weight_groups * (K - 1) + 2 * K * n_features

    def _likelihood(self, X, size_factors):
        """Validate X (and its size factors) against the fit and return its
        likelihood."""
        check_is_fitted(self)
        X = validate_counts(self, X, reset=False)
        return MixtureLikelihood.of_counts(
            X, self._fitted_shared_weights(), self._size_factors(X, size_factors)[0]
        )

    # -- prediction -------------------------------------------------------------

    def _cell_log_prob(self, X, size_factors, responsibilities):
        """Per-sample log-likelihood (and responsibilities) of X under the
        fitted parameters (dask arrays for a dask array X)."""
        if is_dask_array(X):
            from sknbmix._distributed import predict

            check_is_fitted(self)
            self._check_dask(X, size_factors, reset=False)
            return predict(
                X, self._theta(), self._fitted_shared_weights(), responsibilities
            )
        return self._likelihood(X, size_factors).cell_log_prob(
            self._theta(), responsibilities=responsibilities
        )

    def score_samples(self, X, *, size_factors=None):
        """Log-likelihood of each sample under the fitted mixture.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            Log-probability of each sample's counts (summed over features
            when ``shared_weights=False``).
        """
        return self._cell_log_prob(X, size_factors, responsibilities=False)[0]

    def score(self, X, y=None, *, size_factors=None):
        """Mean log-likelihood per sample of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        y : Ignored
            Not used, present for API consistency by convention.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples`; higher is better, so
            :class:`~sklearn.model_selection.GridSearchCV` can select
            ``n_components``.
        """
        return float(self.score_samples(X, size_factors=size_factors).mean())

    def predict_proba(self, X, *, size_factors=None):
        """Posterior probability of each component given the counts.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            With ``shared_weights=False``, of shape (n_samples, n_features,
            n_components): each feature has a mixture of its own.
        """
        return self._cell_log_prob(X, size_factors, responsibilities=True)[1]

    def predict(self, X, *, size_factors=None):
        """Most probable component of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            With ``shared_weights=False``, of shape (n_samples, n_features).
        """
        return self.predict_proba(X, size_factors=size_factors).argmax(axis=-1)

    def sample(self, n_samples=1, *, size_factors=None):
        """Draw counts from the fitted mixture.

        The draws come from ``random_state``, re-seeded on every call (as in
        scikit-learn's mixtures): with a fixed ``random_state``, repeated calls
        return the same sample.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each drawn sample (default 1): its counts
            are drawn with ``b_`` scaled by it.

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
        if size_factors is not None:
            size_factors = check_size_factors(size_factors, n_samples)
        return sample_mixture(
            _check_random_state(self.random_state),
            n_samples,
            self.weights_,
            self.alpha_,
            self.b_,
            size_factors,
        )

    def bootstrap(self, X, **kwargs):
        """Bootstrap confidence intervals for the fitted parameters.

        A shortcut for :func:`sknbmix.bootstrap` ``(self, X, **kwargs)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The counts the mixture was fitted on.
        **kwargs
            ``n_resamples``, ``method``, ``confidence_level``, ``ci_method``,
            ``size_factors``, ``n_jobs``, ``random_state``, ``verbose``: see
            :func:`sknbmix.bootstrap`.

        Returns
        -------
        result : BootstrapResult
        """
        # The bootstrap builds on this module: imported when asked for.
        from sknbmix import bootstrap

        return bootstrap(self, X, **kwargs)

    def _feature_log_likelihood(self, X, size_factors):
        """Total log-likelihood of each feature's own mixture on X."""
        check_is_fitted(self)
        if self._fitted_shared_weights():
            raise ValueError(
                "per_feature=True needs shared_weights=False: with shared "
                "weights the features share one mixture and one likelihood."
            )
        if is_dask_array(X):
            from sknbmix._distributed import feature_log_likelihood

            self._check_dask(X, size_factors, reset=False)
            return feature_log_likelihood(X, self._theta())
        return self._likelihood(X, size_factors).log_likelihood(self._theta())[0, 0]

    def _information_criterion(
        self, X, per_feature, penalty_per_parameter, size_factors
    ):
        if per_feature:
            log_likelihood = self._feature_log_likelihood(X, size_factors)
            n_parameters = 3 * self.alpha_.shape[0] - 1
        else:
            log_likelihood = self.score(X, size_factors=size_factors) * X.shape[0]
            n_parameters = self._n_parameters()
        return -2 * log_likelihood + penalty_per_parameter * n_parameters

    def aic(self, X, per_feature=False, *, size_factors=None):
        """Akaike information criterion of the model on X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        per_feature : bool, default=False
            With ``shared_weights=False``, return one value per feature: the
            criterion of that feature's own mixture (a bimodality screen
            compares these between numbers of components).

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

        Returns
        -------
        aic : float or ndarray of shape (n_features,)
            ``-2 * log-likelihood + 2 * n_parameters``; lower is better.
        """
        return self._information_criterion(X, per_feature, 2.0, size_factors)

    def bic(self, X, per_feature=False, *, size_factors=None):
        """Bayesian information criterion of the model on X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        per_feature : bool, default=False
            With ``shared_weights=False``, return one value per feature: the
            criterion of that feature's own mixture.

        size_factors : array-like of shape (n_samples,), default=None
            The size factor of each sample (see the class's ``size_factors``;
            an array given here wins over it).

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
        return self._information_criterion(
            X, per_feature, np.log(X.shape[0]), size_factors
        )


def _check_random_state(seed):
    """:func:`sklearn.utils.check_random_state`, except that None gives a
    generator of its own, seeded from the operating system: a fit never
    draws from, or moves, numpy's global random state."""
    if seed is None:
        return np.random.RandomState(np.random.MT19937(np.random.SeedSequence()))
    return check_random_state(seed)
