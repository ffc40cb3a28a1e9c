"""Time to solution of the shared model against GaussianMixture (issue 19).

Usage::

    python benchmarks/bench_time_to_solution.py [--n-samples 100000] [--quick]
        [--skip-gmm] [--data-seed 0]
    python benchmarks/bench_time_to_solution.py --curve [--gmm-max 300000]

On ``make_counts(n, 2_000, 8, random_state=0)`` (sparse, several cell types
that differ in which genes go up or down; ``--data-seed`` draws another data
set), in one process:

- ``NegBinomMixture(8, random_state=0).fit(X)`` with its defaults, end to
  end, on the sparse counts;
- ``GaussianMixture(8, covariance_type="diag", random_state=0).fit(D)`` with
  its defaults on ``D = log1p(X)``, dense (its time excludes making ``D``).

Both are wall-clock seconds of ``fit``; each fit's labels are compared with
the true cell types by the adjusted Rand index. The first fit of the process
loads the compiled kernels (a fraction of a second, from the cache).

``--curve`` runs each of 10,000, 30,000, 100,000, 300,000 and 1,000,000
cells in a fresh process (GaussianMixture up to ``--gmm-max`` cells: its
dense copy takes 16 GB at a million), writes
``results/time_to_solution.csv`` and plots seconds against cells in
``results/time_to_solution.png``.
"""

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _synthetic import make_counts
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from sknbmix import NegBinomMixture

N_FEATURES, N_COMPONENTS = 2_000, 8
CURVE = (10_000, 30_000, 100_000, 300_000, 1_000_000)
RESULTS = Path(__file__).parent / "results"


def run_size(n_samples, with_gmm, data_seed=0):
    """Both fits at one size; a dict of what was measured."""
    X, truth = make_counts(n_samples, N_FEATURES, N_COMPONENTS, random_state=data_seed)
    out = {"n_samples": n_samples, "data_seed": data_seed, "nnz": X.nnz}
    print(f"{n_samples:,} x {N_FEATURES:,}, K={N_COMPONENTS}: {X.nnz:,} non-zeros")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Poisson-limit components are expected
        start = time.perf_counter()
        model = NegBinomMixture(N_COMPONENTS, random_state=0).fit(X)
        out["nb_seconds"] = time.perf_counter() - start
    out["nb_ari"] = adjusted_rand_score(truth["labels"], model.predict(X))
    out["nb_iterations"] = model.n_iter_
    print(
        f"  NegBinomMixture: {out['nb_seconds']:.1f} s, {model.n_iter_} iterations "
        f"of the kept start, log-likelihood {model.score(X) * n_samples:.3f}, "
        f"ARI {out['nb_ari']:.4f}",
        flush=True,
    )
    if not with_gmm:
        return out
    dense = np.log1p(X.toarray())
    del X
    start = time.perf_counter()
    gmm = GaussianMixture(N_COMPONENTS, covariance_type="diag", random_state=0)
    gmm.fit(dense)
    out["gmm_seconds"] = time.perf_counter() - start
    out["gmm_ari"] = adjusted_rand_score(truth["labels"], gmm.predict(dense))
    out["gmm_iterations"] = gmm.n_iter_
    print(
        f"  GaussianMixture(diag) on dense log1p: {out['gmm_seconds']:.1f} s, "
        f"{gmm.n_iter_} iterations, ARI {out['gmm_ari']:.4f}\n"
        "  ratio NegBinomMixture / GaussianMixture: "
        f"{out['nb_seconds'] / out['gmm_seconds']:.2f}",
        flush=True,
    )
    return out


def run_curve(gmm_max):
    import pandas as pd

    rows = []
    for n_samples in CURVE:
        command = [sys.executable, __file__, "--n-samples", str(n_samples), "--json"]
        if n_samples > gmm_max:
            command.append("--skip-gmm")
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print(done.stdout.rsplit("\n", 2)[0], flush=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        pd.DataFrame(rows).to_csv(RESULTS / "time_to_solution.csv", index=False)
    plot_curve(pd.DataFrame(rows))


def plot_curve(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(rows["n_samples"], rows["nb_seconds"], "o-", label="NegBinomMixture")
    if "gmm_seconds" in rows:
        gmm = rows.dropna(subset=["gmm_seconds"])
        ax.loglog(
            gmm["n_samples"],
            gmm["gmm_seconds"],
            "s--",
            label="GaussianMixture(diag), dense log1p",
        )
    ax.set_xlabel("cells (2,000 genes, K = 8)")
    ax.set_ylabel("seconds to solution (one run, 2 cores)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "time_to_solution.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 cells")
    parser.add_argument("--skip-gmm", action="store_true")
    parser.add_argument("--curve", action="store_true")
    parser.add_argument("--gmm-max", type=int, default=300_000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.curve:
        run_curve(args.gmm_max)
        return
    n_samples = 10_000 if args.quick else args.n_samples
    out = run_size(n_samples, not args.skip_gmm, args.data_seed)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
