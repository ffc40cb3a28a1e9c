"""sknbmix.io: reading count files (text, 10x Matrix Market, h5ad) and the
JSON round trip of fitted models."""

import gzip
import json
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from sknbmix import NegBinomMixture, bootstrap
from sknbmix._data import total_size_factors
from sknbmix._fit import degenerate_components
from sknbmix._likelihood import sample_mixture
from sknbmix.datasets import load_singer
from sknbmix.io import load_model, read_counts, read_size_factors, save_model

NAMES = ["Rex1", "Rest", "Nanog", "Prdm14"]


@pytest.fixture(scope="module")
def counts():
    return load_singer().data


def write(path, text):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as file:
        file.write(text)
    return path


def table(X, header, delimiter=",", row_names=None):
    """A text table: header fields, then rows led by their row names."""
    lines = [delimiter.join(header)]
    for i, row in enumerate(X):
        fields = [str(v) for v in row]
        if row_names is not None:
            fields.insert(0, row_names[i])
        lines.append(delimiter.join(fields))
    return "\n".join(lines) + "\n"


CELLS = [f"AAACCTG{i:04d}-1" for i in range(279)]


# -- text tables ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, header, delimiter, row_names",
    [
        ("plain.csv", NAMES, ",", None),
        ("tabs.tsv", NAMES, "\t", None),
        ("mislabelled.csv", NAMES, "\t", None),  # tab-separated after all
        ("gzipped.csv.gz", NAMES, ",", None),
        # pandas' to_csv: an empty header field over the index.
        ("pandas.csv", ["", *NAMES], ",", CELLS),
        # R's write.csv quotes the names and leaves the corner empty.
        ("r.csv", ['""', *(f'"{n}"' for n in NAMES)], ",", [f'"{c}"' for c in CELLS]),
        # R's write.table: no header field at all over the row names.
        ("r.txt", [f'"{n}"' for n in NAMES], " ", [f'"cell {i}"' for i in range(279)]),
        # Named id column; .txt is sniffed (tab here).
        ("cells.txt", ["barcode", *NAMES], "\t", CELLS),
        ("semicolons.dat", ["cell", *NAMES], ";", CELLS),
        # A numeric row index under a name is an index, not a gene.
        ("index.csv", ["cell", *NAMES], ",", [str(i + 1) for i in range(279)]),
    ],
)
def test_read_text_tables(tmp_path, counts, name, header, delimiter, row_names):
    path = write(tmp_path / name, table(counts, header, delimiter, row_names))
    X, names, samples = read_counts(path, return_sample_names=True)
    assert isinstance(X, np.ndarray) and X.dtype == np.int64
    np.testing.assert_array_equal(X, counts)
    assert names == NAMES
    if row_names is None:
        assert samples is None
    else:
        assert len(samples) == 279 and '"' not in samples[0]


def test_read_text_from_a_spreadsheet(tmp_path):
    # Excel's CSV: a byte-order mark and Windows line ends.
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffcell;Rex1;Nanog\r\nc1;11;39\r\nc2;172;33\r\n".encode())
    X, names = read_counts(path)
    np.testing.assert_array_equal(X, [[11, 39], [172, 33]])
    assert names == ["Rex1", "Nanog"]


def test_read_text_columns_in_the_order_asked(tmp_path, counts):
    path = write(tmp_path / "c.csv", table(counts, ["", *NAMES], ",", CELLS))
    X, names = read_counts(path, columns=["Nanog", "Rex1"])
    np.testing.assert_array_equal(X, counts[:, [2, 0]])
    assert names == ["Nanog", "Rex1"]
    X, names = read_counts(path, columns="Prdm14")  # one name as a string
    np.testing.assert_array_equal(X, counts[:, [3]])


def test_read_text_transposed(tmp_path, counts):
    # Genes x cells, as many GEO tables: gene names down the first column.
    path = write(tmp_path / "g.tsv", table(counts.T, ["gene", *CELLS], "\t", NAMES))
    X, names, samples = read_counts(path, transpose=True, return_sample_names=True)
    np.testing.assert_array_equal(X, counts)
    assert names == NAMES and samples == CELLS
    X, names = read_counts(path, transpose=True, columns=["Prdm14", "Rest"])
    np.testing.assert_array_equal(X, counts[:, [3, 1]])


