"""Fits and predictions on dask arrays: map-reduce over blocks of samples on a
two-process LocalCluster, equal to the in-memory fit, and the data never on
the driver."""

import os

import numpy as np
import pytest
import scipy.sparse as sp

from sknbmix import NegBinomMixture

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

# Small components of simulated types often have no excess variance.
pytestmark = pytest.mark.filterwarnings(
    "ignore::sknbmix.exceptions.PoissonLimitWarning"
)


def _counts(n_samples=1200, n_features=40, n_types=3, seed=0):
    """Counts of several types that differ in a few genes each."""
    rng = np.random.default_rng(seed)
    types = rng.integers(n_types, size=n_samples)
    means = rng.gamma(1.0, 2.0, size=(n_types, n_features))
    for k in range(n_types):
        means[k, rng.choice(n_features, 6, replace=False)] *= 6.0
    alpha = 2.0
    X = rng.negative_binomial(alpha, alpha / (alpha + means[types]))
    return X.astype(np.float64)


@pytest.fixture(scope="module")
def client():
    # Two worker processes, as a cluster of two machines would be; no work
    # stealing, so that a task runs where its block is.
    with (
        dask.config.set({"distributed.scheduler.work-stealing": False}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def counts():
    return _counts()


def _dask(X, rows=250, sparse=False):
    data = sp.csr_matrix(X) if sparse else X
    return da.from_array(data, chunks=(rows, X.shape[1]), asarray=False)


def _relative(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "params",
    [
        {"n_components": 3},
        {"n_components": 3, "n_init": 2, "random_state": 0},
        {"n_components": 2, "shared_weights": False},
    ],
)
def test_fit_equals_in_memory(client, counts, sparse, params):
    assert len(client.scheduler_info()["workers"]) == 2
    X = sp.csr_matrix(counts) if sparse else counts
    local = NegBinomMixture(**params).fit(X)
    remote = NegBinomMixture(**params)
    labels = remote.fit_predict(_dask(counts, sparse=sparse))
    assert _relative(remote.lower_bound_, local.lower_bound_) < 1e-9
    for name in ("weights_", "alpha_", "b_"):
        np.testing.assert_allclose(
            getattr(remote, name), getattr(local, name), rtol=1e-6
        )
    assert remote.n_features_in_ == counts.shape[1]
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), local.predict(X))

    Xd = _dask(counts, rows=300, sparse=sparse)
    for method in ("predict_proba", "score_samples", "predict"):
        got = getattr(remote, method)(Xd)
        assert isinstance(got, da.Array)
        np.testing.assert_allclose(
            got.compute(), getattr(local, method)(X), rtol=1e-9, atol=1e-12
        )
    assert _relative(remote.score(Xd), local.score(X)) < 1e-9
    assert _relative(remote.bic(Xd), local.bic(X)) < 1e-9
    if not params.get("shared_weights", True):
        np.testing.assert_allclose(
            remote.bic(Xd, per_feature=True), local.bic(X, per_feature=True)
        )


def test_few_features_use_newton(client, counts):
    # Four features and two components: Newton's method (gradients by
    # map-reduce) finishes the starts, as in memory.
    X = counts[:, :4]
    local = NegBinomMixture(2).fit(X)
    remote = NegBinomMixture(2).fit(_dask(X))
    assert _relative(remote.lower_bound_, local.lower_bound_) < 1e-9


def test_one_feature(client, counts):
    X = counts[:, :1]
    local = NegBinomMixture(2).fit(X)
    remote = NegBinomMixture(2).fit(_dask(X))
    assert _relative(remote.lower_bound_, local.lower_bound_) < 1e-9


def test_without_a_client(counts):
    # The active scheduler without a distributed client: threads.
    with dask.config.set(scheduler="threads"):
        local = NegBinomMixture(3).fit(counts)
        remote = NegBinomMixture(3).fit(_dask(counts, rows=400))
    assert _relative(remote.lower_bound_, local.lower_bound_) < 1e-9


# -- the data stay on the workers -----------------------------------------------


class TrackedChunk:
    """A chunk of counts that writes to ``marker`` whenever it is pickled,
    which any transfer (to the driver or to another worker) needs."""

    def __init__(self, data, marker):
        self.data, self.marker = data, marker
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

    def __sizeof__(self):
        # What the scheduler weighs a transfer by.
        return self.data.nbytes

    def __reduce__(self):
        with open(self.marker, "a") as file:
            file.write(f"chunk pickled in process {os.getpid()}\n")
        return TrackedChunk, (self.data, self.marker)


def _read_chunk(X, start, stop, marker, driver):
    """Read rows ``start:stop``; refuses to run in the driver's process."""
    if os.getpid() == driver:
        raise RuntimeError("a chunk of the data was read on the driver")
    return TrackedChunk(X[start:stop], marker)


def _tracked(X, rows, marker):
    chunks = [
        da.from_delayed(
            dask.delayed(_read_chunk)(
                X, start, min(start + rows, len(X)), str(marker), os.getpid()
            ),
            shape=(min(rows, len(X) - start), X.shape[1]),
            dtype=X.dtype,
            meta=np.empty((0, 0)),
        )
        for start in range(0, len(X), rows)
    ]
    return da.concatenate(chunks)


