"""NegBinomMixture as a scikit-learn estimator: API, validation, sparse input."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import estimator_loglik, mixture_loglik, mixture_predict_proba
from scipy.special import logsumexp
from scipy.stats import poisson
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknbmix import NegBinomMixture
from sknbmix._nbinom import ALPHA_MAX
from sknbmix.datasets import load_singer
from sknbmix.exceptions import DegenerateComponentWarning, PoissonLimitWarning

# -- scikit-learn's estimator checks -------------------------------------------

_SPARSE_CHECK_REASON = (
    "scikit-learn 1.9 crashes inside this check for any non-classifier with "
    "predict_proba ('NoneType' object has no attribute 'multi_class'); sparse "
    "input is tested against dense input in this file instead."
)


def _expected_failed_checks(estimator):
    return {
        "check_estimator_sparse_array": _SPARSE_CHECK_REASON,
        "check_estimator_sparse_matrix": _SPARSE_CHECK_REASON,
    }


@parametrize_with_checks(
    [NegBinomMixture()], expected_failed_checks=_expected_failed_checks
)
def test_sklearn_estimator_checks(estimator, check):
    # The checks' data are under-dispersed (variance below the mean), where
    # alpha stops at its cap and the fit says so: that warning is right, but
    # noise here. Any other warning still shows.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PoissonLimitWarning)
        check(estimator)


def test_tags_are_pinned():
    tags = get_tags(NegBinomMixture())
    # "categorical" is what makes the estimator checks feed integer counts.
    assert tags.input_tags.categorical is True
    assert tags.input_tags.positive_only is True
    assert tags.input_tags.sparse is True
    assert tags.input_tags.two_d_array is True
    assert tags.classifier_tags is None
    assert tags.regressor_tags is None


# -- helpers ------------------------------------------------------------------


def _assert_same_fit(a, b, rtol=1e-9):
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(a.alpha_, b.alpha_, rtol=rtol)
    np.testing.assert_allclose(a.b_, b.b_, rtol=rtol)
    np.testing.assert_allclose(a.means_, b.means_, rtol=rtol)


# -- sparse input ----------------------------------------------------------------


_SPARSE_FORMATS = [
    sp.csr_matrix,
    sp.csc_matrix,
    sp.csr_array,
    sp.csc_array,
    sp.coo_matrix,
]


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("to_sparse", _SPARSE_FORMATS, ids=lambda f: f.__name__)
def test_sparse_equals_dense(singer, to_sparse, shared_weights):
    dense_fit = NegBinomMixture(n_components=2, shared_weights=shared_weights)
    dense_fit.fit(singer)
    X = to_sparse(singer)
    sparse_fit = NegBinomMixture(n_components=2, shared_weights=shared_weights)
    sparse_fit.fit(X)
    _assert_same_fit(sparse_fit, dense_fit)
    assert sparse_fit.score(X) == pytest.approx(dense_fit.score(singer), abs=1e-12)
    np.testing.assert_allclose(
        sparse_fit.score_samples(X), dense_fit.score_samples(singer), rtol=1e-12
    )
    np.testing.assert_allclose(
        sparse_fit.predict_proba(X),
        dense_fit.predict_proba(singer),
        rtol=1e-9,
        atol=1e-14,
    )
    np.testing.assert_array_equal(sparse_fit.predict(X), dense_fit.predict(singer))
    # A model fitted on dense data predicts sparse data, and vice versa.
    np.testing.assert_allclose(
        dense_fit.score_samples(X), dense_fit.score_samples(singer), rtol=1e-12
    )
    # The package's likelihood of sparse data agrees with scipy's.
    assert sparse_fit.score(X) * X.shape[0] == pytest.approx(
        estimator_loglik(sparse_fit, singer), abs=1e-8
    )


def test_sparse_explicit_zeros_and_unsorted_indices(singer):
    X = sp.csr_matrix(singer)
    # Store explicit zeros, and reverse the order of the column indices.
    rows = np.repeat(np.arange(X.shape[0]), 4)
    cols = np.tile(np.arange(4)[::-1], X.shape[0])
    data = singer[rows, cols].astype(float)
    indptr = np.arange(0, 4 * X.shape[0] + 1, 4)
    X_messy = sp.csr_matrix((data, cols, indptr), shape=singer.shape)
    assert X_messy.nnz == singer.size
    assert not X_messy.has_sorted_indices
    messy_fit = NegBinomMixture(n_components=2).fit(X_messy)
    dense_fit = NegBinomMixture(n_components=2).fit(singer)
    _assert_same_fit(messy_fit, dense_fit)


def _forbid_densification(monkeypatch, X):
    def refuse(self, *args, **kwargs):
        raise AssertionError("sparse input was densified")

    for cls in type(X).__mro__:
        for name in ("toarray", "todense", "__array__"):
            if name in vars(cls):
                monkeypatch.setattr(cls, name, refuse)


def test_large_sparse_input_is_not_densified(monkeypatch):
    rng = np.random.default_rng(0)
    n_samples, n_features = 20_000, 50
    # Two cell types: the second (30%) expresses the first 25 genes more.
    # About 5% of the counts are non-zero.
    labels = rng.random(n_samples) < 0.3
    rate = np.where(labels[:, None] & (np.arange(n_features) < 25), 0.12, 0.03)
    X = sp.csr_matrix(rng.negative_binomial(2.0, 2.0 / (2.0 + rate)))
    assert 0.03 < X.nnz / (n_samples * n_features) < 0.07
    _forbid_densification(monkeypatch, X)
    with pytest.raises(AssertionError, match="densified"):
        X.toarray()
    # (Floating-point warnings from this fit are the subject of
    # test_low_count_data_no_floating_point_warnings.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = NegBinomMixture(n_components=2).fit(X)
    assert est.converged_
    assert est.alpha_.shape == (2, n_features)
    # The two cell types are found.
    np.testing.assert_allclose(est.weights_, [0.7, 0.3], atol=0.02)
    assert np.all(np.isfinite(est.alpha_)) and np.all(np.isfinite(est.b_))
    scores = est.score_samples(X)
    assert scores.shape == (n_samples,) and np.all(np.isfinite(scores))
    proba = est.predict_proba(X[:100])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    accuracy = np.mean(est.predict(X[:2000]) == labels[:2000])
    monkeypatch.undo()
    # Cells are assigned about as well as the true model assigns them.
    true_b = np.where(np.arange(n_features) < 25, 0.12, 0.03) / 2.0
    true_proba = mixture_predict_proba(
        X[:2000],
        [0.7, 0.3],
        np.full((2, n_features), 2.0),
        np.vstack([np.full(n_features, 0.015), true_b]),
    )
    true_accuracy = np.mean(true_proba.argmax(axis=1) == labels[:2000])
    assert accuracy >= true_accuracy - 0.02, (accuracy, true_accuracy)
    # On a small slice, the sparse fit is the dense fit.
    small = X[:500]
    _assert_same_fit(
        NegBinomMixture(n_components=2).fit(small),
        NegBinomMixture(n_components=2).fit(small.toarray()),
    )


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize(
    "make_input",
    [
        lambda X: X.copy(),
        lambda X: X.astype(float),
        lambda X: np.asfortranarray(X.astype(float)),
        sp.csr_matrix,
        lambda X: sp.csc_matrix(X.astype(float)),
    ],
    ids=["int", "float", "fortran", "csr", "csc"],
)
def test_callers_array_not_modified(singer, make_input, shared_weights):
    X = make_input(singer)
    if sp.issparse(X):
        before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    else:
        before = X.copy()
    est = NegBinomMixture(n_components=2, shared_weights=shared_weights).fit(X)
    est.predict_proba(X)
    est.score(X)
    est.fit_predict(X)
    if sp.issparse(X):
        for old, new in zip(before, (X.data, X.indices, X.indptr), strict=True):
            np.testing.assert_array_equal(old, new)
    else:
        assert X.dtype == before.dtype
        np.testing.assert_array_equal(X, before)


# -- validation ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_fractional_values_are_rejected_with_position(singer, fmt):
    X = singer.astype(float)
    X[3, 2] = 0.5
    X = X if fmt == "dense" else sp.csr_matrix(X).asformat(fmt)
    with pytest.raises(ValueError, match=r"0\.5") as info:
        NegBinomMixture(n_components=2).fit(X)
    assert "row 3, column 2" in str(info.value)
    # The same check guards prediction.
    est = NegBinomMixture(n_components=2).fit(singer)
    with pytest.raises(ValueError, match=r"0\.5.*row 3"):
        est.predict(X)


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_negative_values_are_rejected(singer, fmt):
    X = singer.copy()
    X[5, 1] = -2
    X = X if fmt == "dense" else sp.csr_matrix(X)
    with pytest.raises(ValueError, match="Negative values in data") as info:
        NegBinomMixture(n_components=2).fit(X)
    assert "row 5, column 1" in str(info.value)
    est = NegBinomMixture(n_components=2).fit(singer)
    with pytest.raises(ValueError, match="Negative values in data"):
        est.score_samples(X)


def test_whole_floats_equal_integer_input(singer):
    int_fit = NegBinomMixture(n_components=2).fit(singer)
    for X in (singer.astype(float), singer.astype(np.float32), singer.astype(np.int32)):
        other = NegBinomMixture(n_components=2).fit(X)
        _assert_same_fit(other, int_fit, rtol=1e-12)
        np.testing.assert_array_equal(other.predict(X), int_fit.predict(singer))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(singer, bad):
    X = singer.astype(float)
    X[7, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        NegBinomMixture(n_components=2).fit(X)


def test_fewer_samples_than_components(singer):
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        NegBinomMixture(n_components=5).fit(singer[:3])


@pytest.mark.parametrize(
    "params",
    [
        {"n_components": 0},
        {"n_components": 1.5},
        {"solver": "x"},
        {"tol": -1},
        {"max_iter": -1},
        {"n_init": 0},
        {"init_params": "kmeans++"},
        {"shared_weights": "yes"},
    ],
)
def test_invalid_parameters_raise_at_fit(singer, params):
    est = NegBinomMixture(**params)  # __init__ only stores.
    name = next(iter(params))
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        est.fit(singer)


def test_fit_does_not_change_parameters(singer):
    est = NegBinomMixture(n_components=2, n_init=2, random_state=3)
    params = est.get_params()
    est.fit(singer)
    assert est.get_params() == params


def test_unfitted_estimator_raises(singer):
    from sklearn.exceptions import NotFittedError

    est = NegBinomMixture(n_components=2)
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(NotFittedError):
            getattr(est, method)(singer)
    with pytest.raises(NotFittedError):
        est.sample(3)


def test_wrong_number_of_features(singer):
    est = NegBinomMixture(n_components=2).fit(singer)
    with pytest.raises(ValueError, match="features"):
        est.predict(singer[:, :3])


# -- pandas ---------------------------------------------------------------------


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    df, _ = load_singer(as_frame=True, return_X_y=True)
    est = NegBinomMixture(n_components=2).fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    assert est.n_features_in_ == 4
    expected = NegBinomMixture(n_components=2).fit(df.to_numpy())
    assert not hasattr(expected, "feature_names_in_")
    _assert_same_fit(est, expected, rtol=1e-12)
    # Other column names: an error, as every scikit-learn estimator does.
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(df.rename(columns={"Rex1": "Zfp42"}))
    with pytest.raises(ValueError, match="same order"):
        est.predict(df[df.columns[::-1]])
    # No names at all: a warning, and the same answer.
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        labels = est.predict(df.to_numpy())
    np.testing.assert_array_equal(labels, est.predict(df))
    with pytest.warns(UserWarning, match="fitted without feature names"):
        expected.predict(df)
    assert isinstance(df, pd.DataFrame)


# -- fitting behaviour ---------------------------------------------------------


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_fit_predict_equals_fit_then_predict(singer, n_components, shared_weights):
    params = {"n_components": n_components, "shared_weights": shared_weights}
    labels = NegBinomMixture(**params).fit_predict(singer)
    est = NegBinomMixture(**params).fit(singer)
    np.testing.assert_array_equal(labels, est.predict(singer))
    expected_shape = singer.shape[:1] if shared_weights else singer.shape
    assert labels.shape == expected_shape
    assert labels.min() >= 0 and labels.max() < n_components


@pytest.mark.parametrize("shared_weights", [True, False])
def test_warm_start_monotone_log_likelihood(singer, shared_weights):
    est = NegBinomMixture(
        n_components=2, shared_weights=shared_weights, warm_start=True, max_iter=1
    )
    bounds, converged = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(20):
            est.fit(singer)
            converged.append(est.converged_)
            bounds.append(est.lower_bound_)
            # lower_bound_ is the mean log-likelihood at the fitted parameters.
            assert est.lower_bound_ * singer.shape[0] == pytest.approx(
                estimator_loglik(est, singer), abs=1e-8
            )
    steps = np.diff(bounds)
    assert np.all(steps >= -1e-10), steps
    assert bounds[-1] > bounds[0]
    # One EM iteration from a start (or from the last fit) is not convergence.
    assert not any(converged), converged


def test_warm_start_from_optimum_stays_there(rex1):
    est = NegBinomMixture(n_components=2, warm_start=True).fit(rex1)
    first = estimator_loglik(est, rex1)
    est.fit(rex1)
    assert est.converged_
    assert abs(estimator_loglik(est, rex1) - first) < 1e-8


@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 2},
        {"max_iter": 2, "shared_weights": False},
        {"max_iter": 1, "solver": "powell"},
    ],
)
def test_convergence_warning(singer, params):
    est = NegBinomMixture(n_components=2, **params)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est.fit(singer)
    assert est.converged_ is False
    # The fit is still usable.
    assert np.isfinite(est.score(singer))


def test_converged_fit_is_quiet(singer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = NegBinomMixture(n_components=2).fit(singer)
    assert est.converged_ is True
    assert est.n_iter_ >= 1


@pytest.mark.parametrize(
    "shared_weights, n_features, n_components, n_parameters",
    [
        (True, 1, 2, 5),
        (True, 4, 2, 17),
        (True, 4, 3, 26),
        (False, 4, 2, 20),
        (False, 4, 3, 32),
    ],
)
def test_bic_aic_by_hand(
    singer, shared_weights, n_features, n_components, n_parameters
):
    X = singer[:, :n_features]
    K, G = n_components, n_features
    if shared_weights:
        assert n_parameters == (K - 1) + 2 * K * G
    else:
        assert n_parameters == G * (K - 1) + 2 * K * G
    est = NegBinomMixture(n_components=K, shared_weights=shared_weights).fit(X)
    n = X.shape[0]
    loglik = est.score(X) * n
    assert loglik == pytest.approx(estimator_loglik(est, X), abs=1e-8)
    assert est.aic(X) == pytest.approx(-2 * loglik + 2 * n_parameters, rel=1e-12)
    assert est.bic(X) == pytest.approx(
        -2 * loglik + n_parameters * np.log(n), rel=1e-12
    )


def test_bic_prefers_two_components_on_rex1(rex1):
    bic = [NegBinomMixture(n_components=k).fit(rex1).bic(rex1) for k in (1, 2, 3)]
    assert int(np.argmin(bic)) + 1 == 2


# -- scikit-learn machinery ------------------------------------------------------


def test_clone_get_set_params(singer):
    est = NegBinomMixture(n_components=3, shared_weights=False, tol=1e-7, n_init=2)
    params = est.get_params()
    assert params["n_components"] == 3 and params["shared_weights"] is False
    assert set(params) == {
        "n_components",
        "shared_weights",
        "solver",
        "tol",
        "max_iter",
        "n_init",
        "init_params",
        "random_state",
        "warm_start",
        "n_jobs",
        "verbose",
        "size_factors",
    }
    est.fit(singer)
    copy = clone(est)
    assert copy.get_params() == params
    assert not hasattr(copy, "weights_")
    assert copy.set_params(n_components=2, solver="powell") is copy
    assert copy.n_components == 2 and copy.solver == "powell"
    assert est.n_components == 3


def test_pickle_round_trip(singer):
    est = NegBinomMixture(n_components=2).fit(singer)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(singer), est.predict(singer))
    np.testing.assert_array_equal(
        restored.predict_proba(singer), est.predict_proba(singer)
    )
    assert restored.score(singer) == est.score(singer)
    for name in ("weights_", "alpha_", "b_", "means_"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(est, name))


def test_pipeline(singer):
    pipe = make_pipeline(FunctionTransformer(), NegBinomMixture(n_components=2))
    pipe.fit(singer)
    est = NegBinomMixture(n_components=2).fit(singer)
    assert pipe.score(singer) == pytest.approx(est.score(singer), rel=1e-12)
    np.testing.assert_array_equal(pipe.predict(singer), est.predict(singer))
    np.testing.assert_allclose(pipe.predict_proba(singer), est.predict_proba(singer))
    np.testing.assert_allclose(pipe.score_samples(singer), est.score_samples(singer))


def test_grid_search_selects_n_components(rex1):
    search = GridSearchCV(NegBinomMixture(), {"n_components": [1, 2, 3]}, cv=5)
    search.fit(rex1)
    scores = search.cv_results_["mean_test_score"]
    print(f"\nGridSearchCV on Rex1: {search.best_params_}, mean scores {scores}")
    assert search.best_params_["n_components"] in (2, 3)
    # One component is clearly worse than a mixture.
    assert scores[0] < scores[1] - 0.1
    assert np.all(np.isfinite(scores))
    # The refitted best estimator is the full-data fit.
    best = search.best_estimator_
    expected = NegBinomMixture(**search.best_params_).fit(rex1)
    assert best.score(rex1) == pytest.approx(expected.score(rex1), abs=1e-9)


# -- sampling ----------------------------------------------------------------------


@pytest.mark.parametrize("shared_weights", [True, False])
def test_sample(singer, shared_weights):
    est = NegBinomMixture(
        n_components=3, shared_weights=shared_weights, random_state=7
    ).fit(singer)
    X, y = est.sample(500)
    assert X.shape == (500, 4)
    assert np.issubdtype(X.dtype, np.integer)
    assert np.all(X >= 0)
    expected_y_shape = (500,) if shared_weights else (500, 4)
    assert y.shape == expected_y_shape
    assert np.issubdtype(y.dtype, np.integer)
    assert y.min() >= 0 and y.max() < 3
    X_again, y_again = est.sample(500)
    np.testing.assert_array_equal(X, X_again)
    np.testing.assert_array_equal(y, y_again)
    X_other, _ = clone(est).set_params(random_state=8).fit(singer).sample(500)
    assert not np.array_equal(X, X_other)
    # The sample can be scored and refitted.
    assert np.isfinite(est.score(X))


def test_sample_invalid_n_samples(singer):
    est = NegBinomMixture(n_components=2).fit(singer)
    for n in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_samples"):
            est.sample(n)


# -- canonical order and determinism -----------------------------------------------


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("n_components", [2, 3])
def test_canonical_order_and_row_permutation(singer, n_components, shared_weights):
    est = NegBinomMixture(n_components=n_components, shared_weights=shared_weights)
    est.fit(singer)
    if shared_weights:
        assert np.all(np.diff(est.means_.sum(axis=1)) > 0)
    else:
        assert np.all(np.diff(est.means_, axis=0) > 0)
    for seed in range(3):
        permutation = np.random.default_rng(seed).permutation(singer.shape[0])
        permuted = clone(est).fit(singer[permutation])
        assert permuted.score(singer) == pytest.approx(est.score(singer), abs=1e-10)
        # The order of the rows must not matter beyond rounding: the same
        # optimum, with parameters as close as the stopping rule settles them.
        # It stops on the log-likelihood (within tol * n_samples = 3e-7 of the
        # maximum), and the four-gene optimum is flat enough that parameters
        # then agree to about 1e-5, not 1e-8: summation order differs.
        np.testing.assert_allclose(permuted.weights_, est.weights_, rtol=1e-4)
        np.testing.assert_allclose(permuted.alpha_, est.alpha_, rtol=1e-4)
        np.testing.assert_allclose(permuted.b_, est.b_, rtol=1e-4)
        np.testing.assert_allclose(
            permuted.predict_proba(singer), est.predict_proba(singer), atol=1e-5
        )
    # Refitting the same data gives the same result exactly.
    again = clone(est).fit(singer)
    _assert_same_fit(again, est, rtol=0)


# -- the Poisson limit -------------------------------------------------------------


def _poisson_mixture_loglik(x, n_components, n_iter=3000):
    """Maximum log-likelihood of a Poisson mixture, by plain EM (scipy only)."""
    x = np.asarray(x, dtype=float).ravel()
    rate = np.quantile(x, (np.arange(n_components) + 0.5) / n_components) + 0.1
    weights = np.full(n_components, 1.0 / n_components)
    for _ in range(n_iter):
        joint = np.log(weights) + poisson.logpmf(x[:, None], rate)
        resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
        weights = resp.mean(axis=0)
        rate = resp.T @ x / resp.sum(axis=0)
    joint = np.log(weights) + poisson.logpmf(x[:, None], rate)
    return float(logsumexp(joint, axis=1).sum())


@pytest.mark.parametrize("n_components", [1, 2])
def test_under_dispersed_data(n_components):
    rng = np.random.default_rng(0)
    # Binomial counts: variance below the mean in every group.
    groups = [rng.binomial(20, 0.5, size=(500, 1))]
    if n_components == 2:
        groups = [rng.binomial(10, 0.5, (300, 1)), rng.binomial(60, 0.5, (200, 1))]
    for group in groups:
        assert group.var() < group.mean()
    X = np.concatenate(groups)
    # The Poisson limit is reported, by its own warning alone.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = NegBinomMixture(n_components=n_components).fit(X)
        scores = est.score_samples(X)
    assert [w.category for w in caught] == [PoissonLimitWarning]
    assert f"in {n_components} of {n_components} components" in str(caught[0].message)
    assert est.poisson_limit_.shape == est.alpha_.shape
    assert est.poisson_limit_.all()
    assert not est.degenerate_components_.any()
    assert est.converged_
    assert np.all(np.isfinite(est.alpha_)) and np.all(np.isfinite(est.b_))
    assert np.all(np.isfinite(scores))
    # Every component is in the Poisson limit: alpha stops at the cap.
    np.testing.assert_allclose(est.alpha_, ALPHA_MAX)
    loglik = estimator_loglik(est, X)
    poisson_loglik = _poisson_mixture_loglik(X, n_components)
    assert abs(loglik - poisson_loglik) < 1e-3
    assert est.score(X) * X.shape[0] == pytest.approx(loglik, abs=1e-8)
    if n_components == 1:
        np.testing.assert_allclose(est.means_[0, 0], X.mean(), rtol=1e-8)
    else:
        np.testing.assert_allclose(est.weights_, [0.6, 0.4], atol=0.05)
        np.testing.assert_allclose(est.means_[:, 0], [5, 30], rtol=0.1)


def test_under_dispersed_multi_gene():
    rng = np.random.default_rng(1)
    X = rng.binomial([20, 30, 8], 0.4, size=(400, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", PoissonLimitWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        est = NegBinomMixture(n_components=2).fit(X)
    assert np.all(np.isfinite(est.alpha_))
    # Where alpha is capped the fit says so, and nowhere else.
    np.testing.assert_array_equal(
        est.poisson_limit_, est.alpha_ >= ALPHA_MAX * (1 - 1e-12)
    )
    # At most the cap (to rounding: it is stored as exp(log(ALPHA_MAX))).
    assert np.all(est.alpha_ <= ALPHA_MAX * (1 + 1e-12))
    rate = X.mean(axis=0)
    poisson_loglik = poisson.logpmf(X, rate).sum()
    loglik = mixture_loglik(X, est.weights_, est.alpha_, est.b_)
    assert abs(loglik - poisson_loglik) < 1e-3 or loglik > poisson_loglik


def test_low_count_data_no_floating_point_warnings():
    # Mostly zeros, a few ones and twos: some components sit near the Poisson
    # limit, where the Newton step for alpha must not divide by a zero slope
    # in the open (numpy RuntimeWarnings leaking to the user).
    rng = np.random.default_rng(0)
    X = rng.negative_binomial(2.0, 2.0 / 2.05, size=(500, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = NegBinomMixture(n_components=2).fit(X)
    runtime = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert runtime == [], f"floating-point warnings leaked from fit: {runtime}"
    assert np.all(np.isfinite(est.alpha_)) and np.all(np.isfinite(est.b_))
    assert np.isfinite(est.score(X))


@pytest.mark.parametrize("shared_weights", [True, False])
def test_fitted_model_ignores_later_hyperparameters(singer, shared_weights):
    # After fit, the fitted attributes say how many components there are and
    # whether the weights are shared, as in GaussianMixture: changing the
    # hyperparameters must not break (or change) prediction and scoring.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = NegBinomMixture(2, shared_weights=shared_weights).fit(singer)
    before = {
        "proba": est.predict_proba(singer),
        "score": est.score(singer),
        "bic": est.bic(singer),
        "aic": est.aic(singer),
        "labels": est.predict(singer),
        "draw": est.set_params(random_state=0).sample(5),
    }
    if not shared_weights:
        before["per_feature"] = est.bic(singer, per_feature=True)
    est.set_params(n_components=3, shared_weights=not shared_weights)
    np.testing.assert_array_equal(est.predict_proba(singer), before["proba"])
    np.testing.assert_array_equal(est.predict(singer), before["labels"])
    assert est.score(singer) == before["score"]
    assert est.bic(singer) == before["bic"] and est.aic(singer) == before["aic"]
    for got, want in zip(est.sample(5), before["draw"], strict=True):
        np.testing.assert_array_equal(got, want)
    if not shared_weights:
        np.testing.assert_array_equal(
            est.bic(singer, per_feature=True), before["per_feature"]
        )
    else:
        with pytest.raises(ValueError, match="per_feature=True needs"):
            est.bic(singer, per_feature=True)


def test_n_iter_of_independent_features_with_restarts(singer):
    # Each feature keeps its own best initialisation; n_iter_ is the largest
    # over the features of the iterations of that kept initialisation, which
    # is what each feature fitted alone (the same random restarts) reports.
    params = dict(n_components=2, n_init=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = NegBinomMixture(shared_weights=False, **params).fit(singer)
        alone = [NegBinomMixture(**params).fit(singer[:, [g]]) for g in range(4)]
    for g, single in enumerate(alone):
        np.testing.assert_allclose(joint.means_[:, [g]], single.means_, rtol=1e-10)
    assert joint.n_iter_ == max(single.n_iter_ for single in alone)
    assert len({single.n_iter_ for single in alone}) > 1


def test_component_collapsed_onto_zero_is_flagged():
    # Excess zeros: the best two-component fit is a point mass at zero beside
    # a negative binomial. Its alpha and b mean nothing; it is flagged.
    rng = np.random.default_rng(0)
    n = 500
    nb = rng.negative_binomial(5, 5 / (5 + 20), n)
    X = np.where(rng.random(n) < 0.3, 0, nb)[:, None]
    with pytest.warns(DegenerateComponentWarning, match="collapsed onto zero"):
        model = NegBinomMixture(2).fit(X)
    assert model.means_[0, 0] < 1e-4 < model.means_[1, 0]
    np.testing.assert_array_equal(model.degenerate_components_, [True, False])
