"""Plots for fitted negative binomial mixtures (requires matplotlib).

Install matplotlib with the ``plot`` extra: ``pip install 'sknbmix[plot]'``.

- :func:`plot_ecdf`: the empirical CDF of one feature against the fitted
  mixture's CDF and a predictive band from data sets drawn from the model.
- :func:`plot_corner`: a corner plot of bootstrap replicates of the
  parameters (:func:`sknbmix.bootstrap`).
- :func:`plot_information_criteria`: BIC, AIC and the cross-validated
  log-likelihood against the number of components
  (:func:`sknbmix.compare_n_components`).
- :func:`plot_bic_difference`: a per-gene bimodality screen, the BIC
  difference between two ``shared_weights=False`` mixtures for each gene.

Every function draws on an Axes or Figure passed to it, or creates one with
:mod:`matplotlib.pyplot`, and returns it; none calls ``plt.show()``.
"""

# SPDX-License-Identifier: BSD-3-Clause

from collections import namedtuple
from numbers import Integral, Real

try:
    import matplotlib  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "sknbmix.plotting needs matplotlib: pip install 'sknbmix[plot]'"
    ) from exc

import numpy as np
import scipy.sparse as sp
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FormatStrFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)
from scipy.stats import nbinom
from sklearn.utils.validation import check_is_fitted

from sknbmix._bootstrap import PARAMETERS, BootstrapResult
from sknbmix._data import validate_counts

__all__ = [
    "plot_bic_difference",
    "plot_corner",
    "plot_ecdf",
    "plot_information_criteria",
]

# Above this many integers the CDFs are evaluated on this many evenly spaced
# integers instead, which keeps the predictive band at n_draws x _MAX_GRID.
_MAX_GRID = 4096

# Upper quantile of the model that the CDF plot reaches at least.
_MODEL_QUANTILE = 0.999

_SHORT_NAMES = {"weights": "w", "alpha": "alpha", "b": "b", "means": "mean"}

# One variable of a corner plot: its replicates and their summary.
_Variable = namedtuple("_Variable", "label values point low high log")


###############################################################################
# Private helpers