def test_tracked_chunks_tell_when_they_move(client, counts, tmp_path):
    # The check of the test itself: converting the array moves its chunks
    # to the driver, and reading them on the driver is refused.
    marker = tmp_path / "moved"
    Xd = _tracked(counts, 300, marker)
    np.testing.assert_array_equal(Xd.compute(), counts)
    assert marker.exists()
    with dask.config.set(scheduler="sync"), pytest.raises(RuntimeError):
        Xd.compute()


def test_data_never_leave_the_workers(client, counts, tmp_path):
    marker = tmp_path / "moved"
    Xd = _tracked(counts, 300, marker)
    model = NegBinomMixture(3).fit(Xd)
    local = NegBinomMixture(3).fit(counts)
    assert _relative(model.lower_bound_, local.lower_bound_) < 1e-9
    np.testing.assert_array_equal(model.predict(Xd).compute(), local.predict(counts))
    assert _relative(model.score(Xd), local.score(counts)) < 1e-9
    assert not marker.exists(), marker.read_text()


# -- what is refused, and why ---------------------------------------------------


def test_chunks_along_features_are_refused(counts):
    X = da.from_array(counts, chunks=(300, 10))
    with pytest.raises(ValueError, match=r"rechunk it with X.rechunk\(\{1: -1\}\)"):
        NegBinomMixture(2).fit(X)


def test_bad_counts_name_the_row_of_the_whole_array(counts):
    X = counts.copy()
    X[777, 5] = -1
    with (
        dask.config.set(scheduler="sync"),
        pytest.raises(ValueError, match="row 777, column 5"),
    ):
        NegBinomMixture(2).fit(_dask(X))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"size_factors": "total"}, "size factors"),
        ({"init_params": "kmeans"}, "kmeans"),
    ],
)
def test_unavailable_settings_are_refused(counts, params, match):
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match=match):
        NegBinomMixture(2, **params).fit(_dask(counts))


def test_other_functions_refuse_a_dask_array(counts):
    import sknbmix

    model = NegBinomMixture(2).fit(counts)
    with pytest.raises(ValueError, match="dask array"):
        sknbmix.bootstrap(model, _dask(counts), n_resamples=9)


def test_prediction_checks_the_number_of_features(counts):
    model = NegBinomMixture(2).fit(counts)
    with pytest.raises(ValueError, match="expecting 40 features"):
        model.predict(_dask(counts[:, :10]))


# -- .h5ad files read lazily --------------------------------------------------------


@pytest.fixture(scope="module")
def h5ad(counts, tmp_path_factory):
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(sp.csr_matrix(counts.astype(np.float32)))
    adata.var_names = [f"g{j}" for j in range(counts.shape[1])]
    adata.layers["dense"] = counts.astype(np.int64)
    adata.layers["by_columns"] = sp.csc_matrix(counts)
    path = tmp_path_factory.mktemp("h5ad") / "cells.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize("layer", [None, "dense"])
def test_read_counts_lazily(h5ad, counts, layer):
    from sknbmix.io import read_counts

    X, names, samples = read_counts(
        h5ad, layer=layer, chunks=500, columns=["g3", "g1"], return_sample_names=True
    )
    assert isinstance(X, da.Array)
    assert X.chunks[0] == (500, 500, 200)
    assert names == ["g3", "g1"] and len(samples) == counts.shape[0]
    block = X.compute()
    block = block.toarray() if sp.issparse(block) else block
    np.testing.assert_array_equal(block, counts[:, [3, 1]])


def test_read_counts_lazily_refuses_what_it_cannot(h5ad, tmp_path):
    from sknbmix.io import read_counts

    with pytest.raises(ValueError, match="CSR"):
        read_counts(h5ad, layer="by_columns", chunks=100)
    with pytest.raises(ValueError, match="positive number of samples"):
        read_counts(h5ad, chunks=0)
    text = tmp_path / "counts.csv"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="chunks applies to .h5ad files only"):
        read_counts(text, chunks=10)


def test_command_line_fits_a_file_in_blocks(h5ad, client, capsys):
    from sknbmix.__main__ import main

    def run(*options):
        assert main(["fit", str(h5ad), "-k", "2", *options]) == 0
        lines = capsys.readouterr().out.splitlines()
        # The log-likelihood, BIC and AIC; sums over blocks of cells round
        # otherwise, which can end EM a cycle earlier or later.
        return lines[0], lines[-1].split(", converged")[0]

    first, eager = run()
    assert "(sparse)" in first
    first, lazy = run("--chunks", "400")
    assert "read lazily in 3 blocks of cells" in first
    assert lazy == eager
    assert run("--chunks", "400", "--scheduler", client.scheduler.address)[1] == eager
    assert main(["fit", str(h5ad), "-k", "2", "--chunks", "400", "--plot", "x.png"])
    assert "--plot and --size-factors need them in memory" in capsys.readouterr().err
