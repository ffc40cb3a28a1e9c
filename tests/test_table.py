"""The count table: compression of a count matrix to the distinct counts of
each feature, and its indicator, against a plain numpy construction."""

import numpy as np
import pytest
import scipy.sparse as sp

from sknbmix._data import build_count_table


def _counts(seed=0, n_samples=120, n_features=9):
    rng = np.random.default_rng(seed)
    X = rng.negative_binomial(0.7, 0.08, size=(n_samples, n_features)).astype(float)
    X[:, 2] = 0.0  # a feature without non-zero counts
    X[7] = 0.0  # a sample without counts
    X[3, 4] = 2.0**52  # a count far beyond any other
    return X


def _reference_table(X):
    """Each feature's zero, then its distinct non-zero counts ascending, with
    multiplicities; and for each sample the entry of each non-zero count."""
    values, feature, multiplicity, entry_of = [], [], [], {}
    for f in range(X.shape[1]):
        column = X[:, f]
        values.append(0.0)
        feature.append(f)
        multiplicity.append(np.count_nonzero(column == 0))
        distinct, counts = np.unique(column[column > 0], return_counts=True)
        for value, count in zip(distinct, counts, strict=True):
            entry_of[f, value] = len(values)
            values.append(value)
            feature.append(f)
            multiplicity.append(count)
    indicator = np.zeros((X.shape[0], len(values)))
    for i, f in zip(*np.nonzero(X), strict=True):
        indicator[i, entry_of[f, X[i, f]]] = 1.0
    return np.array(values), np.array(feature), np.array(multiplicity), indicator


def _unsorted_with_explicit_zeros(X):
    S = sp.csr_matrix(X)
    S.data[::5] = 0.0  # explicit zeros
    for n in range(S.shape[0]):
        row = slice(S.indptr[n], S.indptr[n + 1])
        S.indices[row] = S.indices[row][::-1].copy()
        S.data[row] = S.data[row][::-1].copy()
    S.has_sorted_indices = False
    return S


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc", "unsorted with explicit zeros"])
@pytest.mark.parametrize("permuted", [False, True])
def test_table_matches_a_plain_construction(fmt, permuted):
    X = _counts()
    if fmt == "unsorted with explicit zeros":
        given = _unsorted_with_explicit_zeros(X)
        X = given.toarray()  # the explicit zeros are zeros
    else:
        given = {"dense": X, "csr": sp.csr_matrix(X), "csc": sp.csc_matrix(X)}[fmt]
    rows = columns = None
    if permuted:
        rng = np.random.default_rng(1)
        rows, columns = rng.permutation(X.shape[0]), rng.permutation(X.shape[1])
        X = X[rows][:, columns]
    table = build_count_table(given, rows, columns)
    values, feature, multiplicity, indicator = _reference_table(X)
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.feature, feature)
    np.testing.assert_array_equal(table.multiplicity, multiplicity)
    np.testing.assert_array_equal(table.starts, np.flatnonzero(values == 0))
    np.testing.assert_array_equal(table.indicator.sparse().toarray(), indicator)
    # Each row's entries ascend (in the order of their features).
    for n in range(X.shape[0]):
        row = table.indicator.indices[
            table.indicator.indptr[n] : table.indicator.indptr[n + 1]
        ]
        assert np.all(np.diff(row) > 0)
    assert table.indicator.indices.dtype == np.int32
    np.testing.assert_array_equal(table.counts().toarray(), X)


def test_table_of_a_subset_of_samples():
    X = _counts(seed=4)
    rows = np.random.default_rng(5).choice(X.shape[0], 50, replace=False)
    columns = np.random.default_rng(6).permutation(X.shape[1])
    table = build_count_table(sp.csr_matrix(X), rows, columns)
    values, feature, multiplicity, indicator = _reference_table(X[rows][:, columns])
    assert table.n_samples == 50
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.feature, feature)
    np.testing.assert_array_equal(table.multiplicity, multiplicity)
    np.testing.assert_array_equal(table.indicator.sparse().toarray(), indicator)


def test_indicator_sums_match_scipy_products():
    table = build_count_table(sp.csr_matrix(_counts(seed=2)))
    matrix = table.indicator.sparse()
    rng = np.random.default_rng(3)
    per_entry = rng.normal(size=(3, table.n_entries))
    per_sample = rng.normal(size=(4, table.n_samples))
    np.testing.assert_allclose(
        table.indicator.sum_rows(per_entry), (matrix @ per_entry.T).T, rtol=1e-13
    )
    np.testing.assert_allclose(
        table.indicator.sum_columns(per_sample), per_sample @ matrix, rtol=1e-13
    )
    np.testing.assert_array_equal(table.indicator.rows(), matrix.tocoo().row)
