"""The starts of the per-sample model are made sample by sample: any subset
of the samples (a block of a dask array) makes its share of them alike."""

import numpy as np
import pytest
from scipy import stats

from sknbmix._fit import SampleSplits, default_cuts, seeded_dirichlet
from sknbmix._likelihood import score_distribution


def test_seeded_dirichlet_is_a_function_of_each_rank():
    ranks = np.arange(5000)
    whole = seeded_dirichlet(7, ranks, 3, 4)
    assert whole.shape == (3, 4, 5000)
    subset = np.random.default_rng(0).permutation(5000)[:777]
    np.testing.assert_array_equal(seeded_dirichlet(7, subset, 3, 4), whole[..., subset])
    assert not np.array_equal(seeded_dirichlet(8, ranks, 3, 4), whole)


@pytest.mark.parametrize("n_components", [2, 5])
def test_seeded_dirichlet_is_dirichlet(n_components):
    # Each component of Dirichlet(1, ..., 1) is Beta(1, K - 1); the
    # components of a draw add up to 1, and starts and ranks are
    # independent.
    draws = seeded_dirichlet(0, np.arange(20_000), 2, n_components)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-12)
    beta = stats.beta(1, n_components - 1)
    for start in range(2):
        for k in range(n_components):
            assert stats.kstest(draws[start, k], beta.cdf).pvalue > 1e-3
    correlation = np.corrcoef(draws[0, 0], draws[1, 0])[0, 1]
    assert abs(correlation) < 4 / np.sqrt(20_000)


def test_sample_splits_of_a_subset():
    rng = np.random.default_rng(1)
    scores = rng.poisson(30, 3000).astype(float)
    splits = SampleSplits(
        3,
        default_cuts(3),
        *score_distribution(*np.unique(scores, return_counts=True)),
        n_random=3,
        seed=11,
    )
    ranks = rng.permutation(3000)
    whole = splits.responsibilities(ranks, scores)
    assert whole.shape == (3 + len(default_cuts(3)), 3, 3000)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-12)
    block = slice(1000, 1400)
    np.testing.assert_array_equal(
        splits.responsibilities(ranks[block], scores[block]), whole[..., block]
    )
    # The equal split gives each group a third of the samples.
    np.testing.assert_allclose(whole[3].mean(axis=1), 1 / 3, rtol=1e-12)
