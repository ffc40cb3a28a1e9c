"""Time and memory of sknbmix at single-cell scale, on synthetic sparse counts.

Usage::

    python benchmarks/bench_scale.py [--quick] [--skip-gmm]

Three parts, all on data from :func:`_synthetic.make_counts` (5% non-zero):

1. One EM iteration of the shared model (K=8) on 100,000 cells x 2,000 genes
   against one iteration of scikit-learn's ``GaussianMixture(covariance_type=
   "diag")`` on ``log1p`` of the same data, densified. GaussianMixture's
   iteration is the difference of two fits with ``max_iter=a`` and ``b``
   (``tol=0``, same initialisation) divided by ``b - a``, so that its
   initialisation is excluded; sknbmix's is the median of several
   ``MixtureLikelihood.em_step`` calls from random responsibilities, with the
   time to build the count table given apart.
2. Recovery: ``NegBinomMixture(8)`` on 20,000 x 500, with default settings
   and with random-responsibility starts, on three data sets at 5% and three
   at the generator's natural ~10% non-zero; components matched to the true
   ones by the Hungarian method on the log-means, and the log-likelihood
   compared with that of the true parameters.
3. Scaling against cells and against genes, one fresh process per point:
   seconds per EM iteration and peak memory of the shared model, and the
   total time and peak memory of a screen ``NegBinomMixture(2,
   shared_weights=False).fit(X)``. Peak memory is what the fit allocates on
   top of the data, by ``tracemalloc`` (numpy reports its allocations to it;
   the compiled kernels' own arrays, such as the count table's indicator
   since 2026-12-08, it does not see) and by the peak resident set size
   (``VmHWM``, reset before the fit), next to the size of the input CSR
   matrix. ``bench_memory.py`` measures the whole default fit in a fresh
   process.

Writes ``results/per_iteration.csv``, ``results/recovery.csv``,
``results/scaling.csv`` and ``results/scaling.png`` (``*_quick`` with
``--quick``).

Timings on a shared two-core machine are noisy: the load average is printed
at the start and the end.
"""

import argparse
import csv
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from _synthetic import make_counts
from _table import header, row
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import nbinom
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from sknbmix import NegBinomMixture
from sknbmix._data import build_count_table
from sknbmix._likelihood import MixtureLikelihood

RESULTS = Path(__file__).resolve().parent / "results"
DENSITY = 0.05
MB = 1e6

FULL = {
    "compare": (100_000, 2_000, 8),
    # max_iter of the two GaussianMixture fits, and repeats of each.
    "gmm_iter": (1, 3, 2),
    "recovery": (20_000, 500, 8),
    "recovery_seeds": [1, 2, 3],
    "cells": [10_000, 30_000, 100_000, 300_000],
    "cells_genes": 1_000,
    "genes": [250, 500, 1_000, 2_000, 4_000],
    "genes_cells": 30_000,
    "K": 8,
    "repeats": 7,
    "screen_memory": True,
}
QUICK = {
    "compare": (20_000, 500, 8),
    "gmm_iter": (1, 6, 3),
    "recovery": (5_000, 200, 4),
    "recovery_seeds": [1],
    "cells": [2_500, 5_000, 10_000],
    "cells_genes": 400,
    "genes": [100, 200, 400],
    "genes_cells": 5_000,
    "K": 4,
    "repeats": 3,
    "screen_memory": False,
}


# -- measuring ----------------------------------------------------------------


