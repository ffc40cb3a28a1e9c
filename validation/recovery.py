"""Parameter recovery and choice of the number of components by BIC.

Usage::

    python validation/recovery.py [--n-datasets 50] [--n-datasets-large 50]
        [--n-jobs -1] [--seed 0] [--out validation/results/recovery.csv]
        [--quick]
    python validation/recovery.py --summarize validation/results/recovery.csv

A grid of true mixtures, one cell per

- separation: the means of neighbouring components differ by a factor of
  10 (``well separated``), 3 (``moderate``) or 1.5 (``overlapping``);
- number of components, K = 2 (weights 0.3, 0.7) or K = 3 (0.2, 0.3, 0.5);
- number of genes, one or four with shared weights (one cell type per cell);
- sample size n = 100, 1,000 or 10,000.

Component ``k`` of gene ``g`` has mean ``BASE_MEANS[g] * ratio **
(DIRECTIONS[g] * k)``: gene 0 rises with ``k`` from 10, gene 1 rises from
30, gene 2 falls from 50 and gene 3 is 20 in every component (its components
differ in alpha only). ``alpha`` is 2, 5 (and 8) across the components,
shifted by one component per gene, and ``b = mean / alpha``. One gene means
gene 0 alone.

For every cell ``--n-datasets`` data sets are drawn (``--n-datasets-large``
at n = 10,000, where the fits take longest), each from its own generator,
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(separation, K,
genes, n, dataset)))``. Each is fit by ``NegBinomMixture(k)`` with its
defaults for k = 1, ..., K + 1; the fit with the true K gives the estimates,
and BIC (``NegBinomMixture.bic``) chooses among the k. Fitted components are
matched to the true ones by the assignment that minimises the squared
distance of their log-means (as :func:`sknbmix.bootstrap` aligns its
replicates), so that a swap of labels between overlapping components is not
counted as estimation error. The log-likelihood of the true parameters
(computed with scipy) is a free check of the optimiser: the maximum cannot
lie below it, so a K-component fit that does has missed the optimum.

``--out`` gets one row per data set and parameter element (the estimate and
its truth; per data set BIC's choice, the fit's gain over the truth's
log-likelihood and the processor time of its fits); the summary, printed
and written next to it as ``*_summary.csv``, gives per cell and element the
bias, the relative bias and the standard deviation of the estimates, their
medians and interquartile ranges (alpha runs to the Poisson cap, 1e8, in
some fits of small or overlapping components, which the mean and SD cannot
absorb), and how often BIC picks the true K, with a 95% Wilson interval
(``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``).
"""

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_run_arguments, text_table
from joblib import Parallel, delayed
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import binomtest, nbinom

from sknbmix import NegBinomMixture

HERE = Path(__file__).resolve().parent
SEPARATIONS = {"well separated": 10.0, "moderate": 3.0, "overlapping": 1.5}
WEIGHTS = {2: (0.3, 0.7), 3: (0.2, 0.3, 0.5)}
ALPHAS = {2: (2.0, 5.0), 3: (2.0, 5.0, 8.0)}
BASE_MEANS = (10.0, 30.0, 50.0, 20.0)
DIRECTIONS = (1, 1, -1, 0)
N_GENES = (1, 4)
SIZES = (100, 1000, 10_000)
LARGE = 10_000
# alpha above this has gone to the Poisson cap of the fit (1e8, sknbmix's
# ALPHA_MAX): the fit sends alpha above 1e3 and rising there, so fitted
# values lie either below about 1e4 or within rounding of 1e8.
ALPHA_CAPPED = 1e6
CELL_KEYS = ["separation", "n_components", "n_genes", "n_samples"]
ELEMENT_KEYS = ["parameter", "component", "gene"]


def true_mixture(separation, n_components, n_genes):
    """The parameters of one grid cell's true mixture.

    Returns
    -------
    truth : dict
        ``weights`` (K,), ``alpha``, ``b`` and ``means`` (K, n_genes), with
        the components in ascending order of total mean, as a fit stores
        them.
    """
    ratio = SEPARATIONS[separation]
    k = np.arange(n_components)[:, None]
    direction = np.array(DIRECTIONS[:n_genes])
    means = np.array(BASE_MEANS[:n_genes]) * ratio ** (direction * k)
    # Each gene's alphas are the component alphas shifted by one per gene.
    alpha = np.stack(
        [np.roll(ALPHAS[n_components], gene) for gene in range(n_genes)], axis=1
    )
    weights = np.array(WEIGHTS[n_components])
    order = np.argsort(means.sum(axis=1), kind="stable")
    return {
        "weights": weights[order],
        "alpha": alpha[order],
        "b": (means / alpha)[order],
        "means": means[order],
    }


