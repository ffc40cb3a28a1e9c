"""Time the classic parametric bootstrap against ``sknbmix.bootstrap`` on Rex1.

Usage::

    python benchmarks/bench_bootstrap.py [--quick] [--replicates N]
        [--baseline-replicates M] [--four-genes]

Both run in the same process, on the same data and on two cores:

- the classic approach, as people write it today: fit Rex1 with the classic
  Powell fit (``baseline.fit_one_gene``), then per replicate draw 279 counts
  from the fitted mixture with the global ``np.random.*`` functions and refit
  them with the same classic procedure. A careful user spreads the replicates
  over the two cores with ``joblib.Parallel(n_jobs=2)`` (loky processes, each
  with its own, unseeded, global random state: not reproducible, as in the
  classic code);
- ``sknbmix.bootstrap(NegBinomMixture(2).fit(rex1), rex1, n_jobs=2,
  random_state=0, ci_method="percentile")``: percentile intervals, as the
  classic loop makes them (the default BCa intervals add a jackknife of the
  data, up to 500 more fits; ``validation/README.md`` times it).

Both are timed as wall-clock seconds for the whole run, divided by the number
of replicates. sknbmix runs first, so its time includes starting the two
worker processes; the baseline then reuses them.

With ``--four-genes`` it also runs the four-gene, shared-weight, K=2
bootstrap (1000 replicates, two cores) and reports its failures.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from _table import header, row
from baseline import fit_one_gene
from joblib import Parallel, delayed

from sknbmix import NegBinomMixture, bootstrap

DATA = Path(__file__).resolve().parents[1] / "sknbmix/datasets/data/singer.csv"
N_JOBS = 2
# Goals of issue 4.
GOAL_SECONDS, GOAL_REPLICATES, GOAL_RATIO = 30.0, 10_000, 100.0


def classic_replicate(w, alpha1, b1, alpha2, b2, n_cells):
    """One classic parametric bootstrap replicate: draw, then refit.

    Draws through the global ``np.random`` functions, as the classic code
    does, and refits with the classic Powell procedure. Returns ``(w, mean1,
    mean2, success)``, or NaNs and False when the refit raises (the classic
    code would crash; here the replicate is counted as failed).
    """
    # The legacy global functions, on purpose: this is the classic code.
    low = np.random.uniform(size=n_cells) < w  # noqa: NPY002
    n1 = np.random.negative_binomial(alpha1, 1 / (1 + b1), size=n_cells)  # noqa: NPY002
    n2 = np.random.negative_binomial(alpha2, 1 / (1 + b2), size=n_cells)  # noqa: NPY002
    n = np.where(low, n1, n2)
    try:
        fit = fit_one_gene(n)
    except Exception:
        return np.nan, np.nan, np.nan, False
    means = (fit.alpha * fit.b)[:, 0]
    return fit.weights[0], means[0], means[1], bool(fit.success)


def run_classic(n, n_replicates):
    """Classic fit of ``n``, then ``n_replicates`` classic replicates on two
    cores. Returns seconds and an array of ``(w, mean1, mean2, success)``."""
    fit = fit_one_gene(n)
    params = (fit.weights[0], fit.alpha[0, 0], fit.b[0, 0])
    params += (fit.alpha[1, 0], fit.b[1, 0])
    start = time.perf_counter()
    rows = Parallel(n_jobs=N_JOBS)(
        delayed(classic_replicate)(*params, len(n)) for _ in range(n_replicates)
    )
    return time.perf_counter() - start, np.array(rows, dtype=float)


def run_sknbmix(X, n_resamples):
    """``sknbmix.bootstrap`` on two cores; returns seconds and the result."""
    model = NegBinomMixture(n_components=2).fit(X)
    start = time.perf_counter()
    with warnings.catch_warnings():  # failures are reported from the result
        warnings.simplefilter("ignore", UserWarning)
        result = bootstrap(
            model,
            X,
            n_resamples=n_resamples,
            n_jobs=N_JOBS,
            random_state=0,
            ci_method="percentile",
        )
    return time.perf_counter() - start, result


def interval(values):
    low, high = np.nanquantile(values, [0.025, 0.975])
    return f"[{low:.4g}, {high:.4g}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicates")
    parser.add_argument("--replicates", type=int, help="sknbmix (default 10000)")
    parser.add_argument(
        "--baseline-replicates", type=int, help="classic approach (default 200)"
    )
    parser.add_argument(
        "--four-genes", action="store_true", help="also the four-gene bootstrap"
    )
    args = parser.parse_args()
    n_sk = args.replicates or (1000 if args.quick else 10_000)
    n_base = args.baseline_replicates or (40 if args.quick else 200)

    X = np.loadtxt(DATA, delimiter=",", skiprows=1, dtype=np.int64)
    rex1 = X[:, :1]

    sk_s, res = run_sknbmix(rex1, n_sk)
    base_s, rows = run_classic(X[:, 0], n_base)
    base_ok = rows[:, 3] == 1
    base_per, sk_per = base_s / n_base, sk_s / n_sk

    print(f"Rex1, K=2, parametric bootstrap, n_jobs={N_JOBS}")
    columns = [
        ("", 9, "s"),
        ("replicates", 10, "d"),
        ("total s", 8, ".1f"),
        ("ms/replicate", 12, ".3f"),
        ("failed", 6, "d"),
    ]
    print(header(columns))
    for values in (
        ["classic", n_base, base_s, base_per * 1e3, int((~base_ok).sum())],
        ["sknbmix", n_sk, sk_s, sk_per * 1e3, res.n_failed],
    ):
        print(row(values, columns))
    ratio = base_per / sk_per
    print(f"speed-up per replicate: {ratio:.0f}x")
    print(f"sknbmix start disagreements: {res.n_start_disagreements}")
    at_goal = sk_per * GOAL_REPLICATES
    print(
        f"goal: {GOAL_REPLICATES} replicates in <= {GOAL_SECONDS:.0f} s "
        f"(here {at_goal:.1f} s): {'met' if at_goal <= GOAL_SECONDS else 'NOT met'}; "
        f">= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'}"
    )

    # 95% percentile intervals. The classic ones are as the classic code gets
    # them: no alignment of the labels (on Rex1 the components are far apart).
    print(f"{'95% intervals':<12} {'sknbmix':>20} {'classic':>20}")
    ci = res.confidence_interval
    sk_intervals = {
        "weight[0]": (ci["weights"].low[0], ci["weights"].high[0]),
        "mean[0]": (ci["means"].low[0, 0], ci["means"].high[0, 0]),
        "mean[1]": (ci["means"].low[1, 0], ci["means"].high[1, 0]),
    }
    for column, (name, (low, high)) in enumerate(sk_intervals.items()):
        sk = f"[{low:.4g}, {high:.4g}]"
        print(f"{name:<12} {sk:>20} {interval(rows[base_ok, column]):>20}")

    if args.four_genes:
        n_four = 1000
        four_s, four = run_sknbmix(X, n_four)
        ok = n_four - four.n_failed
        print(
            f"four genes, shared weights, K=2: {n_four} replicates in {four_s:.1f} s "
            f"({four_s / n_four * 1e3:.2f} ms/replicate), {four.n_failed} failed, "
            f"success {100 * ok / n_four:.1f}%, "
            f"{four.n_start_disagreements} start disagreements"
        )


if __name__ == "__main__":
    main()
