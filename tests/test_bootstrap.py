"""sknbmix.bootstrap: API, intervals, reproducibility, dask, label switching,
optima of the replicates, failures."""

import copy
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.special
import scipy.stats
from _helpers import estimator_loglik, mixture_loglik
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted

import sknbmix
from sknbmix import NegBinomMixture
from sknbmix._bootstrap import (
    _JACKKNIFE_CHILD,
    BootstrapResult,
    _aligned,
    _confidence_intervals,
    _jackknife_acceleration,
    _jackknife_units,
    replicate_seed,
)
from sknbmix._data import total_size_factors
from sknbmix._fit import FitSettings, fit, parameters_to_theta
from sknbmix._likelihood import sample_mixture
from sknbmix.exceptions import PoissonLimitWarning

PARAMETERS = ("weights", "alpha", "b", "means")


def replicate_rng(random_state, index):
    """The random source of replicate ``index``, as the bootstrap documents it."""
    root = np.random.SeedSequence(random_state)
    return np.random.default_rng(root.spawn(index + 1)[index])


def replicate_data(reference, random_state, index, n_samples):
    """The data set of parametric replicate ``index``."""
    rng = replicate_rng(random_state, index)
    weights, alpha, b = reference.weights_, reference.alpha_, reference.b_
    return sample_mixture(rng, n_samples, weights, alpha, b)[0]


def refit_replicate(reference, data):
    """The parameters of one replicate's fit as the bootstrap makes it: the
    estimator's default starts and the point estimate, through the engine."""
    shared_weights = reference.weights_.ndim == 1
    result = fit(
        np.asarray(data, dtype=np.float64),
        FitSettings.from_params(reference.get_params()),
        extra_starts=parameters_to_theta(
            reference.weights_, reference.alpha_, reference.b_, shared_weights
        ),
    )
    return result.parameters


# The bootstrap must leave numpy's legacy global generator alone: the tests
# use the legacy API on purpose.
def seed_global_rng(seed):
    np.random.seed(seed)  # noqa: NPY002


def global_rng_state():
    return np.random.get_state()  # noqa: NPY002


def assert_same_estimates(a, b):
    for name in PARAMETERS:
        np.testing.assert_array_equal(a.estimates[name], b.estimates[name])


@pytest.fixture(scope="module")
def rex1_fit(rex1):
    return NegBinomMixture(n_components=2).fit(rex1)


@pytest.fixture(scope="module")
def rex1_result(rex1, rex1_fit):
    return sknbmix.bootstrap(rex1_fit, rex1, n_resamples=40, random_state=0)


@pytest.fixture(scope="module")
def independent_fit(singer):
    return NegBinomMixture(n_components=2, shared_weights=False).fit(singer)


@pytest.fixture(scope="module")
def independent_result(singer, independent_fit):
    return sknbmix.bootstrap(independent_fit, singer, n_resamples=20, random_state=1)


# -- API and result ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["shared", "independent"])
def test_result_shapes_and_statistics(
    kind, rex1_fit, rex1_result, independent_fit, independent_result
):
    fit, res = (
        (rex1_fit, rex1_result)
        if kind == "shared"
        else (independent_fit, independent_result)
    )
    K, G = fit.alpha_.shape
    assert isinstance(res, BootstrapResult)
    assert res.n_failed == 0
    n_ok = res.n_resamples - res.n_failed
    expected_shapes = {
        "weights": (K,) if kind == "shared" else (G, K),
        "alpha": (K, G),
        "b": (K, G),
        "means": (K, G),
    }
    assert set(res.estimates) == set(PARAMETERS)
    for name, shape in expected_shapes.items():
        assert res.estimates[name].shape == (n_ok,) + shape
        assert np.all(np.isfinite(res.estimates[name]))
        assert np.all(res.estimates[name] > 0)
        low, high = res.confidence_interval[name]
        assert low.shape == high.shape == shape
        assert np.all(low <= high)
        np.testing.assert_array_equal(
            res.standard_error[name], np.std(res.estimates[name], axis=0, ddof=1)
        )
        np.testing.assert_array_equal(
            res.point_estimate[name], getattr(fit, f"{name}_")
        )
    # Every replicate is a proper mixture: weights sum to one, means = a * b.
    np.testing.assert_allclose(res.estimates["weights"].sum(axis=-1), 1.0)
    np.testing.assert_allclose(
        res.estimates["means"], res.estimates["alpha"] * res.estimates["b"]
    )
    assert 0 <= res.n_start_disagreements <= n_ok
    assert (res.method, res.ci_method, res.confidence_level) == (
        "parametric",
        "bca",
        0.95,
    )


def test_result_counts_and_repr(rex1_result):
    assert rex1_result.n_resamples == 40
    assert rex1_result.n_failed == 0
    text = repr(rex1_result)
    assert "parametric" in text
    assert "40 resamples" in text
    assert "0 failed" in text
    assert "95% bca" in text
    # One line per parameter entry: weights (2), alpha, b, means (2 x 1 each).
    assert len(text.splitlines()) == 1 + 2 + 3 * 2


@pytest.mark.parametrize("kind", ["shared", "independent"])
def test_to_frame(kind, rex1_result, independent_result):
    res = rex1_result if kind == "shared" else independent_result
    frame = res.to_frame()
    assert list(frame.columns) == [
        "parameter",
        "component",
        "feature",
        "estimate",
        "standard_error",
        "low",
        "high",
    ]
    assert len(frame) == sum(res.point_estimate[name].size for name in PARAMETERS)
    K, G = res.point_estimate["alpha"].shape
    for row in frame.itertuples():
        low, high = res.confidence_interval[row.parameter]
        if row.parameter == "weights":
            if kind == "shared":
                # None in a column of feature indices: pandas stores NaN.
                assert pd.isna(row.feature)
                index = (row.component,)
            else:
                index = (row.feature, row.component)
        else:
            index = (row.component, row.feature)
        # The feature column holds whole numbers (floats when it also holds NaN).
        assert all(float(i).is_integer() for i in index)
        index = tuple(int(i) for i in index)
        assert row.estimate == res.point_estimate[row.parameter][index]
        assert row.standard_error == res.standard_error[row.parameter][index]
        assert (row.low, row.high) == (low[index], high[index])
    counts = frame.groupby("parameter").size()
    assert counts["weights"] == (K if kind == "shared" else K * G)
    assert counts["alpha"] == counts["b"] == counts["means"] == K * G


