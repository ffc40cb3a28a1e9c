"""Validation of count matrices and their compression to distinct values.

Every likelihood sum in sknbmix runs over a table of the distinct counts of
each feature rather than over cells: zeros share one log-probability and add
nothing to the score for ``alpha``, and counts repeat, so the table is much
smaller than the data (Rex1 in the built-in data: 279 cells, 176 values).
"""

# SPDX-License-Identifier: BSD-3-Clause

import functools
import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.special import gammaln
from sklearn.utils.validation import check_array, validate_data

# Floating point holds every integer up to 2**53 exactly, and no further.
_MAX_COUNT = 2.0**53


def _check_counts(X, estimator_name="NegBinomMixture", first_row=0):
    """Raise a ValueError unless X holds non-negative whole numbers.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of float
        Already validated numerically (finite, 2-D).

    estimator_name : str
        Used in the messages.

    first_row : int, default=0
        The row of the whole data that is X's first (for a block of it).
    """
    position = functools.partial(_position, first_row=first_row)
    values = X.data if sp.issparse(X) else X
    finite = np.isfinite(values)
    if not finite.all():
        value = float(values[~finite].flat[0])
        what = "NaN (a missing value)" if np.isnan(value) else f"{value:g}inity"
        raise ValueError(
            f"Input contains {what} at {position(X, ~finite)}; "
            f"{estimator_name} needs finite counts."
        )
    # The wording "Negative values in data" is scikit-learn's
    # (check_non_negative); estimator checks look for it.
    negative = values < 0
    if negative.any():
        raise ValueError(
            f"Negative values in data passed to {estimator_name}: found "
            f"{float(values[negative].flat[0]):g} at {position(X, negative)}. "
            "A negative binomial mixture models non-negative integer counts."
        )
    fractional = values != np.floor(values)
    if fractional.any():
        raise ValueError(
            f"{estimator_name} expects integer counts, but found the "
            f"non-integer value {float(values[fractional].flat[0]):g} at "
            f"{position(X, fractional)}. A negative binomial likelihood on "
            "normalised or log-transformed data is not meaningful: pass raw "
            "counts."
        )
    too_large = values > _MAX_COUNT
    if too_large.any():
        raise ValueError(
            f"{estimator_name} found a count too large to hold exactly, "
            f"{float(values[too_large].flat[0]):g}, at {position(X, too_large)}: "
            "floating point holds every integer only up to 2**53."
        )


def validate_counts(estimator, X, **kwargs):
    """``validate_data`` for count matrices (CSR/CSC kept, float64), then the
    checks of :func:`_check_count_dtype` and :func:`_check_counts`, whose
    messages say what is wrong and where."""
    name = type(estimator).__name__
    if is_dask_array(X):
        raise ValueError(
            f"X is a dask array: {name}'s fit, predict, predict_proba, "
            "score_samples, score, aic and bic take one, but this function "
            "needs the counts in memory (X.compute(), if they fit)."
        )
    _check_count_dtype(X, name)
    X = validate_data(
        estimator,
        X,
        accept_sparse=["csr", "csc"],
        dtype=np.float64,
        ensure_all_finite=False,
        **kwargs,
    )
    _check_counts(X, name)
    return X


def check_count_block(X, estimator_name, first_row):
    """Validate a block of rows of a larger count matrix (a chunk of a dask
    array): as :func:`validate_counts`, with rows in the messages counted in
    the whole matrix. Returns it as float64, CSR or CSC when sparse."""
    _check_count_dtype(X, estimator_name)
    X = check_array(
        X,
        accept_sparse=["csr", "csc"],
        dtype=np.float64,
        ensure_all_finite=False,
        ensure_min_samples=0,
        input_name="X",
    )
    _check_counts(X, estimator_name, first_row)
    return X


