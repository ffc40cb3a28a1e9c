"""Sparse count matrices drawn from a known negative binomial mixture.

Single-cell RNA-like data for the scale benchmarks: gene means spread
log-normally over several orders of magnitude, so that most of the matrix is
zero (about 90% with the defaults), and over-dispersion ``alpha`` log-normal
around 1.5. The matrix is drawn sparse from the start: per group of cells that
share a distribution (a component of a gene), the number of non-zero counts is
binomial, the cells that get them are a uniform subset, and their values come
from the zero-truncated distribution by inversion of its tabulated CDF. Time
and memory are O(nnz + number of groups x table length), never O(n_samples x
n_features), so 300,000 x 4,000 matrices are cheap to make.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln
from scipy.stats import nbinom

# Gene means: log-normal; with alpha around 1.5 this leaves ~90% zeros.
_LOG_MEAN_LOC, _LOG_MEAN_SCALE = np.log(0.05), 1.5
_LOG_ALPHA_LOC, _LOG_ALPHA_SCALE = np.log(1.5), 0.3
# Shared model: the share of genes that differ in each component, and the
# range of their fold change (up or down, log-uniform).
_DIFFERENTIAL = 0.15
_FOLD_CHANGE = (2.0, 8.0)
# Dirichlet concentration of the weights: no component below ~2% for K <= 8.
_WEIGHT_CONCENTRATION = 4.0
# The tables of the zero-truncated distributions stop where the tail is this
# small (the rest is renormalised away).
_TAIL = 1e-12


def make_counts(
    n_samples, n_features, n_components, *, shared=True, density=None, random_state=0
):
    """Draw a sparse count matrix from a known negative binomial mixture.

    Parameters
    ----------
    n_samples, n_features : int
        Cells and genes.
    n_components : int
        Mixture components (cell types if ``shared``, else per gene).
    shared : bool, default=True
        If True, every cell belongs to one latent component shared by all
        genes (as ``NegBinomMixture(shared_weights=True)``): each component
        has its own mean on a random ~15% of the genes (fold change 2 to 8,
        up or down) and the common mean on the rest. If False, every gene is
        a mixture of its own, with its own weights and with means spread by
        fold changes of 2 to 8 between successive components, drawn
        independently for each cell (as ``shared_weights=False``).
    density : float or None, default=None
        If given, all means are scaled by one factor so that the expected
        share of non-zero entries is ``density``. None keeps the natural
        spread (about 10% non-zero).
    random_state : int or numpy.random.Generator, default=0

    Returns
    -------
    X : scipy.sparse.csr_matrix of float64, shape (n_samples, n_features)
        Whole-number counts, sorted indices, no explicit zeros.
    truth : dict
        ``weights`` ((K,) if shared, else (G, K)), ``alpha``, ``b`` and
        ``means`` ((K, G)), in the estimator's canonical order (components by
        ascending total mean if shared, else by ascending mean per gene);
        ``labels`` ((n,), shared only) and ``differential`` ((K, G) bool,
        True where a component's mean differs from the common one; shared
        only); ``zero_fraction`` of the drawn matrix.
    """
    rng = np.random.default_rng(random_state)
    K, G = n_components, n_features
    base = np.exp(rng.normal(_LOG_MEAN_LOC, _LOG_MEAN_SCALE, G))
    log_fold = rng.uniform(*np.log(_FOLD_CHANGE), (K, G))
    if shared:
        weights = rng.dirichlet(np.full(K, _WEIGHT_CONCENTRATION))
        differential = rng.random((K, G)) < _DIFFERENTIAL
        sign = rng.choice([-1.0, 1.0], (K, G))
        means = base * np.exp(np.where(differential, sign * log_fold, 0.0))
        # The common genes share alpha too, so that they are truly the same.
        alpha = np.where(
            differential,
            _draw_alpha(rng, (K, G)),
            _draw_alpha(rng, G),
        )
        weight_of = np.broadcast_to(weights[:, None], (K, G))
    else:
        weights = rng.dirichlet(np.full(K, _WEIGHT_CONCENTRATION), G)
        # Successive components apart by the fold changes, centred on base.
        log_means = np.cumsum(np.vstack([np.zeros(G), log_fold[1:]]), axis=0)
        means = base * np.exp(log_means - log_means.mean(axis=0))
        alpha = _draw_alpha(rng, (K, G))
        weight_of = weights.T
    if density is not None:
        means = means * _scale_to_density(weight_of, alpha, means, density)

    if shared:
        order = np.argsort(means.sum(axis=1), kind="stable")
        weights, means, alpha = weights[order], means[order], alpha[order]
        differential = differential[order]
        labels = rng.choice(K, n_samples, p=weights)
        by_label = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[by_label], np.arange(K + 1))
        populations = [by_label[bounds[k] : bounds[k + 1]] for k in range(K)]
        # One group per (component, gene), a single distribution each.
        group_pop = np.repeat(np.arange(K), G)
        group_gene = np.tile(np.arange(G), K)
        group_w = np.ones((K * G, 1))
        group_alpha = alpha.reshape(-1, 1)
        group_b = (means / alpha).reshape(-1, 1)
    else:
        # Ascending mean per gene, as the estimator orders them.
        order = np.argsort(means, axis=0, kind="stable")
        means = np.take_along_axis(means, order, axis=0)
        alpha = np.take_along_axis(alpha, order, axis=0)
        weights = np.take_along_axis(weights, order.T, axis=1)
        # Every cell draws each gene from that gene's mixture: one group per
        # gene over all cells, a K-component distribution each.
        populations = [np.arange(n_samples)]
        group_pop = np.zeros(G, dtype=int)
        group_gene = np.arange(G)
        group_w, group_alpha = weights, alpha.T
        group_b = (means / alpha).T

    rows, cols, vals = _draw_groups(
        rng, populations, group_pop, group_gene, group_w, group_alpha, group_b
    )
    X = sp.csr_matrix(
        (vals, (rows, cols)), shape=(n_samples, n_features), dtype=np.float64
    )
    X.sort_indices()
    truth = {
        "weights": weights,
        "alpha": alpha,
        "b": means / alpha,
        "means": means,
        "zero_fraction": 1.0 - X.nnz / (n_samples * n_features),
    }
    if shared:
        truth["labels"] = labels
        truth["differential"] = differential
    return X, truth


def _draw_alpha(rng, shape):
    return np.exp(rng.normal(_LOG_ALPHA_LOC, _LOG_ALPHA_SCALE, shape))


def _zero_probability(weights, alpha, means):
    """P(count = 0) of a mixture, componentwise on the leading axis summed."""
    return (weights * (1.0 + means / alpha) ** -alpha).sum(axis=0)


def _scale_to_density(weights, alpha, means, density):
    """The factor on all means that gives an expected non-zero share of
    ``density`` (bisection in log scale; the share rises with the factor)."""
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must lie in (0, 1), got {density}")
    low, high = -20.0, 20.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        share = 1.0 - _zero_probability(weights, alpha, means * np.exp(mid)).mean()
        low, high = (mid, high) if share < density else (low, mid)
    return np.exp(0.5 * (low + high))


def _draw_groups(rng, populations, group_pop, group_gene, weights, alpha, b):
    """Non-zero counts of every group of cells that share a distribution.

    Group j draws, for each cell of ``populations[group_pop[j]]``, gene
    ``group_gene[j]`` from the mixture with ``weights[j]``, ``alpha[j]`` and
    ``b[j]`` (arrays of shape (n_groups, n_mixture_components)).

    Returns
    -------
    rows, cols : ndarray of int
    vals : ndarray of float
    """
    p_zero = (weights * (1.0 + b) ** -alpha).sum(axis=1)
    sizes = np.array([len(p) for p in populations])[group_pop]
    n_nonzero = rng.binomial(sizes, 1.0 - p_zero)
    active = np.flatnonzero(n_nonzero)
    if not active.size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    w, a, bb = weights[active], alpha[active], b[active]
    # Tables of values 1..length per active group, concatenated.
    length = np.maximum(
        nbinom.isf(_TAIL, a, 1.0 / (1.0 + bb)).max(axis=1).astype(np.int64), 1
    )
    owner = np.repeat(np.arange(active.size), length)
    first = np.cumsum(length) - length
    value = (np.arange(length.sum()) - np.repeat(first, length) + 1).astype(float)
    pmf = np.zeros(value.size)
    for c in range(w.shape[1]):
        ac, bc = a[owner, c], bb[owner, c]
        log_pmf = (
            gammaln(value + ac)
            - gammaln(ac)
            - gammaln(value + 1.0)
            - ac * np.log1p(bc)
            + value * (np.log(bc) - np.log1p(bc))
        )
        pmf += w[owner, c] * np.exp(log_pmf)
    # The zero-truncated CDF of each group, then one sorted key array
    # (group + CDF, the last entry of each group exactly group + 1) so that a
    # single searchsorted inverts every group at once.
    cdf = np.cumsum(pmf)
    group_total = np.add.reduceat(pmf, first)
    before = cdf[first] - pmf[first]
    cdf = (cdf - before[owner]) / group_total[owner]
    cdf[first + length - 1] = 1.0
    keys = owner + np.minimum(cdf, 1.0)
    draws = n_nonzero[active]
    target = np.repeat(np.arange(active.size), draws) + rng.random(draws.sum())
    vals = value[np.searchsorted(keys, target, side="right")]
    # Which cells: a uniform subset of the group's population.
    rows = np.empty(draws.sum(), dtype=np.int64)
    offset = 0
    for j, m in zip(active, draws, strict=True):
        population = populations[group_pop[j]]
        rows[offset : offset + m] = population[
            rng.choice(population.size, m, replace=False)
        ]
        offset += m
    cols = np.repeat(group_gene[active], draws)
    return rows, cols, vals