@pytest.mark.parametrize("kind", ["shared", "independent"])
def test_public_fields_and_rows(kind, rex1_result, independent_result):
    res = rex1_result if kind == "shared" else independent_result
    K, G = res.point_estimate["alpha"].shape
    assert res.shared_weights is (kind == "shared")
    assert res.feature_names == list(range(G))
    rows = res.rows()
    assert (
        pd.DataFrame(rows)
        .drop(columns="feature")
        .equals(res.to_frame().drop(columns="feature"))
    )
    assert [row["feature"] for row in rows] == list(res.to_frame()["feature"])
    # Names given to rows() replace the estimator's, for every feature row.
    names = [f"gene{j}" for j in range(G)]
    renamed = res.rows(names)
    assert {row["feature"] for row in renamed} - {None} == set(names)
    assert [row["feature"] is None for row in renamed] == [
        row["feature"] is None for row in rows
    ]


def test_method_equals_function(rex1, rex1_fit, rex1_result):
    res = rex1_fit.bootstrap(rex1, n_resamples=40, random_state=0)
    assert_same_estimates(res, rex1_result)
    for name in PARAMETERS:
        for a, b in zip(
            res.confidence_interval[name],
            rex1_result.confidence_interval[name],
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


def test_unfitted_estimator_is_fitted_on_a_clone(rex1, rex1_fit, rex1_result):
    est = NegBinomMixture(n_components=2)
    res = sknbmix.bootstrap(
        est, rex1, n_resamples=40, random_state=0, ci_method="percentile"
    )
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            res.point_estimate[name], getattr(rex1_fit, f"{name}_")
        )
    assert_same_estimates(res, rex1_result)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"method": "x"}, "method"),
        ({"ci_method": "x"}, "ci_method"),
        ({"confidence_level": 1.5}, "confidence_level"),
        ({"confidence_level": 0}, "confidence_level"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"random_state": np.random.default_rng(0)}, "random_state"),
        ({"random_state": np.random.RandomState(0)}, "random_state"),
    ],
)
def test_invalid_arguments(rex1, rex1_fit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sknbmix.bootstrap(rex1_fit, rex1, **kwargs)


def test_invalid_estimator_and_data(rex1, singer, rex1_fit):
    with pytest.raises(ValueError, match="NegBinomMixture"):
        sknbmix.bootstrap(
            GaussianMixture(2), rex1, n_resamples=5, ci_method="percentile"
        )
    # X must be the kind of data the estimator was fitted on.
    with pytest.raises(ValueError, match="features"):
        sknbmix.bootstrap(rex1_fit, singer, n_resamples=5, ci_method="percentile")


# -- interval methods --------------------------------------------------------------


def test_percentile_and_basic_intervals(rex1, rex1_fit):
    kwargs = dict(n_resamples=40, random_state=0, confidence_level=0.9)
    percentile = sknbmix.bootstrap(rex1_fit, rex1, ci_method="percentile", **kwargs)
    basic = sknbmix.bootstrap(rex1_fit, rex1, ci_method="basic", **kwargs)
    assert basic.ci_method == "basic"
    assert_same_estimates(percentile, basic)
    for name in PARAMETERS:
        low, high = percentile.confidence_interval[name]
        expected = np.quantile(percentile.estimates[name], [0.05, 0.95], axis=0)
        np.testing.assert_allclose(low, expected[0], rtol=1e-12)
        np.testing.assert_allclose(high, expected[1], rtol=1e-12)
        point = percentile.point_estimate[name]
        basic_low, basic_high = basic.confidence_interval[name]
        np.testing.assert_allclose(basic_low, 2 * point - high, rtol=1e-14)
        np.testing.assert_allclose(basic_high, 2 * point - low, rtol=1e-14)
        assert np.all(basic_low <= basic_high)


# -- nonparametric bootstrap -------------------------------------------------------


def test_nonparametric_resamples_rows(rex1, rex1_fit):
    n = rex1.shape[0]
    res = sknbmix.bootstrap(
        rex1_fit,
        rex1,
        n_resamples=20,
        method="nonparametric",
        random_state=4,
        ci_method="percentile",
    )
    assert res.method == "nonparametric"
    assert res.n_failed == 0
    assert res.estimates["means"].shape == (20, 2, 1)
    # Replicate i fits rows of X drawn with its own random source: refit them
    # (one gene: the aligned order is the canonical, ascending one).
    for i in range(5):
        rows = replicate_rng(4, i).integers(0, n, n)
        refit = refit_replicate(rex1_fit, rex1[rows])
        for name in PARAMETERS:
            np.testing.assert_allclose(res.estimates[name][i], refit[name], rtol=1e-12)
    # They differ from the parametric replicates with the same seed.
    parametric = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=20, random_state=4, ci_method="percentile"
    )
    assert not np.allclose(parametric.estimates["means"], res.estimates["means"])


def test_nonparametric_sparse_equals_dense(singer):
    fit = NegBinomMixture(n_components=2).fit(singer)
    kwargs = dict(
        ci_method="percentile", n_resamples=20, method="nonparametric", random_state=2
    )
    dense = sknbmix.bootstrap(fit, singer, **kwargs)
    sparse = sknbmix.bootstrap(fit, sp.csr_matrix(singer), **kwargs)
    assert sparse.n_failed == dense.n_failed == 0
    for name in PARAMETERS:
        np.testing.assert_allclose(
            sparse.estimates[name], dense.estimates[name], rtol=1e-7
        )


# -- reproducibility ---------------------------------------------------------------