def is_dask_array(X):
    """Whether X is a dask array (without importing dask, which is an
    optional dependency: an array of it exists only once it is imported)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def _check_count_dtype(X, estimator_name="NegBinomMixture"):
    """Raise a ValueError for booleans and strings, which a float conversion
    would otherwise turn into numbers silently, or fail on without saying
    where."""
    if hasattr(X, "dtypes") and not hasattr(X, "dtype"):  # a DataFrame
        kinds = {np.dtype(dtype).kind for dtype in X.dtypes if _is_numpy(dtype)}
    else:
        dtype = getattr(X, "dtype", None)
        kinds = {np.dtype(np.asarray(X).dtype if dtype is None else dtype).kind}
    if "b" in kinds:
        raise ValueError(
            f"{estimator_name} got boolean data: booleans are not counts "
            "(convert them with astype(int) if they really are 0/1 counts)."
        )
    if kinds & {"U", "S", "O"}:
        values = np.asarray(X, dtype=object)
        first = None
        # Strings, numeric or not (other objects are left to numpy, whose
        # TypeError scikit-learn's checks expect).
        for index, value in np.ndenumerate(values):
            if isinstance(value, str | bytes):
                first = first or (index, value)
                if not _is_number(value):
                    first = (index, value)
                    break
        if first is not None:
            index, value = first
            where = (
                f"row {index[0]}, column {index[1]}"
                if len(index) == 2
                else f"index {index}"
            )
            raise ValueError(
                f"{estimator_name} expects numeric counts, but found the string "
                f"{value!r} at {where} (convert the data to numbers first)."
            )


def _is_numpy(dtype):
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def _is_number(value):
    if value is None:
        return True  # becomes NaN, reported with its position later
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _position(X, mask, first_row=0):
    """Describe where the first True of ``mask`` lies, as 'row i, column j'
    (rows counted from ``first_row``)."""
    if not sp.issparse(X):
        row, col = np.argwhere(mask)[0]
        return f"row {row + first_row}, column {col}"
    # mask runs over X.data, which validation leaves in CSR or CSC layout.
    first = np.flatnonzero(mask)[0]
    outer = np.searchsorted(X.indptr, first, side="right") - 1
    inner = X.indices[first]
    row, col = (outer, inner) if X.format == "csr" else (inner, outer)
    return f"row {row + first_row}, column {col}"


def check_size_factors(size_factors, n_samples):
    """Validate explicit size factors: a ValueError naming what is wrong
    unless they are one finite positive number per sample.

    Returns
    -------
    size_factors : ndarray of float64 of shape (n_samples,)
    """
    try:
        values = np.asarray(size_factors, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"size_factors must be numbers, one per sample; got {size_factors!r}."
        ) from error
    if values.ndim != 1:
        raise ValueError(
            "size_factors must be a 1-D array with one value per sample, got "
            f"an array of shape {values.shape}."
        )
    if values.shape[0] != n_samples:
        raise ValueError(
            f"size_factors has {values.shape[0]} values but X has {n_samples} "
            "samples: give one size factor per sample."
        )
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = values[first]
        what = (
            "NaN"
            if np.isnan(value)
            else "infinite"
            if np.isinf(value)
            else "zero"
            if value == 0
            else "negative"
        )
        raise ValueError(
            f"size_factors must be finite and positive, but size_factors[{first}] "
            f"is {what} ({value:g}), and {np.count_nonzero(bad)} of {n_samples} "
            "values are not finite and positive."
        )
    return values


def resolve_size_factors(X, size_factors, setting):
    """The size factors of validated X and where they come from: an array
    given to a method wins (``"given"``), else the estimator's
    ``size_factors`` setting: ``"total"`` computes them from X, None leaves
    none (``"none"``)."""
    if size_factors is not None:
        return check_size_factors(size_factors, X.shape[0]), "given"
    if setting == "total":
        return total_size_factors(X), "total"
    return None, "none"


def total_size_factors(X):
    """Size factors from the samples' total counts, over their mean.

    A sample without counts gets 0: under every component its counts have
    probability 1, so it carries no information (its responsibilities are
    the weights).
    """
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    mean = totals.mean() if totals.size else 0.0
    if not mean > 0:
        raise ValueError(
            'size_factors="total" needs counts: every sample of X has a total '
            "count of 0."
        )
    return totals / mean


@dataclass(frozen=True)
class Indicator:
    """Which table entry each non-zero count of each sample is: the
    structure of a CSR matrix of shape (n_samples, n_entries) whose stored
    values are all 1, without storing them.

    Row ``i`` holds the entries of cell ``i``'s non-zero counts (from
    :func:`build_count_table` ascending, so in the order of their
    features). Indices are int32 there while the table has fewer than 2**31
    entries: 4 bytes per non-zero, where a scipy matrix of ones and its
    transpose took 24.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_entries: int

    @property
    def shape(self):
        return (self.indptr.size - 1, self.n_entries)

    def rows(self):
        """The sample of each non-zero, in storage order."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def sum_rows(self, per_entry):
        """``per_entry @ indicator.T``: for each row of ``per_entry`` (shape
        (m, n_entries)), the sum over each sample's non-zero entries, shaped
        (m, n_samples)."""
        return _sum_rows(
            self.indptr, self.indices, np.ascontiguousarray(per_entry, dtype=float)
        )

    def sum_columns(self, per_sample):
        """``per_sample @ indicator``: for each row of ``per_sample`` (shape
        (m, n_samples)), the sum over the samples of each entry, shaped (m,
        n_entries)."""
        # Samples by rows: each non-zero adds one contiguous row.
        by_entry = _sum_columns(
            self.indptr,
            self.indices,
            np.ascontiguousarray(np.asarray(per_sample, dtype=float).T),
            self.n_entries,
        )
        return by_entry.T

    def sparse(self):
        """The indicator as a scipy CSR matrix of ones."""
        return sp.csr_matrix(
            (np.ones(self.indices.size), self.indices, self.indptr), shape=self.shape
        )


@njit(cache=True)
def _sum_rows(indptr, indices, per_entry):
    out = np.zeros((per_entry.shape[0], indptr.size - 1))
    for m in range(per_entry.shape[0]):
        for n in range(indptr.size - 1):
            total = 0.0
            for p in range(indptr[n], indptr[n + 1]):
                total += per_entry[m, indices[p]]
            out[m, n] = total
    return out


@njit(cache=True)
def _sum_columns(indptr, indices, by_sample, n_entries):
    out = np.zeros((n_entries, by_sample.shape[1]))
    for n in range(indptr.size - 1):
        for p in range(indptr[n], indptr[n + 1]):
            out[indices[p]] += by_sample[n]
    return out


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
    indicator : Indicator or None
        Row i has a 1 at the entry of each non-zero count of cell i. Zero
        counts are left out: their log-probability is a per-component
        constant, and they add nothing to the score for ``alpha``. None in a
        table made by :meth:`take_features`.
    log_scales : ndarray of shape (n_scales,) or None
        With size factors (see :func:`build_scaled_table`), the logs of the
        distinct size factors, ascending; None without.
    scale_index : ndarray of int of shape (n_entries,) or None
        With size factors, the index of each entry's size factor in
        ``log_scales``.
    sample_group : ndarray of int of shape (n_samples,) or None
        With size factors, the index of each sample's size factor in
        ``log_scales``: the zero count of feature ``g`` and sample ``i`` is
        entry ``starts[g] + sample_group[i]``.
    """

    n_samples: int
    n_features: int
    values: np.ndarray
    feature: np.ndarray
    starts: np.ndarray
    multiplicity: np.ndarray
    log_factorial: np.ndarray
    indicator: Indicator | None
    log_scales: np.ndarray | None = None
    scale_index: np.ndarray | None = None
    sample_group: np.ndarray | None = None

    @property
    def entry_log_scale(self):
        """The log of each entry's size factor (None without size factors)."""
        return None if self.log_scales is None else self.log_scales[self.scale_index]

    @property
    def n_entries(self):
        return self.values.shape[0]

    def counts(self):
        """The counts as a CSR matrix (n_samples, n_features), from the
        indicator (of a table from :func:`build_count_table`)."""
        indicator = self.indicator
        return sp.csr_matrix(
            (
                self.values[indicator.indices],
                self.feature[indicator.indices],
                indicator.indptr,
            ),
            shape=(self.n_samples, self.n_features),
        )

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
            log_scales=self.log_scales,
            scale_index=None if self.scale_index is None else self.scale_index[entries],
            sample_group=self.sample_group,
        )

    def feature_sum(self, per_entry):
        """Sum ``per_entry`` (entries on the last axis) within each feature."""
        return np.add.reduceat(per_entry, self.starts, axis=-1)


