"""How many components: the parametric bootstrap likelihood-ratio test of
K0 against K0 + 1 components, for one mixture or for every feature of a
screen, shaped after :func:`scipy.stats.monte_carlo_test`."""

# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import clone
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from sknbmix._bootstrap import check_resampling, fitted_to, replicate_seed, seed_root
from sknbmix._data import build_count_table
from sknbmix._fit import FitSettings, fit, parameters_to_theta, window_mean
from sknbmix._likelihood import MixtureLikelihood, Theta, sample_mixture
from sknbmix._mixture import NegBinomMixture

# A component of the null fit is split in two for a start of the larger
# model: its weight halved, its mean moved by this factor up and down.
_SPLIT = 2.0
# The larger model is also started from the null fit with a component added,
# with this alpha and the share and mean count of the samples of a window of
# quantiles of their counts: ten windows of 5% across the range, and the top
# 3% and 1%. Fits of two components to Rex1-like data drawn from one, and of
# three to data drawn from two, reach optima with a small component of a few
# samples or a narrow one in between, which neither the splits nor the
# default starts lead to.
_INSERTION_WINDOWS = tuple((q / 10, q / 10 + 0.05) for q in range(10)) + (
    (0.97, 1.0),
    (0.99, 1.0),
)
_INSERTION_ALPHA = 50.0
# With these starts, the equal split and the two with a 5% group at either
# end (see sknbmix._fit.default_cuts) reach the optima that all of the
# default starts reach.
_N_QUANTILE_STARTS = 3
# Replicates computed per round of the sequential test (per worker): the
# first round's, doubled each round up to the last. The test stops where it
# would one replicate at a time, so rounds change the work, not the result:
# small first rounds stop the clearly null tests of a screen early, large
# later ones spread the fixed cost of a round (dispatch, the stacked fits'
# bookkeeping, waiting for the slower worker) over many replicates.
_FIRST_ROUND = 32
_LAST_ROUND = 256
# A worker draws at most this many counts at once (128 MB): a screen's
# features are fit in chunks below it.
_DRAW_BUDGET = 2**24


@dataclass
class LRTResult:
    """Result of :func:`lrt_n_components`.

    Attributes
    ----------
    statistic : float or ndarray of shape (n_features,)
        Twice the gain in log-likelihood from K0 to K0 + 1 components (one
        per feature with ``shared_weights=False``).
    pvalue : float or ndarray of shape (n_features,)
        The Monte Carlo p-value: ``(1 + g) / (1 + n)`` with ``g`` of the
        ``n`` null statistics at or above the observed one; for a test
        stopped early, after its ``max_exceedances``-th exceedance at
        resample ``n``, ``max_exceedances / n`` (Besag and Clifford, 1991).
    null_distribution : ndarray, or list of ndarray
        The null statistics drawn (per feature with ``shared_weights=False``:
        each feature's own, as many as it used).
    n_resamples_used : int or ndarray of shape (n_features,)
    null_model, alternative_model : NegBinomMixture
        The fits with K0 and K0 + 1 components to the data.
    """

    statistic: object
    pvalue: object
    null_distribution: object
    n_resamples_used: object
    null_model: NegBinomMixture
    alternative_model: NegBinomMixture