def test_same_seed_same_result_for_any_n_jobs(rex1, rex1_fit, rex1_result):
    again = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, ci_method="percentile"
    )
    assert_same_estimates(again, rex1_result)
    two_jobs = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, n_jobs=2, ci_method="percentile"
    )
    assert_same_estimates(two_jobs, rex1_result)
    seed_sequence = sknbmix.bootstrap(
        rex1_fit,
        rex1,
        n_resamples=40,
        random_state=np.random.SeedSequence(0),
        ci_method="percentile",
    )
    assert_same_estimates(seed_sequence, rex1_result)


def test_sibling_seed_sequences_give_different_replicates(rex1, rex1_fit):
    # Two children of one SeedSequence share its entropy and differ only in
    # their spawn keys: each must give replicates of its own, the same for
    # any n_jobs, and the same again when reused.
    first, second = np.random.SeedSequence(7).spawn(2)
    a = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=12, random_state=first, ci_method="percentile"
    )
    b = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=12, random_state=second, ci_method="percentile"
    )
    for name in PARAMETERS:
        assert not np.any(np.all(a.estimates[name] == b.estimates[name], axis=-1))
    again = sknbmix.bootstrap(
        rex1_fit,
        rex1,
        n_resamples=12,
        random_state=first,
        n_jobs=2,
        ci_method="percentile",
    )
    assert_same_estimates(again, a)


def test_replicate_seed_is_the_spawned_child():
    from sknbmix._bootstrap import replicate_seed

    for root in (
        np.random.SeedSequence(3),
        np.random.SeedSequence(3).spawn(2)[1],
        np.random.SeedSequence(3, spawn_key=(5, 6), pool_size=8),
    ):
        fresh = np.random.SeedSequence(
            root.entropy, spawn_key=root.spawn_key, pool_size=root.pool_size
        )
        for index, child in enumerate(fresh.spawn(4)):
            got = replicate_seed(root, index)
            assert got.spawn_key == child.spawn_key
            np.testing.assert_array_equal(
                got.generate_state(4), child.generate_state(4)
            )


def test_different_seed_different_result(rex1, rex1_fit, rex1_result):
    other = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=1, ci_method="percentile"
    )
    for name in PARAMETERS:
        assert not np.any(
            np.all(other.estimates[name] == rex1_result.estimates[name], axis=-1)
        )


def test_replicate_depends_on_seed_and_index_only(rex1, rex1_fit, rex1_result):
    # Different batch sizes (20 and 40 replicates are cut differently).
    first = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=20, random_state=0, ci_method="percentile"
    )
    assert first.n_failed == rex1_result.n_failed == 0
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            first.estimates[name], rex1_result.estimates[name][:20]
        )
    # And replicate i is the fit of the data its own seed draws.
    for i in (0, 17, 39):
        refit = refit_replicate(rex1_fit, replicate_data(rex1_fit, 0, i, rex1.shape[0]))
        for name in PARAMETERS:
            np.testing.assert_array_equal(rex1_result.estimates[name][i], refit[name])


def test_global_random_state_untouched(rex1, rex1_fit):
    seed_global_rng(12345)
    before = global_rng_state()
    sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=10, random_state=0, ci_method="percentile"
    )
    sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=10, method="nonparametric", ci_method="percentile"
    )
    after = global_rng_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_random_initialisations_do_not_use_global_state(rex1):
    # n_init > 1 uses random starts; the estimator's random_state is None.
    fit = NegBinomMixture(n_components=2, n_init=3).fit(rex1)
    seed_global_rng(0)
    before = global_rng_state()[1].copy()
    first = sknbmix.bootstrap(
        fit, rex1, n_resamples=10, random_state=0, ci_method="percentile"
    )
    untouched = np.array_equal(global_rng_state()[1], before)
    seed_global_rng(1)
    second = sknbmix.bootstrap(
        fit, rex1, n_resamples=10, random_state=0, ci_method="percentile"
    )
    same = all(
        np.array_equal(first.estimates[name], second.estimates[name])
        for name in PARAMETERS
    )
    assert untouched and same


# -- dask ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def test_dask_backend_equals_local(rex1, rex1_fit, rex1_result, dask_client):
    assert len(dask_client.scheduler_info()["workers"]) == 2
    with joblib.parallel_backend("dask"):
        res = sknbmix.bootstrap(
            rex1_fit, rex1, n_resamples=40, random_state=0, ci_method="percentile"
        )
    assert_same_estimates(res, rex1_result)


# -- label switching ---------------------------------------------------------------


def test_replicates_are_aligned_not_sorted():
    """Two genes, two components with swapped means (15, 60) and (60, 15): the
    components are far apart in log-means, but their total means are equal, so
    the canonical order of a replicate fit (ascending total mean) is a coin
    flip. Aligned estimates must follow the components.

    (With one gene, or with independent weights, matching log-means is the
    same as sorting the means, so label switching cannot show there.)"""
    rng = np.random.default_rng(2024)
    n = 500
    means = np.array([[15.0, 60.0], [60.0, 15.0]])
    z = rng.random(n) < 0.5
    X = rng.negative_binomial(5.0, 5.0 / (5.0 + means[z.astype(int)]))
    reference = NegBinomMixture(n_components=2).fit(X)
    ref_log_means = np.log(reference.means_)
    n_resamples = 60
    res = sknbmix.bootstrap(
        reference, X, n_resamples=n_resamples, random_state=3, ci_method="percentile"
    )
    assert res.n_failed == 0

    # Refit each replicate the way the bootstrap does, before alignment.
    swapped = []
    raw_means = []
    for i in range(n_resamples):
        raw = refit_replicate(reference, replicate_data(reference, 3, i, n))
        raw_means.append(raw["means"])
        aligned = {name: res.estimates[name][i] for name in PARAMETERS}
        is_swapped = not np.array_equal(aligned["means"], raw["means"])
        order = [1, 0] if is_swapped else [0, 1]
        # The same permutation of the components for every parameter.
        for name in PARAMETERS:
            np.testing.assert_array_equal(aligned[name], raw[name][order])
        swapped.append(is_swapped)
    n_swapped = int(np.sum(swapped))
    print(f"label switching: {n_swapped} of {n_resamples} replicates reordered")
    # Canonical order disagrees with the reference in a good share of them.
    assert 10 <= n_swapped <= n_resamples - 10

    # Unaligned, component 0 would mix both components ...
    raw_means = np.array(raw_means)
    low, high = np.quantile(raw_means[:, 0, 0], [0.025, 0.975])
    assert low < reference.means_.min() and high > reference.means_.max()
    # ... aligned, every replicate's components sit by the reference's own.
    log_means = np.log(res.estimates["means"])
    for k in range(2):
        own = ((log_means[:, k] - ref_log_means[k]) ** 2).sum(axis=-1)
        other = ((log_means[:, k] - ref_log_means[1 - k]) ** 2).sum(axis=-1)
        assert np.all(own < other)
    low, high = res.confidence_interval["means"]
    assert np.all((low <= reference.means_) & (reference.means_ <= high))
    assert np.all((reference.means_[::-1] < low) | (reference.means_[::-1] > high))
    # Unimodal and tight: the interval spans well under the gap between means.
    assert np.all(high - low < 0.5 * np.abs(np.diff(reference.means_, axis=0)))