def build_count_table(X, rows=None, columns=None):
    """Compress a validated count matrix to a :class:`CountTable`.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Non-negative whole numbers. Sparse input is read, never densified.
    rows : ndarray of int, optional
        The samples to take, in this order (a permutation, or a subset):
        the table is that of ``X[rows]``, without a copy of X.
    columns : ndarray of int, optional
        A permutation of the features: feature ``j`` of the table is column
        ``columns[j]`` of X.

    Returns
    -------
    table : CountTable

    Notes
    -----
    Two compiled passes over the non-zeros, so that the table costs little
    memory beyond what it keeps (4 bytes per non-zero, the indicator): the
    first sorts each feature's non-zero counts in a bucket of their own (8
    bytes per non-zero, freed before the second) and makes the entries; the
    second finds each non-zero's entry by binary search.
    """
    n_features = X.shape[1]
    X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
    rank = np.arange(n_features)
    if columns is not None:
        rank[columns] = np.arange(n_features)
    if rows is None:
        rows = np.arange(X.shape[0])
    rows = np.asarray(rows, dtype=np.intp)
    n_samples = rows.size
    indptr = X.indptr.astype(np.int64, copy=False)
    values, feature, starts, multiplicity, n_nonzero = _table_entries(
        indptr, X.indices, X.data, rows, rank
    )
    index_type = np.int32 if values.size < 2**31 else np.int64
    indices = np.empty(n_nonzero, dtype=index_type)
    new_indptr = _indicator(
        indptr, X.indices, X.data, rows, rank, values, starts, indices
    )
    return CountTable(
        n_samples=n_samples,
        n_features=n_features,
        values=values,
        feature=feature,
        starts=starts,
        multiplicity=multiplicity,
        log_factorial=gammaln(values + 1.0),
        indicator=Indicator(new_indptr, indices, values.size),
    )


