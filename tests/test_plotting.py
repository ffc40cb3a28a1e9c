"""sknbmix.plotting: what each plot draws, checked against independent
computations, and its argument checks."""

import importlib
import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import nbinom
from sklearn.exceptions import NotFittedError

from sknbmix import NegBinomMixture, bootstrap, compare_n_components
from sknbmix.datasets import load_singer
from sknbmix.plotting import (
    plot_bic_difference,
    plot_corner,
    plot_ecdf,
    plot_information_criteria,
)

# No windows: switches the backend even if pyplot was imported before.
matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def frame():
    return load_singer(as_frame=True).frame


@pytest.fixture(scope="module")
def rex1_fit(rex1):
    return NegBinomMixture(n_components=2).fit(rex1)


@pytest.fixture(scope="module")
def frame_fit(frame):
    return NegBinomMixture(n_components=2).fit(frame)


@pytest.fixture(scope="module")
def rex1_result(rex1, rex1_fit):
    return bootstrap(
        rex1_fit, rex1, n_resamples=40, random_state=0, ci_method="percentile"
    )


@pytest.fixture(scope="module")
def frame_result(frame, frame_fit):
    return bootstrap(
        frame_fit, frame, n_resamples=20, random_state=0, ci_method="percentile"
    )


@pytest.fixture(scope="module")
def screen(frame):
    one = NegBinomMixture(1, shared_weights=False).fit(frame)
    two = NegBinomMixture(2, shared_weights=False).fit(frame)
    return one, two


def line_labelled(ax, label):
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return line


def mixture_cdf(grid, weights, alpha, b):
    """A mixture CDF from scipy alone, component by component."""
    return sum(
        w * nbinom.cdf(grid, a, 1 / (1 + b_))
        for w, a, b_ in zip(weights, alpha, b, strict=True)
    )


# -- plot_ecdf ------------------------------------------------------------------


def test_ecdf_draws_data_model_and_band(rex1, rex1_fit):
    ax = plot_ecdf(rex1_fit, rex1, n_draws=100, random_state=0)
    data = line_labelled(ax, "data")
    model = line_labelled(ax, "model")
    grid = data.get_xdata()
    counts = rex1[:, 0]

    # The integer grid runs from 0 to at least the largest count.
    np.testing.assert_array_equal(grid, np.arange(len(grid)))
    assert grid[-1] >= counts.max()
    np.testing.assert_array_equal(model.get_xdata(), grid)
    assert data.get_drawstyle() == model.get_drawstyle() == "steps-post"

    # Empirical CDF by hand.
    expected = (counts[None, :] <= grid[:, None]).mean(axis=1)
    np.testing.assert_allclose(data.get_ydata(), expected)

    # The model staircase is the scipy mixture CDF of the fitted parameters.
    expected_model = mixture_cdf(
        grid, rex1_fit.weights_, rex1_fit.alpha_[:, 0], rex1_fit.b_[:, 0]
    )
    np.testing.assert_allclose(model.get_ydata(), expected_model, rtol=1e-10)

    # The band: a step polygon within [0, 1] around the model CDF.
    (band,) = ax.collections
    assert band.get_label() == "95% predictive band"
    path = band.get_paths()[0]
    y = path.vertices[:, 1]
    assert y.min() >= 0 and y.max() <= 1
    inside = [
        path.contains_point((t + 0.5, value))
        for t, value in zip(grid[:-1], expected_model[:-1], strict=True)
        # Where every draw's ECDF is 0 or 1 the band has no width.
        if 1e-3 < value < 1 - 1e-3
    ]
    assert np.mean(inside) > 0.9

    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["data", "model", "95% predictive band"]
    assert ax.get_xlabel() == "feature 0 count"
    assert ax.get_ylabel() == "cumulative probability"


