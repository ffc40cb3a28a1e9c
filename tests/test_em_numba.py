"""The compiled EM step (numba) against the numpy one it stands in for."""

import numpy as np
import pytest
from scipy.special import digamma

import sknbmix._em as em
from sknbmix import NegBinomMixture
from sknbmix._data import build_count_table
from sknbmix._em import MixtureProblem, Theta

pytest.importorskip("numba", exc_type=ImportError)
from sknbmix import _em_numba  # noqa: E402


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    """The compiled step, even under ``SKNBMIX_NUMBA=0``."""
    monkeypatch.setattr(em, "_kernels", _em_numba)


@pytest.fixture
def numpy_step(monkeypatch):
    """Run ``em_step`` with the numpy code, whatever is installed."""

    def step(problem, theta, newton_steps=None):
        with monkeypatch.context() as patch:
            patch.setattr(em, "_kernels", False)
            if newton_steps is not None:
                problem.newton_steps = newton_steps
            return problem.em_step(theta)

    return step


def _compiled_step(problem, theta, newton_steps=None):
    if newton_steps is not None:
        problem.newton_steps = newton_steps
    out = problem._compiled_step(theta, m_step=True)
    assert out is not None
    return out


def _assert_steps_agree(problem, theta, numpy_step, newton_steps=None, ll_atol=1e-9):
    ll, new = _compiled_step(problem, theta, newton_steps)
    expected_ll, expected = numpy_step(problem, theta, newton_steps)
    assert ll.shape == expected_ll.shape
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-12, atol=ll_atol)
    np.testing.assert_allclose(new.log_weights, expected.log_weights, atol=1e-11)
    # One Newton step for alpha: the compiled one takes the exact slope
    # (integer grid) where numpy takes a forward difference in log alpha of
    # 1e-6, so far from the root the steps differ by that difference's
    # error; solved exactly (50 steps), both reach the same root.
    atol = 3e-5 if problem.newton_steps == 1 else 1e-8
    np.testing.assert_allclose(new.log_alpha, expected.log_alpha, atol=atol)
    np.testing.assert_allclose(new.log_b, expected.log_b, atol=atol)
    log_likelihood = problem._compiled_step(theta, m_step=False)[0]
    np.testing.assert_array_equal(log_likelihood, ll)


def _perturbed_starts(problem, X, rng, n_components=2):
    """The default starts, and the same moved at random, with some alpha at
    the Poisson cap, some large (Stirling and series differences) and some
    small."""
    starts = NegBinomMixture(n_components)._initial_starts(problem, X, 0, None)
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


@pytest.mark.parametrize("newton_steps", [1, 50])
def test_one_feature_step_agrees_with_numpy(rex1, numpy_step, newton_steps):
    problem = MixtureProblem(build_count_table(rex1), shared_weights=True)
    for theta in _perturbed_starts(problem, rex1, np.random.default_rng(0)):
        _assert_steps_agree(problem, theta, numpy_step, newton_steps)


@pytest.mark.parametrize("n_components", [2, 3])
def test_shared_many_features_step_agrees_with_numpy(singer, numpy_step, n_components):
    problem = MixtureProblem(build_count_table(singer), shared_weights=True)
    assert problem.per_cell
    rng = np.random.default_rng(1)
    for theta in _perturbed_starts(problem, singer, rng, n_components):
        _assert_steps_agree(problem, theta, numpy_step)


def test_independent_features_step_agrees_with_numpy(singer, numpy_step):
    problem = MixtureProblem(build_count_table(singer), shared_weights=False)
    rng = np.random.default_rng(2)
    for theta in _perturbed_starts(problem, singer, rng):
        stacked, stacked_theta = problem.stack_starts(theta)
        _assert_steps_agree(stacked, stacked_theta, numpy_step)


