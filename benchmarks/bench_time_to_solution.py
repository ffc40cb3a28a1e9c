"""Time to solution of the shared model against GaussianMixture (issue 19).

Usage::

    python benchmarks/bench_time_to_solution.py [--n-samples 100000] [--quick]
        [--skip-gmm]

On ``make_counts(n, 2_000, 8, random_state=0)`` (sparse, several cell types
that differ in which genes go up or down), in one process:

- ``NegBinomMixture(8, random_state=0).fit(X)`` with its defaults, end to
  end, on the sparse counts;
- ``GaussianMixture(8, covariance_type="diag", random_state=0).fit(D)`` with
  its defaults on ``D = log1p(X)``, dense (its time excludes making ``D``).

Both are wall-clock seconds of ``fit``; each fit's labels are compared with
the true cell types by the adjusted Rand index. The first fit of the process
loads the compiled kernels (a fraction of a second, from the cache).
"""

import argparse
import time
import warnings

import numpy as np
from _synthetic import make_counts
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from sknbmix import NegBinomMixture

N_FEATURES, N_COMPONENTS = 2_000, 8


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 cells")
    parser.add_argument("--skip-gmm", action="store_true")
    args = parser.parse_args()
    n_samples = 10_000 if args.quick else args.n_samples
    X, truth = make_counts(n_samples, N_FEATURES, N_COMPONENTS, random_state=0)
    print(f"{n_samples:,} x {N_FEATURES:,}, K={N_COMPONENTS}: {X.nnz:,} non-zeros")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Poisson-limit components are expected
        start = time.perf_counter()
        model = NegBinomMixture(N_COMPONENTS, random_state=0).fit(X)
        seconds = time.perf_counter() - start
    ari = adjusted_rand_score(truth["labels"], model.predict(X))
    print(
        f"  NegBinomMixture: {seconds:.1f} s, {model.n_iter_} iterations of the "
        f"kept start, log-likelihood {model.score(X) * n_samples:.3f}, ARI {ari:.4f}",
        flush=True,
    )
    if args.skip_gmm:
        return
    dense = np.log1p(X.toarray())
    start = time.perf_counter()
    gmm = GaussianMixture(N_COMPONENTS, covariance_type="diag", random_state=0)
    gmm.fit(dense)
    gmm_seconds = time.perf_counter() - start
    gmm_ari = adjusted_rand_score(truth["labels"], gmm.predict(dense))
    print(
        f"  GaussianMixture(diag) on dense log1p: {gmm_seconds:.1f} s, "
        f"{gmm.n_iter_} iterations, ARI {gmm_ari:.4f}\n"
        f"  ratio NegBinomMixture / GaussianMixture: {seconds / gmm_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