@pytest.mark.parametrize(
    "text, match",
    [
        ("cell,Rex1,Nanog\nc1,1,2\nc2,2.5,3\n", r"line 3, column 'Rex1' holds 2.5"),
        ("cell,Rex1,Nanog\nc1,1,2\nc2,-1,3\n", r"line 3, column 'Rex1' holds -1"),
        ("cell,Rex1,Nanog\nc1,1,2\nc2,4,NA\n", r"line 3, column 'Nanog' holds 'NA'"),
        ("cell,Rex1,Nanog\nc1,1,2\nc2,4,nan\n", r"line 3, column 'Nanog' holds nan"),
        ("cell,Rex1,Nanog\nc1,1,2\nc2,4\n", r"line 3 has 2 fields but the header"),
        ("Rex1,Nanog\n1,2,3,4\n", r"line 2 has 4 fields but the header has 2"),
        ("Rex1,Nanog\n", "no data"),
        ("", "empty"),
    ],
)
def test_read_text_errors_say_where(tmp_path, text, match):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match):
        read_counts(path)


def test_unknown_repeated_and_ambiguous_columns(tmp_path, counts):
    path = write(tmp_path / "c.csv", table(counts, NAMES))
    with pytest.raises(ValueError, match=r"unknown columns Foo, Bar; the file has 4"):
        read_counts(path, columns=["Foo", "Rex1", "Bar"])
    with pytest.raises(ValueError, match="Rex1 twice"):
        read_counts(path, columns=["Rex1", "Rex1"])
    dup = write(tmp_path / "d.csv", "A,A,B\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="A names 2 columns"):
        read_counts(dup, columns=["A"])
    np.testing.assert_array_equal(read_counts(dup, columns=["B"])[0], [[3], [6]])


@pytest.mark.parametrize("name", ["data.xlsx", "data.h5", "data.loom"])
def test_unsupported_formats(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="cannot read"):
        read_counts(path)


def test_binary_file_is_not_a_table(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\xc3\x28")
    with pytest.raises(ValueError, match="not a text table"):
        read_counts(path)


def test_options_for_other_formats_are_errors(tmp_path, counts):
    path = write(tmp_path / "c.csv", table(counts, NAMES))
    with pytest.raises(ValueError, match="layer applies to .h5ad"):
        read_counts(path, layer="counts")
    with pytest.raises(FileNotFoundError):
        read_counts(tmp_path / "missing.csv")


# -- 10x Matrix Market ---------------------------------------------------------


def write_10x(folder, X, prefix="", features="features.tsv.gz", gz=True):
    """A Cell Ranger-like folder: genes x cells matrix, features, barcodes."""
    folder.mkdir(exist_ok=True)
    matrix = folder / f"{prefix}matrix.mtx"
    scipy.io.mmwrite(matrix, sp.coo_matrix(X.T))
    if gz:
        with gzip.open(f"{matrix}.gz", "wb") as file:
            file.write(matrix.read_bytes())
        matrix.unlink()
        matrix = folder / f"{prefix}matrix.mtx.gz"
    if features:
        rows = [f"ENSMUSG{i:05d}\t{n}\tGene Expression" for i, n in enumerate(NAMES)]
        if features.startswith("genes"):  # Cell Ranger 2: id and name only
            rows = [row.rsplit("\t", 1)[0] for row in rows]
        write(folder / f"{prefix}{features}", "\n".join(rows) + "\n")
    write(folder / f"{prefix}barcodes.tsv.gz", "\n".join(CELLS) + "\n")
    return matrix


@pytest.mark.parametrize(
    "prefix, features, gz",
    [
        ("", "features.tsv.gz", True),
        ("", "genes.tsv", False),
        ("GSM123_", "features.tsv.gz", True),  # GEO's prefixed file names
    ],
)
def test_read_mtx_transposes_and_stays_sparse(tmp_path, counts, prefix, features, gz):
    matrix = write_10x(tmp_path / "tenx", counts, prefix, features, gz)
    X, names, samples = read_counts(matrix, return_sample_names=True)
    assert sp.issparse(X) and X.format == "csr" and X.dtype == np.int64
    np.testing.assert_array_equal(X.toarray(), counts)
    assert names == NAMES and samples == CELLS
    # Selected by name, or by the id of the features file's first column.
    X, names = read_counts(matrix, columns=["Nanog", "ENSMUSG00000"])
    assert sp.issparse(X) and X.format == "csr"
    np.testing.assert_array_equal(X.toarray(), counts[:, [2, 0]])
    assert names == ["Nanog", "ENSMUSG00000"]


def test_read_mtx_without_features_names_genes_by_index(tmp_path, counts):
    matrix = write_10x(tmp_path / "bare", counts, features=None)
    X, names = read_counts(matrix)
    assert names == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(X.toarray(), counts)


def test_read_mtx_errors(tmp_path, counts):
    matrix = write_10x(tmp_path / "tenx", counts)
    write(tmp_path / "tenx" / "features.tsv.gz", "g1\tA\n")
    with pytest.raises(ValueError, match="has 1 rows but the matrix has 4 genes"):
        read_counts(matrix)
    bad = write(tmp_path / "bad.mtx", "not a matrix\n")
    with pytest.raises(ValueError, match="not a Matrix Market file"):
        read_counts(bad)
    with pytest.raises(ValueError, match="transpose applies to text"):
        read_counts(matrix, transpose=True)
    with pytest.raises(FileNotFoundError):
        read_counts(tmp_path / "missing.mtx.gz")


# -- h5ad ------------------------------------------------------------------------


@pytest.fixture
def h5ad(tmp_path, counts):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    adata = anndata.AnnData(
        X=sp.csr_matrix(np.log1p(counts).astype(np.float32)),
        obs=pd.DataFrame(index=CELLS),
        var=pd.DataFrame(index=NAMES),
    )
    adata.layers["counts"] = sp.csr_matrix(counts)
    adata.layers["dense"] = counts.astype(np.float32)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    return path


def test_read_h5ad(h5ad, counts):
    X, names, samples = read_counts(h5ad, layer="counts", return_sample_names=True)
    assert sp.issparse(X) and X.format == "csr" and X.dtype == np.int64
    np.testing.assert_array_equal(X.toarray(), counts)
    assert names == NAMES and samples == CELLS
    X, names = read_counts(h5ad, layer="dense", columns=["Nanog"])
    assert isinstance(X, np.ndarray) and X.dtype == np.int64
    np.testing.assert_array_equal(X, counts[:, [2]])


def test_read_h5ad_errors(h5ad):
    # Log-normalised .X: the error points at the layers that may hold counts.
    with pytest.raises(ValueError, match=r"\.X, row 0, .*layer \(this file has"):
        read_counts(h5ad)
    with pytest.raises(ValueError, match="no layer 'raw'; its layers: counts, dense"):
        read_counts(h5ad, layer="raw")


def test_read_h5ad_without_anndata(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "anndata", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'sknbmix\[anndata\]'"):
        read_counts(tmp_path / "cells.h5ad")


# -- saving and loading models -----------------------------------------------------


def assert_same_model(loaded, model, X):
    """Every method gives the numbers of the original, to 1e-12."""
    assert loaded.get_params() == model.get_params()
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_allclose(
            getattr(loaded, method)(X), getattr(model, method)(X), rtol=0, atol=1e-12
        )
    for method in ("score", "bic", "aic"):
        assert abs(getattr(loaded, method)(X) - getattr(model, method)(X)) <= 1e-12
    # The same draws from the same random_state.
    for a, b in zip(loaded.sample(50), model.sample(50), strict=True):
        np.testing.assert_array_equal(a, b)
    for name in (
        "weights_",
        "alpha_",
        "b_",
        "means_",
        "poisson_limit_",
        "degenerate_components_",
    ):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    for name in ("converged_", "n_iter_", "lower_bound_", "n_features_in_"):
        assert getattr(loaded, name) == getattr(model, name)


@pytest.mark.parametrize(
    "columns, shared_weights", [([0], True), ([0, 1, 2, 3], True), ([0, 3], False)]
)
def test_model_round_trip(tmp_path, counts, columns, shared_weights):
    X = counts[:, columns]
    model = NegBinomMixture(2, shared_weights=shared_weights, random_state=7).fit(X)
    save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    assert_same_model(loaded, model, X)
    assert not hasattr(loaded, "feature_names_in_")


def test_model_round_trip_keeps_feature_names(tmp_path):
    frame = load_singer(as_frame=True).frame[["Rex1", "Nanog"]]
    model = NegBinomMixture(2, random_state=0).fit(frame)
    save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    assert list(loaded.feature_names_in_) == ["Rex1", "Nanog"]
    assert_same_model(loaded, model, frame)


def test_loaded_model_bootstraps_like_the_original(tmp_path, counts):
    X = counts[:, :1]
    model = NegBinomMixture(2).fit(X)
    save_model(model, tmp_path / "model.json")
    kwargs = dict(n_resamples=10, random_state=0)
    original = bootstrap(model, X, **kwargs)
    again = bootstrap(load_model(tmp_path / "model.json"), X, **kwargs)
    np.testing.assert_array_equal(again.estimates["means"], original.estimates["means"])


def test_saved_file_is_plain_json(tmp_path, counts):
    model = NegBinomMixture(2).fit(counts[:, :1])
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["format"] == "sknbmix.NegBinomMixture"
    assert document["format_version"] == 3
    assert document["params"]["n_components"] == 2
    assert document["params"]["size_factors"] is None
    assert document["attributes"]["size_factors_used_"] == "none"
    assert document["attributes"]["weights_"] == model.weights_.tolist()


def test_save_unfitted_or_foreign_estimator(tmp_path):
    with pytest.raises(NotFittedError):
        save_model(NegBinomMixture(2), tmp_path / "model.json")
    with pytest.raises(ValueError, match="saves a NegBinomMixture"):
        save_model(object(), tmp_path / "model.json")


def test_save_random_state_instance_warns(tmp_path, counts):
    model = NegBinomMixture(2, random_state=np.random.RandomState(0))
    model.fit(counts[:, :1])
    with pytest.warns(UserWarning, match="cannot be saved"):
        save_model(model, tmp_path / "model.json")
    assert load_model(tmp_path / "model.json").random_state is None


@pytest.fixture
def saved(tmp_path, counts):
    save_model(NegBinomMixture(2).fit(counts[:, :1]), tmp_path / "model.json")
    return json.loads((tmp_path / "model.json").read_text())


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.pop("format"), "not a sknbmix model"),
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d["attributes"].pop("alpha_"), "damaged .*missing 'alpha_'"),
        (lambda d: d["attributes"].update(alpha_=[[1.0]]), r"alpha_ has shape"),
        (lambda d: d["params"].update(n_components=3), r"weights_ has shape"),
        (lambda d: d["params"].update(solver="newton"), "damaged"),
        (lambda d: d["params"].update(colour="red"), "damaged"),
        (lambda d: d["attributes"].update(b_=[[-1.0], [2.0]]), "negative"),
        (
            lambda d: d["attributes"].pop("poisson_limit_"),
            "damaged .*missing 'poisson_limit_'",
        ),
        (
            lambda d: d["attributes"].update(degenerate_components_=[0, 1]),
            r"degenerate_components_ must be booleans of shape \(2,\)",
        ),
        (
            lambda d: d["attributes"].update(poisson_limit_=[True, False]),
            r"poisson_limit_ must be booleans of shape \(2, 1\)",
        ),
        (
            lambda d: d["attributes"].pop("size_factors_used_"),
            "damaged .*missing 'size_factors_used_'",
        ),
        (
            lambda d: d["attributes"].update(size_factors_used_="depth"),
            "size_factors_used_ must be one of none, total, given, got 'depth'",
        ),
        (lambda d: d["params"].update(size_factors="median"), "damaged"),
    ],
)
def test_load_rejects_what_is_not_a_model(tmp_path, saved, change, match):
    change(saved)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_load_rejects_other_files(tmp_path):
    write(tmp_path / "counts.csv", "Rex1\n1\n2\n")
    with pytest.raises(ValueError, match="not a sknbmix model"):
        load_model(tmp_path / "counts.csv")
    write(tmp_path / "list.json", "[1, 2]")
    with pytest.raises(ValueError, match="not a sknbmix model"):
        load_model(tmp_path / "list.json")


