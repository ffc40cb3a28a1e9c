"""Issue 7, parts 1 and 2: bad input gets a clear error, hard but valid data
gets a well-defined answer.

Part 1 is one table, ``BAD_INPUT``: each row is an id, a callable that makes
the bad input and feeds it to the estimator, the exception type expected and
a regex its message must match (key words only, never the full message). For
value-level problems in the data the regex also asks for the position, as
``row i, column j``.

Part 2 fits degenerate but valid data and checks that the answer is
well-defined: finite parameters, a finite score, responsibilities that sum
to one and no floating-point RuntimeWarning leaking out of the fit.
"""

import functools
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sknbmix import NegBinomMixture
from sknbmix._nbinom import ALPHA_MAX, MEAN_MIN
from sknbmix.datasets import load_singer
from sknbmix.exceptions import DegenerateComponentWarning, PoissonLimitWarning

# -- data -------------------------------------------------------------------


@functools.cache
def _singer():
    X, _ = load_singer(return_X_y=True)
    X.setflags(write=False)
    return X


@functools.cache
def _fitted():
    """A two-component fit on the four genes, for the predict-side cases."""
    return NegBinomMixture(n_components=2).fit(_singer())


def _with(value, row=7, col=2, dtype=float):
    """The built-in counts with one entry replaced."""
    X = _singer().astype(dtype)
    X[row, col] = value
    return X


def _sparse_with(value, fmt, row=4, col=1):
    """The built-in counts as a sparse matrix with one stored value replaced."""
    X = sp.csr_matrix(_singer().astype(float))
    assert X[row, col] != 0  # a stored value, not an implicit zero
    X[row, col] = value
    return X.asformat(fmt)


def _fit(X, n_components=2, **params):
    return lambda: NegBinomMixture(n_components=n_components, **params).fit(X)


def _call(method, X):
    return lambda: getattr(_fitted(), method)(X)


def _unfitted(method, *args):
    return lambda: getattr(NegBinomMixture(n_components=2), method)(*args)


def _bad_param(**params):
    return lambda: NegBinomMixture(**params).fit(_singer())


# -- part 1: bad input gets a clear error ------------------------------------

_WHERE = r"row 7, column 2"


def _case(case_id, action, exc, regex, *marks):
    return pytest.param(action, exc, regex, id=case_id, marks=marks)