def lrt_n_components(
    estimator,
    X,
    *,
    n_resamples=999,
    max_exceedances=10,
    size_factors=None,
    n_jobs=None,
    random_state=None,
    verbose=0,
):
    """Test K0 against K0 + 1 components by the parametric bootstrap of the
    likelihood-ratio statistic.

    The statistic ``T = 2 (log L(K0 + 1) - log L(K0))`` has no chi-square
    limit here (under the null the larger model sits on the boundary of its
    parameter space, where a parameter is not identified), so its null
    distribution is simulated (McLachlan, 1987): data sets are drawn from
    the fitted K0 model, both models are fitted to each, and ``T`` is
    compared with their statistics. The fits of K0 + 1 components of every
    data set, observed or drawn, start from the default starts, from each
    component of the K0 fit split in two, and (with one feature per test)
    from the K0 fit with a component added on each of twelve windows of the
    samples ordered by count, so that they reach their best optimum (a null
    fit stuck short would make the null statistics too small and the test
    anti-conservative); they never end below the K0 fit.

    Resampling stops for a test once ``max_exceedances`` null statistics
    have reached the observed one (Besag and Clifford, 1991): most features
    of a screen are clearly unimodal and are settled in a few dozen
    resamples, while the p-value of a feature that is not still goes down
    to ``1 / (1 + n_resamples)``. The p-value stays valid (exact) for either
    way of stopping.

    Parameters
    ----------
    estimator : NegBinomMixture
        The null model: its number of components is K0 (its fitted number,
        if it is fitted to ``X``; else it is fitted). Its other settings are
        used for every fit. With ``shared_weights=False`` every feature gets
        a test of its own.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Non-negative integer counts.
    n_resamples : int, default=999
        The largest number of data sets drawn from the null model.
    max_exceedances : int or None, default=10
        Stop a test once this many null statistics reach the observed one;
        None draws all ``n_resamples`` for every test.
    size_factors : array-like of shape (n_samples,), default=None
        The size factors of ``X`` (see :meth:`NegBinomMixture.fit`); drawn
        data sets keep them.
    n_jobs : int, default=None
        Workers for the resamples, through joblib. The answer does not
        depend on it.
    random_state : None, int or numpy.random.SeedSequence
        Seeds the resamples as :func:`sknbmix.bootstrap` does: resample
        ``i`` draws from child ``i`` of one ``SeedSequence``, so the same
        ``random_state`` gives the same null distribution for any
        ``n_jobs``.
    verbose : int, default=0
        1 prints a line per round of resamples.

    Returns
    -------
    LRTResult

    References
    ----------
    .. [1] McLachlan GJ. On bootstrapping the likelihood ratio test statistic
       for the number of components in a normal mixture. J R Stat Soc C 36,
       318-324 (1987).
    .. [2] Besag J, Clifford P. Sequential Monte Carlo p-values. Biometrika
       78, 301-304 (1991).

    Examples
    --------
    Is Rex1 bimodal?

    >>> from sknbmix import NegBinomMixture, lrt_n_components
    >>> from sknbmix.datasets import load_singer
    >>> rex1 = load_singer().data[:, :1]
    >>> res = lrt_n_components(NegBinomMixture(1), rex1, n_resamples=99,
    ...                        random_state=0)
    >>> round(res.statistic, 4), res.pvalue
    (96.6524, 0.01)
    """
    given_size_factors = size_factors
    root = seed_root(random_state)  # a bad random_state fails before any fit
    estimator, X, size_factors = _check_arguments(
        estimator, X, n_resamples, max_exceedances, size_factors
    )
    null_model = estimator
    n_components = null_model.alpha_.shape[0]
    shared = null_model.weights_.ndim == 1
    settings = FitSettings.from_params(null_model.get_params())
    null_settings = _settings(settings, n_components)
    alternative_settings = _settings(settings, n_components + 1)
    alternative_model = clone(null_model).set_params(
        n_components=n_components + 1, warm_start=False
    )
    alternative_model.fit(X, size_factors=given_size_factors)

    null_parameters = _parameters(null_model)
    observed = _statistic(
        X,
        size_factors,
        null_settings,
        alternative_settings,
        null_parameters,
        0,
        fitted=(null_model, alternative_model),
    )
    n_tests = 1 if shared else X.shape[1]
    null_statistics = [[] for _ in range(n_tests)]
    exceed = np.zeros(n_tests, dtype=int)
    stopped = np.zeros(n_tests, dtype=bool)
    limit = n_resamples if max_exceedances is None else max_exceedances
    n_workers = max(1, effective_n_jobs(n_jobs))
    parallel = Parallel(n_jobs=n_jobs)
    done = 0
    round_size = _FIRST_ROUND
    while done < n_resamples and not stopped.all():
        active = np.flatnonzero(~stopped)
        indices = np.arange(done, min(done + round_size * n_workers, n_resamples))
        round_size = min(2 * round_size, _LAST_ROUND)
        batches = np.array_split(indices, min(n_workers, indices.size))
        rounds = parallel(
            delayed(_null_batch)(
                X.shape[0],
                None if shared else active,
                size_factors,
                null_settings,
                alternative_settings,
                null_parameters,
                root,
                batch,
            )
            for batch in batches
        )
        statistics = np.concatenate(rounds)  # (resamples, active tests)
        # In the order of the resamples, whatever the rounds: a test stops
        # where it would have stopped drawn one by one.
        for column, test in enumerate(active):
            for value in statistics[:, column]:
                if stopped[test]:
                    break
                null_statistics[test].append(value)
                exceed[test] += value >= observed[test]
                stopped[test] = exceed[test] >= limit
        done = indices[-1] + 1
        if verbose:
            print(
                f"lrt_n_components: {done} resamples, "
                f"{np.count_nonzero(~stopped)} of {n_tests} tests still running"
            )
    used = np.array([len(values) for values in null_statistics])
    pvalue = np.where(
        exceed >= limit, exceed / np.maximum(used, 1), (1.0 + exceed) / (1.0 + used)
    )
    null_distribution = [np.asarray(values) for values in null_statistics]
    if shared:
        return LRTResult(
            float(observed[0]),
            float(pvalue[0]),
            null_distribution[0],
            int(used[0]),
            null_model,
            alternative_model,
        )
    return LRTResult(
        observed, pvalue, null_distribution, used, null_model, alternative_model
    )