# -- optima of the replicates ------------------------------------------------------


@pytest.fixture(scope="module")
def rex1_replicates(rex1, rex1_fit):
    """200 parametric Rex1 replicates, each also fitted from 20 restarts and
    from the point estimate alone."""
    n_resamples, seed = 200, 0
    res = sknbmix.bootstrap(
        rex1_fit,
        rex1,
        n_resamples=n_resamples,
        random_state=seed,
        ci_method="percentile",
    )
    assert res.n_failed == 0
    replicate_loglik, best_loglik, reference_only_loglik = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(n_resamples):
            data = replicate_data(rex1_fit, seed, i, rex1.shape[0])
            replicate_loglik.append(
                mixture_loglik(
                    data,
                    res.estimates["weights"][i],
                    res.estimates["alpha"][i],
                    res.estimates["b"][i],
                )
            )
            restarts = NegBinomMixture(2, n_init=20, random_state=0).fit(data)
            best_loglik.append(estimator_loglik(restarts, data))
            reference_only = copy.deepcopy(rex1_fit).set_params(warm_start=True)
            reference_only.fit(data)
            reference_only_loglik.append(estimator_loglik(reference_only, data))
    return (
        res,
        np.array(replicate_loglik),
        np.array(best_loglik),
        np.array(reference_only_loglik),
    )


def test_no_replicate_worse_than_restarted_em(rex1_replicates):
    res, replicate, best, reference_only = rex1_replicates
    assert res.n_failed == 0 and len(replicate) == 200
    gap = replicate - best
    assert gap.min() >= -1e-4, np.sort(gap)[:5]
    # The check has teeth: starting from the point estimate alone, at least one
    # replicate ends on a worse optimum.
    assert np.sum(reference_only < best - 1e-4) >= 1


def test_start_disagreements_count_worse_optima(rex1_replicates):
    res, replicate, _, reference_only = rex1_replicates
    worse = int(np.sum(reference_only < replicate - 1e-6))
    assert res.n_start_disagreements == worse


# -- failures -----------------------------------------------------------------------


def test_failed_replicates_are_counted_and_left_out(
    rex1, rex1_fit, rex1_result, monkeypatch
):
    original = sknbmix._bootstrap.fit
    calls = []

    def flaky(*args, **kwargs):
        index = len(calls)
        calls.append(index)
        if index % 4 == 1:
            raise RuntimeError("boom")
        result = original(*args, **kwargs)
        return result._replace(converged=result.converged and index % 4 != 2)

    # Replicates one by one (a single feature is otherwise fit as a stack).
    monkeypatch.setattr(sknbmix._bootstrap, "_can_stack", lambda *args: False)
    monkeypatch.setattr(sknbmix._bootstrap, "fit", flaky)
    with pytest.warns(UserWarning, match="20 of 40 bootstrap replicates failed"):
        res = sknbmix.bootstrap(
            rex1_fit,
            rex1,
            n_resamples=40,
            random_state=0,
            n_jobs=1,
            ci_method="percentile",
        )
    assert len(calls) == 40
    assert res.n_resamples == 40
    assert res.n_failed == 20
    kept = (np.arange(40) % 4 == 0) | (np.arange(40) % 4 == 3)
    for name in PARAMETERS:
        assert res.estimates[name].shape[0] == 20
        # The survivors are exactly the replicates of a run without failures.
        np.testing.assert_array_equal(
            res.estimates[name], rex1_result.estimates[name][kept]
        )
        low, high = res.confidence_interval[name]
        # Intervals over the survivors only (no NaN from the failed ones).
        np.testing.assert_allclose(
            low, np.quantile(res.estimates[name], 0.025, axis=0), rtol=1e-12
        )
        assert np.all(np.isfinite(low)) and np.all(np.isfinite(high))


def test_unconverged_replicates_of_a_stack_are_left_out(
    rex1, rex1_fit, rex1_result, monkeypatch
):
    original = sknbmix._bootstrap._fit_stacked

    def flaky(*args):
        fit = original(*args)

        def flaky_fit(row):
            theta, converged, start_log_likelihoods = fit(row)
            return theta, converged and row % 4 != 2, start_log_likelihoods

        return flaky_fit

    monkeypatch.setattr(sknbmix._bootstrap, "_fit_stacked", flaky)
    rows = np.concatenate(
        [np.arange(len(b)) for b in sknbmix._bootstrap._batches(40, 1)]
    )
    kept = rows % 4 != 2
    n_failed = int(np.sum(~kept))
    assert 0 < n_failed < 40
    with pytest.warns(UserWarning, match=f"{n_failed} of 40 bootstrap replicates"):
        res = sknbmix.bootstrap(
            rex1_fit,
            rex1,
            n_resamples=40,
            random_state=0,
            n_jobs=1,
            ci_method="percentile",
        )
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            res.estimates[name], rex1_result.estimates[name][kept]
        )