def draw_counts(truth, n_samples, rng):
    """Draw ``n_samples`` cells: a component by the weights, then each gene's
    count from its negative binomial (independent given the component)."""
    cumulative = np.cumsum(truth["weights"])
    component = np.searchsorted(cumulative, rng.random(n_samples) * cumulative[-1])
    alpha, b = truth["alpha"][component], truth["b"][component]
    return rng.negative_binomial(alpha, 1.0 / (1.0 + b))


def true_log_likelihood(truth, X):
    """Total log-likelihood of the counts at the true parameters, with
    scipy. The maximum-likelihood fit cannot be below it: a fit that is has
    missed the optimum."""
    log_pmf = nbinom.logpmf(X[:, None, :], truth["alpha"], 1.0 / (1.0 + truth["b"]))
    return logsumexp(np.log(truth["weights"]) + log_pmf.sum(axis=-1), axis=1).sum()


def aligned_parameters(model, truth):
    """The fitted parameters with components matched to the truth's by the
    assignment minimising the squared distance of the log-means."""
    gap = np.log(truth["means"])[:, None, :] - np.log(model.means_)[None]
    cost = (gap**2).sum(axis=-1)
    order = linear_sum_assignment(cost)[1]
    return {
        "weights": model.weights_[order],
        "alpha": model.alpha_[order],
        "b": model.b_[order],
        "means": model.means_[order],
    }


def fit_quietly(n_components, X):
    """``NegBinomMixture(n_components).fit(X)`` with its defaults; warnings
    (non-convergence, components at the Poisson limit or emptied in fits with
    too many components) are read from the model instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NegBinomMixture(n_components=n_components).fit(X)


def cell_seed(seed, cell, dataset):
    """The seed of one data set of a cell, keyed by the cell's settings."""
    separation, n_components, n_genes, n_samples = cell
    key = (list(SEPARATIONS).index(separation), n_components, n_genes, n_samples)
    return np.random.SeedSequence(seed, spawn_key=(*key, dataset))


