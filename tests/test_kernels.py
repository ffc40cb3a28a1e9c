"""The compiled kernels against the plain numpy reference of ``_reference``."""

import _reference as reference
import numpy as np
import pytest
from scipy.special import digamma

from sknbmix import _kernels
from sknbmix._data import build_count_table
from sknbmix._em import _converged, _extrapolate, outpaced
from sknbmix._fit import FitSettings, initial_starts, window_mean
from sknbmix._likelihood import MixtureLikelihood, Theta
from sknbmix._nbinom import MEAN_MIN
from sknbmix._newton import _Coordinates, to_rows
from sknbmix._stack import ProblemStack


def _perturbed_starts(likelihood, X, rng, n_components=2):
    """The default starts, and the same moved at random, with some alpha at
    the Poisson cap, some large (Stirling and series differences) and some
    small."""
    settings = FitSettings(n_components=n_components)
    starts = initial_starts(likelihood, settings, 0, None)
    moved = Theta(
        starts.log_weights,
        starts.log_alpha + rng.normal(0, 1.0, starts.log_alpha.shape),
        starts.log_b + rng.normal(0, 0.5, starts.log_b.shape),
    )
    log_alpha = moved.log_alpha.copy()
    log_alpha[0, 0] = np.log(2e5)
    log_alpha[1, -1] = np.log(1e-3)
    log_alpha[2, 0] = np.log(5e3)
    return [starts, moved._replace(log_alpha=log_alpha)]


def _assert_steps_agree(likelihood, theta, newton_steps=1, ll_atol=1e-9):
    likelihood.newton_steps = newton_steps
    ll, new = likelihood.em_step(theta)
    expected_ll, expected = reference.em_step(
        likelihood.table, likelihood.shared_weights, theta, newton_steps
    )
    # The package leaves the constant sum of log(x!) to the end.
    assert ll.shape == expected_ll.shape
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-12, atol=ll_atol)
    np.testing.assert_allclose(new.log_weights, expected.log_weights, atol=1e-11)
    # One Newton step for alpha: the compiled one takes the exact slope
    # (integer grid) where the reference takes a forward difference in log
    # alpha of 1e-6, so far from the root the steps differ by that
    # difference's error; solved exactly (50 steps), both reach the same root.
    atol = 3e-5 if newton_steps == 1 else 1e-8
    np.testing.assert_allclose(new.log_alpha, expected.log_alpha, atol=atol)
    np.testing.assert_allclose(new.log_b, expected.log_b, atol=atol)
    np.testing.assert_array_equal(likelihood.log_likelihood(theta), ll)


@pytest.mark.parametrize("newton_steps", [1, 50])
def test_one_feature_step_agrees_with_reference(rex1, newton_steps):
    likelihood = MixtureLikelihood(build_count_table(rex1), shared_weights=True)
    for theta in _perturbed_starts(likelihood, rex1, np.random.default_rng(0)):
        _assert_steps_agree(likelihood, theta, newton_steps)


@pytest.mark.parametrize("n_components", [2, 3])
def test_shared_many_features_step_agrees_with_reference(singer, n_components):
    likelihood = MixtureLikelihood(build_count_table(singer), shared_weights=True)
    assert likelihood.per_cell
    rng = np.random.default_rng(1)
    for theta in _perturbed_starts(likelihood, singer, rng, n_components):
        _assert_steps_agree(likelihood, theta)


def test_independent_features_step_agrees_with_reference(singer):
    likelihood = MixtureLikelihood(build_count_table(singer), shared_weights=False)
    rng = np.random.default_rng(2)
    for theta in _perturbed_starts(likelihood, singer, rng):
        stack, stacked_theta = ProblemStack.of_starts(likelihood, theta)
        _assert_steps_agree(stack.likelihood, stacked_theta)
        # Stacked, each (start, feature) pair is the feature alone.
        ll, new = stack.likelihood.em_step(stacked_theta)
        n_starts = theta.log_alpha.shape[0]
        alone = likelihood.em_step(theta)[0]
        np.testing.assert_array_equal(
            ll.reshape(-1, n_starts).T, alone.reshape(n_starts, -1)
        )


