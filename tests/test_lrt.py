"""The bootstrap likelihood-ratio test for the number of components."""

import warnings

import numpy as np
import pytest

from sknbmix import NegBinomMixture, _lrt, lrt_n_components

# Known optima of Rex1 (the built-in data): K=1 and K=2.
REX1_K1, REX1_K2 = -1638.678352600, -1590.352137603


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_rex1_statistic_and_smallest_pvalue(rex1):
    res = lrt_n_components(NegBinomMixture(1), rex1, n_resamples=49, random_state=0)
    assert res.statistic == pytest.approx(2 * (REX1_K2 - REX1_K1), abs=1e-4)
    # Far beyond every null statistic: the smallest p-value of 49 resamples.
    assert res.pvalue == pytest.approx(1 / 50)
    assert res.n_resamples_used == 49 and res.null_distribution.shape == (49,)
    assert res.null_distribution.max() < res.statistic
    assert np.all(res.null_distribution >= 0)
    assert res.null_model.n_components == 1
    assert res.alternative_model.weights_.shape == (2,)


def test_unimodal_data_stop_early_with_a_valid_pvalue():
    rng = np.random.default_rng(3)
    X = rng.negative_binomial(4.0, 4.0 / (4.0 + 20.0), (300, 1)).astype(float)
    res = lrt_n_components(
        NegBinomMixture(1), X, n_resamples=199, max_exceedances=5, random_state=1
    )
    exceed = np.count_nonzero(res.null_distribution >= res.statistic)
    if res.n_resamples_used < 199:
        # Stopped at the fifth exceedance: Besag and Clifford's p-value.
        assert exceed == 5 and res.null_distribution[-1] >= res.statistic
        assert res.pvalue == pytest.approx(5 / res.n_resamples_used)
    else:
        assert res.pvalue == pytest.approx((1 + exceed) / 200)
    assert res.pvalue > 0.01


def test_same_null_distribution_for_any_jobs_round_and_chunk(singer, monkeypatch):
    model = NegBinomMixture(1, shared_weights=False)
    one = lrt_n_components(model, singer, n_resamples=40, random_state=7)
    two = lrt_n_components(model, singer, n_resamples=40, random_state=7, n_jobs=2)
    # Rounds of 1, 2, 4, 8, 8, ... resamples.
    monkeypatch.setattr(_lrt, "_FIRST_ROUND", 1)
    monkeypatch.setattr(_lrt, "_LAST_ROUND", 8)
    growing = lrt_n_components(model, singer, n_resamples=40, random_state=7)
    monkeypatch.setattr(_lrt, "_FIRST_ROUND", 3)
    monkeypatch.setattr(_lrt, "_LAST_ROUND", 3)
    small = lrt_n_components(model, singer, n_resamples=40, random_state=7)
    # Room for the draws of two features of three resamples at a time, and a
    # little more: not enough for three.
    budget = 2 * singer.shape[0] * 3 + 100
    monkeypatch.setattr(_lrt, "_DRAW_BUDGET", budget)
    drawn = []
    stacked = _lrt._stacked_statistics

    def spy(n_samples, truth, *args):
        drawn.append(n_samples * truth["alpha"].shape[1] * len(args[-1]))
        return stacked(n_samples, truth, *args)

    monkeypatch.setattr(_lrt, "_stacked_statistics", spy)
    chunked = lrt_n_components(model, singer, n_resamples=40, random_state=7)
    assert max(drawn) <= budget and len(drawn) > 14
    for other in (two, growing, small, chunked):
        np.testing.assert_array_equal(other.pvalue, one.pvalue)
        for a, b in zip(other.null_distribution, one.null_distribution, strict=True):
            np.testing.assert_array_equal(a, b)