def test_huge_counts_take_digamma_not_the_grid(numpy_step):
    # A largest count far beyond four per distinct count: the score comes
    # from digamma sums, as in numpy.
    X = np.array([[0], [1], [3], [2e6], [5e6], [7], [1]], dtype=float)
    problem = MixtureProblem(build_count_table(X), shared_weights=True)
    for theta in _perturbed_starts(problem, X, np.random.default_rng(3)):
        # log Gamma(5e6) is 7e7, with an ulp of 1.5e-8: the C library's and
        # scipy's differ by an ulp or two there.
        _assert_steps_agree(problem, theta, numpy_step, ll_atol=1e-7)


def test_under_dispersed_components_go_to_the_cap():
    X = np.random.default_rng(4).binomial(20, 0.5, size=(300, 1)).astype(float)
    problem = MixtureProblem(build_count_table(X), shared_weights=True)
    starts = NegBinomMixture(1)._initial_starts(problem, X, 0, None)
    _, new = _compiled_step(problem, starts)
    assert new.log_alpha[0, 0, 0] == pytest.approx(np.log(1e8), rel=1e-15)


def test_digamma_matches_scipy():
    x = np.concatenate(
        [np.geomspace(1e-8, 1.0, 500), np.linspace(1.0, 30.0, 500), [1e3, 1e8]]
    )
    got = np.array([_em_numba.digamma(v) for v in x])
    np.testing.assert_allclose(got, digamma(x), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("genes", [[0], [0, 1, 2, 3]])
def test_fits_agree_with_numpy(singer, genes, monkeypatch):
    X = singer[:, genes]
    compiled = NegBinomMixture(2).fit(X)
    monkeypatch.setattr(em, "_kernels", False)
    numpy_fit = NegBinomMixture(2).fit(X)
    assert compiled.score(X) == pytest.approx(numpy_fit.score(X), abs=1e-10)
    np.testing.assert_allclose(compiled.means_, numpy_fit.means_, rtol=1e-6)


def test_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setattr(em, "_kernels", None)
    monkeypatch.setenv("SKNBMIX_NUMBA", "0")
    assert em.compiled_kernels() is None
    monkeypatch.setattr(em, "_kernels", None)
    monkeypatch.delenv("SKNBMIX_NUMBA")
    assert em.compiled_kernels() is _em_numba


def _with_numpy(monkeypatch, function, *args):
    with monkeypatch.context() as patch:
        patch.setattr(em, "_kernels", False)
        return function(*args)


def _assert_theta_equal(got, want, atol=0.0):
    for x, y in zip(got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


@pytest.mark.parametrize("shared_weights", [True, False])
def test_bookkeeping_of_a_cycle_agrees_with_numpy(singer, monkeypatch, shared_weights):
    # The SQUAREM step, its acceptance, the stopping rule, the check for
    # steps that lowered the likelihood and the screen's outpacing rule,
    # compiled and in numpy, on one cycle of the default starts.
    X = singer if shared_weights else singer[:, :2]
    problem = MixtureProblem(build_count_table(X), shared_weights=shared_weights)
    starts = _perturbed_starts(problem, X, np.random.default_rng(5))[1]
    problem, theta0 = problem.stack_starts(starts)
    ll0, theta1 = _compiled_step(problem, theta0)
    ll1, theta2 = _compiled_step(problem, theta1)
    n_batch = ll0.size
    along = problem.along_batch

    step_max = along(np.geomspace(1.0, 64.0, n_batch))
    args = (problem, theta0, theta1, theta2, step_max)
    proposal, capped = em._extrapolate(*args)
    want_proposal, want_capped = _with_numpy(monkeypatch, em._extrapolate, *args)
    _assert_theta_equal(proposal, want_proposal, atol=1e-12)
    np.testing.assert_array_equal(capped, want_capped)
    assert capped.any() and not capped.all()

    ll_proposal, theta3 = _compiled_step(problem, proposal)
    # Accepted and rejected proposals alternate.
    ll_proposal = ll1 + along(np.where(np.arange(n_batch) % 2, 1.0, -1.0))
    args = (problem, ll1, ll_proposal, capped, step_max, theta1, theta2, proposal)
    got = em._accept_extrapolation(*args, theta3)
    want = _with_numpy(monkeypatch, em._accept_extrapolation, *args, theta3)
    for x, y in zip(got, want, strict=True):
        if isinstance(y, Theta):
            _assert_theta_equal(x, y)
        else:
            np.testing.assert_array_equal(x, y)

    # Gains that stall, converge, slow down, speed up, divide by zero.
    gain = along(np.resize([1e-13, 1e-6, 0.3, 2.0, 1e-6, -1e-3, 0.0], n_batch))
    last_gain = along(np.resize([1.0, 1e-5, 0.5, 1.0, 0.0, 1.0, 0.0], n_batch))
    for last in (None, last_gain):
        np.testing.assert_array_equal(
            em._converged(gain, last, 1e-5),
            _with_numpy(monkeypatch, em._converged, gain, last, 1e-5),
        )

    # One start in the basin of another, one trailing hopelessly.
    near = Theta(*(x.copy() for x in theta2))
    for x in near:
        if shared_weights:
            x[1] = x[0] + 0.01
        else:
            x[..., 1] = x[..., 0] + 0.01
    reached = ll1.copy()
    reached.reshape(-1)[2] = reached.reshape(-1)[:3].max() - 100.0
    args = (problem, near, reached, along(np.full(n_batch, 0.1)))
    outpaced = em._outpaced(*args)
    np.testing.assert_array_equal(
        outpaced, _with_numpy(monkeypatch, em._outpaced, *args)
    )
    assert outpaced.reshape(-1)[2] and outpaced.reshape(-1)[:2].any()

    claim = ll0 + along(np.resize([1e-3, 0.0, -1e-3, 1e-14], n_batch))
    theta = Theta(*(x.copy() for x in theta1))
    want_theta = Theta(*(x.copy() for x in theta1))
    ll, want_ll = ll0.copy(), ll0.copy()
    em._redo_lowering_steps(problem, theta0, claim, theta, ll)
    _with_numpy(
        monkeypatch,
        em._redo_lowering_steps,
        problem,
        theta0,
        claim,
        want_theta,
        want_ll,
    )
    # The same steps are redone (the redone points themselves come from
    # either EM step).
    np.testing.assert_array_equal(ll != ll0, want_ll != ll0)
    assert (ll != ll0).any()


@pytest.mark.parametrize("genes", [[0], [0, 1, 2, 3]])
@pytest.mark.parametrize("warm", [False, True])
def test_m_step_agrees_with_numpy(singer, monkeypatch, genes, warm):
    X = singer[:, genes]
    problem = MixtureProblem(build_count_table(X), shared_weights=True)
    theta = _perturbed_starts(problem, X, np.random.default_rng(6))[1]
    _, mass, total = problem.e_step(theta)
    alpha = np.exp(theta.log_alpha) if warm else None
    got = problem.m_step(mass, total, alpha)
    want = _with_numpy(monkeypatch, problem.m_step, mass, total, alpha)
    np.testing.assert_allclose(got.log_weights, want.log_weights, atol=1e-12)
    np.testing.assert_allclose(got.log_alpha, want.log_alpha, atol=3e-5)
    np.testing.assert_allclose(got.log_b, want.log_b, atol=3e-5)


@pytest.mark.parametrize("shared_weights", [True, False])
def test_gradient_agrees_with_numpy(singer, monkeypatch, shared_weights):
    X = singer[:, :1] if shared_weights else singer
    problem = MixtureProblem(build_count_table(X), shared_weights=shared_weights)
    for theta in _perturbed_starts(problem, X, np.random.default_rng(7)):
        problem_stacked, stacked = problem.stack_starts(theta)
        ll, gradient = problem_stacked.gradient(stacked)
        want_ll, want = _with_numpy(monkeypatch, problem_stacked.gradient, stacked)
        np.testing.assert_allclose(ll, want_ll, rtol=1e-12, atol=1e-9)
        for got, expected in zip(gradient, want, strict=True):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-8)