@njit(cache=True)
def _table_entries(indptr, indices, data, rows, rank):
    """The entries of the table of samples ``rows``: each feature's zero,
    then its distinct non-zero counts, ascending, with their multiplicities
    (column ``c`` of the data is feature ``rank[c]``); and the number of
    non-zeros."""
    n_features = rank.size
    n_samples = rows.size
    offset = np.zeros(n_features + 1, dtype=np.int64)
    for n in range(n_samples):
        for p in range(indptr[rows[n]], indptr[rows[n] + 1]):
            if data[p] != 0.0:
                offset[rank[indices[p]] + 1] += 1
    offset = np.cumsum(offset)
    bucket = np.empty(offset[n_features])
    fill = offset[:n_features].copy()
    for n in range(n_samples):
        for p in range(indptr[rows[n]], indptr[rows[n] + 1]):
            if data[p] != 0.0:
                f = rank[indices[p]]
                bucket[fill[f]] = data[p]
                fill[f] += 1
    n_entries = n_features
    for f in range(n_features):
        counts = bucket[offset[f] : offset[f + 1]]
        counts.sort()
        for q in range(counts.size):
            if q == 0 or counts[q] != counts[q - 1]:
                n_entries += 1
    values = np.zeros(n_entries)
    feature = np.empty(n_entries, dtype=np.int64)
    starts = np.empty(n_features, dtype=np.int64)
    multiplicity = np.zeros(n_entries)
    e = 0
    for f in range(n_features):
        starts[f] = e
        feature[e] = f
        multiplicity[e] = n_samples - (offset[f + 1] - offset[f])
        for q in range(offset[f], offset[f + 1]):
            if q == offset[f] or bucket[q] != bucket[q - 1]:
                e += 1
                values[e] = bucket[q]
                feature[e] = f
            multiplicity[e] += 1.0
        e += 1
    return values, feature, starts, multiplicity, offset[n_features]