def test_version_1_file_gets_its_masks_from_the_parameters(tmp_path):
    # Version 1 files had no poisson_limit_ or degenerate_components_.
    X = np.full((50, 1), 3)
    with pytest.warns(UserWarning):  # the Poisson limit, and a repeat
        model = NegBinomMixture(2, random_state=0).fit(X)
    assert model.poisson_limit_.all() and model.degenerate_components_.any()
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    document["format_version"] = 1
    for name in ("poisson_limit_", "degenerate_components_"):
        del document["attributes"][name]
    (tmp_path / "v1.json").write_text(json.dumps(document))
    loaded = load_model(tmp_path / "v1.json")
    # What the parameters tell: the Poisson limit and the repeat, but not a
    # component emptied below one sample (the weights of two identical
    # components are arbitrary; the file holds no number of samples).
    assert loaded.degenerate_components_.any()
    model.degenerate_components_ = degenerate_components(
        model.weights_, model.alpha_, model.b_
    )
    assert_same_model(loaded, model, X)


# -- size factors in saved models ---------------------------------------------------


@pytest.fixture(scope="module")
def depth_counts():
    """Three genes of 300 cells whose depth varies (log-normal, sd 0.5)."""
    rng = np.random.default_rng(3)
    depth = np.exp(rng.normal(0.0, 0.5, 300))
    alpha = np.array([[3.0, 5.0, 4.0], [6.0, 2.0, 5.0]])
    b = np.array([[2.0, 10.0, 5.0], [10.0, 2.0, 6.0]])
    X = sample_mixture(rng, 300, np.array([0.4, 0.6]), alpha, b, depth)[0]
    return X, depth