def test_ecdf_band_width_follows_level_and_seed(rex1, rex1_fit):
    def band_vertices(**kwargs):
        ax = plot_ecdf(rex1_fit, rex1, n_draws=50, **kwargs)
        return ax.collections[0].get_paths()[0].vertices

    np.testing.assert_array_equal(
        band_vertices(random_state=3), band_vertices(random_state=3)
    )
    generator = band_vertices(random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(generator, band_vertices(random_state=3))

    def area(vertices):
        x, y = vertices.T
        return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))

    narrow = band_vertices(random_state=1, confidence_level=0.5)
    wide = band_vertices(random_state=1, confidence_level=0.99)
    assert area(narrow) < area(wide)


def test_ecdf_feature_by_name_sparse_and_ax(frame, frame_fit, singer):
    _, ax = plt.subplots()
    returned = plot_ecdf(frame_fit, frame, "Nanog", ax=ax, n_draws=20, random_state=0)
    assert returned is ax
    assert ax.get_xlabel() == "Nanog count"
    by_name = line_labelled(ax, "data").get_ydata()
    model = line_labelled(ax, "model")
    np.testing.assert_allclose(
        model.get_ydata(),
        mixture_cdf(
            model.get_xdata(),
            frame_fit.weights_,
            frame_fit.alpha_[:, 2],
            frame_fit.b_[:, 2],
        ),
        rtol=1e-10,
    )

    by_index = plot_ecdf(frame_fit, frame, 2, n_draws=20, random_state=0)
    np.testing.assert_array_equal(line_labelled(by_index, "data").get_ydata(), by_name)

    # A sparse matrix gives the same curves (the model was fit on names, so
    # scikit-learn warns that the matrix has none).
    for sparse in (sp.csr_matrix(singer), sp.coo_matrix(singer)):
        with pytest.warns(UserWarning, match="feature names"):
            from_sparse = plot_ecdf(frame_fit, sparse, 2, n_draws=20, random_state=0)
        np.testing.assert_array_equal(
            line_labelled(from_sparse, "data").get_ydata(), by_name
        )


def test_ecdf_per_feature_weights(singer):
    model = NegBinomMixture(2, shared_weights=False).fit(singer)
    ax = plot_ecdf(model, singer, -1, n_draws=20, random_state=0)
    line = line_labelled(ax, "model")
    expected = mixture_cdf(
        line.get_xdata(), model.weights_[3], model.alpha_[:, 3], model.b_[:, 3]
    )
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-10)
    assert ax.get_xlabel() == "feature 3 count"


def test_ecdf_large_counts_coarse_grid():
    rng = np.random.default_rng(0)
    X = rng.negative_binomial(20, 1 / (1 + 2500), size=(200, 1))
    model = NegBinomMixture().fit(X)
    ax = plot_ecdf(model, X, n_draws=10, random_state=0)
    data = line_labelled(ax, "data")
    grid = data.get_xdata()
    # At most 4096 integers, evenly spread from 0 past the largest count.
    assert len(grid) <= 4096
    assert grid[0] == 0 and grid[-1] >= X.max()
    assert np.issubdtype(grid.dtype, np.integer)
    np.testing.assert_allclose(np.diff(grid), grid[-1] / (len(grid) - 1), atol=1)
    expected = (X[:, 0][None, :] <= grid[:, None]).mean(axis=1)
    np.testing.assert_allclose(data.get_ydata(), expected)


def test_ecdf_errors(rex1, rex1_fit, frame, frame_fit):
    with pytest.raises(NotFittedError):
        plot_ecdf(NegBinomMixture(), rex1)
    with pytest.raises(ValueError, match="feature=1 is out of range"):
        plot_ecdf(rex1_fit, rex1, 1)
    with pytest.raises(ValueError, match="'Rex1'.*without feature names"):
        plot_ecdf(rex1_fit, rex1, "Rex1")
    with pytest.raises(ValueError, match="'Oct4' is not a feature.*'Rex1'"):
        plot_ecdf(frame_fit, frame, "Oct4")
    with pytest.raises(ValueError, match="feature must be an integer"):
        plot_ecdf(rex1_fit, rex1, 0.0)
    with pytest.raises(ValueError, match="n_draws"):
        plot_ecdf(rex1_fit, rex1, n_draws=0)
    with pytest.raises(ValueError, match="confidence_level"):
        plot_ecdf(rex1_fit, rex1, confidence_level=1.0)
    with pytest.raises(ValueError, match="features"):
        plot_ecdf(rex1_fit, np.ones((5, 2)))
    with pytest.raises(ValueError, match="found -1 at row 2"):
        plot_ecdf(rex1_fit, np.array([[1], [2], [-1]]))