BAD_INPUT = [
    # Values that are not counts, with their position.
    _case("negative", _fit(_with(-2)), ValueError, rf"Negative values.*{_WHERE}"),
    _case("negative-int", _fit(_with(-1, dtype=int)), ValueError, rf"-1 at {_WHERE}"),
    _case("fractional", _fit(_with(2.5)), ValueError, rf"non-integer.*2\.5.*{_WHERE}"),
    _case("tiny-fraction", _fit(_with(1e-3)), ValueError, rf"non-integer.*{_WHERE}"),
    _case("nan", _fit(_with(np.nan)), ValueError, rf"NaN.*{_WHERE}"),
    _case("inf", _fit(_with(np.inf)), ValueError, rf"infinity.*{_WHERE}"),
    _case(
        "minus-inf",
        _fit(_with(-np.inf)),
        ValueError,
        rf"infinity.*{_WHERE}",
    ),
    _case(
        "string",
        _fit(_with("a", dtype=object).astype(str)),
        ValueError,
        rf"string.*'a'.*{_WHERE}",
    ),
    _case(
        "object-none",
        _fit(_with(None, dtype=object)),
        ValueError,
        rf"(NaN|None|missing).*{_WHERE}",
    ),
    # Numbers written as text are a parsing mistake upstream (a CSV read
    # without types).
    _case(
        "numeric-strings",
        _fit(_singer().astype(str)),
        ValueError,
        r"string",
    ),
    # Booleans are not counts: a True/False matrix is a thresholded or
    # binarised matrix, and a negative binomial on {0, 1} is meaningless.
    # Today they are read silently as 0 and 1.
    _case("boolean", _fit(_singer() > 5), ValueError, r"[Bb]oolean"),
    _case(
        "boolean-sparse",
        _fit(sp.csr_matrix(_singer() > 5)),
        ValueError,
        r"[Bb]oolean",
    ),
    # Whole numbers beyond 2**53, which floating point cannot hold exactly.
    _case(
        "above-int64",
        _fit(_with(1e19)),
        ValueError,
        rf"(too large|overflow|exceed).*{_WHERE}",
        pytest.mark.filterwarnings("ignore:invalid value encountered in cast"),
    ),
    # Sparse input: the stored values are checked, with their position.
    _case(
        "csr-negative",
        _fit(_sparse_with(-3, "csr")),
        ValueError,
        r"Negative values.*-3 at row 4, column 1",
    ),
    _case(
        "csc-negative",
        _fit(_sparse_with(-3, "csc")),
        ValueError,
        r"Negative values.*-3 at row 4, column 1",
    ),
    _case(
        "csr-fractional",
        _fit(_sparse_with(0.25, "csr")),
        ValueError,
        r"non-integer.*0\.25 at row 4, column 1",
    ),
    _case(
        "csc-fractional",
        _fit(_sparse_with(0.25, "csc")),
        ValueError,
        r"non-integer.*0\.25 at row 4, column 1",
    ),
    _case(
        "coo-fractional",
        _fit(_sparse_with(0.25, "coo")),
        ValueError,
        r"non-integer.*0\.25 at row 4, column 1",
    ),
    # The same checks guard prediction.
    _case(
        "predict-negative",
        _call("predict", _with(-2)),
        ValueError,
        rf"Negative values.*{_WHERE}",
    ),
    _case(
        "score_samples-csc-fractional",
        _call("score_samples", _sparse_with(0.25, "csc")),
        ValueError,
        r"non-integer.*0\.25 at row 4, column 1",
    ),
    _case(
        "predict_proba-nan",
        _call("predict_proba", _with(np.nan)),
        ValueError,
        rf"NaN.*{_WHERE}",
    ),
    # Shapes.
    _case("empty-rows", _fit(np.empty((0, 4))), ValueError, r"0 sample\(s\)"),
    _case("empty-columns", _fit(np.empty((5, 0))), ValueError, r"0 feature\(s\)"),
    _case("empty-list", _fit([]), ValueError, r"Expected 2D array"),
    _case(
        "one-sample",
        _fit(_singer()[:1], n_components=1),
        ValueError,
        r"1 sample\(s\).*minimum of 2",
    ),
    _case(
        "fewer-samples-than-components",
        _fit(_singer()[:3], n_components=5),
        ValueError,
        r"n_samples >= n_components.*n_components = 5, n_samples = 3",
    ),
    _case(
        "1d-fit",
        _fit(_singer()[:, 0]),
        ValueError,
        r"Expected 2D array, got 1D array.*Reshape your data",
    ),
    _case(
        "1d-predict",
        _call("predict", _singer()[:, 0]),
        ValueError,
        r"Expected 2D array, got 1D array.*Reshape your data",
    ),
    _case("3d-fit", _fit(np.ones((3, 2, 2))), ValueError, r"dim 3"),
    *(
        _case(
            f"{method}-{n}-features",
            _call(method, _singer()[:, [0] * n]),
            ValueError,
            rf"X has {n} features, but NegBinomMixture is expecting 4 features",
        )
        for method in (
            "predict",
            "predict_proba",
            "score",
            "score_samples",
            "bic",
            "aic",
        )
        for n in (3, 5)
    ),
    # Parameters out of range: scikit-learn's InvalidParameterError, at fit.
    *(
        _case(
            f"param-{name}={value!r}",
            _bad_param(**{name: value}),
            InvalidParameterError,
            rf"'{name}' parameter of NegBinomMixture must be .*"
            rf"Got {re.escape(repr(value))}",
        )
        for name, value in (
            ("n_components", 0),
            ("n_components", 1.5),
            ("tol", -1),
            ("max_iter", -1),
            ("n_init", 0),
            ("solver", "newton"),
            ("init_params", "kmeans++"),
        )
    ),
    # Not fitted yet.
    *(
        _case(
            f"unfitted-{method}",
            _unfitted(method, *args),
            NotFittedError,
            r"not fitted yet.*Call 'fit'",
        )
        for method, args in (
            ("predict", (_singer(),)),
            ("predict_proba", (_singer(),)),
            ("score", (_singer(),)),
            ("score_samples", (_singer(),)),
            ("bic", (_singer(),)),
            ("aic", (_singer(),)),
            ("sample", (3,)),
        )
    ),
]


