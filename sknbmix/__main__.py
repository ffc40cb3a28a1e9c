"""Command line of sknbmix: ``python -m sknbmix`` or ``sknbmix``.

``sknbmix demo`` fits the built-in smFISH data (Singer et al. 2014): the Rex1
and the four-gene two-component mixtures as tables, BIC and AIC for one to
four components, and 95% parametric bootstrap intervals (10,000 replicates for
Rex1, 1,000 for the four genes; ``--quick`` takes a tenth).
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import sys
import time

import numpy as np

from sknbmix._bootstrap import bootstrap
from sknbmix._mixture import NegBinomMixture
from sknbmix.datasets import load_singer


def _parameter_table(model, feature_names):
    """The fitted parameters as text: one row per component and feature."""
    lines = [
        f"{'component':>9} {'weight':>8} {'feature':>8} {'alpha':>9} "
        f"{'b':>9} {'mean':>9}"
    ]
    for k in range(model.n_components):
        for g, name in enumerate(feature_names):
            weight = f"{model.weights_[k]:8.4f}" if g == 0 else " " * 8
            lines.append(
                f"{k:>9} {weight} {name:>8} {model.alpha_[k, g]:9.4f} "
                f"{model.b_[k, g]:9.4f} {model.means_[k, g]:9.2f}"
            )
    return "\n".join(lines)


def _selection_table(X, max_components):
    """BIC and AIC for 1..max_components, and which K each chooses."""
    rows, bics, aics = [], [], []
    for K in range(1, max_components + 1):
        model = NegBinomMixture(n_components=K).fit(X)
        bics.append(model.bic(X))
        aics.append(model.aic(X))
        rows.append(
            f"{K:>3} {model.score(X) * X.shape[0]:14.6f} {bics[-1]:12.3f} "
            f"{aics[-1]:12.3f}"
        )
    header = f"{'K':>3} {'log-likelihood':>14} {'BIC':>12} {'AIC':>12}"
    choice = (
        f"BIC chooses K = {int(np.argmin(bics)) + 1}, "
        f"AIC chooses K = {int(np.argmin(aics)) + 1}"
    )
    return "\n".join([header, *rows, choice])


def _interval_table(result, feature_names):
    """Bootstrap intervals as text: one row per parameter, component, feature."""
    level = f"{100 * result.confidence_level:g}%"
    lines = [
        f"{'parameter':>9} {'component':>9} {'feature':>8} {'estimate':>10} "
        f"{level + ' low':>10} {level + ' high':>10}"
    ]
    for name in ("weights", "alpha", "b", "means"):
        estimate = result.point_estimate[name]
        low, high = result.confidence_interval[name]
        for index in np.ndindex(estimate.shape):
            feature = "" if name == "weights" else feature_names[index[1]]
            lines.append(
                f"{name:>9} {index[0]:>9} {feature:>8} {estimate[index]:10.4f} "
                f"{low[index]:10.4f} {high[index]:10.4f}"
            )
    return "\n".join(lines)


def demo(out=sys.stdout, quick=False):
    """Fit the built-in data and print the results."""
    data = load_singer()
    X, names = data.data, data.feature_names
    start = time.perf_counter()
    problems = [
        ("Rex1 alone", X[:, :1], names[:1], 10_000),
        ("All four genes", X, names, 1_000),
    ]
    for title, counts, feature_names, n_resamples in problems:
        model = NegBinomMixture(n_components=2).fit(counts)
        log_likelihood = model.score(counts) * counts.shape[0]
        print(f"== {title}: two-component negative binomial mixture ==", file=out)
        print(_parameter_table(model, feature_names), file=out)
        print(
            f"log-likelihood {log_likelihood:.6f}, converged {model.converged_}, "
            f"{model.n_iter_} EM iterations\n",
            file=out,
        )
        print(f"-- {title}: number of components --", file=out)
        print(_selection_table(counts, 4) + "\n", file=out)
        n_resamples = n_resamples // 10 if quick else n_resamples
        began = time.perf_counter()
        result = bootstrap(
            model, counts, n_resamples=n_resamples, n_jobs=-1, random_state=0
        )
        print(
            f"-- {title}: parametric bootstrap, {n_resamples} replicates, "
            f"{time.perf_counter() - began:.1f} s, {result.n_failed} failed --",
            file=out,
        )
        print(_interval_table(result, feature_names) + "\n", file=out)
    print(f"Done in {time.perf_counter() - start:.2f} s.", file=out)


def main(argv=None):
    """Entry point of the ``sknbmix`` console script."""
    parser = argparse.ArgumentParser(
        prog="sknbmix", description="Negative binomial mixtures for count data."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="fit the built-in smFISH data (Singer 2014)"
    )
    demo_parser.add_argument(
        "--quick", action="store_true", help="a tenth of the bootstrap replicates"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
