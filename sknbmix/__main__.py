"""Command line of sknbmix: ``sknbmix`` or ``python -m sknbmix``.

Commands (``sknbmix COMMAND --help`` shows each one's options and examples):

``fit``
    Fit a mixture to a count file; print its parameters, log-likelihood, BIC
    and AIC; save it as JSON (``--out``) and plot it (``--plot``).
``bootstrap``
    Bootstrap confidence intervals of the parameters, in parallel.
``select``
    Compare numbers of components by BIC, AIC and cross-validation.
``test``
    Test K0 against K0 + 1 components by the parametric bootstrap
    likelihood-ratio test; with ``--independent`` every gene is tested, with
    q-values for the screen.
``predict``
    Assign the cells of a count file to the components of a saved model.
``demo``
    The built-in smFISH data (Singer et al. 2014) end to end: the Rex1 and the
    four-gene two-component mixtures, BIC and AIC for one to four components,
    95% parametric bootstrap intervals (10,000 replicates for Rex1, 1,000 for
    the four genes; ``--quick`` takes a tenth) and figures.

Count files are read by :func:`sknbmix.io.read_counts`: delimited text with a
header row, 10x Matrix Market folders and ``.h5ad`` files. ``--size-factors``
gives fit, bootstrap, select, test and predict a size factor per cell (``total``,
a file read by :func:`sknbmix.io.read_size_factors`, or ``obs:COLUMN`` of an
``.h5ad`` file). Errors are one line on stderr (``sknbmix COMMAND: error:
...``) and exit status 2.
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import contextlib
import copy
import csv
import importlib.util
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import false_discovery_control

from sknbmix._bootstrap import CI_METHODS, bootstrap
from sknbmix._data import total_size_factors
from sknbmix._lrt import lrt_n_components
from sknbmix._mixture import NegBinomMixture
from sknbmix._selection import compare_n_components
from sknbmix.datasets import load_singer
from sknbmix.io import load_model, read_counts, read_size_factors, save_model

_PLOT_HINT = "figures need matplotlib: pip install 'sknbmix[plot]'"
# ECDF panels per figure: beyond this, --columns must pick the genes.
_MAX_PANELS = 24


###############################################################################
# Tables


def _number(value, width, decimals):
    """``value`` in fixed point, or in scientific notation where fixed point
    would overflow the column or show nothing (alpha at the Poisson limit is
    1e8, and its b tiny)."""
    size = abs(value)
    if size >= 10 ** (width - decimals - 2) or 0 < size < 10**-decimals:
        return f"{value:{width}.{max(width - 7, 1)}e}"
    return f"{value:{width}.{decimals}f}"


def _weight(model, k, g):
    """Weight of component k (for feature g when each feature has its own)."""
    return model.weights_[k] if model.shared_weights else model.weights_[g, k]


def _parameter_table(model, feature_names):
    """The fitted parameters as text: one row per component and feature."""
    width = max([8, *(len(str(name)) for name in feature_names)])
    lines = [
        f"{'component':>9} {'weight':>8} {'feature':>{width}} {'alpha':>9} "
        f"{'b':>9} {'mean':>9}"
    ]
    for k in range(model.n_components):
        for g, name in enumerate(feature_names):
            shown = g == 0 or not model.shared_weights
            weight = f"{_weight(model, k, g):8.4f}" if shown else " " * 8
            lines.append(
                f"{k:>9} {weight} {name:>{width}} "
                f"{_number(model.alpha_[k, g], 9, 4)} "
                f"{_number(model.b_[k, g], 9, 4)} "
                f"{_number(model.means_[k, g], 9, 2)}"
            )
    return "\n".join(lines)


def _selection_table(comparison):
    """Log-likelihood, BIC, AIC (and the cross-validated log-likelihood per
    sample, when computed) for each number of components, and which K each
    criterion chooses."""
    with_cv = comparison.cv_choice is not None
    header = f"{'K':>3} {'log-likelihood':>14} {'BIC':>12} {'AIC':>12}"
    if with_cv:
        header += f" {'CV log-lik/sample':>17}"
    rows = [header]
    for i, K in enumerate(comparison.n_components):
        row = (
            f"{K:>3} {comparison.log_likelihood[i]:14.6f} "
            f"{comparison.bic[i]:12.3f} {comparison.aic[i]:12.3f}"
        )
        if with_cv:
            row += f" {comparison.cv_log_likelihood[i]:17.6f}"
        rows.append(row)
    choice = (
        f"BIC chooses K = {comparison.bic_choice}, "
        f"AIC chooses K = {comparison.aic_choice}"
    )
    if with_cv:
        choice += f", cross-validation chooses K = {comparison.cv_choice}"
    return "\n".join([*rows, choice])


def _interval_table(result, feature_names):
    """Bootstrap intervals as text: one row per parameter, component, feature."""
    level = f"{100 * result.confidence_level:g}%"
    width = max([8, *(len(str(name)) for name in feature_names)])
    lines = [
        f"{'parameter':>9} {'component':>9} {'feature':>{width}} {'estimate':>10} "
        f"{level + ' low':>10} {level + ' high':>10}"
    ]
    for row in result.rows(feature_names):
        feature = "" if row["feature"] is None else row["feature"]
        lines.append(
            f"{row['parameter']:>9} {row['component']:>9} {feature:>{width}} "
            f"{_number(row['estimate'], 10, 4)} {_number(row['low'], 10, 4)} "
            f"{_number(row['high'], 10, 4)}"
        )
    return "\n".join(lines)


def _test_rows(result, feature_names):
    """The tests as dict rows: one for all genes (shared weights; no
    feature, no q-value), or one per gene with its q-value."""
    if np.ndim(result.statistic) == 0:
        return [
            {
                "feature": None,
                "statistic": result.statistic,
                "pvalue": result.pvalue,
                "n_resamples_used": result.n_resamples_used,
                "qvalue": None,
            }
        ]
    qvalue = false_discovery_control(result.pvalue)
    return [
        {
            "feature": str(name),
            "statistic": float(result.statistic[g]),
            "pvalue": float(result.pvalue[g]),
            "n_resamples_used": int(result.n_resamples_used[g]),
            "qvalue": float(qvalue[g]),
        }
        for g, name in enumerate(feature_names)
    ]


def _test_table(rows):
    """The per-gene tests as text: statistic, p-value, resamples, q-value."""
    width = max([8, *(len(row["feature"]) for row in rows)])
    lines = [
        f"{'feature':>{width}} {'statistic':>10} {'p-value':>10} "
        f"{'resamples':>9} {'q-value':>10}"
    ]
    for row in rows:
        lines.append(
            f"{row['feature']:>{width}} {_number(row['statistic'], 10, 4)} "
            f"{row['pvalue']:10.4g} {row['n_resamples_used']:9d} "
            f"{row['qvalue']:10.4g}"
        )
    return "\n".join(lines)


def _write_csv(path, fieldnames, rows):
    """Write dict rows with the csv module (None as an empty field)."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


