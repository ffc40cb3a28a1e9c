"""What size factors cost: the shared model per EM iteration, and the
per-gene screen, each against the same work without size factors.

Usage::

    python benchmarks/bench_size_factors.py [--quick]

1. The shared model, K=8, on sparse synthetic counts (100,000 cells x
   2,000 genes; ``--quick``: 20,000 x 500): seconds per EM iteration
   (``MixtureLikelihood.em_step``, one start from random Dirichlet
   responsibilities) without size factors and with the cells' total counts
   over their mean as size factors, in alternation, median of 7 each; the
   log-likelihood alone (the E step) likewise. The issue's goal: at most
   2x per iteration.
2. The per-gene screen, ``NegBinomMixture(2, shared_weights=False)``, on
   10,000 x 2,000 (``--quick``: 2,000 x 200) synthetic counts drawn per
   gene: the whole fit without and with ``size_factors="total"``, and the
   number of distinct size factors (the table form with size factors has
   one zero entry per gene and distinct size factor, and one entry per
   distinct (count, size factor) pair). The issue's goal: at most 2x.

The machine's load average is printed before and after: timings on a
busy two-core machine are noisy.
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from _synthetic import make_counts
from _table import header, row

from sknbmix import NegBinomMixture
from sknbmix._data import total_size_factors
from sknbmix._likelihood import MixtureLikelihood


def per_iteration(n_samples, n_features, n_components, repeats):
    """Median seconds per EM step and per log-likelihood, without and with
    size factors, timed in alternation."""
    X = make_counts(n_samples, n_features, n_components, random_state=0)[0]
    size_factors = total_size_factors(X)
    resp = np.random.default_rng(0).dirichlet(
        np.ones(n_components), size=(1, n_samples)
    )
    resp = resp.transpose(0, 2, 1)
    models = {
        "without": MixtureLikelihood.of_counts(X, True),
        "with": MixtureLikelihood.of_counts(X, True, size_factors),
    }
    # The same parameters for both: a few steps of the model without.
    theta = models["without"].from_responsibilities(resp)
    for _ in range(3):
        theta = models["without"].em_step(theta)[1]
    times = {(name, what): [] for name in models for what in ("em", "ll")}
    for likelihood in models.values():
        likelihood.em_step(theta)  # compile, caches
    for _ in range(repeats):
        for name, likelihood in models.items():
            start = time.perf_counter()
            likelihood.em_step(theta)
            times[name, "em"].append(time.perf_counter() - start)
            start = time.perf_counter()
            likelihood.log_likelihood(theta)
            times[name, "ll"].append(time.perf_counter() - start)
    median = {key: statistics.median(value) for key, value in times.items()}
    return X, models["with"].nodes.log_scale.size, median


def screen(n_samples, n_features):
    """Seconds of the per-gene screen without and with size factors."""
    X = make_counts(n_samples, n_features, 2, shared=False, random_state=0)[0]
    n_distinct = np.unique(total_size_factors(X)).size
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size_factors in (None, "total"):
            model = NegBinomMixture(2, shared_weights=False, size_factors=size_factors)
            start = time.perf_counter()
            model.fit(X)
            seconds[size_factors] = time.perf_counter() - start
    return X, n_distinct, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    shared = (20_000, 500) if args.quick else (100_000, 2_000)
    X, n_nodes, median = per_iteration(*shared, 8, 3 if args.quick else 7)
    print(
        f"\nShared model, K=8, {shared[0]:,} x {shared[1]:,}, {X.nnz:,} non-zeros, "
        f"{n_nodes} Chebyshev nodes:"
    )
    columns = [
        ("", 24, ""),
        ("without s / iteration", 22, ".4f"),
        ("with s", 8, ".4f"),
        ("ratio", 6, ".2f"),
    ]
    print(header(columns))
    for what, label in (("em", "EM step"), ("ll", "log-likelihood (E step)")):
        without, with_ = median["without", what], median["with", what]
        print(row([label, without, with_, with_ / without], columns))

    size = (2_000, 200) if args.quick else (10_000, 2_000)
    X, n_distinct, seconds = screen(*size)
    print(
        f"\nPer-gene screen, K=2, {size[0]:,} x {size[1]:,}, {X.nnz:,} non-zeros, "
        f"{n_distinct} distinct size factors:"
    )
    columns = [("", 22, ""), ("fit s", 8, ".2f")]
    print(header(columns))
    print(row(["without size factors", seconds[None]], columns))
    print(row(['size_factors="total"', seconds["total"]], columns))
    print(f"ratio: {seconds['total'] / seconds[None]:.1f}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
