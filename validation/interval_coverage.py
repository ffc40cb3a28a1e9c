"""Coverage of the parametric bootstrap's 95% confidence intervals.

Usage::

    python validation/interval_coverage.py [--n-datasets 1000] [--n-resamples 500]
        [--n-sampling 2000] [--sizes 279 2000] [--n-jobs -1] [--seed 0]
        [--out validation/results/coverage_1000.csv] [--quick]
    python validation/interval_coverage.py --summarize \
        validation/results/coverage_1000.csv

The truth is the two-component fit of Rex1 in the built-in data,
``NegBinomMixture(2).fit(load_singer().data[:, :1])`` (weights
about [0.160, 0.840], alpha [3.53, 5.06], b [4.06, 32.0]). For each sample
size and each of ``--n-datasets`` data sets the script

1. draws a data set from the truth with its own generator,
   ``numpy.random.default_rng`` of a child of
   ``SeedSequence(seed, spawn_key=(n_samples, dataset))``; the draw is made
   here (:func:`draw_counts`, component by inverse CDF of the weights, then
   ``Generator.negative_binomial(alpha, 1 / (1 + b))``), not by
   ``truth.sample``, so that it does not share code with the bootstrap it
   tests;
2. fits ``NegBinomMixture(2)`` with its defaults, and, as a check that this
   fit reached the best optimum, the best of 20 initialisations of random
   quantile splits (``n_init=20``, of which the first is the default) and
   of 20 of random responsibilities (``init_params="random"``);
3. runs ``sknbmix.bootstrap(fit, X, n_resamples=..., ci_method="bca")``
   (parametric, 95%; ``"bca"`` so that the jackknife acceleration is
   computed) and, from the same replicates
   (``BootstrapResult.with_intervals``), the intervals of every
   ``ci_method`` in ``sknbmix._bootstrap.CI_METHODS``;
4. records for each interval method and parameter element (``weights[k]``,
   ``alpha[k]``, ``b[k]``, ``means[k]``) whether ``low <= truth <= high``,
   the interval's width, and on which side it missed.

Fitted components are stored by ascending mean, as are the truth's, so
component ``k`` of a fit is compared with component ``k`` of the truth.

To see why an interval falls short, ``--n-sampling`` more data sets per size
(the first ``--n-datasets`` of them the same data) are fitted without a
bootstrap: their estimates show the sampling distribution of the estimator
(bias, SD, skewness) more sharply than the bootstrapped data sets do, to
compare with the bootstrap's standard errors. Each of these fits is also
checked against the log-likelihood of the true parameters, which the maximum
cannot lie below. ``--n-datasets 0`` runs this part alone, next to an
existing CSV.

The per-data-set rows go to ``--out`` (one row per size, data set,
``ci_method``, parameter and component), the fits without a bootstrap to
``*_sampling.csv`` next to it; the summary printed at the end
gives each coverage rate with its 95% Wilson score interval
(``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``), the median
width and how often the interval lay wholly below (``miss_low``) or above
(``miss_high``) the truth. ``--summarize`` rebuilds it from a CSV without
refitting.

Data sets are spread over ``--n-jobs`` joblib workers; each bootstrap runs in
its worker with ``n_jobs=1``. Every random draw comes from the data set's
seed, so the results do not depend on ``--n-jobs``.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_run_arguments, text_table
from joblib import Parallel, delayed
from scipy.special import logsumexp
from scipy.stats import binomtest, nbinom, norm, skew

from sknbmix import NegBinomMixture, bootstrap
from sknbmix._bootstrap import CI_METHODS, PARAMETERS
from sknbmix.datasets import load_singer

HERE = Path(__file__).resolve().parent
CONFIDENCE_LEVEL = 0.95
N_RESTARTS = 20
# A default fit more than this many log-likelihood units below the best
# restart has missed the optimum (fits are within ~1e-6 of their maximum).
MISSED_OPTIMUM = 1e-4
SUMMARY_KEYS = ["n_samples", "ci_method", "parameter", "component"]


def true_mixture():
    """The truth: the default two-component fit of Rex1."""
    rex1 = load_singer().data[:, :1]
    return NegBinomMixture(n_components=2).fit(rex1)


def parameters_of(model):
    """``weights``, ``alpha``, ``b`` and ``means`` of a fitted model, as
    :func:`sknbmix.bootstrap` stores them."""
    return {
        "weights": model.weights_,
        "alpha": model.alpha_,
        "b": model.b_,
        "means": model.means_,
    }


def draw_counts(truth, n_samples, rng):
    """Draw ``n_samples`` counts of one feature from a mixture.

    Parameters
    ----------
    truth : dict
        ``weights`` (K,), ``alpha`` and ``b`` (K, 1).
    n_samples : int
    rng : numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    """
    cumulative = np.cumsum(truth["weights"])
    component = np.searchsorted(cumulative, rng.random(n_samples) * cumulative[-1])
    alpha = truth["alpha"][component, 0]
    b = truth["b"][component, 0]
    return rng.negative_binomial(alpha, 1.0 / (1.0 + b))[:, None]


def dataset_seeds(seed, n_samples, dataset):
    """Three independent seeds of one data set: its draw, its bootstrap and
    its restarts. Keyed by size and index, so that a data set does not depend
    on which other sizes or data sets run."""
    root = np.random.SeedSequence(seed, spawn_key=(n_samples, dataset))
    return root.spawn(3)


def best_restart_log_likelihood(X, seed_sequence):
    """The best total log-likelihood of 20 quantile-split and 20 random
    initialisations (each of several starts)."""
    best = -np.inf
    for init_params, seed in zip(
        ("quantile", "random"), seed_sequence.generate_state(2), strict=True
    ):
        model = NegBinomMixture(
            n_components=2,
            n_init=N_RESTARTS,
            init_params=init_params,
            random_state=int(seed),
        ).fit(X)
        best = max(best, model.score(X) * len(X))
    return best


def run_dataset(truth, n_samples, dataset, seed, n_resamples):
    """Draw, fit and bootstrap one data set; its rows of the results table."""
    draw_seed, bootstrap_seed, restart_seed = dataset_seeds(seed, n_samples, dataset)
    X = draw_counts(truth, n_samples, np.random.default_rng(draw_seed))
    fit = NegBinomMixture(n_components=2).fit(X)
    log_likelihood = fit.score(X) * n_samples
    restart_gap = best_restart_log_likelihood(X, restart_seed) - log_likelihood
    with warnings.catch_warnings():
        # Failed replicates are counted in the result (n_failed).
        warnings.simplefilter("ignore", UserWarning)
        # "bca" computes the jackknife acceleration, which the other
        # methods ignore; their intervals come from the same replicates.
        result = bootstrap(
            fit,
            X,
            n_resamples=n_resamples,
            confidence_level=CONFIDENCE_LEVEL,
            ci_method="bca",
            random_state=bootstrap_seed,
            n_jobs=1,
        )
    n_components = len(truth["weights"])
    frames = []
    for ci_method in CI_METHODS:
        intervals = result.with_intervals(ci_method).confidence_interval
        for name in PARAMETERS:
            # One feature: every parameter flattens to one value per component.
            true_value = truth[name].ravel()
            low, high = (np.ravel(end) for end in intervals[name])
            frames.append(
                pd.DataFrame(
                    {
                        "ci_method": ci_method,
                        "parameter": name,
                        "component": np.arange(n_components),
                        "truth": true_value,
                        "estimate": result.point_estimate[name].ravel(),
                        "standard_error": result.standard_error[name].ravel(),
                        "acceleration": result.acceleration[name].ravel(),
                        "low": low,
                        "high": high,
                    }
                )
            )
    rows = pd.concat(frames, ignore_index=True)
    rows["width"] = rows["high"] - rows["low"]
    rows["covered"] = (rows["low"] <= rows["truth"]) & (rows["truth"] <= rows["high"])
    # "low": the whole interval lies below the truth; "high": above it. NaN
    # ends (not expected) count as a miss of neither side and as not covered.
    rows["miss"] = np.select(
        [rows["high"] < rows["truth"], rows["low"] > rows["truth"]],
        ["low", "high"],
        default="none",
    )
    per_dataset = {
        "seed": seed,
        "n_samples": n_samples,
        "dataset": dataset,
        "log_likelihood": log_likelihood,
        "restart_gap": restart_gap,
        "fit_converged": fit.converged_,
        "n_failed": result.n_failed,
        "n_start_disagreements": result.n_start_disagreements,
    }
    return rows.assign(**per_dataset)[list(per_dataset) + list(rows.columns)]


def true_log_likelihood(truth, X):
    """Total log-likelihood of one feature's counts at the true parameters,
    with scipy. The maximum cannot lie below it."""
    log_pmf = nbinom.logpmf(X, truth["alpha"][:, 0], 1.0 / (1.0 + truth["b"][:, 0]))
    return logsumexp(np.log(truth["weights"]) + log_pmf, axis=1).sum()


def fit_datasets(truth, n_samples, datasets, seed):
    """Draw and fit data sets without a bootstrap, for the sampling
    distribution of the estimates: one row of estimates per data set.

    Data set ``i`` is drawn from the same seed as data set ``i`` of the
    coverage study, so the first ``--n-datasets`` are the same data.
    """
    rows = []
    for dataset in datasets:
        draw_seed = dataset_seeds(seed, n_samples, dataset)[0]
        X = draw_counts(truth, n_samples, np.random.default_rng(draw_seed))
        fit = NegBinomMixture(n_components=2).fit(X)
        row = {
            "seed": seed,
            "n_samples": n_samples,
            "dataset": dataset,
            "gain_over_truth": fit.score(X) * n_samples - true_log_likelihood(truth, X),
        }
        for name, value in parameters_of(fit).items():
            row.update({f"{name}_{k}": v for k, v in enumerate(value.ravel())})
        rows.append(row)
    return pd.DataFrame(rows)


def sampling_path(out):
    """Where the fits without a bootstrap go: next to ``out``."""
    return out.with_name(out.stem + "_sampling" + out.suffix)


def _long_estimates(sampling):
    """The wide ``name_k`` columns of :func:`fit_datasets` as tidy rows."""
    columns = [f"{name}_{k}" for name in PARAMETERS for k in range(2)]
    tidy = sampling.melt(
        id_vars=["n_samples", "dataset"], value_vars=columns, value_name="estimate"
    )
    parts = tidy.pop("variable").str.rsplit("_", n=1, expand=True)
    tidy["parameter"], tidy["component"] = parts[0], parts[1].astype(int)
    return tidy


def wilson_interval(n_covered, n_total):
    """95% Wilson score interval of a binomial rate."""
    ci = binomtest(int(n_covered), int(n_total)).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    return ci.low, ci.high


def summarize(rows):
    """Coverage per size, ``ci_method``, parameter and component.

    Returns
    -------
    summary : pandas.DataFrame
        ``n_datasets``, ``n_covered``, ``coverage`` with its Wilson interval
        (``coverage_low``, ``coverage_high``), ``median_width``,
        ``miss_low`` and ``miss_high`` (counts).
    """
    grouped = rows.groupby(SUMMARY_KEYS, sort=False)
    summary = grouped.agg(
        n_datasets=("covered", "size"),
        n_covered=("covered", "sum"),
        median_width=("width", "median"),
        miss_low=("miss", lambda miss: int((miss == "low").sum())),
        miss_high=("miss", lambda miss: int((miss == "high").sum())),
    ).reset_index()
    summary["coverage"] = summary["n_covered"] / summary["n_datasets"]
    bounds = [
        wilson_interval(k, n)
        for k, n in zip(summary["n_covered"], summary["n_datasets"], strict=True)
    ]
    summary["coverage_low"], summary["coverage_high"] = np.array(bounds).T
    order = {method: i for i, method in enumerate(CI_METHODS)}
    order.update({name: i for i, name in enumerate(PARAMETERS)})
    return summary.sort_values(
        SUMMARY_KEYS, key=lambda column: column.map(lambda v: order.get(v, v))
    ).reset_index(drop=True)


def per_dataset_checks(rows):
    """One row per data set: its fit's log-likelihood, its gap to the best
    restart, failed replicates and start disagreements."""
    columns = [
        "seed",
        "n_samples",
        "dataset",
        "log_likelihood",
        "restart_gap",
        "fit_converged",
        "n_failed",
        "n_start_disagreements",
    ]
    return rows[columns].drop_duplicates(["n_samples", "dataset"])


def sampling_summary(rows, sampling=None):
    """The sampling distribution of the estimates, per size and parameter
    element, next to the bootstrap's standard error.

    Parameters
    ----------
    rows : pandas.DataFrame
        The coverage study's rows: the truth and the bootstrap standard
        errors.
    sampling : pandas.DataFrame, default=None
        Fits without a bootstrap (:func:`fit_datasets`), for a sharper
        picture of the sampling distribution; None uses the coverage study's
        own estimates.

    Returns
    -------
    summary : pandas.DataFrame
        ``n_fits``, ``truth``, the ``mean`` and ``median`` estimate,
        ``relative_bias`` (of the mean), the ``sd`` of the estimates and a
        robust SD (interquartile range / 1.349), the median bootstrap
        ``standard_error``, the ``skewness`` of the estimates and of their
        logarithms (``log_skewness``), and ``normal_proxy``: the share of
        fits within ``1.96 * standard_error`` of the truth (over all fits,
        and ``normal_proxy_study`` over the coverage study's data sets).
    """
    keys = ["n_samples", "parameter", "component"]
    # Estimates and standard errors do not depend on the interval method.
    first = rows[rows["ci_method"] == rows["ci_method"].iloc[0]]
    bootstrap_se = first.groupby(keys, sort=False).agg(
        truth=("truth", "first"), standard_error=("standard_error", "median")
    )
    estimates = (
        first[keys + ["dataset", "estimate"]]
        if sampling is None
        else _long_estimates(sampling)
    )
    distribution = estimates.groupby(keys, sort=False)["estimate"].agg(
        n_fits="size",
        mean="mean",
        median="median",
        sd="std",
        robust_sd=lambda x: (x.quantile(0.75) - x.quantile(0.25)) / 1.349,
        skewness=lambda x: skew(x),
        log_skewness=lambda x: skew(np.log(x)),
    )
    summary = bootstrap_se.join(distribution, how="inner")
    # How often a normal interval of the typical bootstrap width, estimate
    # +- z * median SE, would hold the truth: over all the fits, and over
    # the coverage study's data sets alone (its sampling luck).
    z = norm.ppf(0.5 + CONFIDENCE_LEVEL / 2)
    estimates = estimates.join(bootstrap_se, on=keys)
    inside = (estimates["estimate"] - estimates["truth"]).abs() <= (
        z * estimates["standard_error"]
    )
    in_coverage_study = estimates["dataset"].isin(first["dataset"]).to_numpy()
    summary["normal_proxy"] = inside.groupby([estimates[k] for k in keys]).mean()
    summary["normal_proxy_study"] = (
        inside[in_coverage_study]
        .groupby([estimates[k][in_coverage_study] for k in keys])
        .mean()
    )
    summary = summary.reset_index()
    summary["relative_bias"] = summary["mean"] / summary["truth"] - 1
    return summary


def format_summary(summary, markdown=False):
    """The coverage summary, one line per size, method and element."""
    header = [
        "n",
        "ci_method",
        "parameter",
        "coverage",
        "95% Wilson interval",
        "median width",
        "miss low",
        "miss high",
    ]
    lines = [
        [
            f"{row.n_samples}",
            row.ci_method,
            f"{row.parameter}[{row.component}]",
            f"{row.coverage:.3f} ({row.n_covered}/{row.n_datasets})",
            f"[{row.coverage_low:.3f}, {row.coverage_high:.3f}]",
            f"{row.median_width:.4g}",
            f"{row.miss_low}",
            f"{row.miss_high}",
        ]
        for row in summary.itertuples()
    ]
    return text_table(header, lines, markdown)


def format_by_method(summary, n_samples, markdown=False):
    """Coverage at one size with one column per interval method: the rate,
    its Wilson interval, and the misses below / above the truth."""
    at_size = summary[summary["n_samples"] == n_samples]
    methods = list(dict.fromkeys(at_size["ci_method"]))
    lines = []
    for (name, component), group in at_size.groupby(
        ["parameter", "component"], sort=False
    ):
        by_method = group.set_index("ci_method")
        lines.append(
            [f"{name}[{component}]"]
            + [
                f"{by_method.at[m, 'coverage']:.3f} "
                f"[{by_method.at[m, 'coverage_low']:.3f}, "
                f"{by_method.at[m, 'coverage_high']:.3f}] "
                f"{by_method.at[m, 'miss_low']}/{by_method.at[m, 'miss_high']}"
                for m in methods
            ]
        )
    return text_table([f"n={n_samples}", *methods], lines, markdown)


def format_widths(summary, markdown=False):
    """Median interval widths, one row per size and element and one column
    per interval method."""
    widths = summary.pivot_table(
        index=["n_samples", "parameter", "component"],
        columns="ci_method",
        values="median_width",
        sort=False,
    )
    methods = list(dict.fromkeys(summary["ci_method"]))
    lines = [
        [f"{n}", f"{name}[{k}]"] + [f"{row[m]:.4g}" for m in methods]
        for (n, name, k), row in widths.iterrows()
    ]
    return text_table(["n", "parameter", *methods], lines, markdown)


def format_sampling(sampling, markdown=False):
    """The sampling-distribution summary as a table."""
    header = [
        "n",
        "parameter",
        "fits",
        "truth",
        "mean",
        "median",
        "rel. bias",
        "SD",
        "robust SD",
        "bootstrap SE",
        "skewness",
        "skewness of log",
        "within 1.96 SE",
        "in the study's sets",
    ]
    lines = [
        [
            f"{row.n_samples}",
            f"{row.parameter}[{row.component}]",
            f"{row.n_fits}",
            f"{row.truth:.4g}",
            f"{row.mean:.4g}",
            f"{row.median:.4g}",
            f"{row.relative_bias:+.3f}",
            f"{row.sd:.4g}",
            f"{row.robust_sd:.4g}",
            f"{row.standard_error:.4g}",
            f"{row.skewness:.2f}",
            f"{row.log_skewness:.2f}",
            f"{row.normal_proxy:.3f}",
            f"{row.normal_proxy_study:.3f}",
        ]
        for row in sampling.itertuples()
    ]
    return text_table(header, lines, markdown)


def report(rows, sampling=None, markdown=False):
    """Print the coverage tables, the sampling distributions of the
    estimates and the per-data-set checks."""
    summary = summarize(rows)
    if markdown:
        for n_samples in summary["n_samples"].unique():
            print(format_by_method(summary, n_samples, markdown=True))
            print()
        print(format_widths(summary, markdown=True))
        print()
    else:
        print(format_summary(summary))
        print()
    print(format_sampling(sampling_summary(rows, sampling), markdown=markdown))
    print()
    checks = per_dataset_checks(rows)
    for n_samples, group in checks.groupby("n_samples"):
        missed = group[group["restart_gap"] > MISSED_OPTIMUM]
        print(
            f"n={n_samples}: {len(group)} data sets, "
            f"{int((~group['fit_converged']).sum())} fits not converged, "
            f"{len(missed)} default fits below the best restart by more than "
            f"{MISSED_OPTIMUM:g} (largest gap {group['restart_gap'].max():.3g}), "
            f"{int(group['n_failed'].sum())} failed replicates, "
            f"{int(group['n_start_disagreements'].sum())} start disagreements "
            f"(in {int((group['n_start_disagreements'] > 0).sum())} data sets)"
        )
        for row in missed.itertuples():
            print(
                f"  missed optimum: seed={row.seed} n_samples={row.n_samples} "
                f"dataset={row.dataset} gap={row.restart_gap:.6g}"
            )
    if sampling is not None:
        for n_samples, group in sampling.groupby("n_samples"):
            below = group[group["gain_over_truth"] < -MISSED_OPTIMUM]
            print(
                f"n={n_samples}: {len(group)} fits without a bootstrap, "
                f"{len(below)} below the log-likelihood of the true parameters"
            )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-datasets", type=int, help="per size (default 1000)")
    parser.add_argument(
        "--n-resamples", type=int, help="bootstrap replicates (default 500)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="sample sizes (default 279 2000)"
    )
    parser.add_argument(
        "--n-sampling",
        type=int,
        help="data sets per size fitted without a bootstrap, for the sampling "
        "distribution of the estimates (default 2000)",
    )
    add_run_arguments(
        parser,
        out=HERE / "results" / "coverage_1000.csv",
        out_help="per-data-set CSV; the fits without a bootstrap go to *_sampling.csv",
        quick_help="a smoke run: 4 data sets of 279, 40 replicates, 20 fits without "
        "a bootstrap (unless given)",
    )
    args = parser.parse_args(argv)
    defaults = (4, 40, 20, [279]) if args.quick else (1000, 500, 2000, [279, 2000])
    for name, default in zip(
        ("n_datasets", "n_resamples", "n_sampling", "sizes"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def _run(tasks, n_jobs, what):
    """Run joblib tasks over ``n_jobs`` workers, printing progress."""
    start = time.perf_counter()
    outputs = []
    report_every = max(1, len(tasks) // 20)
    for done, output in enumerate(
        Parallel(n_jobs=n_jobs, return_as="generator")(tasks), 1
    ):
        outputs.append(output)
        if done % report_every == 0 or done == len(tasks):
            elapsed = time.perf_counter() - start
            print(f"{done}/{len(tasks)} {what}, {elapsed:.0f} s", flush=True)
    return outputs


def main(argv=None):
    args = parse_args(argv)
    if args.summarize is not None:
        sampling = sampling_path(args.summarize)
        report(
            pd.read_csv(args.summarize),
            pd.read_csv(sampling) if sampling.exists() else None,
            markdown=args.markdown,
        )
        return
    truth = parameters_of(true_mixture())
    print(
        f"truth: weights {truth['weights'].round(4)}, "
        f"alpha {truth['alpha'].ravel().round(4)}, b {truth['b'].ravel().round(4)}, "
        f"means {truth['means'].ravel().round(4)}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # --n-datasets 0 runs the fits without a bootstrap alone, next to an
    # existing coverage CSV.
    if args.n_datasets > 0:
        print(
            f"{args.n_datasets} data sets per size {args.sizes}, "
            f"{args.n_resamples} replicates each, seed {args.seed}, "
            f"ci_methods {', '.join(CI_METHODS)}",
            flush=True,
        )
        tasks = [
            delayed(run_dataset)(truth, n, dataset, args.seed, args.n_resamples)
            for n in args.sizes
            for dataset in range(args.n_datasets)
        ]
        rows = pd.concat(_run(tasks, args.n_jobs, "data sets"), ignore_index=True)
        rows.to_csv(args.out, index=False, float_format="%.10g")
        print(f"wrote {len(rows)} rows to {args.out}")
    else:
        rows = pd.read_csv(args.out)
    sampling = None
    if args.n_sampling > 0:
        print(
            f"{args.n_sampling} data sets per size fitted without a bootstrap",
            flush=True,
        )
        # Chunks of data sets: a fit takes milliseconds, a task should not.
        chunks = np.array_split(np.arange(args.n_sampling), -(-args.n_sampling // 100))
        tasks = [
            delayed(fit_datasets)(truth, n, chunk.tolist(), args.seed)
            for n in args.sizes
            for chunk in chunks
        ]
        outputs = _run(tasks, args.n_jobs, "chunks of fits")
        sampling = pd.concat(outputs, ignore_index=True)
        sampling.to_csv(sampling_path(args.out), index=False, float_format="%.8g")
        print(f"wrote {len(sampling)} rows to {sampling_path(args.out)}")
    print()
    report(rows, sampling, markdown=args.markdown)


if __name__ == "__main__":
    main()