###############################################################################
# Figures


def _figure(**kwargs):
    """A new matplotlib Figure, not registered with pyplot (nothing to close).

    The Agg backend is chosen unless pyplot is already in use (when main runs
    inside a notebook): the command line only writes files.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError(_PLOT_HINT) from None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _ecdf_figure(model, X, path, feature_names):
    """One ECDF + model panel per feature, four to a row, named by gene."""
    n_features = X.shape[1]
    if n_features > _MAX_PANELS:
        raise ValueError(
            f"--plot draws one panel per feature: choose at most {_MAX_PANELS} "
            f"of the {n_features} with --columns."
        )
    fig = _figure(layout="constrained")
    from sknbmix.plotting import plot_ecdf

    n_cols = min(n_features, 4)
    n_rows = math.ceil(n_features / n_cols)
    fig.set_size_inches(4.5 * n_cols, 3.5 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for g, ax in enumerate(axes):
        if g < n_features:
            # A fixed seed: the same figure every run.
            plot_ecdf(model, X, feature=g, ax=ax, n_draws=200, random_state=0)
            # The model has no feature names (see _named): label the gene here,
            # as plot_ecdf does for a model fitted on a DataFrame.
            name = feature_names[g]
            ax.set_xlabel(f"{name} count")
            ax.set_title(f"{name}: data and {model.n_components}-component mixture")
        else:
            ax.set_visible(False)
    fig.savefig(path, dpi=120)
    return fig


def _corner_figure(result, path):
    fig = _figure()
    from sknbmix.plotting import plot_corner

    # plot_corner leaves out the last weight of each group, one minus the others.
    n_variables = result.point_estimate["weights"][..., :-1].size + (
        result.point_estimate["means"].size
    )
    size = min(2.0 * n_variables + 1.0, 20.0)
    fig.set_size_inches(size, size)
    plot_corner(result, parameters=("weights", "means"), fig=fig, log=True)
    fig.savefig(path, dpi=100)


def _criteria_figure(comparison, path):
    fig = _figure(figsize=(6, 4.5), layout="constrained")
    from sknbmix.plotting import plot_information_criteria

    plot_information_criteria(comparison, ax=fig.add_subplot())
    fig.savefig(path, dpi=120)


###############################################################################
# Commands


def _read(args, columns=None):
    """The counts, feature names and sample names the input options ask for
    (``columns`` when --columns is not given)."""
    if args.columns is not None:
        columns = [name.strip() for name in args.columns.split(",") if name.strip()]
    return read_counts(
        args.counts,
        columns=columns,
        layer=args.layer,
        transpose=args.transpose,
        return_sample_names=True,
        chunks=getattr(args, "chunks", None),
    )


def _named(model, feature_names):
    """A shallow copy of ``model`` with the file's column names recorded, as a
    fit on a DataFrame records them, for :func:`save_model` to write.

    The command line fits and evaluates on arrays, not DataFrames, so that it
    does not need pandas; it keeps the names beside the model. Only the copy
    that is saved carries them: no array ever meets a model with names.
    """
    named = copy.copy(model)
    named.feature_names_in_ = np.asarray([str(n) for n in feature_names], object)
    return named


def _describe_input(X, feature_names, path, out):
    n_samples, n_features = X.shape
    kind = "sparse" if hasattr(X, "nnz") else "dense"
    if hasattr(X, "chunks"):
        kind = f"read lazily in {len(X.chunks[0])} blocks of cells"
    print(
        f"{path}: {n_samples} samples x {n_features} feature"
        f"{'s' if n_features != 1 else ''} ({kind})",
        file=out,
    )


def _size_factors(args, X, samples):
    """What --size-factors asks for: ``(how, values)``, ``how`` one of None
    (not given), "none", "total" (the model computes them: values for the
    description only) or "given" (values read from a file)."""
    source = args.size_factors
    if source is None or source == "none":
        return source, None
    if source == "total":
        if X.shape[1] == 1:
            raise ValueError(
                "--size-factors total with one gene would divide each count by "
                "itself: give size factors computed from all genes with "
                "--size-factors FILE (or obs:COLUMN for .h5ad)."
            )
        return "total", total_size_factors(X)
    if source.startswith("obs:"):
        if not args.counts.lower().endswith(".h5ad"):
            raise ValueError(
                f"--size-factors {source} reads an .obs column of an .h5ad "
                f"file; {Path(args.counts).name} is not one (give a FILE of "
                "size factors instead)."
            )
        where = f"the .obs column {source[4:]!r} of {Path(args.counts).name}"
        values = read_size_factors(args.counts, column=source[4:])
    else:
        where = Path(source).name
        values = read_size_factors(source, sample_names=samples)
    if values.shape[0] != X.shape[0]:
        raise ValueError(
            f"{where} has {values.shape[0]} size factors but "
            f"{Path(args.counts).name} has {X.shape[0]} cells: give one per cell."
        )
    return "given", values


def _describe_size_factors(how, values, out):
    if how not in ("total", "given"):
        return
    kind = "total counts over their mean" if how == "total" else "given"
    positive = values[values > 0]
    line = f"size factors: {kind}, {positive.min():.4g} to {positive.max():.4g}"
    line += f" (median {np.median(positive):.4g})"
    if positive.size < values.size:
        empty = values.size - positive.size
        line += f"; {empty} cell{'s' if empty != 1 else ''} without counts"
    print(line, file=out)


def _read_and_fit(args, out):
    """Read COUNTS and the size factors, describe them and fit the model the
    options ask for; returns the size factors to give to the model's methods
    (None when it has none, or computes them: --size-factors total)."""
    X, feature_names, samples = _read(args)
    _describe_input(X, feature_names, args.counts, out)
    how, values = _size_factors(args, X, samples)
    _describe_size_factors(how, values, out)
    given = values if how == "given" else None
    model = NegBinomMixture(
        n_components=args.n_components,
        shared_weights=not args.independent,
        solver=args.solver,
        size_factors="total" if how == "total" else None,
    ).fit(X, size_factors=given)
    return X, feature_names, model, given


def _fit_command(args, out):
    if args.plot and args.size_factors not in (None, "none"):
        raise ValueError(
            "--plot draws the model for cells without size factors: it cannot "
            "show a fit with --size-factors yet."
        )
    if args.chunks is None and args.scheduler is not None:
        raise ValueError("--scheduler runs a fit of an .h5ad file read with --chunks.")
    if args.chunks is None:
        _fit_and_report(args, out)
        return
    if args.plot or args.size_factors not in (None, "none"):
        raise ValueError(
            "--chunks fits the counts block by block: --plot and --size-factors "
            "need them in memory."
        )
    if args.scheduler is None:
        # dask's own scheduler, with threads in this process.
        _fit_and_report(args, out)
        return
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "--scheduler needs dask's distributed: pip install 'sknbmix[dask]'"
        ) from None
    with Client(args.scheduler):
        _fit_and_report(args, out)


def _fit_and_report(args, out):
    X, feature_names, model, given = _read_and_fit(args, out)
    print(_parameter_table(model, feature_names), file=out)
    log_likelihood = model.score(X, size_factors=given) * X.shape[0]
    print(
        f"log-likelihood {log_likelihood:.6f}, "
        f"BIC {model.bic(X, size_factors=given):.6f}, "
        f"AIC {model.aic(X, size_factors=given):.6f}, converged {model.converged_}, "
        f"{model.n_iter_} iterations",
        file=out,
    )
    if model.size_factors_used_ != "none":
        print("(b and mean are per unit of size factor)", file=out)
    if args.out:
        save_model(_named(model, feature_names), args.out)
        print(f"model written to {args.out}", file=out)
    if args.plot:
        _ecdf_figure(model, X, args.plot, feature_names)
        print(f"figure written to {args.plot}", file=out)


def _bootstrap_command(args, out):
    X, feature_names, model, given = _read_and_fit(args, out)
    began = time.perf_counter()
    try:
        result = bootstrap(
            model,
            X,
            size_factors=given,
            n_resamples=args.n_resamples,
            method=args.method,
            confidence_level=args.confidence_level,
            ci_method=args.ci_method,
            n_jobs=args.n_jobs,
            random_state=args.seed,
            verbose=int(not args.no_progress),
        )
    except RuntimeError as exc:  # every replicate failed
        raise ValueError(str(exc)) from None
    # The model was fitted on an array: the names, for the table and figure.
    result = replace(result, feature_names=list(feature_names))
    print(
        f"{args.method} bootstrap, {args.n_resamples} replicates, "
        f"{time.perf_counter() - began:.1f} s, {result.n_failed} failed, "
        f"{result.n_start_disagreements} start disagreements",
        file=out,
    )
    print(_interval_table(result, feature_names), file=out)
    if args.out:
        fields = ["parameter", "component", "feature", "estimate"]
        fields += ["standard_error", "low", "high"]
        _write_csv(args.out, fields, result.rows())
        print(f"intervals written to {args.out}", file=out)
    if args.plot:
        _corner_figure(result, args.plot)
        print(f"figure written to {args.plot}", file=out)


def _select_command(args, out):
    if args.cv == 1 or args.cv < 0:
        raise ValueError(f"--cv must be 0 (none) or at least 2 folds, got {args.cv}.")
    X, feature_names, samples = _read(args)
    _describe_input(X, feature_names, args.counts, out)
    how, values = _size_factors(args, X, samples)
    _describe_size_factors(how, values, out)
    # With "total", each fit and score (each fold's too) computes the size
    # factors of the cells it is given, as a model saved by fit does.
    comparison = compare_n_components(
        X,
        args.n_components,
        estimator=NegBinomMixture(
            shared_weights=not args.independent,
            size_factors="total" if how == "total" else None,
        ),
        cv=args.cv or None,
        n_jobs=args.n_jobs,
        size_factors=values if how == "given" else None,
    )
    print(_selection_table(comparison), file=out)
    if args.plot:
        _criteria_figure(comparison, args.plot)
        print(f"figure written to {args.plot}", file=out)


def _test_command(args, out):
    X, feature_names, samples = _read(args)
    _describe_input(X, feature_names, args.counts, out)
    how, values = _size_factors(args, X, samples)
    _describe_size_factors(how, values, out)
    estimator = NegBinomMixture(
        n_components=args.n_components,
        shared_weights=not args.independent,
        solver=args.solver,
        size_factors="total" if how == "total" else None,
    )
    began = time.perf_counter()
    # The library's progress lines (one per round of resamples) go to stderr:
    # stdout holds the results.
    with contextlib.redirect_stdout(sys.stderr):
        result = lrt_n_components(
            estimator,
            X,
            n_resamples=args.n_resamples,
            max_exceedances=args.max_exceedances,
            size_factors=values if how == "given" else None,
            n_jobs=args.n_jobs,
            random_state=args.seed,
            verbose=int(not args.no_progress),
        )
    K0 = args.n_components
    stopping = (
        "no early stopping"
        if args.max_exceedances is None
        else f"stopping at exceedance {args.max_exceedances}"
    )
    seed = "no seed" if args.seed is None else f"seed {args.seed}"
    rows = _test_rows(result, feature_names)
    if not args.independent:
        used = result.n_resamples_used
        print(
            f"K = {K0} against K = {K0 + 1} components: "
            f"statistic {result.statistic:.6f}, p-value {result.pvalue:.6g}",
            file=out,
        )
        print(
            f"parametric bootstrap: {used} of at most {args.n_resamples} "
            f"resamples ({stopping}), {seed}, "
            f"{time.perf_counter() - began:.1f} s",
            file=out,
        )
        if used == args.n_resamples and not np.any(
            result.null_distribution >= result.statistic
        ):
            print(
                f"no null statistic reached the observed one: {result.pvalue:.6g} "
                f"is the smallest p-value {args.n_resamples} resamples can give",
                file=out,
            )
    else:
        print(f"K = {K0} against K = {K0 + 1} components, each gene alone", file=out)
        print(
            f"parametric bootstrap: at most {args.n_resamples} resamples per "
            f"gene ({stopping}), {seed}, {time.perf_counter() - began:.1f} s",
            file=out,
        )
        print(_test_table(rows), file=out)
        significant = sum(row["qvalue"] <= 0.05 for row in rows)
        print(
            "q-values: Benjamini-Hochberg (scipy.stats.false_discovery_control); "
            f"{significant} of {len(rows)} genes with q <= 0.05",
            file=out,
        )
    if args.out:
        fields = ["feature", "statistic", "pvalue", "n_resamples_used", "qvalue"]
        _write_csv(args.out, fields, rows)
        print(f"tests written to {args.out}", file=out)


def _predict_command(args, out):
    model = load_model(args.model)
    # The model's own genes, found by name in the file (unless --columns).
    names = getattr(model, "feature_names_in_", None)
    X, feature_names, samples = _read(
        args, columns=None if names is None else list(names)
    )
    if names is not None:
        if len(feature_names) == len(names) and list(feature_names) != list(names):
            # Other genes chosen with --columns: used, by position, but said.
            warnings.warn(
                f"the columns {', '.join(feature_names)} of {args.counts} are "
                f"not the model's genes {', '.join(names)}; they are used in "
                "that order.",
                UserWarning,
                stacklevel=2,
            )
        # The genes are matched by name above; the array below has no names,
        # so the model drops its own (see _named).
        del model.feature_names_in_
    proba = model.predict_proba(
        X, size_factors=_predict_size_factors(args, model, X, samples)
    )
    labels = proba.argmax(axis=-1)
    if samples is None:
        samples = [str(i) for i in range(X.shape[0])]
    K = model.n_components
    if model.shared_weights:
        fields = ["sample", "component", *(f"p{k}" for k in range(K))]
        rows = [
            [sample, int(label), *map(float, p)]
            for sample, label, p in zip(samples, labels, proba, strict=True)
        ]
    else:
        fields = ["sample"]
        for name in feature_names:
            fields += [f"{name}_component", *(f"{name}_p{k}" for k in range(K))]
        rows = []
        for sample, label, p in zip(samples, labels, proba, strict=True):
            row = [sample]
            for g in range(len(feature_names)):
                row += [int(label[g]), *map(float, p[g])]
            rows.append(row)
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(fields)
            writer.writerows(rows)
        counts = np.bincount(np.ravel(labels), minlength=K)
        summary = ", ".join(f"{k}: {n}" for k, n in enumerate(counts))
        print(
            f"{X.shape[0]} samples assigned (component: count {summary}); "
            f"written to {args.out}",
            file=out,
        )
    else:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(rows)


def _predict_size_factors(args, model, X, samples):
    """The size factors of the cells to predict: those of --size-factors,
    else as the model was fitted (a model fitted with total computes them
    from the new cells; one fitted with given size factors needs new ones).
    Sets the model's ``size_factors`` for --size-factors total or none."""
    how, values = _size_factors(args, X, samples)
    fitted_with = getattr(model, "size_factors_used_", "none")
    if how is None and fitted_with == "given":
        raise ValueError(
            f"{Path(args.model).name} was fitted with size factors given per "
            "cell: give those of these cells with --size-factors FILE, "
            "obs:COLUMN or total (or none, for 1 each)."
        )
    if how not in (None, "none") and fitted_with == "none":
        warnings.warn(
            f"{Path(args.model).name} was fitted without size factors (1 for "
            "every cell); the cells are assigned with those of --size-factors, "
            "as asked.",
            UserWarning,
            stacklevel=2,
        )
    if how in ("none", "total"):
        model.size_factors = None if how == "none" else "total"
    return values if how == "given" else None


