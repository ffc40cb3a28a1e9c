"""Validation of count matrices and their compression to distinct values.

Every likelihood sum in sknbmix runs over a table of the distinct counts of
each feature rather than over cells: zeros share one log-probability and add
nothing to the score for ``alpha``, and counts repeat, so the table is much
smaller than the data (Rex1 in the built-in data: 279 cells, 176 values).
"""

# SPDX-License-Identifier: BSD-3-Clause

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln


def _check_counts(X, estimator_name="NegBinomMixture"):
    """Raise a ValueError unless X holds non-negative whole numbers.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of float
        Already validated numerically (finite, 2-D).

    estimator_name : str
        Used in the messages.
    """
    values = X.data if sp.issparse(X) else X
    # The wording "Negative values in data" is scikit-learn's
    # (check_non_negative); estimator checks look for it.
    negative = values < 0
    if negative.any():
        raise ValueError(
            f"Negative values in data passed to {estimator_name}: found "
            f"{float(values[negative].flat[0]):g} at {_position(X, negative)}. "
            "A negative binomial mixture models non-negative integer counts."
        )
    fractional = values != np.floor(values)
    if fractional.any():
        raise ValueError(
            f"{estimator_name} expects integer counts, but found the "
            f"non-integer value {float(values[fractional].flat[0]):g} at "
            f"{_position(X, fractional)}. A negative binomial likelihood on "
            "normalised or log-transformed data is not meaningful: pass raw "
            "counts."
        )


def _position(X, mask):
    """Describe where the first True of ``mask`` lies, as 'row i, column j'."""
    if not sp.issparse(X):
        row, col = np.argwhere(mask)[0]
        return f"row {row}, column {col}"
    # mask runs over X.data, which validation leaves in CSR or CSC layout.
    first = np.flatnonzero(mask)[0]
    outer = np.searchsorted(X.indptr, first, side="right") - 1
    inner = X.indices[first]
    row, col = (outer, inner) if X.format == "csr" else (inner, outer)
    return f"row {row}, column {col}"


@dataclass
class CountTable:
    """The distinct counts of each feature and how the cells map onto them.

    Entries are grouped by feature, in ascending value within each feature,
    and every feature has an entry for the value 0 first (possibly with
    multiplicity 0), so no feature's group is ever empty.

    Attributes
    ----------
    n_samples, n_features : int
    values : ndarray of shape (n_entries,)
        The distinct counts, as float.
    feature : ndarray of shape (n_entries,)
        Which feature each entry belongs to.
    starts : ndarray of shape (n_features,)
        Index of each feature's first entry (its zero); for ``np.add.reduceat``.
    multiplicity : ndarray of shape (n_entries,)
        How many cells have this count of this feature.
    log_factorial : ndarray of shape (n_entries,)
        ``gammaln(values + 1)``.
    indicator : sparse matrix of shape (n_samples, n_entries) or None
        Row i has a 1 at the entry of each non-zero count of cell i. Zero
        counts are left out: their log-probability is a per-component
        constant, and they add nothing to the score for ``alpha``. None in a
        table made by :meth:`take_features`.
    """

    n_samples: int
    n_features: int
    values: np.ndarray
    feature: np.ndarray
    starts: np.ndarray
    multiplicity: np.ndarray
    log_factorial: np.ndarray
    indicator: sp.csr_matrix | None

    @functools.cached_property
    def indicator_t(self):
        """The transposed indicator, in CSR for fast products."""
        return self.indicator.T.tocsr()

    @functools.cached_property
    def values_squared(self):
        """``values ** 2``, for the second moments of every M step."""
        return self.values**2

    @property
    def n_entries(self):
        return self.values.shape[0]

    def feature_table(self, feature):
        """The table of one feature alone."""
        table = self.take_features(np.array([feature]))
        stop = table.n_entries + self.starts[feature]
        table.indicator = self.indicator[:, self.starts[feature] : stop]
        return table

    def take_features(self, features):
        """The table of the given features, in that order, repeats allowed.

        The result has no indicator: independent per-feature mixtures are
        fit on the table alone, and a stack of starts repeats each feature's
        entries once per start.

        Parameters
        ----------
        features : ndarray of int
        """
        ends = np.append(self.starts[1:], self.n_entries)
        lengths = (ends - self.starts)[features]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
        # Entry e of the new table comes from the old entry at the same
        # offset within its feature's group.
        entries = np.repeat(self.starts[features] - starts, lengths) + np.arange(
            lengths.sum()
        )
        return CountTable(
            n_samples=self.n_samples,
            n_features=len(features),
            values=self.values[entries],
            feature=np.repeat(np.arange(len(features)), lengths),
            starts=starts,
            multiplicity=self.multiplicity[entries],
            log_factorial=self.log_factorial[entries],
            indicator=None,
        )

    def feature_sum(self, per_entry):
        """Sum ``per_entry`` (entries on the last axis) within each feature."""
        return np.add.reduceat(per_entry, self.starts, axis=-1)