def test_model_with_total_size_factors_round_trips(tmp_path, depth_counts):
    X, _ = depth_counts
    model = NegBinomMixture(2, size_factors="total", random_state=0).fit(X)
    save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    assert loaded.size_factors == "total" and loaded.size_factors_used_ == "total"
    # The loaded model computes the totals of the data it is given.
    assert_same_model(loaded, model, X)
    new = X[:40]
    np.testing.assert_allclose(
        loaded.predict_proba(new),
        model.predict_proba(new, size_factors=total_size_factors(new)),
        rtol=0,
        atol=1e-12,
    )


def test_model_with_given_size_factors_round_trips(tmp_path, depth_counts):
    X, depth = depth_counts
    model = NegBinomMixture(2, random_state=0).fit(X, size_factors=depth)
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    # The training cells' size factors are not saved, only that there were.
    assert document["params"]["size_factors"] is None
    assert document["attributes"]["size_factors_used_"] == "given"
    assert "size_factors" not in document["attributes"]
    loaded = load_model(tmp_path / "model.json")
    assert loaded.size_factors is None and loaded.size_factors_used_ == "given"
    for method in ("predict_proba", "score_samples"):
        np.testing.assert_allclose(
            getattr(loaded, method)(X, size_factors=depth),
            getattr(model, method)(X, size_factors=depth),
            rtol=0,
            atol=1e-12,
        )
    kwargs = dict(
        size_factors=depth, n_resamples=4, random_state=0, ci_method="percentile"
    )
    np.testing.assert_array_equal(
        bootstrap(loaded, X, **kwargs).estimates["means"],
        bootstrap(model, X, **kwargs).estimates["means"],
    )