def test_huge_counts_take_digamma_not_the_grid():
    # A largest count far beyond four per distinct count: the score comes
    # from digamma sums.
    X = np.array([[0], [1], [3], [2e6], [5e6], [7], [1]], dtype=float)
    likelihood = MixtureLikelihood(build_count_table(X), shared_weights=True)
    for theta in _perturbed_starts(likelihood, X, np.random.default_rng(3)):
        # log Gamma(5e6) is 7e7, with an ulp of 1.5e-8: the C library's and
        # scipy's differ by an ulp or two there.
        _assert_steps_agree(likelihood, theta, ll_atol=1e-7)


def test_under_dispersed_components_go_to_the_cap():
    X = np.random.default_rng(4).binomial(20, 0.5, size=(300, 1)).astype(float)
    likelihood = MixtureLikelihood(build_count_table(X), shared_weights=True)
    starts = initial_starts(likelihood, FitSettings(), 0, None)
    _, new = likelihood.em_step(starts)
    assert new.log_alpha[0, 0, 0] == pytest.approx(np.log(1e8), rel=1e-15)


def test_digamma_matches_scipy():
    x = np.concatenate(
        [np.geomspace(1e-8, 1.0, 500), np.linspace(1.0, 30.0, 500), [1e3, 1e8]]
    )
    got = np.array([_kernels.digamma(v) for v in x])
    np.testing.assert_allclose(got, digamma(x), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("genes", [[0], [0, 1, 2, 3]])
@pytest.mark.parametrize("warm", [False, True])
def test_m_step_agrees_with_reference(singer, genes, warm):
    X = singer[:, genes]
    table = build_count_table(X)
    likelihood = MixtureLikelihood(table, shared_weights=True)
    theta = _perturbed_starts(likelihood, X, np.random.default_rng(6))[1]
    _, mass, total = reference.e_step(table, True, theta)
    shape = mass.shape[:2] + (table.n_features,)
    alpha = np.exp(theta.log_alpha) if warm else np.full(shape, np.inf)
    got = Theta(
        *_kernels.m_step(
            table.values,
            table.starts,
            np.ascontiguousarray(mass),
            np.ascontiguousarray(total),
            alpha,
            1,
        )
    )
    want = reference.m_step(table, mass, total, alpha if warm else None)
    np.testing.assert_allclose(got.log_weights, want.log_weights, atol=1e-12)
    np.testing.assert_allclose(got.log_alpha, want.log_alpha, atol=3e-5)
    np.testing.assert_allclose(got.log_b, want.log_b, atol=3e-5)


@pytest.mark.parametrize(
    "genes, shared_weights", [([0], True), ([0, 1, 2, 3], True), ([0, 1, 2, 3], False)]
)
def test_gradient_agrees_with_reference(singer, genes, shared_weights):
    X = singer[:, genes]
    table = build_count_table(X)
    likelihood = MixtureLikelihood(table, shared_weights=shared_weights)
    for theta in _perturbed_starts(likelihood, X, np.random.default_rng(7)):
        ll, gradient = likelihood.gradient(theta)
        want_ll, want = reference.gradient(table, shared_weights, theta)
        np.testing.assert_allclose(ll, want_ll, rtol=1e-12, atol=1e-9)
        for got, expected in zip(gradient, want, strict=True):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-8)