def demo(out=sys.stdout, quick=False, figures="sknbmix-demo-figures"):
    """Fit the built-in data and print the results; write figures to the
    folder ``figures`` (None: none) when matplotlib is installed."""
    data = load_singer()
    X, names = data.data, data.feature_names
    start = time.perf_counter()
    if figures is not None:
        if importlib.util.find_spec("matplotlib") is None:
            print(f"(No figures: {_PLOT_HINT})\n", file=out)
            figures = None
        else:
            figures = Path(figures).resolve()
            figures.mkdir(parents=True, exist_ok=True)
    problems = [
        ("Rex1 alone", X[:, :1], names[:1], 10_000),
        ("All four genes", X, names, 1_000),
    ]
    written = []
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
        comparison = compare_n_components(counts, [1, 2, 3, 4], cv=None)
        print(_selection_table(comparison) + "\n", file=out)
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
        if figures is not None and counts.shape[1] == 1:
            _ecdf_figure(model, counts, figures / "rex1_ecdf.png", feature_names)
            _corner_figure(result, figures / "rex1_bootstrap_corner.png")
            _criteria_figure(comparison, figures / "rex1_information_criteria.png")
            written += ["rex1_ecdf.png", "rex1_bootstrap_corner.png"]
            written += ["rex1_information_criteria.png"]
    if figures is not None:
        print(f"Figures ({', '.join(written)}) in {figures}", file=out)
    print(f"Done in {time.perf_counter() - start:.2f} s.", file=out)