@njit(cache=True)
def _indicator(indptr, indices, data, rows, rank, values, starts, out):
    """Fill ``out`` with the entry of each non-zero count, row ``rows[0]``
    first, each row ascending; return the rows' pointers into it."""
    n_features = starts.size
    new_indptr = np.zeros(rows.size + 1, dtype=np.int64)
    q = 0
    for n in range(rows.size):
        first = q
        ordered = True
        for p in range(indptr[rows[n]], indptr[rows[n] + 1]):
            x = data[p]
            if x == 0.0:
                continue
            f = rank[indices[p]]
            # The feature's non-zero entries follow its zero entry.
            low = starts[f] + 1
            high = starts[f + 1] if f + 1 < n_features else values.size
            out[q] = low + np.searchsorted(values[low:high], x)
            if q > first and out[q] < out[q - 1]:
                ordered = False
            q += 1
        if not ordered:
            out[first:q].sort()
        new_indptr[n + 1] = q
    return new_indptr


def build_scaled_table(X, size_factors):
    """Compress a validated count matrix with a size factor per sample to a
    :class:`CountTable` whose entries are the distinct (count, size factor)
    pairs of each feature.

    Each feature's entries begin with a zero count for every distinct size
    factor, in ascending order (multiplicity 0 where every sample of that
    size factor has a non-zero count), then its non-zero counts, ascending
    by count and size factor. The table has ``n_features`` times the number
    of distinct size factors entries at least: it is the form of one
    feature, or of features with mixtures of their own.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Non-negative whole numbers. Sparse input is read, never densified.
    size_factors : ndarray of shape (n_samples,)
        Non-negative (0 only for a sample without counts).

    Returns
    -------
    table : CountTable
    """
    n_samples, n_features = X.shape
    rows, cols, vals = _nonzeros(X)
    scales, group, group_size = np.unique(
        size_factors, return_inverse=True, return_counts=True
    )
    n_groups = scales.size
    zero_cols = np.repeat(np.arange(n_features, dtype=np.int64), n_groups)
    zero_groups = np.tile(np.arange(n_groups), n_features)
    all_cols = np.concatenate([zero_cols, cols])
    all_vals = np.concatenate([np.zeros(zero_cols.size), vals])
    all_groups = np.concatenate([zero_groups, group[rows]])
    order = np.lexsort((all_groups, all_vals, all_cols))
    key = (all_cols[order], all_vals[order], all_groups[order])
    new = np.ones(order.size, dtype=bool)
    new[1:] = (key[0][1:] != key[0][:-1]) | (key[1][1:] != key[1][:-1])
    new[1:] |= key[2][1:] != key[2][:-1]
    rank = np.cumsum(new) - 1
    inverse = np.empty_like(rank)
    inverse[order] = rank
    feature, values, entry_group = (k[new] for k in key)
    multiplicity = np.bincount(rank).astype(np.float64)
    # The added zero keys are no samples: a zero entry holds the samples of
    # its size factor without a non-zero count of the feature.
    zero_entries = inverse[: zero_cols.size]
    nonzero_by_group = np.bincount(
        cols * n_groups + group[rows], minlength=n_features * n_groups
    )
    multiplicity[zero_entries] = np.tile(group_size, n_features) - nonzero_by_group
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_samples))])
    indicator = Indicator(indptr, inverse[zero_cols.size :], feature.size)
    with np.errstate(divide="ignore"):
        log_scales = np.log(scales)
    values = values.astype(np.float64)
    return CountTable(
        n_samples=n_samples,
        n_features=n_features,
        values=values,
        feature=feature,
        starts=zero_entries[::n_groups].copy(),
        multiplicity=multiplicity,
        log_factorial=gammaln(values + 1.0),
        indicator=indicator,
        log_scales=log_scales,
        scale_index=entry_group,
        sample_group=group,
    )


def _nonzeros(X):
    """Row indices, column indices and values of the non-zeros of X, by row."""
    if sp.issparse(X):
        X = X.tocsr()
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        keep = X.data != 0
        return rows[keep], X.indices[keep].astype(np.int64), X.data[keep]
    rows, cols = np.nonzero(X)
    return rows, cols, X[rows, cols]