def run_dataset(cell, dataset, seed):
    """Draw one data set of a cell, fit k = 1..K+1 components, and return its
    rows: one per parameter element of the K-component fit."""
    cpu_start = time.process_time()
    separation, n_components, n_genes, n_samples = cell
    truth = true_mixture(separation, n_components, n_genes)
    rng = np.random.default_rng(cell_seed(seed, cell, dataset))
    X = draw_counts(truth, n_samples, rng)
    bic = {}
    for k in range(1, n_components + 2):
        model = fit_quietly(k, X)
        bic[k] = model.bic(X)
        if k == n_components:
            fit = model
    estimates = aligned_parameters(fit, truth)
    frames = []
    for name in ("weights", "alpha", "b", "means"):
        # Weights are shared by the genes: gene -1 marks them.
        shape = truth[name].shape
        component, gene = (
            np.indices(shape).reshape(2, -1)
            if len(shape) == 2
            else (np.arange(shape[0]), np.full(shape[0], -1))
        )
        frames.append(
            pd.DataFrame(
                {
                    "parameter": name,
                    "component": component,
                    "gene": gene,
                    "truth": truth[name].ravel(),
                    "estimate": estimates[name].ravel(),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    per_dataset = {
        "separation": separation,
        "n_components": n_components,
        "n_genes": n_genes,
        "n_samples": n_samples,
        "dataset": dataset,
        "converged": fit.converged_,
        "gain_over_truth": fit.score(X) * n_samples - true_log_likelihood(truth, X),
        # Processor time of the data set (all its fits), robust to other
        # processes sharing the cores.
        "cpu_seconds": time.process_time() - cpu_start,
        "bic_choice": min(bic, key=bic.get),
    }
    return rows.assign(**per_dataset)[list(per_dataset) + list(rows.columns)]


def grid(sizes=SIZES, separations=tuple(SEPARATIONS)):
    """The cells of the grid, as (separation, K, n_genes, n_samples)."""
    return list(itertools.product(separations, (2, 3), N_GENES, sizes))


def wilson_interval(successes, trials):
    """95% Wilson score interval of a binomial rate."""
    ci = binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    return ci.low, ci.high


def summarize_elements(rows):
    """Bias and spread of every parameter element in every cell."""
    grouped = rows.groupby(CELL_KEYS + ELEMENT_KEYS, sort=False)
    summary = grouped.agg(
        n_datasets=("estimate", "size"),
        truth=("truth", "first"),
        mean=("estimate", "mean"),
        sd=("estimate", "std"),
        median=("estimate", "median"),
        q25=("estimate", lambda x: x.quantile(0.25)),
        q75=("estimate", lambda x: x.quantile(0.75)),
        n_at_cap=("estimate", lambda x: int((x >= ALPHA_CAPPED).sum())),
    ).reset_index()
    summary["bias"] = summary["mean"] - summary["truth"]
    summary["relative_bias"] = summary["bias"] / summary["truth"]
    summary["relative_sd"] = summary["sd"] / summary["truth"]
    summary["relative_median_bias"] = summary["median"] / summary["truth"] - 1
    # The interquartile range of a normal distribution is 1.349 SD.
    summary["relative_robust_sd"] = (summary["q75"] - summary["q25"]) / (
        1.349 * summary["truth"]
    )
    summary.loc[summary["parameter"] != "alpha", "n_at_cap"] = 0
    return summary.drop(columns=["q25", "q75"])


def _largest(elements, parameter, column, how="max_abs"):
    """The largest absolute value (or the sum) of ``column`` over the
    elements of ``parameter``, per cell."""
    subset = elements[elements["parameter"] == parameter]
    values = subset.groupby(CELL_KEYS, sort=False)[column]
    return values.sum() if how == "sum" else values.agg(lambda x: x.abs().max())


def summarize_cells(rows):
    """One line per cell: how often BIC picks the true K, and the largest
    bias and spread over each parameter's elements.

    Weights get absolute bias and SD; means the relative bias and SD; alpha
    and b, whose fits may run to the Poisson cap, the relative bias of the
    median and the interquartile range over 1.349 (the SD of a normal)
    relative to the truth.
    """
    per_dataset = rows.drop_duplicates(CELL_KEYS + ["dataset"]).assign(
        bic_correct=lambda d: d["bic_choice"] == d["n_components"],
        bic_too_few=lambda d: d["bic_choice"] < d["n_components"],
        not_converged=lambda d: ~d["converged"].astype(bool),
        # Tolerance of the fits: within ~1e-6 of their maximum.
        below_truth=lambda d: d["gain_over_truth"] < -1e-4,
    )
    cells = per_dataset.groupby(CELL_KEYS, sort=False).agg(
        n_datasets=("dataset", "size"),
        bic_correct=("bic_correct", "sum"),
        bic_too_few=("bic_too_few", "sum"),
        not_converged=("not_converged", "sum"),
        below_truth=("below_truth", "sum"),
        cpu_seconds=("cpu_seconds", "sum"),
    )
    cells["bic_rate"] = cells["bic_correct"] / cells["n_datasets"]
    bounds = [
        wilson_interval(k, n)
        for k, n in zip(cells["bic_correct"], cells["n_datasets"], strict=True)
    ]
    cells["bic_low"], cells["bic_high"] = np.array(bounds).T
    elements = summarize_elements(rows)
    columns = {
        "weights_max_abs_bias": ("weights", "bias"),
        "weights_max_sd": ("weights", "sd"),
        "means_max_abs_relative_bias": ("means", "relative_bias"),
        "means_max_relative_sd": ("means", "relative_sd"),
        "alpha_max_abs_relative_median_bias": ("alpha", "relative_median_bias"),
        "alpha_max_relative_robust_sd": ("alpha", "relative_robust_sd"),
        "b_max_abs_relative_median_bias": ("b", "relative_median_bias"),
        "b_max_relative_robust_sd": ("b", "relative_robust_sd"),
    }
    for name, (parameter, column) in columns.items():
        cells[name] = _largest(elements, parameter, column)
    cells["alpha_n_at_cap"] = _largest(elements, "alpha", "n_at_cap", how="sum")
    return cells.reset_index()


def format_cells(cells, markdown=False):
    """The per-cell summary as a text (or Markdown) table."""
    header = [
        "separation",
        "K",
        "genes",
        "n",
        "BIC picks K",
        "95% Wilson",
        "too few",
        "below truth",
        "w max bias",
        "w max SD",
        "mean max rel bias",
        "mean max rel SD",
        "alpha max rel median bias",
        "alpha max rel robust SD",
        "alpha capped",
        "b max rel median bias",
        "b max rel robust SD",
    ]
    lines = [
        [
            row.separation,
            f"{row.n_components}",
            f"{row.n_genes}",
            f"{row.n_samples}",
            f"{row.bic_rate:.2f} ({row.bic_correct}/{row.n_datasets})",
            f"[{row.bic_low:.2f}, {row.bic_high:.2f}]",
            f"{row.bic_too_few}",
            f"{row.below_truth}",
            f"{row.weights_max_abs_bias:.3g}",
            f"{row.weights_max_sd:.3g}",
            f"{row.means_max_abs_relative_bias:.3g}",
            f"{row.means_max_relative_sd:.3g}",
            f"{row.alpha_max_abs_relative_median_bias:.3g}",
            f"{row.alpha_max_relative_robust_sd:.3g}",
            f"{row.alpha_n_at_cap}",
            f"{row.b_max_abs_relative_median_bias:.3g}",
            f"{row.b_max_relative_robust_sd:.3g}",
        ]
        for row in cells.itertuples()
    ]
    return text_table(header, lines, markdown)


def report(rows, markdown=False):
    """Print the per-cell summary of the rows."""
    cells = summarize_cells(rows)
    print(format_cells(cells, markdown=markdown))
    print(
        f"\n{cells['n_datasets'].sum()} data sets, "
        f"{cells['cpu_seconds'].sum():.0f} s of processor time in the fits"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-datasets", type=int, help="per cell with n < 10,000 (default 50)"
    )
    parser.add_argument(
        "--n-datasets-large", type=int, help="per cell with n = 10,000 (default 50)"
    )
    add_run_arguments(
        parser,
        out=HERE / "results" / "recovery.csv",
        out_help="per-data-set CSV (the summary goes next to it)",
        quick_help="a smoke run: 2 data sets, n = 100, well separated (unless given)",
    )
    args = parser.parse_args(argv)
    defaults = (2, 2) if args.quick else (50, 50)
    if args.n_datasets is None:
        args.n_datasets = defaults[0]
    if args.n_datasets_large is None:
        args.n_datasets_large = defaults[1]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.summarize is not None:
        report(pd.read_csv(args.summarize), markdown=args.markdown)
        return
    cells = grid((100,), ("well separated",)) if args.quick else grid()
    jobs = [
        (cell, dataset)
        for cell in cells
        for dataset in range(
            args.n_datasets_large if cell[-1] >= LARGE else args.n_datasets
        )
    ]
    # The slowest (largest n) first, so that the workers finish together.
    jobs.sort(key=lambda job: -job[0][-1])
    tasks = [delayed(run_dataset)(cell, dataset, args.seed) for cell, dataset in jobs]
    print(f"{len(cells)} cells, {len(tasks)} data sets, seed {args.seed}", flush=True)
    start = time.perf_counter()
    frames = []
    report_every = max(1, len(tasks) // 20)
    for done, frame in enumerate(
        Parallel(n_jobs=args.n_jobs, return_as="generator_unordered")(tasks), 1
    ):
        frames.append(frame)
        if done % report_every == 0 or done == len(tasks):
            print(
                f"{done}/{len(tasks)} data sets, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    order = CELL_KEYS + ["dataset"]
    rows = pd.concat(frames, ignore_index=True)
    # Back in grid order (the workers return them as they finish).
    cell_index = {cell: i for i, cell in enumerate(cells)}
    rows = (
        rows.assign(
            _cell=[cell_index[tuple(key)] for key in rows[CELL_KEYS].to_numpy()]
        )
        .sort_values(["_cell", *order[-1:]], kind="stable")
        .drop(columns="_cell")
        .reset_index(drop=True)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False, float_format="%.6g")
    summary_path = args.out.with_name(args.out.stem + "_summary.csv")
    summarize_elements(rows).to_csv(summary_path, index=False, float_format="%.6g")
    print(f"wrote {len(rows)} rows to {args.out} and the summary to {summary_path}")
    print()
    report(rows, markdown=args.markdown)


if __name__ == "__main__":
    main()
