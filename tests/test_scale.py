"""The per-gene screen (shared_weights=False) on sparse data: the same answers
as fitting each gene alone, every gene at an optimum, and the same answer for
any n_jobs and on a dask cluster."""

import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import mixture_loglik, powell_polish
from joblib import parallel_backend

from sknbmix import NegBinomMixture

N_SAMPLES, N_FEATURES = 600, 40


def _screen_counts(random_state=0):
    """Sparse counts, each gene its own two-component mixture; low means, so
    that many genes are flat and near the boundary of the parameter space
    (about 80% zeros)."""
    rng = np.random.default_rng(random_state)
    low_mean = np.exp(rng.normal(-2.0, 1.2, N_FEATURES))
    means = np.stack([low_mean, low_mean * np.exp(rng.normal(1.0, 1.0, N_FEATURES))])
    alpha = np.exp(rng.normal(0.0, 0.7, (2, N_FEATURES)))
    weights = rng.uniform(0.1, 0.5, N_FEATURES)
    component = (rng.random((N_SAMPLES, N_FEATURES)) < weights).astype(int)
    a = np.take_along_axis(alpha, component, axis=0)
    m = np.take_along_axis(means, component, axis=0)
    X = rng.poisson(rng.gamma(a, m / a))
    return sp.csr_matrix(X)


@pytest.fixture(scope="module")
def counts():
    return _screen_counts()


@pytest.fixture(scope="module")
def screen(counts):
    return NegBinomMixture(2, shared_weights=False).fit(counts)


def _per_gene_loglik(model, X):
    n_params = 3 * model.n_components - 1
    return -0.5 * (model.bic(X, per_feature=True) - n_params * np.log(X.shape[0]))


def test_screen_data_are_sparse_and_flat(counts):
    assert 0.75 < 1 - counts.nnz / np.prod(counts.shape) < 0.95


def test_screen_equals_genes_fitted_alone(screen, counts):
    assert screen.converged_
    screen_ll = _per_gene_loglik(screen, counts)
    dense = counts.toarray()
    for g in range(N_FEATURES):
        column = dense[:, [g]]
        alone = NegBinomMixture(2).fit(column)
        assert screen_ll[g] == pytest.approx(alone.score(column) * N_SAMPLES, abs=1e-6)
        # And the per-gene log-likelihood is right (checked with scipy).
        assert screen_ll[g] == pytest.approx(
            mixture_loglik(column, screen.weights_[g], *_gene_params(screen, g)),
            abs=1e-6,
        )


def _gene_params(model, g):
    return model.alpha_[:, [g]], model.b_[:, [g]]


def test_screen_genes_are_at_an_optimum(screen, counts):
    """scipy's Powell started at each gene's answer cannot improve it."""
    dense = counts.toarray()
    for g in range(0, N_FEATURES, 4):
        column = dense[:, [g]]
        alpha, b = _gene_params(screen, g)
        start, polished = powell_polish(column, screen.weights_[g], alpha, b)
        assert polished - start < 1e-4


def test_per_feature_criteria_add_up(screen, counts):
    assert screen.bic(counts, per_feature=True).shape == (N_FEATURES,)
    # The log-likelihoods add up; each feature pays its own parameters.
    per_gene = screen.aic(counts, per_feature=True)
    assert per_gene.sum() == pytest.approx(screen.aic(counts), rel=1e-12)
    with pytest.raises(ValueError, match="shared_weights=False"):
        NegBinomMixture(2).fit(counts[:, :3]).bic(counts[:, :3], per_feature=True)


@pytest.mark.parametrize("fmt", ["csc", "dense"])
def test_screen_same_for_any_input_format(screen, counts, fmt):
    X = counts.tocsc() if fmt == "csc" else counts.toarray()
    other = NegBinomMixture(2, shared_weights=False).fit(X)
    np.testing.assert_allclose(other.alpha_, screen.alpha_, rtol=1e-10)
    np.testing.assert_allclose(other.weights_, screen.weights_, rtol=1e-10)


def test_screen_identical_for_any_n_jobs(screen, counts):
    parallel = NegBinomMixture(2, shared_weights=False, n_jobs=2).fit(counts)
    for name in ("weights_", "alpha_", "b_"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(screen, name))
    assert parallel.n_iter_ == screen.n_iter_


def test_restarts_identical_for_any_n_jobs(singer):
    model = NegBinomMixture(2, n_init=3, init_params="random", random_state=0)
    serial = model.fit(singer)
    alpha, lower_bound = serial.alpha_.copy(), serial.lower_bound_
    parallel = model.set_params(n_jobs=2).fit(singer)
    np.testing.assert_array_equal(parallel.alpha_, alpha)
    assert parallel.lower_bound_ == lower_bound


def test_screen_on_a_dask_cluster(screen, counts):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        parallel_backend("dask"),
    ):
        remote = NegBinomMixture(2, shared_weights=False, n_jobs=-1).fit(counts)
    for name in ("weights_", "alpha_", "b_"):
        np.testing.assert_array_equal(getattr(remote, name), getattr(screen, name))