def test_version_2_file_is_a_fit_without_size_factors(tmp_path, counts):
    model = NegBinomMixture(2, random_state=0).fit(counts[:, :1])
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    document["format_version"] = 2
    del document["params"]["size_factors"]
    del document["attributes"]["size_factors_used_"]
    (tmp_path / "v2.json").write_text(json.dumps(document))
    loaded = load_model(tmp_path / "v2.json")
    assert loaded.size_factors is None and loaded.size_factors_used_ == "none"
    assert_same_model(loaded, model, counts[:, :1])


# -- reading size factors -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("sf.txt", "0.5\n2\n1.25\n"),
        ("sf.txt", "size_factor\n0.5\n2\n\n1.25\n"),
        ("sf.csv", "cell,size_factor\nc0,0.5\nc1,2\nc2,1.25\n"),
        ("sf.csv", ",0\nc0,0.5\nc1,2\nc2,1.25\n"),  # pandas' Series.to_csv
        ("sf.tsv", "c0\t0.5\nc1\t2\nc2\t1.25\n"),
        ("sf.txt", "c0 0.5\nc1 2\nc2 1.25\n"),
        ("sf.csv.gz", "size factor\n0.5\n2\n1.25\n"),
    ],
)
def test_read_size_factors(tmp_path, name, text):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as file:
            file.write(text)
    else:
        write(path, text)
    np.testing.assert_array_equal(read_size_factors(path), [0.5, 2.0, 1.25])