def test_gradient_is_the_slope_of_the_log_likelihood(singer):
    # Independently of Fisher's identity: central differences of the
    # log-likelihood itself, in every coordinate.
    likelihood = MixtureLikelihood(build_count_table(singer), shared_weights=True)
    starts = _perturbed_starts(likelihood, singer, np.random.default_rng(8))[0]
    theta = Theta(*(x[:1] for x in starts))
    _, gradient = likelihood.gradient(theta)
    # Rounding of a log-likelihood of -5,000 is ~1e-10: a step of 1e-4
    # keeps its share of the difference quotient near 1e-6.
    step = 1e-4
    for name in ("log_alpha", "log_b"):
        for index in np.ndindex(getattr(theta, name).shape):
            values = []
            for sign in (1, -1):
                moved = getattr(theta, name).copy()
                moved[index] += sign * step
                values.append(
                    likelihood.log_likelihood(theta._replace(**{name: moved}))
                )
            slope = (values[0] - values[1])[0, 0, 0] / (2 * step)
            assert getattr(gradient, name)[index] == pytest.approx(
                slope, rel=1e-5, abs=1e-4
            )


def test_entry_log_prob_is_the_log_pmf(singer):
    table = build_count_table(singer)
    rng = np.random.default_rng(9)
    log_alpha = rng.normal(1.0, 3.0, (2, 3, table.n_features))
    log_b = rng.normal(1.0, 2.0, log_alpha.shape)
    entry, zero = _kernels.entry_log_prob(
        table.values, table.log_factorial, table.starts, log_alpha, log_b
    )
    alpha, b = np.exp(log_alpha), np.exp(log_b)
    want = reference.nbinom_logpmf(
        table.values, alpha.take(table.feature, -1), b.take(table.feature, -1)
    )
    np.testing.assert_allclose(zero, reference.nbinom_logpmf(0, alpha, b), rtol=1e-14)
    got = entry + zero.take(table.feature, -1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("shared_weights", [True, False])
def test_extrapolation_agrees_with_reference(singer, shared_weights):
    X = singer if shared_weights else singer[:, :2]
    likelihood = MixtureLikelihood(build_count_table(X), shared_weights=shared_weights)
    starts = _perturbed_starts(likelihood, X, np.random.default_rng(5))[1]
    stack, theta0 = ProblemStack.of_starts(likelihood, starts)
    theta1 = stack.likelihood.em_step(theta0)[1]
    theta2 = stack.likelihood.em_step(theta1)[1]
    step_max = np.geomspace(1.0, 64.0, stack.n_problems)

    class State:
        pass

    state = State()
    state.step_max = stack.along(step_max)
    proposal, capped = _extrapolate(stack, theta0, theta1, theta2, state)
    capped = stack.flat(capped)
    assert capped.any() and not capped.all()
    for p in range(stack.n_problems):
        one = [stack.take(t, [p]) for t in (theta0, theta1, theta2)]
        want, want_capped = reference.extrapolate(*one, step_max[p])
        assert capped[p] == want_capped
        for got, expected in zip(stack.take(proposal, [p]), want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_stopping_rule():
    # Gains that stall, converge, slow down, speed up, divide by zero.
    gain = np.array([1e-13, 1e-6, 0.3, 2.0, 1e-6, -1e-3, 0.0, 1e-6])
    last = np.array([1.0, 1e-5, 0.5, 1.0, 0.0, 1.0, 0.0, 2e-6])
    tol = 1e-5
    # Converged: stalled below rounding, or both the last gain and the
    # geometric tail g q / (1 - q), q = g / last, below tol.
    ratio = gain / np.where(last == 0, np.nan, last)
    with np.errstate(invalid="ignore"):
        tail = np.where(ratio < 1, gain * ratio / (1 - ratio), np.inf)
    want = (gain <= tol * 1e-3) | ((gain < tol) & (tail < tol))
    np.testing.assert_array_equal(_converged(gain, last, tol), want)
    np.testing.assert_array_equal(_converged(gain, None, tol), gain <= tol * 1e-3)
    assert want.any() and not want.all()


@pytest.mark.parametrize("shared_weights", [True, False])
def test_outpacing_rule(singer, shared_weights):
    X = singer if shared_weights else singer[:, :2]
    likelihood = MixtureLikelihood(build_count_table(X), shared_weights=shared_weights)
    starts = _perturbed_starts(likelihood, X, np.random.default_rng(5))[1]
    stack, theta = ProblemStack.of_starts(likelihood, starts)
    reached = stack.likelihood.log_likelihood(theta)
    # Start 1 of every group a hair from start 0, and start 2 far behind.
    near = Theta(*(x.copy() for x in theta))
    first, second = (np.flatnonzero(stack.start == s) for s in (0, 1))
    stack.put(near, second, Theta(*(stack.take(x, first) + 0.01 for x in near)))
    flat = stack.flat(reached).copy()
    flat[second] = flat[first] - 1e-3
    third = np.flatnonzero(stack.start == 2)
    flat[third] = flat[first] - 100.0
    # The others behind start 0, but not by far.
    flat[stack.start > 2] = np.repeat(flat[first], 1 + stack.start.max() - 3) - 0.5
    gains = stack.along(np.full(flat.size, 0.1))
    out = stack.flat(outpaced(stack, near, stack.along(flat), gains))
    assert out[second].all() and out[third].all() and not out[first].any()
    assert not out[stack.start > 2].any()
    # A start that has left the batch 100 ahead of start 0 outpaces all.
    finished = stack.group_best(flat + 100.0, stack.start == 0)
    ahead = dict(zip(stack.group[first], flat[first] + 100.0, strict=True))
    np.testing.assert_array_equal(finished, [ahead[g] for g in stack.group])
    out = stack.flat(
        outpaced(stack, near, stack.along(flat), gains, stack.along(finished))
    )
    assert out.all()


def _newton_gradient(stack, coordinates, rows):
    """The gradient in Newton's coordinates at ``rows`` (a row per problem)."""
    _, gradient = stack.likelihood.gradient(coordinates.theta(stack, rows))
    # From (log alpha, log b) to (log alpha, log mean).
    return np.concatenate(
        [
            stack.rows(x)
            for x in (
                gradient.log_weights,
                gradient.log_alpha - gradient.log_b,
                gradient.log_b,
            )
        ],
        axis=1,
    )


@pytest.mark.parametrize("n_components", [1, 2, 3])
@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("scaled", [False, True])
def test_table_hessian_is_the_slope_of_the_gradient(
    singer, n_components, shared_weights, scaled
):
    # Central differences of the analytic gradient, at the default starts
    # and at moved ones with alpha at 2e5 (series differences) and 1e-3:
    # every coordinate, every problem.
    X = singer[:, :1] if shared_weights else singer
    rng = np.random.default_rng(n_components)
    size_factors = rng.lognormal(0.0, 0.5, X.shape[0]) if scaled else None
    likelihood = MixtureLikelihood.of_counts(X, shared_weights, size_factors)
    assert likelihood.has_hessian
    plain = MixtureLikelihood(build_count_table(X), shared_weights)
    starts = initial_starts(plain, FitSettings(n_components=n_components), 0, None)
    log_alpha = starts.log_alpha + rng.normal(0, 1.0, starts.log_alpha.shape)
    log_alpha[0, 0] = np.log(2e5)
    log_alpha[-1, -1] = np.log(1e-3)
    moved = Theta(
        starts.log_weights,
        log_alpha,
        starts.log_b + rng.normal(0, 0.5, starts.log_b.shape),
    )
    for points in (starts, moved):
        stack, theta = ProblemStack.of_starts(likelihood, points)
        coordinates = _Coordinates(stack, theta)
        rows = to_rows(stack, theta)
        step = 1e-6
        want = np.empty(rows.shape + rows.shape[1:])
        for p in range(rows.shape[1]):
            up, down = rows.copy(), rows.copy()
            up[:, p] += step
            down[:, p] -= step
            want[..., p] = (
                _newton_gradient(stack, coordinates, up)
                - _newton_gradient(stack, coordinates, down)
            ) / (2 * step)
        got = stack.likelihood.hessian(coordinates.theta(stack, rows))
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, np.swapaxes(got, 1, 2))
        scale = np.abs(want).max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(got / scale, want / scale, atol=1e-6)


def test_table_hessian_matches_arbitrary_precision():
    # Counts from 0 to 1e12 (Stirling's and the large-count paths), one
    # component near the Poisson limit (alpha 3e5: series differences),
    # size factors: every second derivative against mpmath's, of the
    # log-likelihood summed over the samples.
    import mpmath

    mpmath.mp.dps = 40
    counts = np.array([0, 0, 1, 3, 3, 8, 40, 41, 2_000, 10**6, 10**12, 10**12 + 7])
    size_factors = np.array([0.5, 2.0, 1.0, 0.7, 0.7, 1.3, 1.0, 0.9, 1.1, 1.0, 3, 3])
    weights, alpha, mean = [0.3, 0.7], [3e5, 0.8], [5.0, 2e9]
    likelihood = MixtureLikelihood.of_counts(
        counts[:, None].astype(float), True, size_factors
    )
    theta = Theta(
        np.log(weights)[None, :, None],
        np.log(alpha)[None, :, None],
        np.log(np.divide(mean, alpha))[None, :, None],
    )
    got = likelihood.hessian(theta)[0]

    def log_likelihood(logit, *log_params):
        total = mpmath.mpf(0)
        log_w = [
            -mpmath.log1p(mpmath.exp(logit)),
            logit - mpmath.log1p(mpmath.exp(logit)),
        ]
        a = [mpmath.exp(u) for u in log_params[:2]]
        m = [mpmath.exp(v) for v in log_params[2:]]
        for x, s in zip(counts, size_factors, strict=True):
            x, s = mpmath.mpf(int(x)), mpmath.mpf(s)
            terms = [
                log_w[k]
                + mpmath.loggamma(x + a[k])
                - mpmath.loggamma(a[k])
                - mpmath.loggamma(x + 1)
                + a[k] * mpmath.log(a[k] / (a[k] + s * m[k]))
                + x * mpmath.log(s * m[k] / (a[k] + s * m[k]))
                for k in range(2)
            ]
            top = max(terms)
            total += top + mpmath.log(sum(mpmath.exp(t - top) for t in terms))
        return total

    point = [mpmath.log(weights[1] / weights[0])]
    point += [mpmath.log(a) for a in alpha] + [mpmath.log(m) for m in mean]
    want = np.empty((5, 5))
    for i in range(5):
        for j in range(i, 5):
            order = [0] * 5
            order[i] += 1
            order[j] += 1
            want[i, j] = want[j, i] = float(mpmath.diff(log_likelihood, point, order))
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 7.0, 2e3, 1e6])
def test_polygamma_differences_are_exact(alpha):
    # Short gaps (the recurrences) and long ones (direct differences).
    import mpmath

    mpmath.mp.dps = 40
    values = np.array([0.0, 1, 2, 3, 5, 9, 30, 31, 200, 207, 5_000, 10**9])
    first, second = np.empty(values.size), np.empty(values.size)
    _kernels._polygamma_differences(values, 0, values.size, alpha, first, second)
    a = mpmath.mpf(alpha)
    want_first = [float(mpmath.digamma(x + a) - mpmath.digamma(a)) for x in values]
    want_second = [
        float(mpmath.polygamma(1, x + a) - mpmath.polygamma(1, a)) for x in values
    ]
    np.testing.assert_allclose(first, want_first, rtol=1e-12, atol=0)
    np.testing.assert_allclose(second, want_second, rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    "low, high", [(0.0, 1.0), (0.1, 0.15), (0.97, 1.0), (0.0, 0.05)]
)
def test_window_mean_is_the_mean_of_the_sorted_counts(singer, low, high):
    # Samples straddling a window's ends count with their share.
    table = build_count_table(singer)
    n = singer.shape[0]
    ranks = np.arange(n)
    share = np.clip(np.minimum(ranks + 1, high * n) - np.maximum(ranks, low * n), 0, 1)
    ordered = np.sort(singer, axis=0)
    want = (share[:, None] * ordered).sum(axis=0) / share.sum()
    # A window of zeros: the floor of a component's mean.
    want = np.maximum(want, MEAN_MIN)
    np.testing.assert_allclose(window_mean(table, low, high), want, rtol=1e-12)
