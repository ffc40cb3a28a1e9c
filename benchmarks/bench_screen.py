"""A per-gene bimodality screen: 10,000 cells x 2,000 genes, K=2 per gene.

Usage::

    python benchmarks/bench_screen.py [--quick]

Fits ``NegBinomMixture(2, shared_weights=False)`` to a sparse synthetic count
matrix drawn from known two-component mixtures (one per gene, about 90% of
the matrix zero), times it, and then checks every gene's answer three ways:

* against the same gene fit alone (``NegBinomMixture(2)`` on its column):
  per-gene log-likelihoods must agree within 1e-6;
* against scipy: the log-likelihood of each gene through
  ``scipy.stats.nbinom`` (``tests/_helpers.py``) must agree within 1e-6, and
  scipy's Powell, started from the gene's answer, must gain less than 1e-4
  (else the screen stopped short of an optimum);
* against the truth: no gene's log-likelihood below that of the parameters
  that generated it, and the error of the recovered means and weights on
  the genes whose components are well apart and well populated (elsewhere
  the maximum likelihood estimate is far from the truth by nature: a gene
  with a mean of 0.05 is nearly all zeros).

``--quick`` takes 1,000 cells x 200 genes.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _synthetic import make_counts
from _table import header, row
from joblib import Parallel, delayed
from scipy.optimize import linear_sum_assignment
from scipy.stats import nbinom

from sknbmix import NegBinomMixture

# The independent reference computations of the test suite: scipy's nbinom
# (exact also in the Poisson limit, where scipy alone loses digits) and a
# Powell polish in unconstrained coordinates.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _helpers import mixture_loglik, powell_polish  # noqa: E402


def check_gene(column, weights, alpha, b, true_params):
    """The gene's log-likelihood through scipy, what Powell adds to it, and
    the log-likelihood at the generating parameters."""
    begin, best = powell_polish(column, weights, alpha, b, n_rounds=1)
    return (
        mixture_loglik(column, weights, alpha, b),
        best - begin,
        mixture_loglik(column, *true_params),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_samples, n_features = (1_000, 200) if args.quick else (10_000, 2_000)
    X, truth = make_counts(n_samples, n_features, 2, shared=False, random_state=0)
    print(
        f"{n_samples} cells x {n_features} genes, "
        f"{1 - X.nnz / (n_samples * n_features):.1%} zeros, K=2 per gene"
    )

    start = time.perf_counter()
    screen = NegBinomMixture(2, shared_weights=False).fit(X)
    seconds = time.perf_counter() - start
    print(
        f"screen fit: {seconds:.2f} s (goal <= 5 s at full size), "
        f"converged={screen.converged_}, n_iter={screen.n_iter_}"
    )
    screen_ll = -0.5 * (screen.bic(X, per_feature=True) - 5 * np.log(n_samples))

    start = time.perf_counter()
    alone_ll = np.empty(n_features)
    for g in range(n_features):
        column = X[:, [g]]
        alone_ll[g] = NegBinomMixture(2).fit(column).score(column) * n_samples
    alone_seconds = time.perf_counter() - start
    difference = screen_ll - alone_ll

    start = time.perf_counter()
    checks = Parallel(n_jobs=-1, batch_size=16)(
        delayed(check_gene)(
            X[:, [g]].toarray(),
            screen.weights_[g],
            screen.alpha_[:, [g]],
            screen.b_[:, [g]],
            (truth["weights"][g], truth["alpha"][:, [g]], truth["b"][:, [g]]),
        )
        for g in range(n_features)
    )
    scipy_ll, gains, true_ll = np.array(checks).T
    powell_seconds = time.perf_counter() - start

    columns = [("check", 44, ""), ("worst", 11, ".2e"), ("genes failing", 14, "d")]
    print()
    print(header(columns))
    for label, values, limit in (
        ("|screen - gene alone| (limit 1e-6)", np.abs(difference), 1e-6),
        ("screen below gene alone (limit 1e-6)", -difference, 1e-6),
        ("|sknbmix - scipy log-likelihood| (1e-6)", np.abs(screen_ll - scipy_ll), 1e-6),
        ("Powell gain from the answer (limit 1e-4)", gains, 1e-4),
        ("below the truth's log-likelihood (1e-6)", true_ll - screen_ll, 1e-6),
    ):
        print(row([label, values.max(), int(np.sum(values > limit))], columns))
    for g in np.flatnonzero(gains > 1e-4):
        print(
            f"  gene {g}: Powell gains {gains[g]:.2e} from weights "
            f"{screen.weights_[g].round(5)}, alpha {screen.alpha_[:, g]}, "
            f"means {screen.means_[:, g]}"
        )
    print(
        f"(fitting the genes one by one took {alone_seconds:.1f} s, "
        f"the Powell checks {powell_seconds:.1f} s)"
    )

    # Recovery, on genes with enough signal to recover: components 2-fold or
    # more apart, each with 100 or more cells of non-zero counts.
    true_means = truth["means"]
    fold = np.abs(np.log(true_means[1] / true_means[0]))
    zero_probability = nbinom.pmf(0, truth["alpha"], 1 / (1 + truth["b"]))
    cells_nonzero = n_samples * truth["weights"].T * (1 - zero_probability)
    clear = (fold > np.log(2)) & (cells_nonzero.min(axis=0) >= 100)
    errors_mean, errors_weight = [], []
    for g in np.flatnonzero(clear):
        cost = np.abs(
            np.log(true_means[:, g])[:, None] - np.log(screen.means_[:, g])[None]
        )
        order = linear_sum_assignment(cost)[1]
        errors_mean.append(np.abs(screen.means_[order, g] / true_means[:, g] - 1).max())
        errors_weight.append(
            np.abs(screen.weights_[g, order] - truth["weights"][g]).max()
        )
    print(
        f"\nrecovery on the {clear.sum()} genes with a clear signal: "
        f"median relative error of the means {np.median(errors_mean):.3f}, "
        f"of the weights (absolute) {np.median(errors_weight):.3f}"
    )


if __name__ == "__main__":
    main()