def test_a_failing_stack_falls_back_to_one_by_one(
    rex1, rex1_fit, rex1_result, monkeypatch
):
    def broken(*args):
        raise FloatingPointError("boom")

    monkeypatch.setattr(sknbmix._bootstrap, "_fit_stacked", broken)
    res = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, n_jobs=1, ci_method="percentile"
    )
    assert res.n_failed == 0
    # The stack and the replicates one by one give the same numbers.
    for name in PARAMETERS:
        np.testing.assert_array_equal(res.estimates[name], rex1_result.estimates[name])


def test_all_replicates_failing_raises(rex1, rex1_fit, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sknbmix._bootstrap, "_can_stack", lambda *args: False)
    monkeypatch.setattr(sknbmix._bootstrap, "fit", broken)
    with pytest.raises(RuntimeError, match="All 5 bootstrap replicates failed"):
        sknbmix.bootstrap(
            rex1_fit,
            rex1,
            n_resamples=5,
            random_state=0,
            n_jobs=1,
            ci_method="percentile",
        )


def test_non_converging_replicates_fail(rex1, rex1_fit):
    # Two EM iterations are not enough for any replicate.
    short = copy.deepcopy(rex1_fit).set_params(max_iter=2)
    with pytest.raises(RuntimeError, match="All 10 bootstrap replicates failed"):
        sknbmix.bootstrap(
            short, rex1, n_resamples=10, random_state=0, ci_method="percentile"
        )


# -- the four-gene model -----------------------------------------------------------


def test_four_genes_shared_weights_1000_replicates(singer):
    fit = NegBinomMixture(n_components=2).fit(singer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = sknbmix.bootstrap(
            fit, singer, n_resamples=1000, random_state=0, ci_method="percentile"
        )
    assert res.n_failed <= 5
    assert res.estimates["alpha"].shape == (1000 - res.n_failed, 2, 4)
    low, high = res.confidence_interval["weights"]
    assert np.all((low < fit.weights_) & (fit.weights_ < high))
    low, high = res.confidence_interval["means"]
    assert np.all((low < fit.means_) & (fit.means_ < high))


# -- progress ------------------------------------------------------------------------


def test_verbose_shows_progress_with_same_result(
    rex1, rex1_fit, rex1_result, capsys, monkeypatch
):
    kwargs = dict(n_resamples=40, random_state=0, verbose=1, ci_method="percentile")
    res = sknbmix.bootstrap(rex1_fit, rex1, **kwargs)
    assert_same_estimates(res, rex1_result)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "40/40" in err
    # Without tqdm, progress is printed.
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    res = sknbmix.bootstrap(rex1_fit, rex1, **kwargs)
    assert_same_estimates(res, rex1_result)
    out = capsys.readouterr().out
    assert "bootstrap:" in out and "of 40 replicates" in out


def test_log_basic_and_bias_corrected_intervals(rex1, rex1_fit):
    res = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=60, random_state=1, ci_method="percentile"
    )
    log_basic = res.with_intervals("log-basic", 0.8)
    bc = res.with_intervals("bc")
    assert (log_basic.ci_method, log_basic.confidence_level) == ("log-basic", 0.8)
    assert (bc.ci_method, bc.confidence_level) == ("bc", 0.95)
    assert bc.estimates is res.estimates
    # Recomputing the kind the result has gives the same intervals.
    same = res.with_intervals()
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            same.confidence_interval[name].low, res.confidence_interval[name].low
        )
    for name in PARAMETERS:
        values, point = res.estimates[name], res.point_estimate[name]
        to_scale, from_scale = (
            (scipy.special.logit, scipy.special.expit)
            if name == "weights"
            else (np.log, np.exp)
        )
        q = np.quantile(to_scale(values), [0.1, 0.9], axis=0)
        low, high = log_basic.confidence_interval[name]
        np.testing.assert_allclose(low, from_scale(2 * to_scale(point) - q[1]))
        np.testing.assert_allclose(high, from_scale(2 * to_scale(point) - q[0]))
        assert np.all(low > 0)
        # Bias-corrected percentile, one parameter at a time, by hand.
        low, high = bc.confidence_interval[name]
        for index in np.ndindex(point.shape):
            column, at = values[(slice(None), *index)], point[index]
            n = len(column)
            below = (np.sum(column < at) + 0.5 * np.sum(column == at)) / n
            z0 = scipy.stats.norm.ppf(np.clip(below, 0.5 / n, 1 - 0.5 / n))
            z = scipy.stats.norm.ppf(0.975)
            levels = scipy.stats.norm.cdf([2 * z0 - z, 2 * z0 + z])
            expected = np.quantile(column, levels)
            np.testing.assert_allclose([low[index], high[index]], expected, rtol=1e-12)


def test_bias_corrected_equals_percentile_without_median_bias():
    values = np.arange(1.0, 102.0)[:, None]
    point = np.array([51.0])
    intervals = _confidence_intervals({"b": values}, {"b": point}, "bc", 0.9)
    expected = np.quantile(values, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(intervals["b"].low, expected[0])
    np.testing.assert_allclose(intervals["b"].high, expected[1])


def test_with_intervals_rejects_unknown_kind(rex1, rex1_fit):
    res = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=5, random_state=0, ci_method="percentile"
    )
    with pytest.raises(ValueError, match="ci_method.*'bca'"):
        res.with_intervals("studentized")
    with pytest.raises(ValueError, match="confidence_level"):
        res.with_intervals(confidence_level=95)
    # BCa needs the jackknife of the data, which only bootstrap() has.
    assert res.acceleration is None
    with pytest.raises(ValueError, match="acceleration.*ci_method='bca'"):
        res.with_intervals("bca")