def _new_axes(ax):
    """``ax``, or the Axes of a new pyplot figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(layout="constrained")[1]


def _feature_index(feature, names, n_features, named):
    """Resolve ``feature`` (an index or a name) to an index into ``names``.

    ``named`` says whether ``names`` are real feature names (from a
    DataFrame) that a string can select.
    """
    if isinstance(feature, Integral) and not isinstance(feature, bool):
        if not -n_features <= feature < n_features:
            raise ValueError(
                f"feature={feature} is out of range: the model has "
                f"{n_features} feature(s)."
            )
        return int(feature) % n_features
    if isinstance(feature, str):
        if not named:
            raise ValueError(
                f"feature={feature!r}: the model was fitted without feature "
                "names (not on a DataFrame); pass an integer index."
            )
        matches = [i for i, name in enumerate(names) if name == feature]
        if not matches:
            shown = ", ".join(repr(name) for name in list(names)[:10])
            more = ", ..." if len(names) > 10 else ""
            raise ValueError(
                f"feature={feature!r} is not a feature of the model; its "
                f"features are {shown}{more}."
            )
        return matches[0]
    raise ValueError(
        f"feature must be an integer index or a feature name, got {feature!r}."
    )


def _feature_column(estimator, X, index):
    """Column ``index`` of X as 1-D integer counts; of a sparse X only that
    column is made dense."""
    X = validate_counts(estimator, X, reset=False)
    if sp.issparse(X):
        column = X[:, [index]].toarray().ravel()
    else:
        column = np.asarray(X[:, index])
    return column.astype(np.int64)


def _marginal(estimator, index):
    """Weights, alpha and b of the mixture that is the marginal of a feature."""
    weights = (
        estimator.weights_ if estimator.shared_weights else estimator.weights_[index]
    )
    weights = np.asarray(weights, dtype=float)
    return (
        weights / weights.sum(),
        estimator.alpha_[:, index],
        estimator.b_[:, index],
    )


def _mixture_cdf(grid, weights, alpha, b):
    """CDF of a mixture of ``nbinom(n=alpha, p=1 / (1 + b))`` on ``grid``."""
    cdf = nbinom.cdf(grid[:, None], alpha[None], 1.0 / (1.0 + b[None]))
    return cdf @ weights


def _integer_grid(upper):
    """The integers 0..upper, or at most _MAX_GRID of them evenly spaced."""
    if upper + 1 <= _MAX_GRID:
        return np.arange(upper + 1)
    return np.unique(np.linspace(0, upper, _MAX_GRID).round().astype(np.int64))


def _predictive_ecdfs(rng, weights, alpha, b, n_samples, n_draws, grid):
    """ECDFs on ``grid`` of ``n_draws`` data sets drawn from the mixture.

    One data set at a time, so memory stays at n_draws x len(grid).
    """
    p = 1.0 / (1.0 + b)
    ecdfs = np.empty((n_draws, len(grid)))
    for i in range(n_draws):
        labels = rng.choice(len(weights), size=n_samples, p=weights)
        draw = np.sort(rng.negative_binomial(alpha[labels], p[labels]))
        ecdfs[i] = np.searchsorted(draw, grid, side="right") / n_samples
    return ecdfs


def _set_ticks(axis, values, log):
    """A few plain-number ticks on a corner plot axis.

    A log axis spanning less than a decade has no major tick, and its minor
    tick labels overlap: such an axis gets evenly spaced ticks instead.
    """
    if log and values.max() > 10 * values.min():
        axis.set_major_locator(LogLocator(numticks=4))
    else:
        axis.set_major_locator(MaxNLocator(nbins=3))
    axis.set_major_formatter(FormatStrFormatter("%.3g"))
    axis.set_minor_formatter(NullFormatter())


def _bin_edges(values, bins, log):
    """Histogram bin edges, evenly spaced in log space if ``log``."""
    low, high = values.min(), values.max()
    if not log:
        return bins
    if low == high:
        low, high = low / 1.1, high * 1.1
    return np.geomspace(low, high, bins + 1)


###############################################################################
# Public functions


def plot_ecdf(
    estimator,
    X,
    feature=0,
    *,
    ax=None,
    n_draws=200,
    confidence_level=0.95,
    random_state=None,
):
    """Plot the empirical CDF of one feature against the fitted mixture.

    Three curves on the integers from 0 up to the largest count (or the
    model's 99.9% quantile, if larger): the empirical CDF of the feature's
    counts, the CDF of the fitted mixture's marginal for that feature, and a
    pointwise predictive band, the central ``confidence_level`` range of the
    empirical CDFs of ``n_draws`` data sets of ``X.shape[0]`` samples drawn
    from the fitted mixture. Where the data leave the band, the model misses
    a feature of the data, beyond sampling noise.

    Parameters
    ----------
    estimator : NegBinomMixture
        A fitted mixture.

    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Non-negative integer counts, usually those the mixture was fitted
        on. Of a sparse matrix only the one column is made dense.

    feature : int or str, default=0
        The feature to plot: its index, or its name in
        ``estimator.feature_names_in_`` when the mixture was fitted on a
        DataFrame.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.

    n_draws : int, default=200
        Number of data sets drawn from the model for the predictive band.

    confidence_level : float, default=0.95
        Pointwise coverage of the band: it runs from the
        ``(1 - confidence_level) / 2`` to the ``(1 + confidence_level) / 2``
        quantile of the drawn empirical CDFs.

    random_state : int, numpy.random.Generator, RandomState or None, \
            default=None
        The source of the drawn data sets; an int or None seeds
        :func:`numpy.random.default_rng`.

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on. Its lines are labelled ``"data"`` and
        ``"model"``, the band ``"95% predictive band"`` (for the default
        level); all three share the x data, the integer grid.

    See Also
    --------
    sknbmix.NegBinomMixture.sample : Draw counts from the fitted mixture.

    Notes
    -----
    For a mixture with shared weights the marginal of feature ``g`` is
    ``sum_k weights_[k] * NB(alpha_[k, g], b_[k, g])``; with
    ``shared_weights=False`` it uses the feature's own ``weights_[g]``. Above
    4096 integers the curves are evaluated on 4096 evenly spaced integers.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknbmix import NegBinomMixture
    >>> from sknbmix.datasets import load_singer
    >>> from sknbmix.plotting import plot_ecdf
    >>> X = load_singer(as_frame=True).frame
    >>> model = NegBinomMixture(n_components=2).fit(X[["Rex1"]])
    >>> ax = plot_ecdf(model, X[["Rex1"]], "Rex1", random_state=0)
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['data', 'model', '95% predictive band']
    """
    check_is_fitted(estimator)
    if not isinstance(n_draws, Integral) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}.")
    if not isinstance(confidence_level, Real) or not 0 < confidence_level < 1:
        raise ValueError(
            f"confidence_level must be in (0, 1), got {confidence_level!r}."
        )
    named = hasattr(estimator, "feature_names_in_")
    names = estimator.feature_names_in_ if named else range(estimator.n_features_in_)
    index = _feature_index(feature, names, estimator.n_features_in_, named)
    counts = _feature_column(estimator, X, index)
    weights, alpha, b = _marginal(estimator, index)

    # Reach into the model's tail too, so a model heavier than the data shows.
    model_upper = nbinom.ppf(_MODEL_QUANTILE, alpha, 1.0 / (1.0 + b)).max()
    upper = int(max(counts.max(), min(model_upper, 10 * counts.max() + 10)))
    grid = _integer_grid(upper)

    empirical = np.searchsorted(np.sort(counts), grid, side="right") / len(counts)
    model = _mixture_cdf(grid, weights, alpha, b)
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        rng = random_state
    else:
        rng = np.random.default_rng(random_state)
    ecdfs = _predictive_ecdfs(rng, weights, alpha, b, len(counts), n_draws, grid)
    low, high = np.quantile(
        ecdfs, [(1 - confidence_level) / 2, (1 + confidence_level) / 2], axis=0
    )

    ax = _new_axes(ax)
    band = ax.fill_between(
        grid,
        low,
        high,
        step="post",
        color="C1",
        alpha=0.25,
        linewidth=0,
        label=f"{100 * confidence_level:g}% predictive band",
    )
    (data_line,) = ax.plot(
        grid, empirical, drawstyle="steps-post", color="C0", label="data"
    )
    (model_line,) = ax.plot(
        grid, model, drawstyle="steps-post", color="C1", label="model"
    )
    name = names[index] if named else f"feature {index}"
    ax.set_xlabel(f"{name} count")
    ax.set_ylabel("cumulative probability")
    ax.set_title(f"{name}: data and {estimator.n_components}-component mixture")
    ax.set_ylim(-0.02, 1.02)
    # The band is drawn first, under the lines, but listed last.
    ax.legend(handles=[data_line, model_line, band], loc="lower right")
    return ax


def plot_corner(
    result,
    parameters=("weights", "means"),
    *,
    feature=None,
    fig=None,
    ax=None,
    bins=30,
    log=False,
):
    """Corner plot of bootstrap replicates of the mixture's parameters.

    One variable per parameter, component (and feature) selected. The
    weights of a group (all features, or one feature without shared
    weights) sum to one, so the last component's weight, one minus the
    others, is left out: a two-component fit shows ``w[0]`` alone. The
    diagonal shows a histogram of each variable over the replicates, with
    the point estimate (a vertical line) and the confidence interval
    (shaded); below it, each pair of variables is a scatter plot of the
    replicates, with the point estimate marked. The upper triangle is
    hidden. Strong correlations (a weight against a mean) show which
    parameters the data cannot tell apart.

    Parameters
    ----------
    result : BootstrapResult
        The result of :func:`sknbmix.bootstrap`.

    parameters : sequence of str, default=("weights", "means")
        Parameters to show, among ``"weights"``, ``"alpha"``, ``"b"`` and
        ``"means"``; a single name is accepted too.

    feature : int or str, default=None
        Show the parameters of this feature only (an index, or a name when
        the mixture was fitted on a DataFrame); all features if None. Weights
        shared by all features are shown either way.

    fig : matplotlib Figure, default=None
        An empty figure to draw on; a new one is created if None.

    ax : array of matplotlib Axes of shape (n, n), default=None
        A grid of Axes to draw on instead, one row and one column per
        variable (e.g. from ``plt.subplots(n, n)``); overrides ``fig``.

    bins : int, default=30
        Number of bins of the diagonal histograms.

    log : bool, default=False
        Log scale for ``alpha``, ``b`` and ``means``, which are positive and
        often skewed (weights keep a linear scale).

    Returns
    -------
    fig : matplotlib Figure
        The figure, with ``n * n`` Axes for ``n`` variables in row-major
        order (``fig.axes[i * n + j]`` is row ``i``, column ``j``); those of
        the upper triangle are invisible. Variables are labelled like
        ``"w[0]"`` or ``"mean[0, Rex1]"`` (component, then feature).

    Raises
    ------
    ValueError
        If an argument is invalid, or if ``parameters`` is ``"weights"``
        alone for a one-component mixture, whose weight (1) is not drawn.

    See Also
    --------
    sknbmix.bootstrap : The bootstrap that makes ``result``.
    sknbmix.BootstrapResult.to_frame : The intervals as a table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknbmix import NegBinomMixture, bootstrap
    >>> from sknbmix.datasets import load_singer
    >>> from sknbmix.plotting import plot_corner
    >>> X = load_singer().data[:, :1]
    >>> model = NegBinomMixture(n_components=2).fit(X)
    >>> result = bootstrap(model, X, n_resamples=100, random_state=0)
    >>> fig = plot_corner(result, log=True)
    >>> len(fig.axes)
    9
    >>> [ax.get_xlabel() for ax in fig.axes[-3:]]
    ['w[0]', 'mean[0]', 'mean[1]']
    """
    if not isinstance(result, BootstrapResult):
        raise ValueError(
            f"result must be a BootstrapResult, got {type(result).__name__}."
        )
    if isinstance(parameters, str):
        parameters = (parameters,)
    parameters = tuple(parameters)
    unknown = [name for name in parameters if name not in PARAMETERS]
    if unknown or not parameters:
        raise ValueError(
            f"parameters must be a non-empty selection of {list(PARAMETERS)}, "
            f"got {list(parameters)}."
        )
    if not isinstance(bins, Integral) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")

    n_features = result.point_estimate["alpha"].shape[1]
    names = result.feature_names or list(range(n_features))
    named = any(isinstance(name, str) for name in names)
    features = (
        range(n_features)
        if feature is None
        else [_feature_index(feature, names, n_features, named)]
    )
    # Name the feature whenever it is not implied.
    show_feature = n_features > 1 or named

    variables = []
    for name in parameters:
        estimates = result.estimates[name]
        point = result.point_estimate[name]
        low, high = result.confidence_interval[name]
        short = _SHORT_NAMES[name]
        is_log = log and name != "weights"
        # The last weight of a group is one minus the others: not free.
        n_drawn = point.shape[-1] - 1 if name == "weights" else point.shape[0]
        if name == "weights" and result.shared_weights:
            indices = [((k,), f"{short}[{k}]") for k in range(n_drawn)]
        else:
            indices = []
            for g in features:
                suffix = f", {names[g]}" if show_feature else ""
                for k in range(n_drawn):
                    # Per-feature weights are (n_features, n_components).
                    index = (g, k) if name == "weights" else (k, g)
                    indices.append((index, f"{short}[{k}{suffix}]"))
        for index, label in indices:
            variables.append(
                _Variable(
                    label,
                    estimates[(slice(None), *index)],
                    point[index],
                    low[index],
                    high[index],
                    is_log,
                )
            )

    n = len(variables)
    if n == 0:
        raise ValueError(
            "parameters=('weights',) of a one-component mixture draws nothing: "
            "its weight is 1. Choose 'alpha', 'b' or 'means' too."
        )
    if ax is not None:
        axes = np.asarray(ax, dtype=object).reshape(np.shape(ax))
        if axes.shape != (n, n):
            raise ValueError(
                f"ax must be a {n} x {n} grid of Axes for the {n} variables "
                f"chosen, got shape {axes.shape}."
            )
        fig = axes[0, 0].figure
    else:
        if fig is None:
            import matplotlib.pyplot as plt

            size = min(2.0 * n + 1.0, 20.0)
            fig = plt.figure(figsize=(size, size))
        axes = fig.subplots(
            n,
            n,
            squeeze=False,
            sharex="col",
            gridspec_kw={"hspace": 0.08, "wspace": 0.08},
        )
    n_replicates = len(variables[0].values)
    # Fainter points as replicates pile up, so density still shows.
    point_alpha = float(np.clip(10 / np.sqrt(n_replicates), 0.05, 0.8))
    level = f"{100 * result.confidence_level:g}% interval"

    for i, row in enumerate(variables):
        diagonal = axes[i, i]
        if row.log:
            diagonal.set_xscale("log")
        edges = _bin_edges(row.values, bins, row.log)
        diagonal.hist(row.values, bins=edges, color="C0", alpha=0.7, label="replicates")
        diagonal.axvspan(
            row.low, row.high, color="C1", alpha=0.2, zorder=0, label=level
        )
        diagonal.axvline(row.point, color="C3", label="point estimate")
        diagonal.set_yticks([])
        for j in range(i + 1, n):
            axes[i, j].set_visible(False)
        for j in range(i):
            panel = axes[i, j]
            if j > 0:
                panel.sharey(axes[i, 0])
            if row.log:
                panel.set_yscale("log")
            panel.plot(
                variables[j].values,
                row.values,
                "o",
                color="C0",
                markersize=2,
                alpha=point_alpha,
                rasterized=n_replicates > 2000,
            )
            panel.plot(
                variables[j].point,
                row.point,
                "+",
                color="C3",
                markersize=10,
                markeredgewidth=2,
            )
        # Labels and tick labels on the outer edge only.
        for j in range(i + 1):
            panel = axes[i, j]
            if i == n - 1:
                panel.set_xlabel(variables[j].label)
            else:
                panel.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                panel.set_ylabel(row.label)
            elif j > 0:
                panel.tick_params(labelleft=False)
    for i, variable in enumerate(variables):
        _set_ticks(axes[-1, i].xaxis, variable.values, variable.log)
        if i > 0:
            _set_ticks(axes[i, 0].yaxis, variable.values, variable.log)
    for panel in axes[-1]:
        panel.tick_params(axis="x", labelrotation=45)
    if n == 1:
        axes[0, 0].legend(fontsize="small")
    else:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper right")
    return fig


def plot_information_criteria(comparison, *, ax=None):
    """Plot BIC, AIC and the cross-validated log-likelihood per number of
    components.

    BIC and AIC (lower is better) share the left axis, each with its minimum
    marked by a star. When the comparison holds a cross-validated
    log-likelihood (``cv`` was not None), it is drawn on a twin right axis
    (higher is better), with its maximum marked.

    Parameters
    ----------
    comparison : Bunch
        The result of :func:`sknbmix.compare_n_components`.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.

    Returns
    -------
    ax : matplotlib Axes
        The Axes of BIC and AIC (lines labelled ``"BIC"`` and ``"AIC"``).
        The twin axis of the cross-validated log-likelihood, if drawn, is
        the last Axes of ``ax.figure``.

    See Also
    --------
    sknbmix.compare_n_components : Fit and compare the numbers of components.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknbmix import compare_n_components
    >>> from sknbmix.datasets import load_singer
    >>> from sknbmix.plotting import plot_information_criteria
    >>> X = load_singer().data[:, :1]
    >>> comparison = compare_n_components(X, [1, 2, 3], cv=3)
    >>> ax = plot_information_criteria(comparison)
    >>> [line.get_label() for line in ax.lines]
    ['BIC', 'BIC minimum (K=2)', 'AIC', 'AIC minimum (K=3)']
    """
    missing = [key for key in ("n_components", "bic", "aic") if key not in comparison]
    if missing:
        raise ValueError(
            "comparison must be the Bunch returned by compare_n_components; "
            f"it has no {missing}."
        )
    n_components = np.asarray(comparison["n_components"])
    ax = _new_axes(ax)
    handles = []
    for key, marker in (("bic", "o"), ("aic", "s")):
        values = np.asarray(comparison[key], dtype=float)
        (line,) = ax.plot(n_components, values, marker=marker, label=key.upper())
        handles.append(line)
        best = np.nanargmin(values)
        ax.plot(
            n_components[best],
            values[best],
            "*",
            color=line.get_color(),
            markersize=16,
            markeredgecolor="k",
            label=f"{key.upper()} minimum (K={n_components[best]})",
        )
    ax.set_xlabel("number of components")
    ax.set_ylabel("information criterion (lower is better)")
    if len(n_components) <= 20:
        ax.set_xticks(n_components)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    cv = np.asarray(comparison.get("cv_log_likelihood", np.nan), dtype=float)
    legend_ax = ax
    if np.isfinite(cv).any():
        twin = ax.twinx()
        (line,) = twin.plot(
            n_components,
            cv,
            "^--",
            color="C2",
            label="cross-validated log-likelihood",
        )
        best = np.nanargmax(cv)
        twin.plot(
            n_components[best],
            cv[best],
            "*",
            color="C2",
            markersize=16,
            markeredgecolor="k",
            label=f"cross-validated maximum (K={n_components[best]})",
        )
        twin.set_ylabel("cross-validated log-likelihood per sample")
        handles.append(line)
        # The twin is drawn over ax: a legend on ax would be hidden.
        legend_ax = twin
    # One entry for all the stars; the legend sits above the axes, off the
    # curves.
    handles.append(
        Line2D(
            [],
            [],
            marker="*",
            linestyle="none",
            color="w",
            markeredgecolor="k",
            markersize=12,
            label="best of each",
        )
    )
    legend_ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncols=2,
        frameon=False,
        fontsize="small",
    )
    return ax


def plot_bic_difference(simple, complex, X, *, ax=None, n_labels=10):
    """Plot the per-feature BIC difference between two mixtures, ranked.

    For a per-gene bimodality screen: ``simple`` and ``complex`` are two
    mixtures fitted with ``shared_weights=False`` on the same counts (say one
    and two components). For each gene, ``delta = simple.bic(X,
    per_feature=True) - complex.bic(X, per_feature=True)``; a positive delta
    favours the complex model, above 10 strongly. The deltas are plotted in
    descending order against their rank, one point per gene, and the top
    ``n_labels`` genes are labelled.

    Parameters
    ----------
    simple : NegBinomMixture
        A mixture fitted with ``shared_weights=False``.

    complex : NegBinomMixture
        A mixture fitted with ``shared_weights=False`` on the same features,
        usually with more components.

    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Non-negative integer counts, usually those both were fitted on.

    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created if None.

    n_labels : int, default=10
        Number of top-ranked genes to label (by ``feature_names_in_`` when the
        mixtures were fitted on a DataFrame, else by index).

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on; the line labelled ``"genes"`` holds the ranks
        (from 1) and the sorted deltas.

    See Also
    --------
    sknbmix.NegBinomMixture.bic : With ``per_feature=True``, one BIC per feature.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknbmix import NegBinomMixture
    >>> from sknbmix.datasets import load_singer
    >>> from sknbmix.plotting import plot_bic_difference
    >>> X = load_singer(as_frame=True).frame
    >>> one = NegBinomMixture(1, shared_weights=False).fit(X)
    >>> two = NegBinomMixture(2, shared_weights=False).fit(X)
    >>> ax = plot_bic_difference(one, two, X)
    >>> [text.get_text() for text in ax.texts]
    ['Rex1', 'Nanog', 'Rest', 'Prdm14']
    """
    for name, model in (("simple", simple), ("complex", complex)):
        check_is_fitted(model)
        if model.shared_weights:
            raise ValueError(
                f"{name} must be fitted with shared_weights=False: a per-feature "
                "BIC needs a mixture per feature."
            )
    if simple.n_features_in_ != complex.n_features_in_:
        raise ValueError(
            f"simple and complex must have the same features, but have "
            f"{simple.n_features_in_} and {complex.n_features_in_}."
        )
    names_simple = getattr(simple, "feature_names_in_", None)
    names_complex = getattr(complex, "feature_names_in_", None)
    if (
        names_simple is not None
        and names_complex is not None
        and not np.array_equal(names_simple, names_complex)
    ):
        raise ValueError("simple and complex were fitted on different features.")
    if not isinstance(n_labels, Integral) or n_labels < 0:
        raise ValueError(f"n_labels must be a non-negative integer, got {n_labels!r}.")
    names = names_simple if names_simple is not None else names_complex
    if names is None:
        names = np.arange(simple.n_features_in_)

    delta = simple.bic(X, per_feature=True) - complex.bic(X, per_feature=True)
    order = np.argsort(-delta, kind="stable")
    rank = np.arange(1, len(delta) + 1)

    ax = _new_axes(ax)
    ax.plot(rank, delta[order], "o", color="C0", markersize=4, label="genes")
    ax.axhline(0, color="0.3", linewidth=1)
    ax.axhline(
        10, color="C3", linestyle="--", linewidth=1, label="strong evidence (10)"
    )
    for r, g in zip(rank[:n_labels], order[:n_labels], strict=False):
        ax.annotate(
            str(names[g]),
            (r, delta[g]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize="small",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("gene rank")
    ax.set_ylabel(
        rf"$\Delta$BIC = BIC(K={simple.n_components}) - "
        f"BIC(K={complex.n_components})"
    )
    ax.set_title(f"per-gene BIC difference (positive favours K={complex.n_components})")
    ax.legend(loc="upper right", fontsize="small")
    return ax
