"""Size factors: NB(alpha, s b) per sample, in both forms of the likelihood,
against direct sums, finite differences, an independent GLM, and the model
without them."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import optimize, stats
from scipy.special import logsumexp
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sknbmix import NegBinomMixture
from sknbmix._data import total_size_factors
from sknbmix._likelihood import MixtureLikelihood, Theta, size_factor_nodes
from sknbmix._powell import powell_maximise

K, G = 2, 5


def _direct_log_likelihood(X, s, weights, alpha, b):
    """The mixture's log-likelihood by scipy, sample by sample (shared
    weights) or feature by feature (weights of shape (G, K))."""
    p = 1.0 / (1.0 + s[:, None, None] * b[None])
    log_pmf = stats.nbinom.logpmf(X[:, None, :], alpha[None], p)
    if weights.ndim == 1:
        return logsumexp(np.log(weights)[None] + log_pmf.sum(-1), axis=1).sum()
    return logsumexp(np.log(weights.T)[None] + log_pmf, axis=1).sum()


@pytest.fixture(scope="module")
def simulated():
    """Counts of K components and G features with size factors spread over a
    factor of 50 or so, and three samples without counts."""
    rng = np.random.default_rng(7)
    n = 300
    s = np.exp(rng.normal(0.0, 1.0, n))
    alpha = rng.uniform(0.5, 5.0, (K, G))
    b = rng.uniform(0.2, 20.0, (K, G))
    y = rng.integers(0, K, n)
    X = rng.negative_binomial(alpha[y], 1.0 / (1.0 + s[:, None] * b[y]))
    X[:3] = 0
    s[:3] = 0.0
    return X.astype(float), s, np.array([0.35, 0.65]), alpha, b


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_log_likelihood_equals_direct_sum(simulated, shared, sparse):
    X, s, weights, alpha, b = simulated
    if not shared:
        weights = np.array([[0.2, 0.8], [0.5, 0.5], [0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    data = sp.csr_matrix(X) if sparse else X
    likelihood = MixtureLikelihood.of_counts(data, shared, s)
    assert likelihood.per_cell is shared  # both forms are tested
    log_weights = np.log(weights if shared else weights.T)
    theta = Theta(
        log_weights[None, :, None] if shared else log_weights[None],
        np.log(alpha)[None],
        np.log(b)[None],
    )
    expected = _direct_log_likelihood(X, s, weights, alpha, b)
    assert likelihood.log_likelihood(theta).sum() == pytest.approx(expected, rel=1e-12)
    log_prob, resp = likelihood.cell_log_prob(theta)
    assert log_prob.sum() == pytest.approx(expected, rel=1e-12)
    # A sample without counts has probability 1, and the weights as
    # responsibilities.
    np.testing.assert_allclose(log_prob[:3], 0.0, atol=1e-12)
    if shared:
        np.testing.assert_allclose(resp[:3], np.tile(weights, (3, 1)), rtol=1e-12)


@pytest.mark.parametrize("shared", [True, False])
def test_gradient_equals_finite_differences(simulated, shared):
    X, s, weights, alpha, b = simulated
    likelihood = MixtureLikelihood.of_counts(X, shared, s)
    groups = 1 if shared else G
    theta = Theta(
        np.log(np.tile(weights[:, None], (1, groups)))[None],
        np.log(alpha)[None],
        np.log(b)[None],
    )
    _, gradient = likelihood.gradient(theta)
    step = 1e-5
    for name in ("log_alpha", "log_b"):
        for k, g in [(0, 0), (1, 3), (0, 4)]:

            def at(delta, name=name, k=k, g=g):
                moved = getattr(theta, name).copy()
                moved[0, k, g] += delta
                return likelihood.log_likelihood(theta._replace(**{name: moved})).sum()

            numeric = (at(step) - at(-step)) / (2 * step)
            assert getattr(gradient, name)[0, k, g] == pytest.approx(
                numeric, rel=1e-6, abs=1e-6
            )


def test_interpolation_is_exact_to_rounding():
    # Size factors over five orders of magnitude: the all-feature sums
    # sum_g alpha log1p(s b) of the per-sample form come from Chebyshev
    # nodes; with zero counts they are all there is, and must agree with the
    # direct sum to rounding (a direct sum over large counts would not be
    # accurate enough to tell: lgamma loses digits there).
    rng = np.random.default_rng(3)
    n, n_features = 200, 40
    s = np.exp(rng.uniform(-6.0, 6.0, n))
    alpha = rng.uniform(0.1, 50.0, (K, n_features))
    b = np.exp(rng.uniform(-8.0, 8.0, (K, n_features)))
    X = sp.csr_matrix((n, n_features))
    likelihood = MixtureLikelihood.of_counts(X, True, s)
    assert likelihood.nodes.log_scale.size > 50
    theta = Theta(np.log([[[0.3], [0.7]]]), np.log(alpha)[None], np.log(b)[None])
    zero = -(alpha[None] * np.log1p(s[:, None, None] * b[None])).sum(axis=-1)
    expected = logsumexp(np.log([0.3, 0.7]) + zero, axis=1)
    log_prob, _ = likelihood.cell_log_prob(theta)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-13)


def test_nodes_of_equal_size_factors():
    nodes = size_factor_nodes(np.log(np.full(5, 2.0)))
    np.testing.assert_array_equal(nodes.log_scale, [np.log(2.0)])
    nodes = size_factor_nodes(np.array([-np.inf, 0.0, 1.0]))
    assert nodes.log_scale.max() == 1.0 and nodes.log_scale.min() == 0.0


def _glm_log_likelihood(x, s):
    """The NB2 GLM with an intercept and offset log(s), maximised by scipy
    on scipy's log-pmf: the model with one component, independently."""

    def negative(params):
        log_mean, log_alpha = params
        alpha = np.exp(log_alpha)
        p = alpha / (alpha + s * np.exp(log_mean))
        return -stats.nbinom.logpmf(x, alpha, p).sum()

    start = [np.log(x.sum() / s.sum()), 0.0]
    result = optimize.minimize(
        negative, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    result = optimize.minimize(
        negative, result.x, method="BFGS", options={"gtol": 1e-9}
    )
    return -result.fun, np.exp(result.x)


@pytest.mark.parametrize("gene", range(4))
def test_one_component_is_the_glm_with_offset(singer, gene):
    x = singer[:, gene]
    s = np.exp(np.random.default_rng(gene).normal(0.0, 0.5, x.size))
    model = NegBinomMixture(1).fit(x[:, None], size_factors=s)
    expected, (mean, alpha) = _glm_log_likelihood(x, s)
    got = model.score(x[:, None], size_factors=s) * x.size
    assert got >= expected - 1e-6
    assert got == pytest.approx(expected, abs=1e-5)
    assert model.means_[0, 0] == pytest.approx(mean, rel=1e-4)


def test_one_component_against_statsmodels(singer):
    discrete = pytest.importorskip("statsmodels.discrete.discrete_model")
    s = np.exp(np.random.default_rng(11).normal(0.0, 0.3, singer.shape[0]))
    # Shared weights with K = 1: the sum of the genes' GLMs.
    model = NegBinomMixture(1).fit(singer, size_factors=s)
    total = 0.0
    for g in range(singer.shape[1]):
        y = singer[:, g]
        glm = discrete.NegativeBinomial(
            y, np.ones((y.size, 1)), loglike_method="nb2", offset=np.log(s)
        )
        start = np.array([np.log(y.sum() / s.sum()), 0.5])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = glm.fit(start, method="bfgs", maxiter=2000, gtol=1e-12, disp=0)
            result = glm.fit(
                result.params, method="newton", maxiter=100, tol=1e-14, disp=0
            )
        total += result.llf
        assert model.means_[0, g] == pytest.approx(np.exp(result.params[0]), rel=1e-5)
        assert model.alpha_[0, g] == pytest.approx(1 / result.params[1], rel=1e-4)
    assert model.score(singer, size_factors=s) * singer.shape[0] == pytest.approx(
        total, abs=1e-6
    )


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("columns", [slice(0, 1), slice(0, 4)])
def test_unit_size_factors_give_the_fit_without(singer, shared, columns):
    X = singer[:, columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A tight tol: the parameters of two fits that each stop within
        # tol of the maximum differ by about sqrt(tol).
        model = NegBinomMixture(2, shared_weights=shared, tol=1e-13)
        plain = clone(model).fit(X)
        ones = clone(model).fit(X, size_factors=np.ones(X.shape[0]))
    n = X.shape[0]
    assert ones.score(X, size_factors=np.ones(n)) == pytest.approx(
        plain.score(X), rel=1e-12
    )
    np.testing.assert_allclose(ones.weights_, plain.weights_, atol=1e-6)
    np.testing.assert_allclose(ones.means_, plain.means_, rtol=1e-6)


def test_scaling_size_factors_scales_b(singer):
    s = np.exp(np.random.default_rng(5).normal(0.0, 0.4, singer.shape[0]))
    one = NegBinomMixture(2).fit(singer, size_factors=s)
    ten = NegBinomMixture(2).fit(singer, size_factors=10 * s)
    assert ten.score(singer, size_factors=10 * s) == pytest.approx(
        one.score(singer, size_factors=s), rel=1e-11
    )
    np.testing.assert_allclose(ten.b_ * 10, one.b_, rtol=1e-5)
    np.testing.assert_allclose(ten.alpha_, one.alpha_, rtol=1e-5)


def test_powell_polish_gains_nothing(singer):
    s = np.exp(np.random.default_rng(2).normal(0.0, 0.5, singer.shape[0]))
    for X, shared in [(singer[:, :1], True), (singer, True), (singer[:, :2], False)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = NegBinomMixture(2, shared_weights=shared).fit(X, size_factors=s)
        likelihood = MixtureLikelihood.of_counts(X, shared, s)
        theta = model._theta()
        before = likelihood.log_likelihood(theta).sum()
        after = powell_maximise(likelihood, theta, max_iter=2000, tol=1e-12)[1]
        assert after <= before + 1e-6


def test_total_size_factors_and_empty_cells():
    rng = np.random.default_rng(0)
    X = rng.negative_binomial(2, 0.3, (50, 6)).astype(float)
    X[4] = 0
    s = total_size_factors(X)
    assert s[4] == 0 and s.mean() == pytest.approx(1.0)
    model = NegBinomMixture(2, size_factors="total", random_state=0).fit(X)
    assert model.size_factors_used_ == "total"
    resp = model.predict_proba(X)
    assert np.isfinite(resp).all() and np.isfinite(model.score_samples(X)).all()
    np.testing.assert_allclose(resp[4], model.weights_, rtol=1e-12)
    # An explicit array wins over the hyperparameter.
    given = np.ones(50)
    assert model.score(X, size_factors=given) != model.score(X)
    with pytest.raises(ValueError, match="every sample of X has a total count of 0"):
        NegBinomMixture(size_factors="total").fit(np.zeros((5, 2)))


@pytest.mark.parametrize(
    "size_factors, match",
    [
        (np.r_[1.0, 0.0, 1.0], r"size_factors\[1\] is zero"),
        (np.r_[1.0, -1.0, 1.0], "negative"),
        (np.r_[np.nan, 1.0, 1.0], "NaN"),
        (np.r_[1.0, 1.0, np.inf], "infinite"),
        (np.ones(4), "4 values but X has 3 samples"),
        (np.ones((3, 1)), "1-D array"),
        (["a", "b", "c"], "must be numbers"),
    ],
)
def test_bad_size_factors_are_a_value_error(size_factors, match):
    X = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]])
    with pytest.raises(ValueError, match=match):
        NegBinomMixture().fit(X, size_factors=size_factors)
    model = NegBinomMixture().fit(X)
    with pytest.raises(ValueError, match=match):
        model.score(X, size_factors=size_factors)


