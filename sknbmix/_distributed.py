"""Fits and predictions on dask arrays, as map-reduce over blocks of samples.

A dask array chunked along its samples (cells) stays where its chunks are.
Each block of samples is checked and compressed to a table on its worker,
and every EM step runs there (:meth:`MixtureLikelihood.statistics`),
returning only what adds up over samples: the log-likelihood, and per
component the responsibility mass at each distinct count of each feature
and its total. The driver adds these up and runs the M step, so only
statistics of the size of the parameters cross the network, and the engine
(:func:`sknbmix._fit.fit_likelihood`) runs unchanged on a
:class:`DistributedLikelihood`. The canonical orders of samples and
features come from per-row keys and per-column sums, the starts from
:class:`~sknbmix._fit.SampleSplits`: the fit is the in-memory fit of the
same data, up to the order in which sums over samples are rounded.

Independent mixtures per feature (``shared_weights=False``, or one
feature) are split by blocks of features instead: each block, with all its
samples, is gathered on a worker and fit there by the in-memory engine.

The computations run on dask's active scheduler: a
:class:`distributed.Client`'s cluster when one exists.
"""

# SPDX-License-Identifier: BSD-3-Clause

import copy
import dataclasses
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from sknbmix import _kernels
from sknbmix._data import CountTable, Indicator, build_count_table, check_count_block
from sknbmix._fit import (
    FitResult,
    fit,
    fit_likelihood,
    order_of_row_keys,
    parameters_to_theta,
    power_sums,
    row_key_weights,
    row_keys,
)
from sknbmix._likelihood import (
    MASS_FLOOR,
    MixtureLikelihood,
    score_distribution,
)


def check_dask_counts(X, estimator_name):
    """Check what can be checked of a dask array of counts without reading
    its values (they are checked block by block as the blocks are read)."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D dask array of counts, got {X.ndim} dimension(s)."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "The dask array has chunks of unknown size; call "
            "X.compute_chunk_sizes() first."
        )
    if len(X.chunks[1]) != 1:
        raise ValueError(
            f"{estimator_name} needs a dask array chunked along the samples "
            f"only, but X has {len(X.chunks[1])} chunks along its features; "
            "rechunk it with X.rechunk({1: -1})."
        )
    kind = np.dtype(X.dtype).kind
    if kind == "b":
        raise ValueError(f"{estimator_name} got boolean data: booleans are not counts.")
    if kind not in "iuf":
        raise ValueError(
            f"{estimator_name} expects numeric counts, got a dask array of "
            f"dtype {X.dtype}."
        )


def _checked_blocks(X, estimator_name):
    """The chunks of X as delayed objects, checked and converted to float64
    (CSR or CSC when sparse) on the workers, with rows in error messages
    counted in the whole of X."""
    firsts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]])
    chunks = X.to_delayed().ravel()
    return [
        dask.delayed(check_count_block)(chunk, estimator_name, int(first))
        for chunk, first in zip(chunks, firsts, strict=True)
    ]


def _tree_sum(parts):
    """The sum of delayed tuples of arrays, added pairwise on the workers."""
    parts = list(parts)
    while len(parts) > 1:
        pairs = [
            dask.delayed(_add)(parts[i], parts[i + 1])
            for i in range(0, len(parts) - 1, 2)
        ]
        parts = pairs + parts[len(pairs) * 2 :]
    return parts[0]


def _add(a, b):
    return tuple(x + y for x, y in zip(a, b, strict=True))


# -- the blocks of samples ------------------------------------------------------


class _Block(NamedTuple):
    """What a worker keeps of its block of samples: the likelihood of the
    block on the global table (its indicator points at the global entries)
    and the canonical rank of each of its samples."""

    likelihood: MixtureLikelihood
    ranks: np.ndarray


def _table_and_row_keys(block, features, weights):
    """A block's table (features in canonical order) and its rows'
    :func:`~sknbmix._fit.row_keys`."""
    return build_count_table(block, None, features), row_keys(block, weights)


@dask.delayed
def _entry_list(table):
    """The feature, value and multiplicity of each entry of a block's table."""
    return table.feature, table.values, table.multiplicity


def _block_on_global_table(local, table, to_global, ranks):
    """A block's table with its indicator moved onto the global entries."""
    indicator = local.indicator
    multiplicity = np.bincount(
        to_global, weights=local.multiplicity, minlength=table.n_entries
    )
    block_table = dataclasses.replace(
        table,
        n_samples=local.n_samples,
        multiplicity=multiplicity,
        indicator=Indicator(
            indicator.indptr,
            to_global[indicator.indices].astype(indicator.indices.dtype),
            table.n_entries,
        ),
    )
    return _Block(MixtureLikelihood(block_table, shared_weights=True), ranks)