def input_mb(X):
    """Bytes of a CSR matrix's three arrays, in MB."""
    return (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / MB


def _reset_rss_peak():
    """Reset the kernel's peak resident set size of this process (Linux).

    Returns False where /proc/self/clear_refs is not writable.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakMemory:
    """Peak memory allocated inside a ``with`` block, beyond what was live
    before it: ``traced`` by tracemalloc, ``rss`` by the kernel (None off
    Linux), both in MB."""

    def __enter__(self):
        gc.collect()
        self._rss = _rss_kb("VmRSS") if _reset_rss_peak() else None
        tracemalloc.start()
        self._base = tracemalloc.get_traced_memory()[0]
        self._peak = self._base
        return self

    def checkpoint(self):
        """Restart the traced peak here, to measure a later stretch alone;
        the whole block's peak is kept. Returns the MB live now."""
        current, peak = tracemalloc.get_traced_memory()
        self._peak = max(self._peak, peak)
        tracemalloc.reset_peak()
        return current / MB

    def __exit__(self, *exc):
        self._peak = max(self._peak, tracemalloc.get_traced_memory()[1])
        self.traced = (self._peak - self._base) / MB
        tracemalloc.stop()
        self.rss = None if self._rss is None else (_rss_kb("VmHWM") - self._rss) / 1e3
        return False


def random_start(likelihood, n_samples, n_components, seed=0):
    """One start from random Dirichlet responsibilities, as a Theta."""
    rng = np.random.default_rng(seed)
    resp = rng.dirichlet(np.ones(n_components), size=(1, n_samples))
    return likelihood.from_responsibilities(resp.transpose(0, 2, 1))


def time_em_step(X, n_components, repeats):
    """Seconds to build the count table and median seconds per EM iteration
    (one start of the shared model)."""
    start = time.perf_counter()
    table = build_count_table(X)
    table_s = time.perf_counter() - start
    likelihood = MixtureLikelihood(table, shared_weights=True)
    theta = random_start(likelihood, X.shape[0], n_components)
    likelihood.em_step(theta)  # warm-up: caches, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, theta = likelihood.em_step(theta)
        times.append(time.perf_counter() - start)
    return table_s, statistics.median(times)


def em_memory(X, n_components):
    """Peak memory (PeakMemory) of building the table, the start and two EM
    steps; the MB the problem holds after the start (the table and its
    indicator); the peak MB of an EM step on top of that (tracemalloc: the
    arrays made by compiled kernels are not counted)."""
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(n_components), size=(1, X.shape[0]))
    resp = resp.transpose(0, 2, 1)
    with PeakMemory() as peak:
        base = peak.checkpoint()
        likelihood = MixtureLikelihood(build_count_table(X), shared_weights=True)
        theta = likelihood.from_responsibilities(resp)
        del resp
        held = peak.checkpoint()
        for _ in range(2):
            _, theta = likelihood.em_step(theta)
        step = tracemalloc.get_traced_memory()[1] / MB - held
    return peak, held - base, step


def measure_point(n_samples, n_features, n_components, repeats, seed, screen_memory):
    """Everything measured at one size; run in a fresh process. The screen's
    memory takes a second fit under tracemalloc, which slows its Python
    loops: ``screen_memory=False`` skips it (NaN)."""
    out = {"n_samples": n_samples, "n_features": n_features}
    X, truth = make_counts(
        n_samples, n_features, n_components, density=DENSITY, random_state=seed
    )
    out.update(nnz=X.nnz, input_mb=input_mb(X))
    out["table_s"], out["step_s"] = time_em_step(X, n_components, repeats)
    peak, held, step = em_memory(X, n_components)
    out.update(em_peak_mb=peak.traced, em_rss_mb=peak.rss, table_mb=held, step_mb=step)
    del X, truth
    X, _ = make_counts(
        n_samples, n_features, 2, shared=False, density=DENSITY, random_state=seed
    )
    out.update(screen_nnz=X.nnz, screen_input_mb=input_mb(X))
    screen = NegBinomMixture(2, shared_weights=False)
    start = time.perf_counter()
    screen.fit(X)
    out["screen_s"] = time.perf_counter() - start
    out["screen_iter"] = int(screen.n_iter_)
    # The fit builds the count table first; its share, measured alone. The
    # rest per iteration (n_iter_: the largest over the genes of each gene's
    # own iterations, EM and Newton) is EM proper.
    start = time.perf_counter()
    build_count_table(X)
    out["screen_table_s"] = time.perf_counter() - start
    out["screen_it_ms"] = (
        1e3 * (out["screen_s"] - out["screen_table_s"]) / out["screen_iter"]
    )
    if not screen_memory:
        out.update(screen_peak_mb=np.nan, screen_rss_mb=np.nan)
        return out
    with PeakMemory() as peak:
        NegBinomMixture(2, shared_weights=False).fit(X)
    out.update(screen_peak_mb=peak.traced, screen_rss_mb=peak.rss)
    return out