def _check_arguments(estimator, X, n_resamples, max_exceedances, size_factors):
    """Validate the arguments; fit the null model if it is not."""
    check_resampling(estimator, n_resamples)
    if max_exceedances is not None and (
        not isinstance(max_exceedances, Integral) or max_exceedances < 1
    ):
        raise ValueError(
            "`max_exceedances` must be a positive integer or None, got "
            f"{max_exceedances!r}."
        )
    return fitted_to(estimator, X, size_factors)


def _settings(settings, n_components, shared=None):
    """The fit settings with ``n_components``, one initialisation (the
    split starts of the null fit stand for more), and ``shared`` weights
    if given."""
    return FitSettings(
        n_components=n_components,
        shared_weights=settings.shared_weights if shared is None else shared,
        solver=settings.solver,
        tol=settings.tol,
        max_iter=settings.max_iter,
        n_init=1,
        init_params=settings.init_params,
        n_jobs=1,
        verbose=0,
    )


def _parameters(model):
    return {name: getattr(model, f"{name}_") for name in ("weights", "alpha", "b")}


def _split_starts(parameters, shared_weights):
    """Starts of K + 1 components from a K-component fit: each component in
    turn split in two, with half its weight each and its mean moved up and
    down by ``_SPLIT`` (per feature with independent weights)."""
    theta = parameters_to_theta(
        parameters["weights"], parameters["alpha"], parameters["b"], shared_weights
    )
    starts = []
    for k in range(theta.log_alpha.shape[1]):
        parts = []
        for x, shift in zip(theta, (np.log(0.5), 0.0, np.log(_SPLIT)), strict=True):
            first = x[:, k : k + 1] + shift
            second = x[:, k : k + 1] + (shift if shift <= 0 else -shift)
            parts.append(np.concatenate([x[:, :k], first, second, x[:, k + 1 :]], 1))
        starts.append(Theta(*parts))
    return Theta(*(np.concatenate(x) for x in zip(*starts, strict=True)))


def _insertion_starts(X, size_factors, parameters, shared_weights):
    """Starts of K + 1 components from a K-component fit: the fit with a
    component added at each of ``_INSERTION_WINDOWS`` (per feature with
    independent weights; none for the shared model of several features,
    whose samples have no one order)."""
    if shared_weights and X.shape[1] > 1:
        return []
    theta = parameters_to_theta(
        parameters["weights"], parameters["alpha"], parameters["b"], shared_weights
    )
    table = build_count_table(X)
    scale = 1.0
    if size_factors is not None:
        # b is per unit size factor.
        scale = size_factors[size_factors > 0].mean()
    log_alpha = np.full((1, 1, table.n_features), np.log(_INSERTION_ALPHA))
    starts = []
    for low, high in _INSERTION_WINDOWS:
        share = high - low
        log_mean = np.log(window_mean(table, low, high) / scale)
        starts.append(
            Theta(
                np.concatenate(
                    [
                        theta.log_weights + np.log1p(-share),
                        np.full_like(theta.log_weights[:, :1], np.log(share)),
                    ],
                    axis=1,
                ),
                np.concatenate([theta.log_alpha, log_alpha], axis=1),
                np.concatenate([theta.log_b, log_mean - log_alpha], axis=1),
            )
        )
    return starts


def _log_likelihoods(X, size_factors, parameters, shared_weights):
    """The total log-likelihood (shared weights), or each feature's."""
    likelihood = MixtureLikelihood.of_counts(X, shared_weights, size_factors)
    theta = parameters_to_theta(
        parameters["weights"], parameters["alpha"], parameters["b"], shared_weights
    )
    return likelihood.log_likelihood(theta)[0, 0]


def _statistic(
    X, size_factors, null_settings, alternative_settings, truth, seed, fitted=None
):
    """``2 (log L(K0 + 1) - log L(K0))`` of X (per feature with independent
    weights): K0 from the default starts and ``truth`` (the parameters X was
    drawn from), K0 + 1 from the default starts and the K0 fit split in
    two. ``fitted`` models, if given, are candidates too."""
    shared = null_settings.shared_weights
    extra = parameters_to_theta(truth["weights"], truth["alpha"], truth["b"], shared)
    # Drawn from by random starts only (init_params other than "quantile").
    random_state = np.random.RandomState(seed)
    null = fit(
        X, null_settings, random_state, size_factors=size_factors, extra_starts=extra
    )
    null_ll = _log_likelihoods(X, size_factors, null.parameters, shared)
    splits = _split_starts(null.parameters, shared)
    insertions = _insertion_starts(X, size_factors, null.parameters, shared)
    alternative = fit(
        X,
        alternative_settings,
        random_state,
        size_factors=size_factors,
        extra_starts=Theta(
            *(np.concatenate(x) for x in zip(splits, *insertions, strict=True))
        ),
        # The splits run to convergence: they never end below the K0 fit.
        n_protected=len(splits.log_alpha),
        n_quantile=_N_QUANTILE_STARTS,
    )
    alternative_ll = _log_likelihoods(X, size_factors, alternative.parameters, shared)
    if fitted is not None:
        null_ll = np.maximum(
            null_ll, _log_likelihoods(X, size_factors, _parameters(fitted[0]), shared)
        )
        alternative_ll = np.maximum(
            alternative_ll,
            _log_likelihoods(X, size_factors, _parameters(fitted[1]), shared),
        )
    # The split starts reproduce the K0 fit: a smaller gain is rounding.
    return np.atleast_1d(2.0 * np.maximum(alternative_ll - null_ll, 0.0))