def test_read_size_factors_matches_cells_by_name(tmp_path):
    write(tmp_path / "sf.csv", "cell,sf\nc2,1.25\nc0,0.5\nc1,2\nc9,7\n")
    values = read_size_factors(tmp_path / "sf.csv", sample_names=["c0", "c1", "c2"])
    np.testing.assert_array_equal(values, [0.5, 2.0, 1.25])
    with pytest.raises(
        ValueError, match="no size factor for 2 of the 3 samples: c3, c4"
    ):
        read_size_factors(tmp_path / "sf.csv", sample_names=["c0", "c3", "c4"])
    # One column: in order, whatever the names.
    write(tmp_path / "one.txt", "0.5\n2\n")
    values = read_size_factors(tmp_path / "one.txt", sample_names=["b", "a"])
    np.testing.assert_array_equal(values, [0.5, 2.0])


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("sf\n", "a header but no size factors"),
        ("0.5\n-1\n2\n", "line 2 holds -1: size factors must be finite and positive"),
        ("sf\n0.5\n0\nnan\n", r"line 3 holds 0: .*\(2 of 3 are not\)"),
        ("0.5\nNA\n", "line 2 holds 'NA', not a number"),
        ("a,b,c\n1,2,3\n", "line 2 has 3 fields"),
        ("c0,1\nc1,2,3\n", "line 2 has 3 fields but line 1 has 2"),
        ("c0,1\nc0,2\n", "sample 'c0' is on line 1 and on line 2"),
    ],
)
def test_read_size_factors_errors(tmp_path, text, match):
    write(tmp_path / "sf.csv", text)
    with pytest.raises(ValueError, match=match):
        read_size_factors(tmp_path / "sf.csv", sample_names=["c0", "c1"])


def test_read_size_factors_from_h5ad_obs(tmp_path, counts):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    depth = np.linspace(0.5, 2.0, len(counts))
    obs = pd.DataFrame(
        {"depth": depth, "batch": pd.Categorical(["a", "b"] * 139 + ["a"])},
        index=CELLS,
    )
    adata = anndata.AnnData(X=sp.csr_matrix(counts), obs=obs)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    path = tmp_path / "cells.h5ad"
    np.testing.assert_array_equal(read_size_factors(path, column="depth"), depth)
    with pytest.raises(ValueError, match="no .obs column 'sf'; its columns: depth"):
        read_size_factors(path, column="sf")
    with pytest.raises(ValueError, match="'batch' holds category values"):
        read_size_factors(path, column="batch")
    with pytest.raises(ValueError, match="name the .obs column"):
        read_size_factors(path)
    with pytest.raises(ValueError, match="column applies to .h5ad files only"):
        write(tmp_path / "sf.txt", "1\n")
        read_size_factors(tmp_path / "sf.txt", column="depth")
    obs["depth"] = -depth
    anndata.AnnData(X=sp.csr_matrix(counts), obs=obs).write_h5ad(path)
    with pytest.raises(ValueError, match=f"column 'depth', cell '{CELLS[0]}' holds"):
        read_size_factors(path, column="depth")