def test_bca_interval_equals_scipy_bootstrap():
    # The sample mean of skewed counts with ties: the delete-one jackknife over the
    # distinct values, weighted by their multiplicities, and the replicates
    # given to scipy make the same BCa interval as scipy's own jackknife.
    rng = np.random.default_rng(5)
    data = rng.negative_binomial(1, 0.1, 60).astype(float)
    distinct, counts = np.unique(data, return_counts=True)
    jackknife = np.array(
        [np.delete(data, np.flatnonzero(data == value)[0]).mean() for value in distinct]
    )
    acceleration = _jackknife_acceleration(jackknife[:, None], counts)
    replicates = rng.choice(data, (400, data.size)).mean(axis=1)
    ours = _confidence_intervals(
        {"b": replicates[:, None]},
        {"b": np.array([data.mean()])},
        "bca",
        0.9,
        {"b": acceleration},
    )["b"]
    given = scipy.stats._resampling.BootstrapResult(
        confidence_interval=None, bootstrap_distribution=replicates, standard_error=None
    )
    theirs = scipy.stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=0,
        bootstrap_result=given,
        method="BCa",
        confidence_level=0.9,
    ).confidence_interval
    assert acceleration[0] > 0.02  # the counts are skewed to the right
    np.testing.assert_allclose(
        [ours.low[0], ours.high[0]], [theirs.low, theirs.high], rtol=1e-12
    )


def test_bca_levels_by_hand():
    values = np.random.default_rng(0).gamma(2.0, size=(301, 2))
    point = np.array([1.5, 2.5])
    # 0.6 puts the upper level past the pole 1 - a w = 0: the top replicate.
    a = np.array([0.05, 0.6])
    low, high = _confidence_intervals(
        {"alpha": values}, {"alpha": point}, "bca", 0.9, {"alpha": a}
    )["alpha"]
    for k in range(2):
        z0 = scipy.stats.norm.ppf(np.mean(values[:, k] < point[k]))
        z = scipy.stats.norm.ppf([0.05, 0.95])
        w = z0 + z
        levels = scipy.stats.norm.cdf(z0 + w / (1 - a[k] * w))
        if k == 1:
            assert 1 - a[k] * w[1] < 0
            levels[1] = 1.0
        expected = np.quantile(values[:, k], levels)
        np.testing.assert_allclose([low[k], high[k]], expected, rtol=1e-12)
    # No acceleration: the bias-corrected interval.
    zero = {"alpha": np.zeros(2)}
    bca = _confidence_intervals({"alpha": values}, {"alpha": point}, "bca", 0.9, zero)
    bc = _confidence_intervals({"alpha": values}, {"alpha": point}, "bc", 0.9)
    np.testing.assert_allclose(bca["alpha"].low, bc["alpha"].low, rtol=1e-14)
    np.testing.assert_allclose(bca["alpha"].high, bc["alpha"].high, rtol=1e-14)


def jackknife_by_hand(reference, X, deleted, weights):
    """The acceleration from refits of X without each set of rows."""
    point = {name: getattr(reference, f"{name}_") for name in PARAMETERS}
    fits = [
        _aligned(refit_replicate(reference, np.delete(X, rows, axis=0)), point)
        for rows in deleted
    ]
    return {
        name: _jackknife_acceleration(np.array([f[name] for f in fits]), weights)
        for name in PARAMETERS
    }


def test_bca_acceleration_is_the_delete_one_jackknife(rex1, rex1_fit):
    res = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, ci_method="bca"
    )
    assert res.ci_method == "bca"
    # Every one of the 279 rows deleted in turn, identical rows refit again.
    expected = jackknife_by_hand(
        rex1_fit, rex1, np.arange(len(rex1))[:, None], np.ones(len(rex1))
    )
    for name in PARAMETERS:
        np.testing.assert_allclose(
            res.acceleration[name], expected[name], rtol=1e-3, atol=1e-6
        )
        assert res.acceleration[name].shape == res.point_estimate[name].shape
    # The weights sum to one: their accelerations are opposite.
    np.testing.assert_allclose(
        res.acceleration["weights"][0], -res.acceleration["weights"][1]
    )
    assert np.all(res.acceleration["alpha"] != 0)
    # The replicates are the percentile result's; other kinds keep the
    # acceleration, and BCa comes back from them unchanged.
    percentile = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, ci_method="percentile"
    )
    assert_same_estimates(res, percentile)
    again = res.with_intervals("percentile").with_intervals("bca")
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            again.confidence_interval[name].low, res.confidence_interval[name].low
        )
        np.testing.assert_array_equal(
            percentile.confidence_interval[name].high,
            res.with_intervals("percentile").confidence_interval[name].high,
        )
        expected_interval = _confidence_intervals(
            res.estimates, res.point_estimate, "bca", 0.95, res.acceleration
        )[name]
        np.testing.assert_array_equal(
            res.confidence_interval[name].high, expected_interval.high
        )


def test_bca_grouped_jackknife(rex1, rex1_fit, monkeypatch):
    # More distinct rows than groups: a delete-d jackknife of random groups.
    monkeypatch.setattr(sknbmix._bootstrap, "_JACKKNIFE_GROUPS", 25)
    seed = replicate_seed(np.random.SeedSequence(3), _JACKKNIFE_CHILD)
    groups, weights = _jackknife_units(rex1, None, seed)
    assert len(groups) == 25
    np.testing.assert_array_equal(np.sort(np.concatenate(groups)), np.arange(279))
    assert {len(group) for group in groups} == {11, 12}
    np.testing.assert_array_equal(weights, np.ones(25))
    res = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=10, random_state=3, ci_method="bca"
    )
    expected = jackknife_by_hand(rex1_fit, rex1, groups, weights)
    for name in PARAMETERS:
        np.testing.assert_allclose(
            res.acceleration[name], expected[name], rtol=1e-3, atol=1e-6
        )
    # Groups and refits depend on the seed alone, not on the workers.
    parallel = sknbmix.bootstrap(
        rex1_fit, rex1, n_resamples=10, random_state=3, ci_method="bca", n_jobs=2
    )
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            parallel.acceleration[name], res.acceleration[name]
        )


def test_bca_with_size_factors(depth_data, depth_fit):
    # Jackknife samples keep the size factors of their rows, one by one.
    X, size_factors = depth_data
    res = sknbmix.bootstrap(
        depth_fit,
        X,
        size_factors=size_factors,
        n_resamples=20,
        random_state=0,
        ci_method="bca",
    )
    for name in PARAMETERS:
        a = res.acceleration[name]
        assert np.all(np.isfinite(a)) and np.all(np.abs(a) < 0.2)
        low, high = res.confidence_interval[name]
        assert np.all(low <= high)