###############################################################################
# Argument parsing


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.HelpFormatter):
    """Wrap descriptions to the terminal, but keep the lines of examples."""

    def _fill_text(self, text, width, indent):
        paragraphs = text.split("\n\n")
        return "\n\n".join(
            paragraph
            if "\n" in paragraph
            else textwrap.fill(
                paragraph, width, initial_indent=indent, subsequent_indent=indent
            )
            for paragraph in paragraphs
        )


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _components_list(text):
    """``"1-6"``, ``"1,2,4"``, ``"3"`` or a mix (``"1-3,5"``): sorted, unique."""
    values = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            low = int(low)
            high = int(high) if high else low
            if low < 1 or high < low:
                raise ValueError
            values.update(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers of components like 1-6, 1,2,4 or 3, got {text!r}"
        ) from None
    return sorted(values)


def _confidence_level(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1 such as 0.95, got {text!r}"
        )
    return value


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-zero integer (-1: all processors), got {text!r}"
        )
    return value


def _exceedances(text):
    """A positive integer, or ``none`` (no early stopping)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or none, got {text!r}"
        )
    return value


def _input_options(columns_default="all", size_factors_default="none"):
    """COUNTS and the options that say what to read from it (a new parser
    each time: parents share their actions)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "counts",
        metavar="COUNTS",
        help="count file: .csv, .tsv or .txt (optionally .gz) with a header row "
        "of gene names and one row per cell (a first column of cell ids is "
        "dropped); a 10x Matrix Market .mtx or .mtx.gz (genes x cells) with "
        "features.tsv(.gz) or genes.tsv(.gz) beside it; or .h5ad (needs "
        "pip install 'sknbmix[anndata]')",
    )
    parser.add_argument(
        "--columns",
        metavar="NAMES",
        help="comma-separated names of the genes to use, e.g. Rex1,Nanog "
        f"(default: {columns_default})",
    )
    parser.add_argument(
        "--layer",
        metavar="NAME",
        help=".h5ad only: read the counts from this layer instead of .X",
    )
    parser.add_argument(
        "--transpose",
        action="store_true",
        help="text tables only: the file has one row per gene (its name "
        "first) and one column per cell, as many GEO tables do",
    )
    parser.add_argument(
        "--size-factors",
        metavar="SOURCE",
        help="a size factor per cell (sequencing depth, capture efficiency), "
        "which scales its counts in every component: 'total' (each cell's "
        "total count over the genes used, over the mean total), a FILE with "
        "one positive number per cell in the order of COUNTS (one column, "
        "optional header; or cell names and numbers, matched by name), "
        "'obs:COLUMN' (.h5ad: a column of .obs), or 'none' "
        f"(default: {size_factors_default})",
    )
    return parser