def _null_batch(
    n_samples,
    features,
    size_factors,
    null_settings,
    alternative_settings,
    null_parameters,
    root,
    indices,
):
    """The null statistics of resamples ``indices``: shaped (resamples,
    tests); ``features`` are the tests still running (independent weights)
    or None (one test)."""
    truth = _take_tests(null_parameters, features, features)
    n_tests = 1 if features is None else len(features)
    n_features = truth["alpha"].shape[1]
    if null_settings.init_params == "quantile" and (
        features is not None or n_features == 1
    ):
        # Separate problems side by side, as the bootstrap stacks its
        # replicates: each column is fit as it would be alone, and the
        # default starts draw nothing, so the stack gives the same bits.
        # A screen's features go in chunks, so that the drawn counts stay
        # within _DRAW_BUDGET values.
        stacked = (
            _settings(null_settings, null_settings.n_components, shared=False),
            _settings(
                alternative_settings, alternative_settings.n_components, shared=False
            ),
        )
        per_chunk = max(1, _DRAW_BUDGET // (n_samples * len(indices)))
        chunks = [
            np.arange(first, min(first + per_chunk, n_tests))
            for first in range(0, n_tests, per_chunk)
        ]
        with threadpool_limits(limits=1):
            return np.hstack(
                [
                    _stacked_statistics(
                        n_samples,
                        _take_tests(truth, columns, features),
                        None if features is None else features[columns],
                        size_factors,
                        stacked,
                        root,
                        indices,
                    )
                    for columns in chunks
                ]
            )
    out = np.empty((len(indices), n_tests))
    with threadpool_limits(limits=1):
        for row, index in enumerate(indices):
            seed = replicate_seed(root, index)
            out[row] = _statistic(
                _draw(n_samples, truth, features, size_factors, seed),
                size_factors,
                null_settings,
                alternative_settings,
                truth,
                seed.generate_state(1)[0],
            )
    return out


def _take_tests(truth, columns, features):
    """The null parameters at ``columns`` (with ``features`` None, a single
    test: all of them)."""
    if features is None:
        return truth
    return {
        "weights": truth["weights"][columns],
        "alpha": truth["alpha"][:, columns],
        "b": truth["b"][:, columns],
    }


def _stacked_statistics(
    n_samples, truth, features, size_factors, settings, root, indices
):
    """The null statistics of resamples ``indices`` of the given tests,
    shaped (resamples, tests), from one stacked fit of every resample and
    test side by side (``settings``: the null and alternative settings with
    independent weights)."""
    n_tests = 1 if features is None else len(features)
    tiled = {
        "weights": np.tile(np.atleast_2d(truth["weights"]), (len(indices), 1)),
        "alpha": np.tile(truth["alpha"], (1, len(indices))),
        "b": np.tile(truth["b"], (1, len(indices))),
    }
    X = np.hstack(
        [
            _draw(n_samples, truth, features, size_factors, replicate_seed(root, i))
            for i in indices
        ]
    )
    return _statistic(X, size_factors, *settings, tiled, 0).reshape(
        len(indices), n_tests
    )


def _draw(n_samples, truth, features, size_factors, seed):
    """A data set from the null model ``truth``, from ``seed``: with
    independent weights each feature from a child seed of its own, so that
    its draw does not depend on which other features are still tested."""
    if features is None:
        rng = np.random.default_rng(seed)
        X = sample_mixture(
            rng, n_samples, truth["weights"], truth["alpha"], truth["b"], size_factors
        )[0]
        return X.astype(np.float64)
    X = np.empty((n_samples, len(features)))
    for column, feature in enumerate(features):
        rng = np.random.default_rng(replicate_seed(seed, feature))
        X[:, column] = sample_mixture(
            rng,
            n_samples,
            truth["weights"][column : column + 1],
            truth["alpha"][:, column : column + 1],
            truth["b"][:, column : column + 1],
            size_factors,
        )[0][:, 0]
    return X