# -- plot_corner ----------------------------------------------------------------


def grid_of(fig, n):
    assert len(fig.axes) == n * n
    return np.array(fig.axes).reshape(n, n)


def test_corner_panels(rex1_result):
    fig = plot_corner(rex1_result)
    axes = grid_of(fig, 3)
    names = ["w[0]", "mean[0]", "mean[1]"]
    assert [ax.get_xlabel() for ax in axes[-1]] == names
    assert [ax.get_ylabel() for ax in axes[1:, 0]] == names[1:]

    estimates = rex1_result.estimates
    values = [
        estimates["weights"][:, 0],
        estimates["means"][:, 0, 0],
        estimates["means"][:, 1, 0],
    ]
    point = rex1_result.point_estimate
    points = [point["weights"][0]] + list(point["means"][:, 0])
    low, high = rex1_result.confidence_interval["weights"]
    lows = [low[0]] + list(rex1_result.confidence_interval["means"].low[:, 0])
    highs = [high[0]] + list(rex1_result.confidence_interval["means"].high[:, 0])
    n_replicates = len(estimates["weights"])

    for i in range(3):
        for j in range(i + 1, 3):
            assert not axes[i, j].get_visible()
        diagonal = axes[i, i]
        assert diagonal.get_visible()
        (bars,) = diagonal.containers
        assert sum(bar.get_height() for bar in bars) == n_replicates
        (vline,) = diagonal.lines
        np.testing.assert_allclose(vline.get_xdata(), [points[i]] * 2)
        (span,) = [
            patch for patch in diagonal.patches if patch.get_label() == "95% interval"
        ]
        np.testing.assert_allclose(
            [span.get_x(), span.get_x() + span.get_width()], [lows[i], highs[i]]
        )
        for j in range(i):
            replicates, estimate = axes[i, j].lines
            np.testing.assert_array_equal(replicates.get_xdata(), values[j])
            np.testing.assert_array_equal(replicates.get_ydata(), values[i])
            np.testing.assert_allclose(
                np.ravel([estimate.get_xdata(), estimate.get_ydata()]),
                [points[j], points[i]],
            )


def test_corner_feature_and_log(frame_result):
    fig = plt.figure()
    returned = plot_corner(
        frame_result, ("weights", "alpha"), feature="Nanog", fig=fig, log=True
    )
    assert returned is fig
    axes = grid_of(fig, 3)
    assert [ax.get_xlabel() for ax in axes[-1]] == [
        "w[0]",
        "alpha[0, Nanog]",
        "alpha[1, Nanog]",
    ]
    assert [ax.get_xscale() for ax in axes[-1]] == ["linear"] + ["log"] * 2
    assert axes[2, 0].get_yscale() == "log"
    np.testing.assert_array_equal(
        axes[2, 1].lines[0].get_xdata(), frame_result.estimates["alpha"][:, 0, 2]
    )

    # All features: each component's mean for each gene, gene by gene.
    fig = plot_corner(frame_result, "means")
    axes = grid_of(fig, 8)
    assert axes[-1, 0].get_xlabel() == "mean[0, Rex1]"
    assert axes[-1, 1].get_xlabel() == "mean[1, Rex1]"
    assert axes[-1, -1].get_xlabel() == "mean[1, Prdm14]"