def run_point(*args):
    """:func:`measure_point` in a fresh interpreter, so that one point's heap
    does not blur the next one's peak."""
    done = subprocess.run(
        [sys.executable, __file__, "--point", json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


# -- part 1: one iteration against GaussianMixture ------------------------------


def gmm_seconds_per_iter(D, n_components, a, b, repeats):
    """Seconds per EM iteration of GaussianMixture(diag), initialisation
    excluded: (fit(max_iter=b) - fit(max_iter=a)) / (b - a), each fit the
    fastest of ``repeats``."""
    seconds = {}
    for max_iter in (a, b):
        gmm = GaussianMixture(
            n_components,
            covariance_type="diag",
            max_iter=max_iter,
            tol=0.0,
            init_params="random_from_data",
            random_state=0,
        )
        times = []
        for _ in range(repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                gmm.fit(D)
                times.append(time.perf_counter() - start)
        assert gmm.n_iter_ == max_iter
        seconds[max_iter] = min(times)
    return (seconds[b] - seconds[a]) / (b - a), seconds


def compare(config, skip_gmm):
    n, G, K = config["compare"]
    start = time.perf_counter()
    X, truth = make_counts(n, G, K, density=DENSITY, random_state=0)
    gen_s = time.perf_counter() - start
    print(
        f"\n## One EM iteration, shared model, K={K}: {n:,} cells x {G:,} genes, "
        f"nnz {X.nnz:,} ({100 * (1 - truth['zero_fraction']):.2f}% non-zero, "
        f"CSR {input_mb(X):.0f} MB; drawn in {gen_s:.1f} s)"
    )
    table_s, step_s = time_em_step(X, K, config["repeats"])
    result = {
        "n_samples": n,
        "n_features": G,
        "n_components": K,
        "nnz": X.nnz,
        "table_s": table_s,
        "sknbmix_iter_s": step_s,
    }
    if not skip_gmm:
        start = time.perf_counter()
        D = X.log1p().toarray()
        dense_s = time.perf_counter() - start
        a, b, repeats = config["gmm_iter"]
        gmm_s, fits = gmm_seconds_per_iter(D, K, a, b, repeats)
        result.update(
            gmm_iter_s=gmm_s,
            gmm_fit_a_s=fits[a],
            gmm_fit_b_s=fits[b],
            dense_mb=D.nbytes / MB,
            densify_s=dense_s,
        )
        del D
    columns = [
        ("method", 28, "s"),
        ("s/iteration", 11, ".4f"),
        ("other", 44, "s"),
    ]
    print(header(columns))
    print(
        row(
            ["sknbmix em_step (1 start)", step_s, f"count table: {table_s:.2f} s once"],
            columns,
        )
    )
    if not skip_gmm:
        note = (
            f"fits: {fits[a]:.2f} s ({a} it), {fits[b]:.2f} s ({b} it); "
            f"dense {result['dense_mb'] / 1e3:.1f} GB"
        )
        print(row(["GaussianMixture diag", gmm_s, note], columns))
        print(
            f"sknbmix / GaussianMixture per iteration: {step_s / gmm_s:.3f} "
            f"({gmm_s / step_s:.0f}x faster; goal <= 0.5)"
        )
    return result


# -- part 2: recovery -------------------------------------------------------------


def nb_log_likelihood(X, weights, alpha, b):
    """Total log-likelihood of the shared mixture, by scipy.stats (sparse:
    each cell's zeros are one constant per component, corrected at the
    non-zeros)."""
    X = X.tocoo()
    p = 1.0 / (1.0 + b)
    zero = nbinom.logpmf(0, alpha, p)  # (K, G)
    joint = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        delta = nbinom.logpmf(X.data, alpha[k, X.col], p[k, X.col]) - zero[k, X.col]
        joint[:, k] = (
            np.log(weights[k])
            + zero[k].sum()
            + np.bincount(X.row, delta, minlength=X.shape[0])
        )
    return logsumexp(joint, axis=1).sum(), joint.argmax(axis=1)


def recovery_one(X, truth, **params):
    """Fit ``NegBinomMixture(K, **params)`` and compare it with the truth."""
    n, K = X.shape[0], len(truth["weights"])
    start = time.perf_counter()
    with warnings.catch_warnings(record=True):
        # A fit that runs out of iterations shows as converged False.
        warnings.simplefilter("always", ConvergenceWarning)
        model = NegBinomMixture(K, **params).fit(X)
    fit_s = time.perf_counter() - start
    true_means = truth["means"]
    cost = (
        (np.log(true_means)[:, None, :] - np.log(model.means_)[None, :, :]) ** 2
    ).sum(axis=-1)
    _, match = linear_sum_assignment(cost)
    weights, means = model.weights_[match], model.means_[match]
    ll_true, bayes = nb_log_likelihood(X, truth["weights"], truth["alpha"], truth["b"])
    ll_fit, labels = nb_log_likelihood(X, model.weights_, model.alpha_, model.b_)
    differential = truth["differential"]
    rel = np.abs(means / true_means - 1.0)[differential]
    # Relative standard error of a component's mean were its cells known:
    # below 5%, the gene is well measured and its error should be small too.
    n_k = truth["weights"][:, None] * n
    se = np.sqrt((true_means + true_means**2 / truth["alpha"]) / n_k) / true_means
    well = (se < 0.05)[differential]
    return {
        "fit_s": fit_s,
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "ll_minus_truth": ll_fit - ll_true,
        "w_max_abs_err": float(np.abs(weights - truth["weights"]).max()),
        "w_max_rel_err": float(np.abs(weights / truth["weights"] - 1).max()),
        "mean_max_rel_err": float(rel.max()),
        "mean_median_rel_err": float(np.median(rel)),
        "n_differential": int(differential.sum()),
        "n_well_measured": int(well.sum()),
        "well_max_rel_err": float(rel[well].max()) if well.any() else np.nan,
        "label_agreement": float((match[truth["labels"]] == labels).mean()),
        "bayes_agreement": float((bayes == truth["labels"]).mean()),
    }


def recovery(config):
    """Default fits (and random-responsibility starts) on a few data sets."""
    n, G, K = config["recovery"]
    settings = {
        "default": {},
        "random init": {"init_params": "random", "random_state": 0},
    }
    columns = [
        ("density", 7, "s"),
        ("seed", 4, "d"),
        ("fit", 11, "s"),
        ("s", 5, ".1f"),
        ("iter", 4, "d"),
        ("conv", 5, "s"),
        ("ll-truth", 8, ".0f"),
        ("w abs", 6, ".4f"),
        ("w rel", 6, ".3f"),
        ("mu med", 6, ".3f"),
        ("mu max", 6, ".2f"),
        ("mu well", 7, ".3f"),
        ("agree", 5, ".3f"),
        ("bayes", 5, ".3f"),
    ]
    print(
        f"\n## Recovery: NegBinomMixture({K}) on {n:,} cells x {G:,} genes "
        "(shared; components matched by the Hungarian method on log-means)"
    )
    print(
        "ll-truth: log-likelihood of the fit minus that of the true parameters "
        "(scipy; > 0 at the MLE); w: weights; mu: means of the differential "
        "(component, gene) pairs, relative error: median, max, max over the "
        "well-measured ones (relative SE < 5% with known labels); agree: labels "
        "of the fit vs the truth; bayes: labels of the true parameters vs the "
        "truth"
    )
    print(header(columns))
    rows = []
    for density in (DENSITY, None):
        for seed in config["recovery_seeds"]:
            X, truth = make_counts(n, G, K, density=density, random_state=seed)
            share = 1.0 - truth["zero_fraction"]
            for name, params in settings.items():
                out = recovery_one(X, truth, **params)
                rows.append(
                    {"density": share, "seed": seed, "setting": name, "nnz": X.nnz}
                    | out
                )
                print(
                    row(
                        [
                            f"{share:.1%}",
                            seed,
                            name,
                            out["fit_s"],
                            out["n_iter"],
                            str(out["converged"]),
                            out["ll_minus_truth"],
                            out["w_max_abs_err"],
                            out["w_max_rel_err"],
                            out["mean_median_rel_err"],
                            out["mean_max_rel_err"],
                            out["well_max_rel_err"],
                            out["label_agreement"],
                            out["bayes_agreement"],
                        ],
                        columns,
                    )
                )
    well = rows[0]
    print(
        f"well-measured: {well['n_well_measured']} of {well['n_differential']} "
        "differential pairs in the first data set"
    )
    return rows


# -- part 3: scaling -------------------------------------------------------------


def _or_nan(value):
    return np.nan if value is None else value


def r_squared(x, y):
    """R^2 of the least-squares line y = a + b x, and its slope b."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not np.isfinite(y).all():
        return np.nan, np.nan
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    return 1.0 - (residual**2).sum() / ((y - y.mean()) ** 2).sum(), slope


def scaling(config):
    K, repeats = config["K"], config["repeats"]
    sizes = [("cells", n, config["cells_genes"]) for n in config["cells"]]
    sizes += [("genes", config["genes_cells"], g) for g in config["genes"]]
    measured = {}
    rows = []
    columns = [
        ("sweep", 5, "s"),
        ("cells", 7, "d"),
        ("genes", 5, "d"),
        ("nnz", 10, "d"),
        ("input MB", 8, ".1f"),
        ("table s", 7, ".2f"),
        ("EM it s", 7, ".4f"),
        ("peak MB", 7, ".0f"),
        ("RSS MB", 7, ".0f"),
        ("held MB", 7, ".0f"),
        ("step MB", 7, ".0f"),
        ("screen s", 8, ".2f"),
        ("table s", 7, ".2f"),
        ("iter", 4, "d"),
        ("ms/it", 6, ".2f"),
        ("peak MB", 7, ".0f"),
        ("RSS MB", 7, ".0f"),
    ]
    print(
        f"\n## Scaling ({DENSITY:.0%} non-zero; EM iteration: shared model, K={K}, "
        f"median of {repeats}; screen: NegBinomMixture(2, shared_weights=False)"
        ".fit, one run; peak = tracemalloc, RSS = VmHWM, both above the data; "
        "held = table + indicator; step = peak of an EM step above held; "
        "screen ms/it = (screen s - its table s) / iterations)"
    )
    print(header(columns))
    for sweep, n, g in sizes:
        if (n, g) not in measured:
            measured[n, g] = run_point(n, g, K, repeats, 0, config["screen_memory"])
        point = dict(measured[n, g], sweep=sweep, n_components=K)
        rows.append(point)
        print(
            row(
                [
                    sweep,
                    n,
                    g,
                    point["nnz"],
                    point["input_mb"],
                    point["table_s"],
                    point["step_s"],
                    point["em_peak_mb"],
                    _or_nan(point["em_rss_mb"]),
                    point["table_mb"],
                    point["step_mb"],
                    point["screen_s"],
                    point["screen_table_s"],
                    point["screen_iter"],
                    point["screen_it_ms"],
                    point["screen_peak_mb"],
                    _or_nan(point["screen_rss_mb"]),
                ],
                columns,
            )
        )
    fits = []
    for sweep in ("cells", "genes"):
        part = [p for p in rows if p["sweep"] == sweep]
        for key, nnz_key, label in [
            ("step_s", "nnz", "EM iteration s"),
            ("table_s", "nnz", "count table s"),
            ("em_peak_mb", "nnz", "EM peak MB"),
            ("screen_s", "screen_nnz", "screen fit s"),
            ("screen_it_ms", "screen_nnz", "screen ms/it"),
            ("screen_peak_mb", "screen_nnz", "screen peak MB"),
        ]:
            r2, slope = r_squared([p[nnz_key] for p in part], [p[key] for p in part])
            fits.append((sweep, label, r2, slope * 1e6))
    columns = [
        ("sweep", 5, "s"),
        ("quantity", 15, "s"),
        ("R^2", 6, ".4f"),
        ("per 1M nnz", 10, ".4g"),
    ]
    print("\nStraight line against nnz:")
    print(header(columns))
    for values in fits:
        print(row(list(values), columns))
    ratios = [p["em_peak_mb"] / p["input_mb"] for p in rows]
    screen_ratios = [p["screen_peak_mb"] / p["screen_input_mb"] for p in rows]
    print(
        f"peak / input: EM {min(ratios):.1f}-{max(ratios):.1f}x, "
        f"screen {min(screen_ratios):.1f}-{max(screen_ratios):.1f}x"
    )
    return rows, fits


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    panels = [
        ("nnz", "step_s", "seconds per EM iteration (shared, K=%d)"),
        ("nnz", "em_peak_mb", "peak MB: table + EM (shared)"),
        ("screen_nnz", "screen_s", "seconds per screen fit (K=2 per gene)"),
    ]
    markers = {"cells": ("o", "C0"), "genes": ("s", "C1")}
    for ax, (x_key, y_key, title) in zip(axes, panels, strict=True):
        for sweep, (marker, color) in markers.items():
            part = sorted(
                (p for p in rows if p["sweep"] == sweep), key=lambda p: p[x_key]
            )
            x = np.array([p[x_key] for p in part])
            y = np.array([p[y_key] for p in part])
            label = {
                "cells": f"cells ({part[0]['n_features']:,} genes)",
                "genes": f"genes ({part[0]['n_samples']:,} cells)",
            }[sweep]
            ax.plot(x, y, marker=marker, color=color, label=label)
            if y_key == "em_peak_mb":
                for key, ls, what in [
                    ("table_mb", "-.", "held after the start"),
                    ("input_mb", ":", "input CSR"),
                ]:
                    ax.plot(
                        x,
                        [p[key] for p in part],
                        ls=ls,
                        marker=marker,
                        color=color,
                        mfc="none",
                        label=f"{what}, {sweep}",
                    )
        # A slope-1 guide through the geometric middle of the points.
        x_all = np.array([p[x_key] for p in rows], float)
        y_all = np.array([p[y_key] for p in rows], float)
        mid = np.exp(np.log(y_all).mean() - np.log(x_all).mean())
        guide = np.geomspace(x_all.min(), x_all.max())
        ax.plot(guide, mid * guide, color="grey", ls="--", lw=0.8, label="slope 1")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="non-zero counts (nnz)",
            title=title % rows[0]["n_components"] if "%d" in title else title,
        )
        ax.legend(fontsize=7)
    fig.suptitle("sknbmix scaling (synthetic, 5% non-zero; noisy 2-core machine)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_csv(path, rows):
    keys = list(rows[0])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)


def _git_state():
    """HEAD's short hash, and whether the package has uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "sknbmix"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return head + (" with uncommitted changes in sknbmix/" if dirty else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 1 min")
    parser.add_argument(
        "--skip-gmm", action="store_true", help="no GaussianMixture comparison"
    )
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:
        print(json.dumps(measure_point(*json.loads(args.point))))
        return
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); "
        f"sknbmix at {_git_state()}"
    )
    per_iteration = compare(config, args.skip_gmm)
    rec = recovery(config)
    rows, fits = scaling(config)
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    write_csv(RESULTS / f"per_iteration{suffix}.csv", [per_iteration])
    write_csv(RESULTS / f"recovery{suffix}.csv", rec)
    write_csv(RESULTS / f"scaling{suffix}.csv", rows)
    plot(rows, RESULTS / f"scaling{suffix}.png")
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; total "
        f"{time.perf_counter() - start:.0f} s; wrote results/*{suffix}.csv, "
        f"results/scaling{suffix}.png"
    )


if __name__ == "__main__":
    main()