@pytest.mark.parametrize("shared_weights", [True, False])
def test_replicates_do_not_repeat_the_reference_fits_warnings(shared_weights):
    # Under-dispersed genes: the reference fit warns of the Poisson limit
    # once; the replicates (stacked, or one by one with shared weights) are
    # the same model and stay quiet.
    X = np.random.default_rng(0).binomial([20, 40], 0.5, size=(200, 2))
    with pytest.warns(PoissonLimitWarning):
        fit = NegBinomMixture(2, shared_weights=shared_weights).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sknbmix.bootstrap(
            fit, X, n_resamples=4, random_state=0, ci_method="percentile"
        )
    assert [str(w.message) for w in caught] == []
    assert res.n_failed == 0


# -- size factors -------------------------------------------------------------------

# One gene whose counts scale with a depth that varies by a factor of about
# 2.7 either way (log-normal, sd 0.5): the mixture is only recovered with
# the size factors.
DEPTH_WEIGHTS = np.array([0.3, 0.7])
DEPTH_ALPHA = np.array([[4.0], [6.0]])
DEPTH_B = np.array([[2.0], [10.0]])


@pytest.fixture(scope="module")
def depth_data():
    rng = np.random.default_rng(1)
    size_factors = np.exp(rng.normal(0.0, 0.5, 400))
    X = sample_mixture(rng, 400, DEPTH_WEIGHTS, DEPTH_ALPHA, DEPTH_B, size_factors)
    return X[0], size_factors


@pytest.fixture(scope="module")
def depth_genes():
    """Three genes of cells whose depth varies (log-normal, sd 0.5)."""
    rng = np.random.default_rng(2)
    depth = np.exp(rng.normal(0.0, 0.5, 300))
    alpha = np.array([[3.0, 5.0, 4.0], [6.0, 2.0, 5.0]])
    b = np.array([[2.0, 10.0, 5.0], [10.0, 2.0, 6.0]])
    return sample_mixture(rng, 300, np.array([0.4, 0.6]), alpha, b, depth)[0]


@pytest.fixture(scope="module")
def depth_fit(depth_data):
    X, size_factors = depth_data
    return NegBinomMixture(2).fit(X, size_factors=size_factors)


def refit_scaled_replicate(reference, data, size_factors):
    """A replicate's refit, as refit_replicate, with size factors."""
    result = fit(
        np.asarray(data, dtype=np.float64),
        FitSettings.from_params(reference.get_params()),
        size_factors=size_factors,
        extra_starts=parameters_to_theta(
            reference.weights_, reference.alpha_, reference.b_, True
        ),
    )
    return result.parameters


@pytest.mark.parametrize("method", ["parametric", "nonparametric"])
def test_size_factors_intervals_cover_the_truth(depth_data, depth_fit, method):
    X, size_factors = depth_data
    res = sknbmix.bootstrap(
        depth_fit,
        X,
        size_factors=size_factors,
        n_resamples=100,
        method=method,
        random_state=0,
        ci_method="percentile",
    )
    assert res.n_failed == 0
    truth = {
        "weights": DEPTH_WEIGHTS,
        "alpha": DEPTH_ALPHA,
        "b": DEPTH_B,
        "means": DEPTH_ALPHA * DEPTH_B,
    }
    for name in PARAMETERS:
        low, high = res.confidence_interval[name]
        assert np.all((low < truth[name]) & (truth[name] < high)), name
    # Without the size factors the depth passes for overdispersion: the
    # high component's alpha is far below the truth, outside its interval.
    plain = NegBinomMixture(2).fit(X)
    assert plain.alpha_[1, 0] < res.confidence_interval["alpha"].low[1, 0]


@pytest.mark.parametrize("method", ["parametric", "nonparametric"])
def test_size_factors_same_replicates_for_any_n_jobs(depth_data, depth_fit, method):
    X, size_factors = depth_data
    kwargs = dict(
        ci_method="percentile", size_factors=size_factors, n_resamples=12, method=method
    )
    one = sknbmix.bootstrap(depth_fit, X, random_state=3, n_jobs=1, **kwargs)
    two = sknbmix.bootstrap(depth_fit, X, random_state=3, n_jobs=2, **kwargs)
    assert one.n_failed == two.n_failed == 0
    assert_same_estimates(one, two)
    other = sknbmix.bootstrap(depth_fit, X, random_state=4, n_jobs=1, **kwargs)
    assert not np.allclose(other.estimates["means"], one.estimates["means"])


def test_size_factors_parametric_replicates_draw_and_refit_with_them(
    depth_data, depth_fit
):
    X, size_factors = depth_data
    res = depth_fit.bootstrap(
        X,
        size_factors=size_factors,
        n_resamples=4,
        random_state=5,
        ci_method="percentile",
    )
    for i in range(4):
        rng = replicate_rng(5, i)
        data = sample_mixture(
            rng, 400, depth_fit.weights_, depth_fit.alpha_, depth_fit.b_, size_factors
        )[0]
        refit = refit_scaled_replicate(depth_fit, data, size_factors)
        for name in PARAMETERS:
            np.testing.assert_allclose(res.estimates[name][i], refit[name], rtol=1e-12)


def test_size_factors_nonparametric_resamples_them_with_the_cells(depth_genes):
    # Total size factors: the replicates keep those of the resampled cells,
    # not the totals of the resample over its own mean (which would scale b).
    X = depth_genes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = NegBinomMixture(2, size_factors="total").fit(X)
    assert model.size_factors_used_ == "total"
    size_factors = total_size_factors(X)
    res = sknbmix.bootstrap(
        model,
        X,
        n_resamples=4,
        method="nonparametric",
        random_state=6,
        ci_method="percentile",
    )
    assert res.n_failed == 0
    n = X.shape[0]
    for i in range(4):
        rows = replicate_rng(6, i).integers(0, n, n)
        refit = _aligned(
            refit_scaled_replicate(model, X[rows], size_factors[rows]),
            res.point_estimate,
        )
        for name in PARAMETERS:
            np.testing.assert_allclose(res.estimates[name][i], refit[name], rtol=1e-12)
        recomputed = _aligned(
            refit_scaled_replicate(model, X[rows], total_size_factors(X[rows])),
            res.point_estimate,
        )
        assert not np.allclose(res.estimates["b"][i], recomputed["b"], rtol=1e-6)