def test_corner_two_components_show_one_weight(rex1_result, singer):
    # w[1] = 1 - w[0]: one free weight, shared or per feature.
    fig = plot_corner(rex1_result, "weights")
    (panel,) = grid_of(fig, 1).ravel()
    assert panel.get_xlabel() == "w[0]"
    (bars,) = panel.containers
    assert sum(bar.get_height() for bar in bars) == len(
        rex1_result.estimates["weights"]
    )

    X = singer[:, :2]
    model = NegBinomMixture(2, shared_weights=False).fit(X)
    result = bootstrap(model, X, n_resamples=10, random_state=0, ci_method="percentile")
    fig = plot_corner(result, "weights")
    assert [ax.get_xlabel() for ax in grid_of(fig, 2)[-1]] == ["w[0, 0]", "w[0, 1]"]


def test_corner_per_feature_weights(singer):
    X = singer[:, :2]
    model = NegBinomMixture(3, shared_weights=False).fit(X)
    result = bootstrap(model, X, n_resamples=10, random_state=0, ci_method="percentile")
    fig = plot_corner(result, "weights", feature=1, bins=5)
    axes = grid_of(fig, 2)
    assert [ax.get_xlabel() for ax in axes[-1]] == ["w[0, 1]", "w[1, 1]"]
    (scatter, _) = axes[1, 0].lines
    np.testing.assert_array_equal(
        scatter.get_xdata(), result.estimates["weights"][:, 1, 0]
    )
    np.testing.assert_array_equal(
        scatter.get_ydata(), result.estimates["weights"][:, 1, 1]
    )
    assert len(axes[0, 0].containers[0]) == 5


def test_corner_on_given_axes(rex1_result):
    fig, grid = plt.subplots(3, 3)
    assert plot_corner(rex1_result, ax=grid) is fig
    # The diagonal histograms hold every replicate, on the Axes passed.
    n_replicates = rex1_result.estimates["weights"].shape[0]
    for i in range(3):
        (bars,) = grid[i, i].containers
        assert sum(bar.get_height() for bar in bars) == n_replicates
    assert not grid[0, 2].get_visible()
    with pytest.raises(ValueError, match="3 x 3 grid"):
        plot_corner(rex1_result, ax=plt.subplots(2, 2)[1])


def test_corner_errors(rex1_result, rex1_fit):
    with pytest.raises(ValueError, match="BootstrapResult"):
        plot_corner(rex1_fit)
    with pytest.raises(ValueError, match="parameters.*'mean'"):
        plot_corner(rex1_result, ("weights", "mean"))
    with pytest.raises(ValueError, match="parameters"):
        plot_corner(rex1_result, ())
    with pytest.raises(ValueError, match="feature=2 is out of range"):
        plot_corner(rex1_result, feature=2)
    with pytest.raises(ValueError, match="bins"):
        plot_corner(rex1_result, bins=0)


def test_corner_one_component(rex1):
    model = NegBinomMixture(1).fit(rex1)
    result = bootstrap(
        model, rex1, n_resamples=10, random_state=0, ci_method="percentile"
    )
    # The weight is 1 in every replicate: only the means are drawn.
    fig = plot_corner(result)
    assert [ax.get_xlabel() for ax in grid_of(fig, 1).ravel()] == ["mean[0]"]
    with pytest.raises(ValueError, match="one-component mixture draws nothing"):
        plot_corner(result, "weights")


# -- plot_information_criteria ------------------------------------------------------


def test_information_criteria(singer):
    comparison = compare_n_components(singer[:, :1], [1, 2, 3], cv=None)
    _, ax = plt.subplots()
    assert plot_information_criteria(comparison, ax=ax) is ax
    assert len(ax.figure.axes) == 1  # no cross-validation, no twin axis
    for key in ("bic", "aic"):
        line = line_labelled(ax, key.upper())
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(line.get_ydata(), comparison[key])
        best = np.argmin(comparison[key])
        (star,) = [
            line
            for line in ax.lines
            if line.get_label().startswith(f"{key.upper()} minimum")
        ]
        assert star.get_marker() == "*"
        np.testing.assert_array_equal(star.get_xdata(), [best + 1])
        np.testing.assert_array_equal(star.get_ydata(), [comparison[key][best]])
    np.testing.assert_array_equal(ax.get_xticks(), [1, 2, 3])