def test_sparse_dense_jobs_and_warm_start_agree(simulated):
    X, s, *_ = simulated
    s = np.where(s > 0, s, 1.0)
    dense = NegBinomMixture(2).fit(X, size_factors=s)
    sparse = NegBinomMixture(2).fit(sp.csr_matrix(X), size_factors=s)
    np.testing.assert_allclose(sparse.means_, dense.means_, rtol=1e-9)
    screen = NegBinomMixture(2, shared_weights=False, n_init=2, random_state=0)
    one = screen.fit(X, size_factors=s).means_
    two = screen.set_params(n_jobs=2).fit(X, size_factors=s).means_
    np.testing.assert_array_equal(one, two)
    warm = NegBinomMixture(2, warm_start=True).fit(X, size_factors=s)
    again = warm.fit(X, size_factors=s)
    assert again.score(X, size_factors=s) >= dense.score(X, size_factors=s) - 1e-12


def test_sample_with_size_factors(singer):
    model = NegBinomMixture(1, random_state=0).fit(singer[:, :1])
    s = np.r_[np.full(2000, 0.5), np.full(2000, 4.0)]
    X, _ = model.sample(4000, size_factors=s)
    low, high = X[:2000, 0].mean(), X[2000:, 0].mean()
    mean = model.means_[0, 0]
    assert low == pytest.approx(0.5 * mean, rel=0.1)
    assert high == pytest.approx(4.0 * mean, rel=0.1)
    with pytest.raises(ValueError, match="3 values but X has 4000"):
        model.sample(4000, size_factors=np.ones(3))