@pytest.mark.parametrize("method", ["parametric", "nonparametric"])
def test_size_factors_total_equals_explicit_totals(depth_genes, method):
    X = depth_genes
    size_factors = total_size_factors(X)
    kwargs = dict(ci_method="percentile", n_resamples=10, method=method, random_state=7)
    total = sknbmix.bootstrap(NegBinomMixture(2, size_factors="total"), X, **kwargs)
    explicit = sknbmix.bootstrap(
        NegBinomMixture(2), X, size_factors=size_factors, **kwargs
    )
    fitted = NegBinomMixture(2).fit(X, size_factors=size_factors)
    again = sknbmix.bootstrap(fitted, X, size_factors=size_factors, **kwargs)
    assert total.n_failed == 0
    for res in (explicit, again):
        assert_same_estimates(res, total)
        for name in PARAMETERS:
            np.testing.assert_array_equal(
                res.point_estimate[name], total.point_estimate[name]
            )
    # The explicit array wins over the estimator's "total".
    halved = sknbmix.bootstrap(
        NegBinomMixture(2, size_factors="total"),
        X,
        size_factors=size_factors / 2,
        **kwargs,
    )
    np.testing.assert_allclose(
        halved.point_estimate["b"], 2 * total.point_estimate["b"], rtol=1e-4
    )


@pytest.mark.parametrize("method", ["parametric", "nonparametric"])
@pytest.mark.parametrize("columns", [[0], [0, 2]])
def test_unit_size_factors_give_the_replicates_of_none(singer, method, columns):
    # The same data sets (a size factor of 1 scales nothing), fit by the
    # kernels with size factors instead of those without: the same optima,
    # to the precision of the convergence test (tight here). alpha and b of
    # a component are the least determined, along its flat ridge of equal
    # means.
    X = singer[:, columns]
    ones = np.ones(X.shape[0])
    kwargs = dict(ci_method="percentile", n_resamples=10, method=method, random_state=8)
    model = NegBinomMixture(2, tol=1e-12)
    plain = sknbmix.bootstrap(clone(model).fit(X), X, **kwargs)
    scaled = sknbmix.bootstrap(
        clone(model).fit(X, size_factors=ones), X, size_factors=ones, **kwargs
    )
    assert plain.n_failed == scaled.n_failed == 0
    for name in PARAMETERS:
        np.testing.assert_allclose(
            scaled.estimates[name],
            plain.estimates[name],
            rtol=1e-6 if name in ("weights", "means") else 1e-5,
        )


def test_size_factors_stack_equals_one_by_one(depth_data, depth_fit, monkeypatch):
    # Parametric replicates of one gene are fit as a stack, each with the
    # size factors of X; alone, each gives the same numbers.
    X, size_factors = depth_data
    kwargs = dict(
        ci_method="percentile",
        size_factors=size_factors,
        n_resamples=8,
        random_state=9,
        n_jobs=1,
    )
    stacked = sknbmix.bootstrap(depth_fit, X, **kwargs)

    def broken(*args):
        raise FloatingPointError("boom")

    monkeypatch.setattr(sknbmix._bootstrap, "_fit_stacked", broken)
    alone = sknbmix.bootstrap(depth_fit, X, **kwargs)
    assert alone.n_failed == stacked.n_failed == 0
    assert_same_estimates(alone, stacked)


def test_size_factors_mismatch_with_the_fit_is_an_error(depth_data, depth_fit):
    X, size_factors = depth_data
    with pytest.raises(ValueError, match="fitted with size factors.*has none"):
        sknbmix.bootstrap(depth_fit, X, n_resamples=2, ci_method="percentile")
    plain = NegBinomMixture(2).fit(X)
    with pytest.raises(ValueError, match="fitted without size factors"):
        sknbmix.bootstrap(
            plain, X, size_factors=size_factors, n_resamples=2, ci_method="percentile"
        )
    with pytest.raises(ValueError, match="fitted without size factors"):
        sknbmix.bootstrap(
            copy.deepcopy(plain).set_params(size_factors="total"),
            X,
            n_resamples=2,
            ci_method="percentile",
        )
    with pytest.raises(ValueError, match="size_factors has 3 values but X has 400"):
        sknbmix.bootstrap(
            depth_fit,
            X,
            size_factors=[1.0, 2.0, 3.0],
            n_resamples=2,
            ci_method="percentile",
        )
    bad = size_factors.copy()
    bad[5] = -1.0
    with pytest.raises(ValueError, match=r"size_factors\[5\] is negative"):
        sknbmix.bootstrap(
            depth_fit, X, size_factors=bad, n_resamples=2, ci_method="percentile"
        )
    # An unfitted estimator is fitted with them.
    res = sknbmix.bootstrap(
        NegBinomMixture(2),
        X,
        size_factors=size_factors,
        n_resamples=2,
        random_state=0,
        ci_method="percentile",
    )
    for name in PARAMETERS:
        np.testing.assert_array_equal(
            res.point_estimate[name], getattr(depth_fit, f"{name}_")
        )


@pytest.mark.parametrize("method", ["parametric", "nonparametric"])
def test_size_factors_sparse_equals_dense(depth_genes, method):
    X = depth_genes
    model = NegBinomMixture(2, size_factors="total").fit(X)
    kwargs = dict(ci_method="percentile", n_resamples=6, method=method, random_state=10)
    dense = sknbmix.bootstrap(model, X, **kwargs)
    sparse = sknbmix.bootstrap(model, sp.csr_matrix(X), **kwargs)
    assert sparse.n_failed == dense.n_failed == 0
    for name in PARAMETERS:
        np.testing.assert_allclose(
            sparse.estimates[name], dense.estimates[name], rtol=1e-7
        )