def test_seed_sequences(rex1):
    parent = np.random.SeedSequence(42)
    first, second = parent.spawn(2)
    model = NegBinomMixture(1)
    a = lrt_n_components(model, rex1, n_resamples=5, random_state=first)
    b = lrt_n_components(model, rex1, n_resamples=5, random_state=second)
    again = lrt_n_components(
        model, rex1, n_resamples=5, random_state=np.random.SeedSequence(42).spawn(2)[0]
    )
    assert not np.array_equal(a.null_distribution, b.null_distribution)
    np.testing.assert_array_equal(a.null_distribution, again.null_distribution)


def test_per_feature_tests_match_the_features_alone(singer):
    res = lrt_n_components(
        NegBinomMixture(1, shared_weights=False), singer, n_resamples=9, random_state=0
    )
    assert res.statistic.shape == res.pvalue.shape == (4,)
    for g in range(4):
        alone = lrt_n_components(
            NegBinomMixture(1), singer[:, g : g + 1], n_resamples=1, random_state=0
        )
        assert res.statistic[g] == pytest.approx(alone.statistic, abs=1e-6)
    assert res.statistic[0] == pytest.approx(2 * (REX1_K2 - REX1_K1), abs=1e-4)


def test_two_against_three_and_size_factors(singer):
    s = np.exp(np.random.default_rng(0).normal(0.0, 0.3, singer.shape[0]))
    res = lrt_n_components(
        NegBinomMixture(2), singer, n_resamples=4, size_factors=s, random_state=0
    )
    assert np.isfinite(res.statistic) and res.statistic >= 0
    assert res.alternative_model.alpha_.shape == (3, 4)
    assert res.alternative_model.size_factors_used_ == "given"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"max_exceedances": 0}, "max_exceedances"),
    ],
)
def test_bad_arguments(rex1, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lrt_n_components(NegBinomMixture(1), rex1, **kwargs)
    with pytest.raises(ValueError, match="NegBinomMixture"):
        lrt_n_components(object(), rex1)


def test_size_factors_must_match_the_fit_and_seeds_must_be_reproducible(rex1):
    s = np.exp(np.random.default_rng(0).normal(0.0, 0.3, rex1.shape[0]))
    fitted = NegBinomMixture(1).fit(rex1, size_factors=s)
    with pytest.raises(ValueError, match="fitted with size factors"):
        lrt_n_components(fitted, rex1, n_resamples=2)
    with pytest.raises(ValueError, match="random_state"):
        lrt_n_components(
            NegBinomMixture(1), rex1, random_state=np.random.default_rng(0)
        )


def test_larger_fit_reaches_the_best_optimum(rex1):
    # Two of 200 data sets drawn from the Rex1 K=1 fit (as in
    # validation/lrt_calibration.py) where the K=2 fit from the default
    # starts and the split of the K=1 fit ended 3.2 and 1.1 below the best
    # optimum known; the starts with a component added on windows of the
    # counts reach it.
    null = NegBinomMixture(1).fit(rex1)
    rng = np.random.default_rng([0, 100])
    labels = rng.choice(1, (rex1.shape[0], 200), p=null.weights_)
    alpha, b = null.alpha_[:, 0], null.b_[:, 0]
    X = rng.negative_binomial(alpha[labels], 1.0 / (1.0 + b[labels]))[:, [0, 4]]
    X = X.astype(float)
    res = lrt_n_components(
        NegBinomMixture(1, shared_weights=False), X, n_resamples=1, random_state=0
    )
    for j in range(2):
        column = X[:, j : j + 1]
        # K=1 has one optimum: the test's K=2 fit is the K=1 fit plus half
        # the statistic.
        reached = NegBinomMixture(1).fit(column).score(column) * X.shape[0]
        reached += res.statistic[j] / 2
        fits = [
            NegBinomMixture(2, **options).fit(column).score(column) * X.shape[0]
            for options in (
                {},
                {"n_init": 20, "init_params": "random", "random_state": 0},
                {"n_init": 20, "random_state": 0},
            )
        ]
        assert reached >= max(fits) - 1e-6
        if j == 0:
            assert reached > fits[0] + 1.0  # the default fit stops short