def build_count_table(X):
    """Compress a validated count matrix to a :class:`CountTable`.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Non-negative whole numbers. Sparse input is read, never densified.

    Returns
    -------
    table : CountTable
    """
    n_samples, n_features = X.shape
    rows, cols, vals = _nonzeros(X)
    vals = vals.astype(np.int64)
    stride = int(vals.max()) + 1 if vals.size else 1
    # One sort of (feature, value) keys yields the table grouped by feature and
    # ordered by value; the zero of every feature is added as a key of its own.
    keys = np.concatenate(
        [np.arange(n_features, dtype=np.int64) * stride, cols * stride + vals]
    )
    unique_keys, inverse, counts = _unique_counts(keys, n_features * stride)
    feature = unique_keys // stride
    values = (unique_keys % stride).astype(np.float64)
    # A copy: a view would keep the whole inverse (one int per non-zero) alive.
    starts = inverse[:n_features].copy()
    multiplicity = (counts - np.bincount(starts, minlength=unique_keys.size)).astype(
        np.float64
    )
    # The zero entries hold the cells without a non-zero count of the feature.
    nnz_per_feature = np.bincount(cols, minlength=n_features)
    multiplicity[starts] = n_samples - nnz_per_feature
    # The non-zeros come in row order (see _nonzeros), so the indicator can be
    # assembled as CSR directly, without a COO detour.
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_samples))])
    indicator = sp.csr_matrix(
        (np.ones(rows.size), inverse[n_features:], indptr),
        shape=(n_samples, unique_keys.size),
    )
    return CountTable(
        n_samples=n_samples,
        n_features=n_features,
        values=values,
        feature=feature,
        starts=starts,
        multiplicity=multiplicity,
        log_factorial=gammaln(values + 1.0),
        indicator=indicator,
    )


def _unique_counts(keys, n_slots):
    """``np.unique(keys, return_inverse=True, return_counts=True)`` for
    non-negative integer keys below ``n_slots``.

    Counting into slots is linear in the number of keys where ``np.unique``
    sorts them (ten times slower on ten million non-zeros); when there are
    more slots than keys, sorting is the cheaper way after all.
    """
    if n_slots > 4 * keys.size:
        return np.unique(keys, return_inverse=True, return_counts=True)
    counts = np.bincount(keys, minlength=n_slots)
    present = np.flatnonzero(counts)
    rank = np.zeros(n_slots, dtype=np.intp)
    rank[present] = np.arange(present.size)
    return present, rank[keys], counts[present]


def _nonzeros(X):
    """Row indices, column indices and values of the non-zeros of X, by row."""
    if sp.issparse(X):
        X = X.tocsr()
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        keep = X.data != 0
        return rows[keep], X.indices[keep].astype(np.int64), X.data[keep]
    rows, cols = np.nonzero(X)
    return rows, cols, X[rows, cols]