def _merge_entries(entry_lists, n_samples, n_features):
    """The global table of the distinct counts of all blocks (without an
    indicator), and for each block where each of its entries went."""
    feature = np.concatenate([f for f, _, _ in entry_lists])
    values = np.concatenate([v for _, v, _ in entry_lists])
    multiplicity = np.concatenate([m for _, _, m in entry_lists])
    order = np.lexsort((values, feature))
    distinct = np.ones(order.size, dtype=bool)
    distinct[1:] = (np.diff(feature[order]) != 0) | (np.diff(values[order]) != 0)
    global_index = np.empty(order.size, dtype=np.int64)
    global_index[order] = np.cumsum(distinct) - 1
    kept = order[distinct]
    n_entries = kept.size
    table = CountTable(
        n_samples=n_samples,
        n_features=n_features,
        values=values[kept],
        feature=feature[kept],
        starts=np.searchsorted(feature[kept], np.arange(n_features)).astype(np.intp),
        multiplicity=np.bincount(
            global_index, weights=multiplicity, minlength=n_entries
        ),
        log_factorial=gammaln(values[kept] + 1.0),
        indicator=None,
    )
    bounds = np.cumsum([0] + [f.size for f, _, _ in entry_lists])
    maps = [global_index[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return table, maps


def _block_statistics(block, theta, responsibilities):
    return block.likelihood.statistics(theta, responsibilities)


def _block_split_mass(block, splits):
    likelihood = block.likelihood
    resp = splits.responsibilities(block.ranks, likelihood.sample_scores())
    return likelihood.responsibility_mass(resp)


def _block_scores(block):
    return np.unique(block.likelihood.sample_scores(), return_counts=True)


def _block_log_prob(block, theta, responsibilities):
    log_prob, resp = block.likelihood.cell_log_prob(
        theta, responsibilities=responsibilities
    )
    return (log_prob,) if resp is None else (log_prob, resp)


class DistributedLikelihood:
    """The likelihood of the per-sample model on blocks of samples that stay
    on dask's workers, with the interface of
    :class:`~sknbmix._likelihood.MixtureLikelihood` that the engine uses.

    Parameters
    ----------
    blocks : list of Delayed
        Persisted :class:`_Block` objects, in the order of the samples.
    table : CountTable
        The distinct counts of all blocks, without an indicator.
    block_sizes : tuple of int
        The number of samples of each block.
    newton_steps : int, default=1
    """

    shared_weights = per_cell = True
    scaled = has_hessian = False
    sample_log_scale = None

    def __init__(self, blocks, table, block_sizes, newton_steps=1):
        self.blocks = blocks
        self.table = table
        self.block_sizes = block_sizes
        # The M step runs here, on the global table's distinct counts.
        self.driver = MixtureLikelihood(table, True, newton_steps)

    @property
    def newton_steps(self):
        return self.driver.newton_steps

    def exact(self):
        """The same likelihood with an exact M step (see
        :meth:`MixtureLikelihood.exact`)."""
        exact = copy.copy(self)
        exact.driver = self.driver.exact()
        return exact

    def _reduce(self, function, *args):
        """``function(block, *args)`` on every block, added up over the
        blocks on the workers; the sum comes back."""
        args = [dask.delayed(arg) for arg in args]
        parts = [dask.delayed(function)(block, *args) for block in self.blocks]
        return dask.compute(_tree_sum(parts))[0]

    def _step(self, theta, mode):
        log_likelihood, mass, totals = self._reduce(_block_statistics, theta, True)
        new = self.driver.update_from_statistics(theta, mass, totals, mode)
        return log_likelihood.reshape(-1, 1, 1), new

    def em_step(self, theta):
        """As :meth:`MixtureLikelihood.em_step`."""
        return self._step(theta, _kernels.M_STEP)

    def gradient(self, theta):
        """As :meth:`MixtureLikelihood.gradient`."""
        log_likelihood, gradient = self._step(theta, _kernels.GRADIENT)
        return log_likelihood, gradient._replace(
            log_weights=gradient.log_weights[:, 1:]
        )

    def log_likelihood(self, theta):
        """As :meth:`MixtureLikelihood.log_likelihood`."""
        return self._reduce(_block_statistics, theta, False)[0].reshape(-1, 1, 1)

    def from_splits(self, splits):
        """As :meth:`MixtureLikelihood.from_splits`."""
        mass, total = self._reduce(_block_split_mass, splits)
        return self.driver.from_mass(mass, total + MASS_FLOOR)

    def score_distribution(self):
        """As :meth:`MixtureLikelihood.score_distribution`, merged from the
        blocks' own."""
        parts = dask.compute(
            *[dask.delayed(_block_scores)(block) for block in self.blocks]
        )
        scores = np.concatenate([scores for scores, _ in parts])
        counts = np.concatenate([counts for _, counts in parts])
        distinct, inverse = np.unique(scores, return_inverse=True)
        return score_distribution(distinct, np.bincount(inverse, weights=counts))

    def cell_log_prob(self, theta, *, responsibilities=True):
        """As :meth:`MixtureLikelihood.cell_log_prob`, as dask arrays chunked
        as the data (computed when asked for)."""
        n_components = theta.log_alpha.shape[1]
        theta = dask.delayed(theta)
        parts = [
            dask.delayed(_block_log_prob, nout=1 + responsibilities)(
                block, theta, responsibilities
            )
            for block in self.blocks
        ]
        log_prob = da.concatenate(
            [
                da.from_delayed(part[0], shape=(size,), dtype=float)
                for part, size in zip(parts, self.block_sizes, strict=True)
            ]
        )
        if not responsibilities:
            return log_prob, None
        resp = da.concatenate(
            [
                da.from_delayed(part[1], shape=(size, n_components), dtype=float)
                for part, size in zip(parts, self.block_sizes, strict=True)
            ]
        )
        return log_prob, resp


# -- fits ------------------------------------------------------------------------


def fit_dask(X, settings, random_state=None, *, warm_start=None, labels=False):
    """:func:`sknbmix._fit.fit` of a dask array chunked along its samples
    (checked by :func:`check_dask_counts`), on dask's active scheduler.

    With shared weights and several features the samples stay in their
    blocks (see :class:`DistributedLikelihood`); otherwise blocks of
    features are fit on the workers (see :func:`_fit_by_features`). Labels
    come back as a dask array.
    """
    n_features = X.shape[1]
    # The cluster spreads the work; joblib's processes would each need it.
    settings = dataclasses.replace(settings, n_jobs=1)
    # Blocks are read (computed) once per pass, never kept: what stays on
    # the workers is their tables, a third of the size of the data.
    checked = _checked_blocks(X, "NegBinomMixture")
    if not settings.shared_weights or n_features == 1:
        return _fit_by_features(X, checked, settings, random_state, warm_start, labels)
    if settings.init_params == "kmeans":
        raise ValueError(
            "init_params='kmeans' needs the data in memory: it is not available "
            "for a dask array; use 'quantile' or 'random'."
        )
    likelihood, features = distributed_likelihood(X, checked)
    return fit_likelihood(
        likelihood,
        settings,
        random_state,
        features=features,
        warm_start=warm_start,
        labels=labels,
    )


def distributed_likelihood(X, checked=None):
    """The :class:`DistributedLikelihood` of a dask array X (per-sample
    model), with its features in canonical order, and that order.

    ``checked`` are X's blocks as :func:`_checked_blocks` makes them (made
    here when None). The blocks are read twice: for the canonical order of
    the features, then for their tables and the rows' keys.
    """
    n_samples, n_features = X.shape
    if checked is None:
        checked = _checked_blocks(X, "NegBinomMixture")
    # The canonical orders (see sknbmix._fit.canonical_order): columns by
    # sums that add up over blocks, rows by keys of their own.
    sums = dask.compute(*[dask.delayed(power_sums)(block) for block in checked])
    features = np.lexsort(np.sum(sums, axis=0))
    weights = row_key_weights(features)
    # Each block's table and row keys, then the global table of all their
    # distinct counts and the samples' canonical ranks.
    local = dask.persist(
        *[
            dask.delayed(_table_and_row_keys, nout=2)(block, features, weights)
            for block in checked
        ]
    )
    parts = dask.compute(*[(keys, _entry_list(table)) for table, keys in local])
    total, weighted = (
        np.concatenate(part) for part in zip(*(keys for keys, _ in parts), strict=True)
    )
    ranks = np.empty(n_samples, dtype=np.int64)
    ranks[order_of_row_keys(total, weighted)] = np.arange(n_samples)
    table, maps = _merge_entries(
        [entries for _, entries in parts], n_samples, n_features
    )
    bounds = np.cumsum((0,) + X.chunks[0])
    global_table = dask.delayed(table)
    blocks = dask.persist(
        *[
            dask.delayed(_block_on_global_table)(
                part[0], global_table, to_global, ranks[start:stop]
            )
            for part, to_global, start, stop in zip(
                local, maps, bounds[:-1], bounds[1:], strict=True
            )
        ]
    )
    del local
    return DistributedLikelihood(list(blocks), table, X.chunks[0]), features


def _gather_columns(blocks, columns):
    """The columns ``columns`` of all the blocks of samples, stacked."""
    parts = [block[:, columns] for block in blocks]
    if sp.issparse(parts[0]):
        return sp.vstack(parts, format="csc")
    return np.vstack(parts)


def _fit_by_features(X, checked, settings, random_state, warm_start, labels):
    """Independent mixtures (or one feature): blocks of features, each with
    all its samples, fit on the workers by the in-memory engine.

    Each feature is fit as in memory; random starts (``n_init > 1``,
    ``init_params`` other than ``"quantile"``) draw from a generator of
    their own per block, seeded from ``random_state``.
    """
    n_features = X.shape[1]
    # Every block of features reads every block of samples: read once.
    checked = dask.persist(*checked)
    n_blocks = min(n_features, len(checked))
    column_blocks = np.array_split(np.arange(n_features), n_blocks)
    tasks = []
    for columns in column_blocks:
        seed = None if random_state is None else random_state.randint(2**31 - 1)
        start = None
        if warm_start is not None:
            start = warm_start._replace(
                log_alpha=warm_start.log_alpha[..., columns],
                log_b=warm_start.log_b[..., columns],
                log_weights=(
                    warm_start.log_weights
                    if settings.shared_weights
                    else warm_start.log_weights[..., columns]
                ),
            )
        data = dask.delayed(_gather_columns)(list(checked), columns)
        tasks.append(dask.delayed(_fit_columns)(data, settings, seed, start))
    results = dask.compute(*tasks)
    weights = [result.parameters["weights"] for result in results]
    parameters = {
        # One mixture's weights, or one row per feature.
        "weights": weights[0] if settings.shared_weights else np.concatenate(weights),
        **{
            name: np.concatenate([r.parameters[name] for r in results], axis=1)
            for name in ("alpha", "b", "means")
        },
    }
    theta = parameters_to_theta(
        parameters["weights"],
        parameters["alpha"],
        parameters["b"],
        settings.shared_weights,
    )
    return FitResult(
        parameters,
        max(r.n_iter for r in results),
        all(r.converged for r in results),
        float(sum(r.lower_bound for r in results)),
        np.concatenate([r.start_log_likelihoods for r in results], axis=2),
        predict(X, theta, settings.shared_weights)[1].argmax(axis=-1)
        if labels
        else None,
    )


def _fit_columns(X, settings, seed, warm_start):
    random_state = None if seed is None else np.random.RandomState(seed)
    return fit(X, settings, random_state, warm_start=warm_start)


# -- predictions -----------------------------------------------------------------


def _chunk_log_prob(chunk, theta, shared_weights, responsibilities, block_info=None):
    first_row = block_info[0]["array-location"][0][0]
    chunk = check_count_block(chunk, "NegBinomMixture", first_row)
    log_prob, resp = MixtureLikelihood.of_counts(chunk, shared_weights).cell_log_prob(
        theta, responsibilities=responsibilities
    )
    return resp if responsibilities else log_prob


def predict(X, theta, shared_weights, responsibilities=True):
    """The per-sample log-likelihood and (with ``responsibilities``) the
    responsibilities of a dask array X under one start ``theta``, as dask
    arrays chunked along the samples as X is (see
    :meth:`MixtureLikelihood.cell_log_prob`)."""
    log_prob = X.map_blocks(
        _chunk_log_prob,
        theta,
        shared_weights,
        False,
        drop_axis=1,
        dtype=float,
        meta=np.empty(0),
    )
    if not responsibilities:
        return log_prob, None
    n_components, n_features = theta.log_alpha.shape[1:]
    shape = (n_components,) if shared_weights else (n_features, n_components)
    resp = X.map_blocks(
        _chunk_log_prob,
        theta,
        shared_weights,
        True,
        chunks=(X.chunks[0], *((size,) for size in shape)),
        new_axis=None if shared_weights else 2,
        dtype=float,
        meta=np.empty((0,) * (1 + len(shape))),
    )
    return log_prob, resp


def _block_feature_log_likelihood(block, theta):
    likelihood = MixtureLikelihood.of_counts(block, shared_weights=False)
    return (likelihood.log_likelihood(theta)[0, 0],)


def feature_log_likelihood(X, theta):
    """The log-likelihood of each feature's own mixture (one start ``theta``
    of independent weights) on a dask array X, added up over its blocks."""
    theta = dask.delayed(theta)
    parts = [
        dask.delayed(_block_feature_log_likelihood)(block, theta)
        for block in _checked_blocks(X, "NegBinomMixture")
    ]
    return dask.compute(_tree_sum(parts))[0][0]
