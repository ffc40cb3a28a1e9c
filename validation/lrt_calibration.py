"""The likelihood-ratio test of K0 against K0 + 1 components (issue 17):
its size under the null, how often the restarts of a null fit disagree, its
power against separation and sample size, and the false-discovery
proportion of a screen.

Usage::

    python validation/lrt_calibration.py [--parts calibration restarts power screen]
        [--settings rex1_k1 low_counts near_poisson rex1_k2] [--n-datasets 1000]
        [--n-resamples 199] [--n-power 100] [--power-resamples 99]
        [--n-screens 5] [--screen-resamples 199] [--n-restarts 100]
        [--n-jobs 1] [--seed 0] [--out validation/results/lrt_calibration.csv]
        [--quick]
    python validation/lrt_calibration.py --summarize CSV [CSV ...] [--markdown]

Every test is ``sknbmix.lrt_n_components`` with ``max_exceedances=10``. The
data sets of one setting are the columns of one matrix tested at once with
``NegBinomMixture(K0, shared_weights=False)``: every column gets a test of
its own, the same as the column tested alone (its fits, its resamples from
its own seed; ``tests/test_lrt.py::test_per_feature_tests_match_the_features_alone``),
while the replicates of all columns still running are fit side by side.

1. ``calibration``: data sets drawn from the null (K0 components):
   ``rex1_k1``, the Rex1 K=1 fit (n = 279); ``low_counts``, mean 0.5 and
   alpha 0.5 (n = 300, about 70% zeros); ``near_poisson``, alpha 1e3 and mean
   5 (n = 300); ``rex1_k2``, the Rex1 K=2 fit, tested as K0 = 2 against 3
   (n = 279). The rejection rate at 0.05 and 0.01 with its 95% Wilson
   interval; the goal is 0.035-0.065 and 0.005-0.02. With ``n_resamples =
   R`` and ``h = 10`` exceedances, ``p <= 0.05`` happens exactly when fewer
   than ``0.05 (R + 1)`` of the ``R`` null statistics reach the observed one
   (a test that stops early has ``p = 10 / L >= 10 / R``), so for R = 199 or
   999 the test at 0.05 and 0.01 is exact if the null statistics are drawn
   from the right distribution; the Monte Carlo part adds nothing to the
   size. What can push it off is the plug-in (resamples drawn from the
   fitted, not the true, null) and fits that stop short of their maximum.
2. ``restarts``: on ``--n-restarts`` null data sets of the three K0 = 1
   settings and of ``rex1_k2``, the K0 + 1 fit as the test makes it (see
   :func:`sknbmix.lrt_n_components`; its log-likelihood is the null fit's
   plus half the statistic), the default fit alone
   (``NegBinomMixture(K0 + 1)``) and the best of 40 restarts, 20 of random
   responsibilities (``NegBinomMixture(K0 + 1, n_init=20,
   init_params="random")``) and 20 of random quantile splits
   (``NegBinomMixture(K0 + 1, n_init=20)``): how often each is below
   another by more than 1e-6 and 1e-3.
3. ``power``: two components, weights 0.3 / 0.7, alpha 5, means 10 and 10 x
   ratio (ratio 1.5, 2, 3, 5) at n = 100, 300, 1,000; the rejection rate at
   0.05 (``--power-resamples 99`` is enough for an exact test at 0.05: p <=
   0.05 is at most 4 of 99 exceedances), with a figure
   (``results/lrt_power.png``).
4. ``screen``: screens of 200 genes x 300 cells, 15% bimodal (weights of
   the low component uniform in 0.2-0.5, mean ratio log-uniform in 2-6, low
   mean log-uniform in 2-20, alpha 5), the rest one NB (mean log-uniform in
   0.5-100, alpha log-uniform in 0.5-20); ``NegBinomMixture(1,
   shared_weights=False)``, q-values by
   ``scipy.stats.false_discovery_control``; per screen the false-discovery
   proportion and the power at q <= 0.1, averaged over the screens.

Each part writes its own CSV: ``--out`` for the calibration, and next to it
``*_restarts.csv``, ``*_power.csv`` and ``*_screen.csv``.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import text_table
from scipy.stats import binomtest, false_discovery_control, nbinom

from sknbmix import NegBinomMixture, lrt_n_components
from sknbmix.datasets import load_singer

HERE = Path(__file__).resolve().parent
PARTS = ("calibration", "restarts", "power", "screen")
SETTINGS = ("rex1_k1", "low_counts", "near_poisson", "rex1_k2")
RATIOS = (1.5, 2.0, 3.0, 5.0)
SIZES = (100, 300, 1000)
MAX_EXCEEDANCES = 10


def rex1_fits():
    """The Rex1 fits with one and two components (weights, alpha, b)."""
    rex1 = load_singer().data[:, :1]
    fits = {}
    for k in (1, 2):
        model = NegBinomMixture(k).fit(rex1)
        fits[k] = (model.weights_, model.alpha_[:, 0], model.b_[:, 0])
    return fits


def null_setting(name, fits):
    """(K0, n_samples, weights, alpha, b) of a calibration setting."""
    if name == "rex1_k1":
        return (1, 279, *fits[1])
    if name == "rex1_k2":
        return (2, 279, *fits[2])
    if name == "low_counts":
        return 1, 300, np.ones(1), np.array([0.5]), np.array([1.0])
    if name == "near_poisson":
        return 1, 300, np.ones(1), np.array([1e3]), np.array([5e-3])
    raise ValueError(name)


def draw(rng, n_samples, n_datasets, weights, alpha, b):
    """``n_datasets`` columns of ``n_samples`` counts from the mixture."""
    labels = rng.choice(len(weights), (n_samples, n_datasets), p=weights)
    return rng.negative_binomial(alpha[labels], 1.0 / (1.0 + b[labels])).astype(
        np.float64
    )


def wilson(k, n):
    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def run_lrt(X, n_components, n_resamples, n_jobs, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lrt_n_components(
            NegBinomMixture(n_components, shared_weights=False),
            X,
            n_resamples=n_resamples,
            max_exceedances=MAX_EXCEEDANCES,
            n_jobs=n_jobs,
            random_state=np.random.SeedSequence(seed),
        )


def run_calibration(args, fits, path):
    frames = []
    for s, name in enumerate(args.settings):
        n0, n_samples, weights, alpha, b = null_setting(name, fits)
        done = 0
        while done < args.n_datasets:
            size = min(args.chunk, args.n_datasets - done)
            rng = np.random.default_rng([args.seed, s, done])
            X = draw(rng, n_samples, size, weights, alpha, b)
            start = time.perf_counter()
            res = run_lrt(X, n0, args.n_resamples, args.n_jobs, [args.seed, s, done])
            elapsed = time.perf_counter() - start
            frames.append(
                pd.DataFrame(
                    {
                        "setting": name,
                        "n_components": n0,
                        "n_samples": n_samples,
                        "n_resamples": args.n_resamples,
                        "dataset": np.arange(done, done + size),
                        "statistic": res.statistic,
                        "pvalue": res.pvalue,
                        "n_used": res.n_resamples_used,
                        "chunk_seconds": elapsed,
                    }
                )
            )
            done += size
            rows = pd.concat(frames, ignore_index=True)
            rows.to_csv(path, index=False)
            mine = rows[rows["setting"] == name]
            print(
                f"  {name}: {done} data sets, rejected at 0.05: "
                f"{(mine['pvalue'] <= 0.05).mean():.3f}, at 0.01: "
                f"{(mine['pvalue'] <= 0.01).mean():.3f}; {elapsed:.0f} s for "
                f"{res.n_resamples_used.sum()} resamples",
                flush=True,
            )
    return pd.concat(frames, ignore_index=True)


def log_likelihood(model, X):
    """Per column (``shared_weights=False``) or total log-likelihood."""
    alpha, b = model.alpha_, model.b_
    weights = np.atleast_2d(model.weights_)  # (features or 1, K)
    p = 1.0 / (1.0 + b)
    per = np.stack(
        [
            np.log(weights[:, k]) + nbinom.logpmf(X, alpha[k], p[k])
            for k in range(alpha.shape[0])
        ]
    )
    top = per.max(axis=0)
    return (top + np.log(np.exp(per - top).sum(axis=0))).sum(axis=0)


def run_restarts(args, fits, path):
    rows = []
    for s, name in enumerate(SETTINGS):
        n0, n_samples, weights, alpha, b = null_setting(name, fits)
        rng = np.random.default_rng([args.seed, 100 + s])
        X = draw(rng, n_samples, args.n_restarts, weights, alpha, b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # n_resamples=1: only the observed statistic is wanted.
            res = run_lrt(X, n0, 1, 1, 0)
            # The test's K0 + 1 fit: its K0 fit's log-likelihood plus half
            # the statistic.
            test_ll = log_likelihood(res.null_model, X) + res.statistic / 2
            for j in range(X.shape[1]):
                column = X[:, j : j + 1]
                default = NegBinomMixture(n0 + 1).fit(column)
                random = NegBinomMixture(
                    n0 + 1, n_init=20, init_params="random", random_state=j
                ).fit(column)
                quantile = NegBinomMixture(n0 + 1, n_init=20, random_state=j).fit(
                    column
                )
                rows.append(
                    {
                        "setting": name,
                        "n_components": n0,
                        "dataset": j,
                        "test_ll": test_ll[j],
                        "default_ll": log_likelihood(default, column)[0],
                        "random20_ll": log_likelihood(random, column)[0],
                        "quantile20_ll": log_likelihood(quantile, column)[0],
                    }
                )
        print(f"  {name}: {args.n_restarts} data sets", flush=True)
    rows = pd.DataFrame(rows)
    rows.to_csv(path, index=False)
    return rows


def run_power(args, path):
    frames = []
    for r, ratio in enumerate(RATIOS):
        for n_samples in SIZES:
            rng = np.random.default_rng([args.seed, 200 + r, n_samples])
            means = np.array([10.0, 10.0 * ratio])
            alpha = np.array([5.0, 5.0])
            X = draw(
                rng, n_samples, args.n_power, np.array([0.3, 0.7]), alpha, means / alpha
            )
            start = time.perf_counter()
            res = run_lrt(
                X, 1, args.power_resamples, args.n_jobs, [args.seed, 200 + r, n_samples]
            )
            frames.append(
                pd.DataFrame(
                    {
                        "ratio": ratio,
                        "n_samples": n_samples,
                        "n_resamples": args.power_resamples,
                        "dataset": np.arange(args.n_power),
                        "statistic": res.statistic,
                        "pvalue": res.pvalue,
                        "n_used": res.n_resamples_used,
                    }
                )
            )
            rows = pd.concat(frames, ignore_index=True)
            rows.to_csv(path, index=False)
            print(
                f"  ratio {ratio}, n = {n_samples}: rejected at 0.05 "
                f"{(res.pvalue <= 0.05).mean():.3f}; "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return rows


def draw_screen(rng, n_samples, n_genes, share):
    bimodal = np.zeros(n_genes, dtype=bool)
    bimodal[rng.choice(n_genes, int(round(share * n_genes)), replace=False)] = True
    X = np.empty((n_samples, n_genes))
    for g in range(n_genes):
        if bimodal[g]:
            low = np.exp(rng.uniform(np.log(2), np.log(20)))
            ratio = np.exp(rng.uniform(np.log(2), np.log(6)))
            w = rng.uniform(0.2, 0.5)
            means = np.array([low, low * ratio])
            alpha = np.array([5.0, 5.0])
            X[:, g] = draw(
                rng, n_samples, 1, np.array([w, 1 - w]), alpha, means / alpha
            )[:, 0]
        else:
            mean = np.exp(rng.uniform(np.log(0.5), np.log(100)))
            alpha = np.exp(rng.uniform(np.log(0.5), np.log(20)))
            X[:, g] = rng.negative_binomial(alpha, 1 / (1 + mean / alpha), n_samples)
    return X, bimodal


def run_screen(args, path):
    frames = []
    for screen in range(args.n_screens):
        rng = np.random.default_rng([args.seed, 300 + screen])
        X, bimodal = draw_screen(rng, args.screen_cells, args.screen_genes, 0.15)
        start = time.perf_counter()
        res = run_lrt(
            X, 1, args.screen_resamples, args.n_jobs, [args.seed, 300 + screen]
        )
        frames.append(
            pd.DataFrame(
                {
                    "screen": screen,
                    "gene": np.arange(X.shape[1]),
                    "bimodal": bimodal,
                    "n_resamples": args.screen_resamples,
                    "statistic": res.statistic,
                    "pvalue": res.pvalue,
                    "qvalue": false_discovery_control(res.pvalue),
                    "n_used": res.n_resamples_used,
                }
            )
        )
        rows = pd.concat(frames, ignore_index=True)
        rows.to_csv(path, index=False)
        summary = summarize_screen(rows[rows["screen"] == screen]).iloc[0]
        print(
            f"  screen {screen}: {summary['discoveries']} discoveries, FDP "
            f"{summary['fdp']:.3f}, power {summary['power']:.3f}; "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return rows


def summarize_calibration(rows):
    out = []
    for name, group in rows.groupby("setting", sort=False):
        n = len(group)
        line = {
            "setting": name,
            "n_components": group["n_components"].iloc[0],
            "n_samples": group["n_samples"].iloc[0],
            "n_resamples": group["n_resamples"].iloc[0],
            "n_datasets": n,
            "mean_resamples_used": group["n_used"].mean(),
        }
        for level in (0.05, 0.01):
            k = int((group["pvalue"] <= level + 1e-12).sum())
            low, high = wilson(k, n)
            line[f"rejected_{level}"] = k
            line[f"rate_{level}"] = k / n
            line[f"low_{level}"] = low
            line[f"high_{level}"] = high
        out.append(line)
    return pd.DataFrame(out)


def format_calibration(summary, markdown=False):
    goals = {0.05: (0.035, 0.065), 0.01: (0.005, 0.02)}
    lines = []
    for _, s in summary.iterrows():
        cells = [
            s["setting"],
            f"{s['n_components']} vs {s['n_components'] + 1}",
            f"{s['n_samples']}",
            f"{s['n_resamples']}",
            f"{s['n_datasets']:,}",
            f"{s['mean_resamples_used']:.1f}",
        ]
        for level, (lo, hi) in goals.items():
            rate = s[f"rate_{level}"]
            flag = "" if lo <= rate <= hi else " (off)"
            cells.append(
                f"{rate:.4f} [{s[f'low_{level}']:.4f}, {s[f'high_{level}']:.4f}]{flag}"
            )
        lines.append(cells)
    header = [
        "setting",
        "K0 vs",
        "n",
        "resamples",
        "data sets",
        "mean resamples used",
        "rejected at 0.05 [Wilson 95%]",
        "rejected at 0.01 [Wilson 95%]",
    ]
    return text_table(header, lines, markdown)


def format_restarts(rows, markdown=False):
    """Pairwise: how often one K0 + 1 fit is below another by more than
    1e-6 and 1e-3, and the largest shortfall."""
    pairs = (
        ("default fit below the best of 40 restarts", "restarts_ll", "default_ll"),
        ("test's fit below the best of 40 restarts", "restarts_ll", "test_ll"),
        ("test's fit below the default fit", "default_ll", "test_ll"),
        ("default fit below the test's fit", "test_ll", "default_ll"),
        ("best of 40 restarts below the test's fit", "test_ll", "restarts_ll"),
    )
    rows = rows.assign(restarts_ll=rows[["random20_ll", "quantile20_ll"]].max(axis=1))
    lines = []
    for name, group in rows.groupby("setting", sort=False):
        cells = [name, f"{len(group)}"]
        for _, better, worse in pairs:
            gap = group[better] - group[worse]
            cells.append(
                f"{int((gap > 1e-6).sum())} / {int((gap > 1e-3).sum())} "
                f"(max {max(gap.max(), 0):.2g})"
            )
        lines.append(cells)
    header = ["setting", "data sets"] + [
        f"{title}: > 1e-6 / > 1e-3 (max)" for title, _, _ in pairs
    ]
    return text_table(header, lines, markdown)


def summarize_power(rows):
    out = []
    for (ratio, n_samples), group in rows.groupby(["ratio", "n_samples"]):
        k = int((group["pvalue"] <= 0.05 + 1e-12).sum())
        low, high = wilson(k, len(group))
        out.append(
            {
                "ratio": ratio,
                "n_samples": n_samples,
                "n_datasets": len(group),
                "power": k / len(group),
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(out)


def format_power(summary, markdown=False):
    sizes = sorted(summary["n_samples"].unique())
    lines = []
    for ratio, group in summary.groupby("ratio"):
        cells = [f"{ratio:g}"]
        for n in sizes:
            s = group[group["n_samples"] == n].iloc[0]
            cells.append(f"{s['power']:.2f} [{s['low']:.2f}, {s['high']:.2f}]")
        lines.append(cells)
    header = ["mean ratio"] + [f"n = {n:,}" for n in sizes]
    return text_table(header, lines, markdown)


def plot_power(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for n, group in summary.groupby("n_samples"):
        ax.errorbar(
            group["ratio"],
            group["power"],
            yerr=[group["power"] - group["low"], group["high"] - group["power"]],
            marker="o",
            capsize=3,
            label=f"n = {n:,}",
        )
    ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(RATIOS, [f"{r:g}" for r in RATIOS])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("mean ratio of the two components")
    ax.set_ylabel("rejection rate at 0.05")
    ax.set_title("LRT 1 vs 2 components: weights 0.3/0.7, alpha 5", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize_screen(rows, level=0.1):
    out = []
    for (n_resamples, screen), group in rows.groupby(["n_resamples", "screen"]):
        found = group["qvalue"] <= level
        false = int((found & ~group["bimodal"]).sum())
        out.append(
            {
                "n_resamples": n_resamples,
                "screen": screen,
                "genes": len(group),
                "bimodal": int(group["bimodal"].sum()),
                "discoveries": int(found.sum()),
                "false": false,
                "fdp": false / max(int(found.sum()), 1),
                "power": int((found & group["bimodal"]).sum()) / group["bimodal"].sum(),
                "resamples_used": int(group["n_used"].sum()),
            }
        )
    return pd.DataFrame(out)


def format_screen(summary, markdown=False):
    lines = []
    for n_resamples, runs in summary.groupby("n_resamples"):
        for _, s in runs.iterrows():
            lines.append(
                [
                    f"{n_resamples}",
                    f"{s['screen']:.0f}",
                    f"{s['genes']:.0f}",
                    f"{s['bimodal']:.0f}",
                    f"{s['discoveries']:.0f}",
                    f"{s['false']:.0f}",
                    f"{s['fdp']:.3f}",
                    f"{s['power']:.3f}",
                    f"{s['resamples_used']:,.0f}",
                ]
            )
        standard_error = (
            f" (se {runs['fdp'].std(ddof=1) / np.sqrt(len(runs)):.3f})"
            if len(runs) > 1
            else ""
        )
        lines.append(
            [
                f"{n_resamples}",
                f"mean of {len(runs)}",
                "",
                "",
                f"{runs['discoveries'].mean():.1f}",
                f"{runs['false'].mean():.1f}",
                f"{runs['fdp'].mean():.3f}" + standard_error,
                f"{runs['power'].mean():.3f}",
                f"{runs['resamples_used'].mean():,.0f}",
            ]
        )
    header = [
        "resamples",
        "screen",
        "genes",
        "bimodal",
        "discoveries (q <= 0.1)",
        "false",
        "FDP",
        "power",
        "gene-resamples used",
    ]
    return text_table(header, lines, markdown)


def out_paths(out):
    out = Path(out)
    return {
        "calibration": out,
        "restarts": out.with_name(f"{out.stem}_restarts.csv"),
        "power": out.with_name(f"{out.stem}_power.csv"),
        "screen": out.with_name(f"{out.stem}_screen.csv"),
    }


def report(part, rows, markdown=False):
    if part == "calibration":
        print(format_calibration(summarize_calibration(rows), markdown))
    elif part == "restarts":
        print(format_restarts(rows, markdown))
    elif part == "power":
        print(format_power(summarize_power(rows), markdown))
    else:
        print(format_screen(summarize_screen(rows), markdown))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS)
    )
    parser.add_argument("--n-datasets", type=int, help="null data sets per setting")
    parser.add_argument("--n-resamples", type=int, help="calibration resamples")
    parser.add_argument("--chunk", type=int, default=250, help="data sets per call")
    parser.add_argument("--n-restarts", type=int, help="data sets of part 2")
    parser.add_argument("--n-power", type=int, help="data sets per power cell")
    parser.add_argument("--power-resamples", type=int)
    parser.add_argument("--n-screens", type=int)
    parser.add_argument("--screen-resamples", type=int)
    parser.add_argument("--n-jobs", type=int, default=1, help="joblib workers")
    parser.add_argument("--seed", type=int, default=0, help="root seed")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "lrt_calibration.csv"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="CSV")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    full = {
        "n_datasets": 1000,
        "n_resamples": 199,
        "n_restarts": 100,
        "n_power": 100,
        "power_resamples": 99,
        "n_screens": 5,
        "screen_resamples": 199,
    }
    quick = {
        "n_datasets": 6,
        "n_resamples": 19,
        "n_restarts": 2,
        "n_power": 4,
        "power_resamples": 19,
        "n_screens": 1,
        "screen_resamples": 19,
    }
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.screen_genes, args.screen_cells = (40, 100) if args.quick else (200, 300)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.summarize is not None:
        for path in args.summarize:
            rows = pd.read_csv(path)
            part = next((p for p in PARTS[1:] if path.stem.endswith(p)), "calibration")
            print(f"{part} ({path.name})")
            report(part, rows, args.markdown)
            print()
        return
    global RATIOS, SIZES
    if args.quick:
        RATIOS, SIZES = (2.0, 5.0), (100,)
    paths = out_paths(args.out)
    paths["calibration"].parent.mkdir(parents=True, exist_ok=True)
    fits = rex1_fits()
    for part in args.parts:
        start = time.perf_counter()
        print(f"Part {part}", flush=True)
        if part == "calibration":
            rows = run_calibration(args, fits, paths[part])
        elif part == "restarts":
            rows = run_restarts(args, fits, paths[part])
        elif part == "power":
            rows = run_power(args, paths[part])
            plot_power(summarize_power(rows), paths[part].with_name("lrt_power.png"))
        else:
            rows = run_screen(args, paths[part])
        report(part, rows, args.markdown)
        print(f"  ({time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
