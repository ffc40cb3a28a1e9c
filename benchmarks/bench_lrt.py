"""The likelihood-ratio test for the number of components (issue 17): time.

Usage::

    python benchmarks/bench_lrt.py [--quick] [--screen-genes 40] [--screen-only]

1. Rex1, ``lrt_n_components(NegBinomMixture(1), rex1, n_resamples=999)``
   on two cores (``n_jobs=2``; goal <= 3 s) and on one. The observed
   statistic (96.65) is never reached, so all 999 resamples run.
2. Where the time goes: one run on one core with ``sknbmix._lrt``'s calls
   timed (drawing the resamples, the K0 fits, the K0 + 1 fits, their
   log-likelihoods; the rest is the test's own bookkeeping).
3. A screen of 10,000 cells x 2,000 genes (``make_counts(10_000, 2_000, 2,
   shared=False)``: every gene a two-component mixture of its own, fold
   changes 2 to 8) with ``NegBinomMixture(1, shared_weights=False)`` and up to
   999 resamples per gene on two cores (goal <= 10 minutes), with the peak
   resident memory of the process and of its two workers. ``--screen-genes
   0`` tests all 2,000 genes; ``--screen-genes N`` tests N genes drawn at
   random and extrapolates the time linearly to 2,000 (the genes' tests are
   independent). A worker draws the resamples of a round in chunks of genes
   of at most 2**24 counts (see ``sknbmix._lrt``).

A warm-up test runs before any timing (numba kernels, joblib workers).
"""

import argparse
import os
import time
from collections import defaultdict

import numpy as np
from _synthetic import make_counts

import sknbmix._lrt as lrt_module
from sknbmix import NegBinomMixture, lrt_n_components
from sknbmix.datasets import load_singer


def load():
    return os.getloadavg()[0]


def time_rex1(rex1, n_resamples, n_jobs):
    start = time.perf_counter()
    res = lrt_n_components(
        NegBinomMixture(1),
        rex1,
        n_resamples=n_resamples,
        n_jobs=n_jobs,
        random_state=0,
    )
    return time.perf_counter() - start, res


def profile_rex1(rex1, n_resamples):
    """Seconds in each of the test's steps (one core)."""
    spent = defaultdict(float)
    originals = {}

    def timed(name, function, key=None):
        def wrapper(*args, **kwargs):
            label = name if key is None else key(args)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        return wrapper

    patches = {
        "_draw": timed("draw resamples", lrt_module._draw),
        "fit": timed(
            "fit",
            lrt_module.fit,
            key=lambda args: f"fit K={args[1].n_components}",
        ),
        "_log_likelihoods": timed("log-likelihoods", lrt_module._log_likelihoods),
    }
    for name, wrapper in patches.items():
        originals[name] = getattr(lrt_module, name)
        setattr(lrt_module, name, wrapper)
    try:
        total, _ = time_rex1(rex1, n_resamples, 1)
    finally:
        for name, function in originals.items():
            setattr(lrt_module, name, function)
    spent["other"] = total - sum(spent.values())
    return total, dict(spent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--screen-genes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--screen-only", action="store_true")
    args = parser.parse_args()
    n_resamples = 99 if args.quick else 999
    rex1 = load_singer().data[:, :1]
    time_rex1(rex1, 9, 2)  # warm-up: kernels, workers
    if not args.screen_only:
        rex1_parts(rex1, n_resamples, args.repeats)
    screen(args, n_resamples)


def rex1_parts(rex1, n_resamples, repeats):
    print(f"1. Rex1 K=1 vs 2, {n_resamples} resamples")
    for n_jobs in (2, 1):
        for _ in range(repeats):
            before = load()
            seconds, res = time_rex1(rex1, n_resamples, n_jobs)
            print(
                f"  n_jobs={n_jobs}: {seconds:.2f} s, "
                f"{1e3 * seconds / res.n_resamples_used:.2f} ms per resample "
                f"({res.n_resamples_used} used, p = {res.pvalue:.4f}, statistic "
                f"{res.statistic:.4f}); load {before:.2f} -> {load():.2f}",
                flush=True,
            )

    print("2. Where the time goes (n_jobs=1)")
    total, spent = profile_rex1(rex1, n_resamples)
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {label:>16}: {seconds:6.2f} s ({100 * seconds / total:4.1f}%)")
    print(f"  {'total':>16}: {total:6.2f} s", flush=True)


def peak_memory():
    """Peak resident memory (``VmHWM``, MB) of this process and of each of
    its descendants still alive (joblib's workers), from ``/proc``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree = [os.getpid()]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    peaks = {}
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


def screen(args, n_resamples):
    n_cells, n_genes = (1_000, 200) if args.quick else (10_000, 2_000)
    X, _ = make_counts(n_cells, n_genes, 2, shared=False, random_state=0)
    rng = np.random.default_rng(1)
    n_tested = n_genes if args.screen_genes <= 0 else min(args.screen_genes, n_genes)
    genes = np.sort(rng.choice(n_genes, n_tested, False))
    subset = X[:, genes]
    print(
        f"3. Screen {n_cells:,} cells x {n_genes:,} genes: {genes.size} genes "
        f"at random, up to {n_resamples} resamples each, n_jobs=2",
        flush=True,
    )
    before = load()
    start = time.perf_counter()
    res = lrt_n_components(
        NegBinomMixture(1, shared_weights=False),
        subset,
        n_resamples=n_resamples,
        n_jobs=2,
        random_state=0,
    )
    seconds = time.perf_counter() - start
    used = res.n_resamples_used
    print(
        f"  {seconds:.1f} s; {used.sum():,} gene-resamples "
        f"({1e3 * seconds / used.sum():.2f} ms each); stopped early: "
        f"{(used < n_resamples).sum()} of {genes.size} genes; p <= 0.05: "
        f"{(res.pvalue <= 0.05).sum()}; mean cells with a non-zero count "
        f"{subset.getnnz(axis=0).mean():.0f}; load {before:.2f} -> {load():.2f}"
    )
    if genes.size < n_genes:
        print(
            f"  extrapolated to {n_genes:,} genes: "
            f"{seconds * n_genes / genes.size / 60:.1f} min on two cores"
        )
    peaks = peak_memory()
    print(
        "  peak resident memory (MB): this process "
        f"{peaks.pop(os.getpid()):.0f}, its worker processes "
        + ", ".join(f"{peak:.0f}" for peak in sorted(peaks.values(), reverse=True))
    )


if __name__ == "__main__":
    main()