def test_information_criteria_cross_validation(singer):
    comparison = compare_n_components(singer[:, :1], [1, 2, 3], cv=3)
    ax = plot_information_criteria(comparison)
    twin = ax.figure.axes[-1]
    assert twin is not ax
    assert twin.get_ylabel() == "cross-validated log-likelihood per sample"
    line, star = twin.lines
    np.testing.assert_array_equal(line.get_ydata(), comparison.cv_log_likelihood)
    best = np.argmax(comparison.cv_log_likelihood)
    np.testing.assert_array_equal(star.get_xdata(), [comparison.n_components[best]])
    labels = [text.get_text() for text in twin.get_legend().get_texts()]
    assert labels == ["BIC", "AIC", "cross-validated log-likelihood", "best of each"]


def test_information_criteria_errors():
    with pytest.raises(ValueError, match="compare_n_components"):
        plot_information_criteria({"bic": [1.0]})


# -- plot_bic_difference ------------------------------------------------------------


def test_bic_difference(frame, screen):
    one, two = screen
    _, ax = plt.subplots()
    assert plot_bic_difference(one, two, frame, ax=ax) is ax
    delta = one.bic(frame, per_feature=True) - two.bic(frame, per_feature=True)
    genes = line_labelled(ax, "genes")
    np.testing.assert_array_equal(genes.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(genes.get_ydata(), np.sort(delta)[::-1])
    order = np.argsort(-delta)
    assert [text.get_text() for text in ax.texts] == list(frame.columns[order])
    assert [text.xy for text in ax.texts] == [
        (rank, delta[g]) for rank, g in enumerate(order, 1)
    ]
    assert sorted(line.get_ydata()[0] for line in ax.lines[1:]) == [0, 10]

    ax = plot_bic_difference(one, two, frame, n_labels=2)
    assert [text.get_text() for text in ax.texts] == list(frame.columns[order[:2]])


def test_bic_difference_numpy_labels(singer):
    one = NegBinomMixture(1, shared_weights=False).fit(singer)
    two = NegBinomMixture(2, shared_weights=False).fit(singer)
    ax = plot_bic_difference(one, two, singer, n_labels=1)
    assert [text.get_text() for text in ax.texts] == ["0"]  # Rex1 leads


def test_bic_difference_errors(frame, screen, singer):
    one, two = screen
    shared = NegBinomMixture(2).fit(frame)
    with pytest.raises(ValueError, match="complex must be fitted with shared_w"):
        plot_bic_difference(one, shared, frame)
    with pytest.raises(ValueError, match="simple must be fitted with shared_w"):
        plot_bic_difference(shared, two, frame)
    fewer = NegBinomMixture(1, shared_weights=False).fit(frame.iloc[:, :2])
    with pytest.raises(ValueError, match="same features"):
        plot_bic_difference(fewer, two, frame)
    renamed = NegBinomMixture(1, shared_weights=False).fit(
        frame.rename(columns={"Rex1": "Zfp42"})
    )
    with pytest.raises(ValueError, match="different features"):
        plot_bic_difference(renamed, two, frame)
    with pytest.raises(NotFittedError):
        plot_bic_difference(NegBinomMixture(shared_weights=False), two, frame)
    with pytest.raises(ValueError, match="n_labels"):
        plot_bic_difference(one, two, frame, n_labels=-1)


# -- without matplotlib ---------------------------------------------------------------


def test_import_error_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "sknbmix.plotting")
    with pytest.raises(ImportError, match=r"pip install 'sknbmix\[plot\]'"):
        importlib.import_module("sknbmix.plotting")


def test_no_window_is_shown(monkeypatch, rex1, rex1_fit, frame, screen):
    def fail():
        raise AssertionError("plt.show() was called")

    monkeypatch.setattr(plt, "show", fail)
    plot_ecdf(rex1_fit, rex1, n_draws=5)
    plot_bic_difference(*screen, frame)