def test_error_types_are_value_errors():
    # The issue asks for ValueError everywhere; scikit-learn's two are.
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize(("action", "exc", "regex"), BAD_INPUT)
def test_bad_input_raises_clear_error(action, exc, regex):
    # (?s): scikit-learn's messages run over several lines.
    with pytest.raises(exc, match="(?s)" + regex) as info:
        action()
    assert isinstance(info.value, ValueError)


def test_bad_input_table_ids_are_unique():
    ids = [case.id for case in BAD_INPUT]
    assert len(ids) == len(set(ids))


# -- part 2: hard but valid data gets a well-defined answer -------------------


def _fit_quietly(X, **params):
    """Fit, failing on any RuntimeWarning (numpy floating-point trouble);
    returns the estimator and the other warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = NegBinomMixture(**params).fit(X)
        est.score(X)
        est.predict_proba(X)
    runtime = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert runtime == [], f"floating-point warnings leaked: {runtime}"
    caught = [w for w in caught if w.category is not RuntimeWarning]
    _assert_reported(est, caught, X.shape[0])
    return est, caught


def _assert_reported(est, caught, n_samples):
    """The Poisson limit and degenerate components are reported: by their
    attributes, and by one warning each exactly when there are any."""
    categories = [w.category for w in caught]
    assert est.poisson_limit_.shape == est.alpha_.shape
    np.testing.assert_array_equal(
        est.poisson_limit_, est.alpha_ >= ALPHA_MAX * (1 - 1e-12)
    )
    assert categories.count(PoissonLimitWarning) == int(est.poisson_limit_.any())
    assert est.degenerate_components_.shape == est.weights_.shape
    n_degenerate = np.count_nonzero(est.degenerate_components_)
    assert categories.count(DegenerateComponentWarning) == int(n_degenerate > 0)
    # Empty components are among the degenerate ones.
    empty = est.weights_ * n_samples < 1
    assert np.all(est.degenerate_components_[empty])
    if n_degenerate:
        message = next(
            str(w.message) for w in caught if w.category is DegenerateComponentWarning
        )
        assert message.startswith(f"{n_degenerate} of {est.weights_.size} ")


def _assert_well_defined(est, X):
    for name in ("weights_", "alpha_", "b_", "means_"):
        value = getattr(est, name)
        assert np.all(np.isfinite(value)), f"{name} = {value}"
    assert np.all(est.weights_ >= 0)
    np.testing.assert_allclose(est.weights_.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(est.alpha_ > 0) and np.all(est.b_ > 0)
    assert np.all(est.alpha_ <= ALPHA_MAX * (1 + 1e-12))
    assert np.isfinite(est.score(X))
    assert np.all(np.isfinite(est.score_samples(X)))
    proba = est.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(np.isfinite(est.bic(X)))


_MODES = [
    pytest.param({"shared_weights": True}, id="shared"),
    pytest.param({"shared_weights": False}, id="independent"),
]


def _rex1():
    return _singer()[:, :1]


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("n_components", [1, 2])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_all_zero_gene_alone(mode, n_components, fmt):
    X = np.zeros((100, 1), dtype=int)
    X = X if fmt == "dense" else sp.csr_matrix(X)  # no stored values at all
    est, _ = _fit_quietly(X, n_components=n_components, **mode)
    _assert_well_defined(est, X)
    # A point mass at zero: means at the floor, log-likelihood zero.
    assert np.all(est.means_ <= 10 * MEAN_MIN)
    assert est.score(X) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("mode", _MODES)
def test_all_zero_gene_among_others(mode):
    rex1 = _rex1()
    X = np.hstack([rex1, np.zeros_like(rex1)])
    est, _ = _fit_quietly(X, n_components=2, **mode)
    _assert_well_defined(est, X)
    assert np.all(est.means_[:, 1] <= 10 * MEAN_MIN)
    # The zero gene adds nothing: Rex1's own fit is unchanged.
    alone, _ = _fit_quietly(rex1, n_components=2)
    np.testing.assert_allclose(est.means_[:, 0], alone.means_[:, 0], rtol=1e-5)
    assert est.score(X) == pytest.approx(alone.score(rex1), abs=1e-6)


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("n_components", [1, 2])
def test_constant_gene(mode, n_components):
    X = np.full((100, 1), 5)
    est, _ = _fit_quietly(X, n_components=n_components, **mode)
    _assert_well_defined(est, X)
    np.testing.assert_allclose(est.means_, 5.0, rtol=1e-8)
    # No spread at all: the Poisson limit, alpha at the cap.
    np.testing.assert_allclose(est.alpha_, ALPHA_MAX, rtol=1e-10)


@pytest.mark.parametrize("mode", _MODES)
def test_constant_gene_among_others(mode):
    rex1 = _rex1()
    X = np.hstack([rex1, np.full_like(rex1, 5)])
    est, _ = _fit_quietly(X, n_components=2, **mode)
    _assert_well_defined(est, X)
    np.testing.assert_allclose(est.means_[:, 1], 5.0, rtol=1e-8)


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_gene_with_one_distinct_nonzero_value(mode, n_components):
    X = np.zeros((100, 1), dtype=int)
    X[::4] = 7
    est, _ = _fit_quietly(X, n_components=n_components, **mode)
    _assert_well_defined(est, X)
    if n_components == 1:
        assert est.means_[0, 0] == pytest.approx(1.75, rel=1e-8)
    else:
        # A component at zero and one near seven, with a quarter of the weight.
        assert est.means_.max() == pytest.approx(7.0, rel=0.01)
        assert est.weights_.ravel()[-1] == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("n_components", [1, 2])
def test_poisson_like_genes_reach_the_documented_cap(mode, n_components):
    rng = np.random.default_rng(0)
    # Binomial counts: variance below the mean, so no finite alpha maximises.
    X = rng.binomial(40, 0.5, size=(300, 2))
    assert np.all(X.var(axis=0) < X.mean(axis=0))
    est, caught = _fit_quietly(X, n_components=n_components, **mode)
    _assert_well_defined(est, X)
    # _nbinom.ALPHA_MAX, documented in the class Notes: alpha stops there.
    assert est.alpha_.max() == pytest.approx(ALPHA_MAX, rel=1e-10)
    if n_components == 1:
        np.testing.assert_allclose(est.alpha_, ALPHA_MAX, rtol=1e-10)
        np.testing.assert_allclose(est.means_[0], X.mean(axis=0), rtol=1e-8)
    # A PoissonLimitWarning says so (checked in _fit_quietly, with
    # poisson_limit_), and the fit converges.
    assert PoissonLimitWarning in [w.category for w in caught]
    assert est.poisson_limit_.any()
    assert est.converged_
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_huge_counts():
    rng = np.random.default_rng(1)
    X = np.concatenate(
        [
            rng.negative_binomial(5, 5 / (5 + 1e8), (100, 1)),  # mean 1e8
            rng.negative_binomial(5, 5 / (5 + 1e9), (100, 1)),  # mean 1e9
        ]
    )
    est, _ = _fit_quietly(X, n_components=2)
    _assert_well_defined(est, X)
    np.testing.assert_allclose(est.means_[:, 0], [1e8, 1e9], rtol=0.25)
    np.testing.assert_allclose(est.weights_, 0.5, atol=0.02)


def test_constant_huge_count():
    X = np.full((50, 1), 10**9)
    est, _ = _fit_quietly(X, n_components=1)
    _assert_well_defined(est, X)
    assert est.means_[0, 0] == pytest.approx(1e9, rel=1e-10)


@functools.cache
def _above_int32():
    rng = np.random.default_rng(2)
    X = np.concatenate(
        [
            rng.negative_binomial(5, 5 / (5 + 3e9), (100, 1)),  # mean 3e9
            rng.negative_binomial(5, 5 / (5 + 1e3), (100, 1)),  # mean 1e3
        ]
    ).astype(np.int64)
    assert X.max() > np.iinfo(np.int32).max
    return X


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda X: X, id="int64"),
        pytest.param(lambda X: X.astype(np.float64), id="float64"),
        pytest.param(lambda X: sp.csr_matrix(X.astype(np.float64)), id="csr-float64"),
        pytest.param(sp.csc_matrix, id="csc-int64"),
    ],
)
def test_counts_above_int32(convert):
    X64 = _above_int32()
    X = convert(X64)
    est, _ = _fit_quietly(X, n_components=2)
    _assert_well_defined(est, X)
    # No wrap-around: the high component is where the data are.
    high = X64[X64 > 1e6]
    assert est.means_[1, 0] == pytest.approx(high.mean(), rel=0.05)
    reference, _ = _fit_quietly(X64, n_components=2)
    np.testing.assert_allclose(est.means_, reference.means_, rtol=1e-9)
    np.testing.assert_allclose(est.weights_, reference.weights_, rtol=1e-9)


def test_large_counts_over_many_features_do_not_mix_features():
    # (feature, value) keys of n_features * (max + 1) overflow int64 here.
    rng = np.random.default_rng(3)
    X = rng.integers(0, 10, size=(20, 100)).astype(np.int64)
    X[0, 0] = 10**17
    try:
        est = NegBinomMixture(n_components=1).fit(X)
    except ValueError as error:  # a clear refusal would also do
        assert "too large" in str(error) or "overflow" in str(error)
        return
    # One component: the maximum-likelihood mean is the sample mean.
    np.testing.assert_allclose(est.means_[0], X.mean(axis=0), rtol=1e-8)


@functools.cache
def _two_groups():
    rng = np.random.default_rng(0)
    return np.concatenate(
        [
            rng.negative_binomial(10, 10 / (10 + 5), (150, 1)),  # mean 5
            rng.negative_binomial(10, 10 / (10 + 100), (150, 1)),  # mean 100
        ]
    )


# Every way to start. Random responsibilities used to stop with all
# components equal (the one-component fit repeated).
_INITS = [
    pytest.param({}, id="quantile"),
    pytest.param({"shared_weights": False}, id="quantile-independent"),
    pytest.param({"init_params": "kmeans", "random_state": 0}, id="kmeans"),
    pytest.param({"init_params": "random", "random_state": 0}, id="random"),
]


@pytest.mark.parametrize("params", _INITS)
def test_surplus_components_on_two_groups(params):
    # K=5 on two clear groups: components empty or duplicate one another.
    X = _two_groups()
    est, _ = _fit_quietly(X, n_components=5, **params)
    _assert_well_defined(est, X)
    two, _ = _fit_quietly(X, n_components=2)
    # More components never fit worse than the two the data have.
    assert est.score(X) >= two.score(X) - 1e-6


def test_point_masses_with_surplus_components():
    # Two point masses and K=5: at least three components are superfluous.
    X = np.repeat([[2], [50]], 150, axis=0)
    est, caught = _fit_quietly(X, n_components=5)
    _assert_well_defined(est, X)
    # Split point masses are repeats: reported as such.
    assert np.count_nonzero(est.degenerate_components_) >= 3
    assert DegenerateComponentWarning in [w.category for w in caught]
    two, _ = _fit_quietly(X, n_components=2)
    assert est.score(X) >= two.score(X) - 1e-6


@pytest.mark.parametrize("params", _INITS)
def test_more_components_than_distinct_values(params):
    X = np.random.default_rng(4).choice([0, 3, 10], size=(200, 1))
    est, _ = _fit_quietly(X, n_components=6, **params)
    _assert_well_defined(est, X)
    three, _ = _fit_quietly(X, n_components=3)
    assert est.score(X) >= three.score(X) - 1e-6


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("n_features", [1, 4])
def test_max_iter_one_warns_and_keeps_finite_parameters(mode, n_features):
    X = _singer()[:, :n_features]
    with pytest.warns(ConvergenceWarning, match="did not converge.*max_iter=1"):
        est = NegBinomMixture(n_components=2, max_iter=1, **mode).fit(X)
    assert est.converged_ is False
    _assert_well_defined(est, X)
    # The answer kept is at least as good as the start it came from.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        start = NegBinomMixture(n_components=2, max_iter=0, **mode).fit(X)
    assert est.score(X) >= start.score(X) - 1e-9
