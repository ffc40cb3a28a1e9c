"""The per-sample E step on threads: the same answer for any number of
threads, and the blocks of samples add up to the one-pass E step."""

import numpy as np
import pytest

from sknbmix import NegBinomMixture, _likelihood
from sknbmix._data import total_size_factors
from sknbmix._fit import FitSettings, initial_starts
from sknbmix._likelihood import MixtureLikelihood


def _counts(n_samples, n_features=20, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.integers(3, size=n_samples)
    means = rng.gamma(2.0, 1.0, size=(3, n_features))
    return rng.negative_binomial(2.0, 2.0 / (2.0 + means[types])).astype(float)


@pytest.fixture
def threaded(monkeypatch):
    # Threads for small work too, so that the test data use them.
    monkeypatch.setattr(_likelihood, "_THREAD_WORK", 1000)


@pytest.mark.filterwarnings("ignore::sknbmix.exceptions.PoissonLimitWarning")
@pytest.mark.parametrize(
    "n_samples, size_factors",
    [(3000, None), (9000, None), (3000, "total"), (9000, "total")],
)
def test_any_number_of_threads_gives_the_same_fit(
    threaded, monkeypatch, n_samples, size_factors
):
    # 3,000 samples: the starts split over threads (with size factors too);
    # 9,000: blocks of samples.
    X = _counts(n_samples)
    fits = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        model = NegBinomMixture(3, size_factors=size_factors, random_state=0)
        fits.append(model.fit(X))
    for fit in fits[1:]:
        for name in ("weights_", "alpha_", "b_", "lower_bound_", "n_iter_"):
            np.testing.assert_array_equal(getattr(fit, name), getattr(fits[0], name))


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("mode", ["em_step", "gradient", "log_likelihood"])
def test_blocks_of_samples_add_up_to_one_pass(threaded, monkeypatch, mode, scaled):
    X = _counts(20_000)
    size_factors = total_size_factors(X) if scaled else None
    likelihood = MixtureLikelihood.of_counts(X, True, size_factors)
    assert len(_likelihood._sample_blocks(20_000)) - 1 == 4
    theta = initial_starts(likelihood, FitSettings(n_components=3), 0, None)
    blocked = getattr(likelihood, mode)(theta)
    # One block: the one-pass kernel.
    monkeypatch.setattr(_likelihood, "_MIN_SAMPLE_BLOCK", 10**9)
    whole = getattr(likelihood, mode)(theta)
    if mode == "log_likelihood":
        blocked, whole = (blocked,), (whole,)
    np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-13)
    for got, expected in zip(blocked[1:], whole[1:], strict=True):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