def _model_options(n_components_list=False, n_components_help=None):
    parser = argparse.ArgumentParser(add_help=False)
    if n_components_list:
        parser.add_argument(
            "-k",
            "--n-components",
            metavar="K",
            type=_components_list,
            default=[1, 2, 3, 4],
            help="numbers of components to compare: a range 1-6, a list "
            "1,2,4 or one number (default: 1-4)",
        )
    else:
        parser.add_argument(
            "-k",
            "--n-components",
            metavar="K",
            type=_positive_int,
            required=True,
            help=n_components_help or "number of mixture components",
        )
    parser.add_argument(
        "--independent",
        action="store_true",
        help="fit every gene a mixture of its own (shared_weights=False: a "
        "per-gene bimodality screen) instead of one component per cell shared "
        "by all genes",
    )
    if not n_components_list:
        parser.add_argument(
            "--solver",
            choices=("em", "powell"),
            default="em",
            help="em: accelerated EM (default); powell: direct maximisation "
            "with scipy.optimize (slow, a reference)",
        )
    return parser


def _build_parser():
    parser = _Parser(
        prog="sknbmix",
        description="Mixtures of negative binomial distributions for count data "
        "(smFISH, single-cell RNA).",
        epilog="Run 'sknbmix COMMAND --help' for the options and examples of a "
        "command.",
        formatter_class=_Formatter,
    )
    from sknbmix import __version__

    parser.add_argument("--version", action="version", version=f"sknbmix {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = commands.add_parser(
        "fit",
        parents=[_input_options(), _model_options()],
        formatter_class=_Formatter,
        help="fit a mixture; print its parameters, log-likelihood, BIC, AIC",
        description="Fit a mixture of K negative binomials to a count file and "
        "print the parameters of each component and gene, the log-likelihood, "
        "BIC and AIC.",
        epilog="""examples:
  sknbmix fit counts.csv -k 2 --columns Rex1
  sknbmix fit counts.csv -k 2 --out model.json --plot ecdf.png
  sknbmix fit filtered_feature_bc_matrix/matrix.mtx.gz -k 3 --columns Nanog,Rex1
  sknbmix fit cells.h5ad --layer counts -k 2 --independent
  sknbmix fit cells.h5ad --layer counts -k 3 --size-factors total --out m.json
  sknbmix fit counts.csv -k 2 --columns Rex1 --size-factors depth.csv
  sknbmix fit atlas.h5ad --layer counts -k 8 --chunks 50000 --out m.json""",
    )
    fit.add_argument(
        "--out", metavar="FILE", help="save the fitted model as JSON (for predict)"
    )
    fit.add_argument(
        "--plot",
        metavar="FILE",
        help="save a figure (e.g. .png, .pdf) of each gene's empirical CDF "
        "against the model's, with a 95%% predictive band (needs matplotlib)",
    )
    fit.add_argument(
        "--chunks",
        metavar="N",
        type=_positive_int,
        help=".h5ad only: read the file lazily in blocks of N cells and fit "
        "block by block with dask, for files larger than memory (needs "
        "pip install 'sknbmix[dask,anndata]')",
    )
    fit.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --chunks: run on the dask cluster whose scheduler is at "
        "ADDRESS (e.g. tcp://10.0.0.1:8786) instead of threads in this process",
    )

    boot = commands.add_parser(
        "bootstrap",
        parents=[_input_options(), _model_options()],
        formatter_class=_Formatter,
        help="bootstrap confidence intervals of the parameters",
        description="Fit a mixture, then refit it to bootstrap replicates in "
        "parallel and print a confidence interval for every weight, alpha, b "
        "and mean. The intervals are the same for any --n-jobs.",
        epilog="""examples:
  sknbmix bootstrap counts.csv -k 2 --columns Rex1 --n-resamples 10000 --seed 0
  sknbmix bootstrap counts.csv -k 2 --method nonparametric --out ci.csv
  sknbmix bootstrap counts.csv -k 2 --columns Rex1 --plot corner.png
  sknbmix bootstrap cells.h5ad -k 2 --columns Rex1 --size-factors obs:size_factor""",
    )
    boot.add_argument(
        "--n-resamples",
        metavar="N",
        type=_positive_int,
        default=1000,
        help="number of bootstrap replicates (default: 1000)",
    )
    boot.add_argument(
        "--n-jobs",
        metavar="N",
        type=_n_jobs,
        default=-1,
        help="parallel workers; -1 uses all processors (default: -1)",
    )
    boot.add_argument(
        "--method",
        choices=("parametric", "nonparametric"),
        default="parametric",
        help="draw replicates from the fitted model, or resample the cells "
        "(default: parametric)",
    )
    boot.add_argument(
        "--ci-method",
        choices=CI_METHODS,
        default="bca",
        help="bias-corrected and accelerated intervals (bca: the acceleration "
        "from a jackknife of the counts, up to 500 more fits), percentile "
        "intervals, basic (reverse percentile) ones, basic ones on the log "
        "scale, or bias-corrected percentile ones (default: bca)",
    )
    boot.add_argument(
        "--confidence-level",
        metavar="LEVEL",
        type=_confidence_level,
        default=0.95,
        help="confidence level of the intervals (default: 0.95)",
    )
    boot.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=None,
        help="seed of the replicates, for reproducible intervals (default: "
        "fresh randomness)",
    )
    boot.add_argument(
        "--out",
        metavar="FILE",
        help="write the intervals as CSV: parameter, component, feature, "
        "estimate, standard_error, low, high",
    )
    boot.add_argument(
        "--plot",
        metavar="FILE",
        help="save a corner plot of the replicates of weights and means "
        "(needs matplotlib)",
    )
    boot.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )

    select = commands.add_parser(
        "select",
        parents=[_input_options(), _model_options(n_components_list=True)],
        formatter_class=_Formatter,
        help="compare numbers of components (BIC, AIC, cross-validation)",
        description="Fit mixtures with each number of components and print "
        "their log-likelihood, BIC, AIC and cross-validated log-likelihood "
        "per sample, and the number each criterion chooses.",
        epilog="""examples:
  sknbmix select counts.csv -k 1-6 --columns Rex1
  sknbmix select counts.csv -k 1,2,4 --cv 10 --plot bic.png
  sknbmix select counts.csv -k 1-3 --independent --cv 0
  sknbmix select cells.h5ad --layer counts -k 1-4 --size-factors total""",
    )
    select.add_argument(
        "--cv",
        metavar="FOLDS",
        type=int,
        default=5,
        help="folds of the cross-validated log-likelihood; 0 skips it (default: 5)",
    )
    select.add_argument(
        "--n-jobs",
        metavar="N",
        type=_n_jobs,
        default=None,
        help="parallel workers for the cross-validation folds; -1 uses all "
        "processors (default: 1)",
    )
    select.add_argument(
        "--plot",
        metavar="FILE",
        help="save a figure of BIC, AIC and the cross-validated "
        "log-likelihood against K (needs matplotlib)",
    )

    test = commands.add_parser(
        "test",
        parents=[
            _input_options(),
            _model_options(
                n_components_help="K0, the number of components of the null "
                "model, tested against K0 + 1"
            ),
        ],
        formatter_class=_Formatter,
        help="test K0 against K0 + 1 components (bootstrap likelihood ratio)",
        description="Test K0 against K0 + 1 components: the likelihood-ratio "
        "statistic, twice the gain in log-likelihood, against its null "
        "distribution simulated by the parametric bootstrap (McLachlan 1987), "
        "and its p-value. Resampling stops once --max-exceedances null "
        "statistics reach the observed one (Besag and Clifford 1991). With "
        "--independent every gene gets a test of its own, and the table adds "
        "the q-values of the screen (Benjamini-Hochberg, "
        "scipy.stats.false_discovery_control). The p-values are the same for "
        "any --n-jobs.",
        epilog="""examples:
  sknbmix test counts.csv -k 1 --columns Rex1 --n-resamples 999 --seed 0
  sknbmix test counts.csv -k 2 --n-resamples 199 --seed 0
  sknbmix test counts.csv -k 1 --independent --seed 0 --out tests.csv
  sknbmix test cells.h5ad --layer counts -k 1 --independent --size-factors total""",
    )
    test.add_argument(
        "--n-resamples",
        metavar="N",
        type=_positive_int,
        default=999,
        help="the most data sets drawn from the null model per test; the "
        "smallest p-value is 1/(1 + N) (default: 999)",
    )
    test.add_argument(
        "--max-exceedances",
        metavar="H",
        type=_exceedances,
        default=10,
        help="stop a test once H null statistics reach the observed one, "
        "with p-value H over the resamples drawn; none draws all N "
        "(default: 10)",
    )
    test.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=None,
        help="seed of the resamples, for reproducible p-values (default: "
        "fresh randomness)",
    )
    test.add_argument(
        "--n-jobs",
        metavar="N",
        type=_n_jobs,
        default=-1,
        help="parallel workers; -1 uses all processors (default: -1)",
    )
    test.add_argument(
        "--out",
        metavar="FILE",
        help="write the tests as CSV: feature, statistic, pvalue, "
        "n_resamples_used, qvalue (feature and qvalue empty without "
        "--independent)",
    )
    test.add_argument(
        "--no-progress",
        action="store_true",
        help="hide the progress lines (one per round of resamples, on stderr)",
    )

    predict = commands.add_parser(
        "predict",
        parents=[
            _input_options(
                "the model's genes, found by name",
                "as the model was fitted: total if with total, else none; a "
                "model fitted with a FILE needs one for the new cells",
            )
        ],
        formatter_class=_Formatter,
        help="assign cells to the components of a saved model",
        description="Read a model saved by 'sknbmix fit --out' and print, as "
        "CSV, the most probable component of each cell and the probability of "
        "each component. The model's genes are found in COUNTS by name.",
        epilog="""examples:
  sknbmix fit counts.csv -k 2 --columns Rex1 --out rex1.json
  sknbmix predict counts.csv --model rex1.json --out labels.csv
  sknbmix predict new_cells.mtx.gz --model rex1.json | head
  sknbmix predict new_cells.csv --model rex1.json --size-factors new_depth.csv""",
    )
    predict.add_argument(
        "--model",
        metavar="FILE",
        required=True,
        help="the model JSON written by 'sknbmix fit --out'",
    )
    predict.add_argument(
        "--out",
        metavar="FILE",
        help="write the CSV here and print a summary (default: print the CSV)",
    )

    demo_parser = commands.add_parser(
        "demo",
        formatter_class=_Formatter,
        help="fit the built-in smFISH data (Singer 2014)",
        description="Fit the built-in smFISH counts of Singer et al. (2014): "
        "two-component mixtures for Rex1 and for all four genes, BIC and AIC "
        "for one to four components, parametric bootstrap intervals, and "
        "figures.",
        epilog="""examples:
  sknbmix demo --quick
  sknbmix demo --figures /tmp/figures""",
    )
    demo_parser.add_argument(
        "--quick", action="store_true", help="a tenth of the bootstrap replicates"
    )
    demo_parser.add_argument(
        "--figures",
        metavar="DIR",
        default="sknbmix-demo-figures",
        help="folder for the figures, created if needed (default: "
        "sknbmix-demo-figures in the current directory)",
    )
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line, without the source location of the library."""
    text = " ".join(str(message).split())
    print(f"sknbmix: warning: {text}", file=sys.stderr)


_COMMANDS = {
    "fit": _fit_command,
    "bootstrap": _bootstrap_command,
    "select": _select_command,
    "test": _test_command,
    "predict": _predict_command,
}


def main(argv=None):
    """Entry point of the ``sknbmix`` console script; returns the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code
    if args.command is None:
        print(
            "sknbmix: error: a command is required: fit, bootstrap, select, "
            "test, predict or demo (see sknbmix --help)",
            file=sys.stderr,
        )
        return 2
    out = sys.stdout
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.command == "demo":
                demo(out, quick=args.quick, figures=args.figures)
            else:
                _COMMANDS[args.command](args, out)
            out.flush()
    except BrokenPipeError:
        # The reader (e.g. head) left: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("sknbmix: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