def test_metadata_routing_in_grid_search():
    rng = np.random.default_rng(1)
    n = 240
    s = np.exp(rng.normal(0.0, 0.7, n))
    y = rng.integers(0, 2, n)
    means = np.array([[2.0, 20.0, 5.0], [20.0, 2.0, 5.0]])
    X = rng.negative_binomial(3.0, 3.0 / (3.0 + s[:, None] * means[y])).astype(float)
    with config_context(enable_metadata_routing=True):
        estimator = (
            NegBinomMixture(random_state=0)
            .set_fit_request(size_factors=True)
            .set_score_request(size_factors=True)
        )
        search = GridSearchCV(estimator, {"n_components": [1, 2]}, cv=3)
        search.fit(X, size_factors=s)
    assert search.best_params_ == {"n_components": 2}
    routed = search.best_estimator_
    assert routed.size_factors_used_ == "given"
    # Routing reached the scorer: the CV score is that with size factors.
    fold_scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(fold_scores))


@pytest.mark.parametrize("shared", [True, False])
def test_powell_solver_with_size_factors(singer, shared):
    X = singer[:, :2]
    s = np.exp(np.random.default_rng(4).normal(0.0, 0.4, X.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = NegBinomMixture(2, shared_weights=shared).fit(X, size_factors=s)
        powell = NegBinomMixture(2, shared_weights=shared, solver="powell").fit(
            X, size_factors=s
        )
    assert powell.score(X, size_factors=s) == pytest.approx(
        em.score(X, size_factors=s), abs=1e-6 / X.shape[0]
    )


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
@pytest.mark.parametrize("shared", [True, False])
def test_other_starts_with_size_factors(singer, init_params, shared):
    s = np.exp(np.random.default_rng(6).normal(0.0, 0.4, singer.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = NegBinomMixture(2, shared_weights=shared).fit(singer, size_factors=s)
        other = NegBinomMixture(
            2, shared_weights=shared, init_params=init_params, n_init=3, random_state=0
        ).fit(singer, size_factors=s)
    # Every start reaches a maximum of the same likelihood: no NaN, and no
    # better optimum than the default's by more than the tolerance.
    assert np.isfinite(other.score(singer, size_factors=s))
    assert (
        other.score(singer, size_factors=s)
        <= default.score(singer, size_factors=s) + 1e-8
    )
