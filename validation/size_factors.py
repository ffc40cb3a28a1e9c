"""Size factors (issue 16): the one-component fit against negative binomial
GLMs with an offset, clustering of simulated single-cell counts of uneven
depth, and bootstrap intervals with size factors.

Usage::

    python validation/size_factors.py [--parts glm recovery coverage]
        [--n-seeds 3] [--n-coverage 20] [--n-resamples 200] [--n-jobs 1]
        [--seed 0] [--out validation/results/size_factors.csv] [--quick]
    python validation/size_factors.py --summarize validation/results/size_factors.csv
        [--markdown]

With size factors ``s`` the counts of sample ``i`` in component ``k`` are
``NB(alpha[k, g], p = 1 / (1 + s[i] * b[k, g]))``, with mean ``s[i] *
means_[k, g]``. The script has three parts, each writing its own CSV
(``--out`` and, next to it, ``*_recovery.csv`` and ``*_coverage.csv``).

1. ``glm``: with one component the model is the intercept-only negative
   binomial regression with offset ``log s`` (NB2: mean ``s * mu``, variance
   ``mean + mean**2 / alpha``). For each gene of the built-in Singer data
   and three simulated count vectors (near-Poisson, alpha 50 at mean 4;
   Poisson; many zeros, mean 0.3 with alpha 0.2; n = 1,000 each, drawn with
   the size factors), size factors ``exp(N(0, sd))`` with sd 0.3 and 0.8 are
   drawn, ``NegBinomMixture(1).fit(x[:, None], size_factors=s)`` is fitted
   and its log-likelihood (``score * n``), mean and alpha are compared with
   statsmodels' ``NegativeBinomial(y, 1, loglike_method="nb2",
   offset=log s)`` (Newton's method from moment estimates, ``tol=1e-13``;
   its alpha is 1 / ours, its mean ``exp(const)``) and, if ``Rscript`` with
   MASS is on the path, ``MASS::glm.nb(y ~ 1 + offset(log(s)))`` with
   ``glm.control(epsilon=1e-12, maxit=100)`` (its theta is our alpha), run
   once on CSVs of all cases. Where the counts are not over-dispersed given
   the offset, the maximum is the Poisson limit (alpha to infinity, which
   sknbmix stops at its cap 1e8), so the reference is the larger of the NB
   and the Poisson GLM's log-likelihood (statsmodels ``Poisson`` with the
   same offset), or the Poisson GLM's where statsmodels' Newton did not
   converge (as alpha runs off, its log-likelihood also loses precision).
   The four genes are also fitted at once, with ``shared_weights=True`` and
   ``False`` (at K = 1 both are the per-gene GLMs, so the reference is the
   sum of the four genes' log-likelihoods),
   with drawn size factors and with ``size_factors="total"``. The target:
   ``|delta loglik| <= 1e-6`` in every case. Where sknbmix's alpha is at its
   cap, the log-likelihood at alpha = 1e8 with the mean maximised by scipy
   (``capped_loglik``, in the stable form of ``public_data.py``) says what
   the cap costs. Times: wall milliseconds of ``fit``, after a warm-up fit
   of each kind.

2. ``recovery``: simulated single-cell counts, n cells x G genes (3,000 x
   500 at K = 2 and 3, and 1,000 x 200 at K = 2, where the types overlap,
   at sd 0.8). Gene base means are ``exp(N(log 0.6, 1.2))``; each
   type k >= 1 differs from type 0 in its own random 10% of the genes by a
   log fold change uniform on [0.7, 1.5] with a random sign; alpha is 2 in
   every gene and type; weights (0.6, 0.4) or (0.5, 0.3, 0.2); a cell's
   depth is ``exp(N(0, sd))`` with sd 0.3, 0.5 and 0.8; the counts go to the
   fits as a CSR matrix. Each data set is clustered by
   ``NegBinomMixture(K, random_state=0)`` without size factors, with
   ``size_factors="total"`` and with the true depths
   (``fit(X, size_factors=depth)``), each labelling the cells with
   ``predict`` (with the same size factors), and by the usual single-cell
   pipeline: counts scaled to the mean total, ``log1p``, PCA to 50
   components and ``GaussianMixture(K, random_state=0)``. The adjusted Rand
   index (``sklearn.metrics.adjusted_rand_score``) is taken against the true
   types and against the split of the cells at the median depth; the
   "oracle" ARI is that of the most probable type under the true parameters
   and depths, which says how separable the types are. Times are wall
   seconds of ``fit`` plus ``predict`` (of the whole pipeline for PCA), after
   a warm-up fit of every kind on a small data set so that compilation is
   not timed. ``gain_over_truth``: the true-depth fit's log-likelihood minus
   that of the true parameters, which the maximum cannot be below.

3. ``coverage``: 1,000 cells x 50 genes, K = 2, depth sd 0.5, the types
   differing in 30% of the genes (15 genes), otherwise as in part 2, over
   ``--n-coverage`` seeds. ``NegBinomMixture(2).fit(X, size_factors=depth)``
   and ``sknbmix.bootstrap(model, X, n_resamples=200, method="parametric",
   size_factors=depth)`` (95% percentile intervals). Fitted components are
   matched to the true ones by the assignment minimising the squared
   distance of their log-means; the script records whether each true weight
   and each true mean per unit size factor lies in its interval, with 95%
   Wilson intervals of the rates (``scipy.stats.binomtest``). If this
   version of ``bootstrap`` takes no ``size_factors``, only the fits are
   made and the coverage columns are empty.

Every data set draws from its own ``numpy.random.SeedSequence(seed,
spawn_key=(part, setting..., index))``, so a result does not depend on
``--n-jobs`` or on which other data sets run. Warnings of the fits
(components at the Poisson limit, mostly genes whose counts in a type are a
few dozen) are counted, not printed. ``--summarize`` rebuilds the tables
from the CSVs.
"""

import argparse
import inspect
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import add_run_arguments, text_table
from joblib import Parallel, delayed
from scipy.optimize import linear_sum_assignment, minimize_scalar
from scipy.special import gammaln, logsumexp
from scipy.stats import binomtest, nbinom
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from sknbmix import NegBinomMixture, bootstrap
from sknbmix.datasets import load_singer

HERE = Path(__file__).resolve().parent
PARTS = ("glm", "recovery", "coverage")
GLM_TOLERANCE = 1e-6

# -- part 1 -----------------------------------------------------------------

GLM_SDS = (0.3, 0.8)
#: Simulated count vectors of part 1: (mean per unit size factor, alpha; inf
#: for Poisson), n = SIMULATED_N.
SIMULATED = {
    "sim_near_poisson": (4.0, 50.0),
    "sim_poisson": (4.0, np.inf),
    "sim_many_zeros": (0.3, 0.2),
}
SIMULATED_N = 1000
#: sknbmix's cap of alpha (``sknbmix._nbinom.ALPHA_MAX``, restated here).
SKNBMIX_ALPHA_MAX = 1e8

R_SCRIPT = r"""
suppressPackageStartupMessages(library(MASS))
args <- commandArgs(TRUE)
files <- readLines(args[1])
out <- character(0)
for (f in files) {
  d <- read.csv(f)
  warn <- character(0)
  fit <- tryCatch(
    withCallingHandlers(
      glm.nb(y ~ 1 + offset(log(s)), data = d,
             control = glm.control(epsilon = 1e-12, maxit = 100)),
      warning = function(w) {
        warn <<- c(warn, conditionMessage(w))
        invokeRestart("muffleWarning")
      }),
    error = function(e) { warn <<- c(warn, conditionMessage(e)); NULL })
  if (is.null(fit)) {
    out <- c(out, sprintf("%s,NA,NA,NA,\"%s\"", basename(f),
                          gsub("\"", "'", paste(warn, collapse = "; "))))
  } else {
    out <- c(out, sprintf("%s,%.17g,%.17g,%.17g,\"%s\"", basename(f),
                          fit$theta, exp(coef(fit)[[1]]),
                          as.numeric(logLik(fit)),
                          gsub("\"", "'", paste(warn, collapse = "; "))))
  }
}
writeLines(c("file,theta,mean,loglik,warnings", out), args[2])
cat(R.version.string, "MASS", as.character(packageVersion("MASS")), "\n")
"""


def r_available():
    """Whether Rscript with MASS can run here."""
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(
        ["Rscript", "-e", "library(MASS)"], capture_output=True, timeout=60
    )
    return done.returncode == 0


def statsmodels_glm(y, s):
    """Intercept-only NB2 regression with offset log s, by statsmodels, and
    the Poisson regression with the same offset (the NB's supremum as alpha
    goes to infinity).

    Returns
    -------
    dict
        ``sm_loglik``, ``sm_mean``, ``sm_alpha`` (ours: 1 / statsmodels'
        alpha), ``sm_converged``, ``sm_gradient`` (largest absolute score at
        the end), ``poisson_loglik``.
    """
    from statsmodels.discrete.discrete_model import NegativeBinomial, Poisson

    n = y.size
    exog = np.ones((n, 1))
    offset = np.log(s)
    # Moment estimates: the mean per unit size factor, and the NB2 alpha
    # (statsmodels' parametrisation) from the excess of the variance.
    mean = y.sum() / s.sum()
    mu = s * mean
    excess = ((y - mu) ** 2 - mu).sum() / (mu**2).sum()
    start = np.array([np.log(mean), max(excess, 1e-3)])
    model = NegativeBinomial(y, exog, loglike_method="nb2", offset=offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(
            start_params=start, method="newton", maxiter=200, tol=1e-13, disp=0
        )
        params = fit.params
        if not (np.all(np.isfinite(params)) and params[1] > 0):
            # Newton left alpha's range: BFGS in log alpha instead.
            fit = model.fit(
                start_params=start, method="bfgs", maxiter=2000, gtol=1e-10, disp=0
            )
            params = fit.params
        poisson = Poisson(y, exog, offset=offset).fit(
            start_params=start[:1], method="newton", tol=1e-13, disp=0
        )
    converged = bool(fit.mle_retvals["converged"])
    return {
        "sm_loglik": float(fit.llf),
        "sm_mean": float(np.exp(params[0])),
        "sm_alpha": float(1.0 / params[1]),
        "sm_converged": converged,
        "sm_gradient": float(np.abs(model.score(params)).max()),
        "poisson_loglik": float(poisson.llf),
        # The NB's supremum: where Newton did not converge (alpha running
        # to the Poisson limit, where statsmodels' log-likelihood also loses
        # precision) the Poisson GLM's.
        "reference_loglik": float(max(fit.llf, poisson.llf))
        if converged
        else float(poisson.llf),
    }


def stable_nb_loglik(y, s, mu, alpha):
    """The NB2 log-likelihood of counts y with means ``s * mu``, in the form
    that keeps its precision as alpha grows (as in public_data.py):
    ``sum_{j<y} log1p(j / alpha) + y log(m) - (y + alpha) log1p(m / alpha)
    - gammaln(y + 1)``."""
    cumulative = np.concatenate(
        [[0.0], np.cumsum(np.log1p(np.arange(y.max()) / alpha))]
    )
    m = s * mu
    return float(
        (
            cumulative[y]
            + y * np.log(m)
            - (y + alpha) * np.log1p(m / alpha)
            - gammaln(y + 1)
        ).sum()
    )


def capped_maximum(y, s, alpha=SKNBMIX_ALPHA_MAX):
    """The largest log-likelihood with alpha held at ``alpha`` (the mean
    maximised by scipy's Brent method): the best a fit whose alpha stops at
    sknbmix's cap can reach."""
    guess = np.log(y.sum() / s.sum())
    result = minimize_scalar(
        lambda log_mu: -stable_nb_loglik(y, s, np.exp(log_mu), alpha),
        bracket=(guess - 0.01, guess + 0.01),
        tol=1e-12,
    )
    return -result.fun


def fit_sknbmix(X, s, shared_weights=True, hyper=None):
    """``NegBinomMixture(1)`` on X with size factors s (or the
    ``size_factors`` hyperparameter ``hyper``), timed."""
    model = NegBinomMixture(1, shared_weights=shared_weights, size_factors=hyper)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X, size_factors=None if hyper else s)
        elapsed = time.perf_counter() - start
    score = model.score(X, size_factors=None if hyper else s)
    return model, score * X.shape[0], elapsed, len(caught)


def glm_cases(seed):
    """The count vectors and size factors of part 1: (case, sd, y, s) for
    each gene or simulated vector and sd, and the four-gene sets."""
    singer = load_singer()
    cases = []
    names = list(singer.feature_names) + list(SIMULATED)
    for i, name in enumerate(names):
        for j, sd in enumerate(GLM_SDS):
            rng = np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=(1, i, j))
            )
            if name in SIMULATED:
                n = SIMULATED_N
                s = np.exp(rng.normal(0.0, sd, n))
                mean, alpha = SIMULATED[name]
                if np.isinf(alpha):
                    y = rng.poisson(mean * s)
                else:
                    y = rng.negative_binomial(alpha, alpha / (alpha + mean * s))
            else:
                y = singer.data[:, i]
                s = np.exp(rng.normal(0.0, sd, y.size))
            cases.append((name, sd, y.astype(np.int64), s))
    return cases, singer


def run_glm(seed, quick=False, use_r=True):
    """Part 1: one row per case (gene or vector and sd, or a four-gene fit)."""
    cases, singer = glm_cases(seed)
    X4 = singer.data
    n4 = X4.shape[0]
    four = []
    for j, sd in enumerate(GLM_SDS):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, 99, j)))
        four.append((sd, np.exp(rng.normal(0.0, sd, n4))))
    totals = X4.sum(axis=1)
    four.append(("total", totals / totals.mean()))
    if quick:
        cases = [c for c in cases if c[0] in ("Rex1", "sim_many_zeros") and c[1] == 0.8]
        four = four[1:]
    # Every vector a GLM is fitted to: the cases, and each gene of each
    # four-gene set.
    glm_inputs = {f"case{i}": (y, s) for i, (_, _, y, s) in enumerate(cases)}
    for j, (_, s) in enumerate(four):
        for g in range(X4.shape[1]):
            glm_inputs[f"four{j}_gene{g}"] = (X4[:, g], s)
    reference = {key: statsmodels_glm(y, s) for key, (y, s) in glm_inputs.items()}
    r_results, r_version = {}, ""
    if use_r and r_available():
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = []
            for key, (y, s) in glm_inputs.items():
                path = tmp / f"{key}.csv"
                pd.DataFrame({"y": y, "s": s}).to_csv(
                    path, index=False, float_format="%.17g"
                )
                files.append(str(path))
            (tmp / "files.txt").write_text("\n".join(files) + "\n")
            (tmp / "glm_nb.R").write_text(R_SCRIPT)
            done = subprocess.run(
                ["Rscript", str(tmp / "glm_nb.R"), str(tmp / "files.txt")]
                + [str(tmp / "out.csv")],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            r_version = done.stdout.strip()
            table = pd.read_csv(tmp / "out.csv", keep_default_na=False)
        for row in table.itertuples():
            r_results[row.file.removesuffix(".csv")] = {
                "r_loglik": float(row.loglik),
                "r_mean": float(row.mean),
                "r_alpha": float(row.theta),
                "r_warnings": row.warnings,
            }
    # Fit each kind once first, so that compilation is not timed.
    warm = np.random.default_rng(0)
    warm_s = np.exp(warm.normal(0.0, 0.5, 50))
    fit_sknbmix(warm.poisson(3.0, (50, 1)), warm_s)
    fit_sknbmix(warm.poisson(3.0, (50, 4)), warm_s, shared_weights=True)
    fit_sknbmix(warm.poisson(3.0, (50, 4)), warm_s, shared_weights=False)
    empty_r = {
        "r_loglik": np.nan,
        "r_mean": np.nan,
        "r_alpha": np.nan,
        "r_warnings": "",
    }

    rows = []
    for i, (name, sd, y, s) in enumerate(cases):
        ref = reference[f"case{i}"]
        r = r_results.get(f"case{i}", empty_r)
        model, loglik, elapsed, n_warnings = fit_sknbmix(y[:, None], s)
        rows.append(
            {
                "case": name,
                "fit": "one gene",
                "sd": str(sd),
                "n_samples": y.size,
                "n_genes": 1,
                "zero_fraction": float((y == 0).mean()),
                "loglik": loglik,
                "mean": float(model.means_[0, 0]),
                "alpha": float(model.alpha_[0, 0]),
                "poisson_limit": bool(model.poisson_limit_.any()),
                "n_iter": model.n_iter_,
                "converged": model.converged_,
                "time": elapsed,
                "n_warnings": n_warnings,
                **ref,
                **r,
                "capped_loglik": capped_maximum(y, s)
                if model.poisson_limit_.any()
                else np.nan,
                "r_version": r_version,
            }
        )
    for j, (sd, s) in enumerate(four):
        keys = [f"four{j}_gene{g}" for g in range(X4.shape[1])]
        refs = [reference[key] for key in keys]
        rs = [r_results.get(key, empty_r) for key in keys]
        summed = {
            column: float(sum(ref[column] for ref in refs))
            for column in ("sm_loglik", "poisson_loglik", "reference_loglik")
        }
        summed["r_loglik"] = float(sum(r["r_loglik"] for r in rs))
        for shared in (True, False):
            hyper = "total" if sd == "total" else None
            model, loglik, elapsed, n_warnings = fit_sknbmix(X4, s, shared, hyper)
            rows.append(
                {
                    "case": "four genes",
                    "fit": "shared" if shared else "independent",
                    "sd": str(sd),
                    "n_samples": n4,
                    "n_genes": X4.shape[1],
                    "zero_fraction": float((X4 == 0).mean()),
                    "loglik": loglik,
                    # Per gene, as space-separated strings.
                    "mean": " ".join(f"{v:.17g}" for v in model.means_[0]),
                    "alpha": " ".join(f"{v:.17g}" for v in model.alpha_[0]),
                    "poisson_limit": bool(model.poisson_limit_.any()),
                    "n_iter": model.n_iter_,
                    "converged": model.converged_,
                    "time": elapsed,
                    "n_warnings": n_warnings,
                    **summed,
                    "sm_mean": " ".join(f"{ref['sm_mean']:.17g}" for ref in refs),
                    "sm_alpha": " ".join(f"{ref['sm_alpha']:.17g}" for ref in refs),
                    "sm_converged": all(ref["sm_converged"] for ref in refs),
                    "sm_gradient": max(ref["sm_gradient"] for ref in refs),
                    "r_mean": " ".join(f"{r['r_mean']:.17g}" for r in rs),
                    "r_alpha": " ".join(f"{r['r_alpha']:.17g}" for r in rs),
                    "r_warnings": "; ".join(
                        r["r_warnings"] for r in rs if r["r_warnings"]
                    ),
                    "capped_loglik": np.nan,
                    "r_version": r_version,
                }
            )
    rows = pd.DataFrame(rows)
    rows["delta_reference"] = rows["loglik"] - rows["reference_loglik"]
    rows["delta_sm"] = rows["loglik"] - rows["sm_loglik"]
    rows["delta_r"] = rows["loglik"] - rows["r_loglik"]
    rows["delta_capped"] = rows["loglik"] - rows["capped_loglik"]
    return rows


def _values(cell):
    return np.array([float(v) for v in str(cell).split()])


def _largest_relative(rows, ours, theirs):
    """The largest relative difference of a parameter over each row's
    genes."""
    return [
        float(np.max(np.abs(_values(a) / _values(b) - 1)))
        for a, b in zip(rows[ours], rows[theirs], strict=True)
    ]


def format_glm(rows, markdown=False):
    rows = rows.copy()
    rows["rel_mean_sm"] = _largest_relative(rows, "mean", "sm_mean")
    rows["rel_alpha_sm"] = _largest_relative(rows, "alpha", "sm_alpha")
    rows["rel_mean_r"] = _largest_relative(rows, "mean", "r_mean")
    rows["rel_alpha_r"] = _largest_relative(rows, "alpha", "r_alpha")
    header = [
        "case",
        "fit",
        "sd",
        "n",
        "zeros",
        "log-lik",
        "alpha",
        "d loglik statsmodels",
        "d loglik R",
        "d loglik ref",
        "rel d mean sm / R",
        "rel d alpha sm / R",
        "iter",
        "ms",
    ]
    lines = []
    for row in rows.itertuples():
        alphas = _values(row.alpha)
        lines.append(
            [
                row.case,
                row.fit,
                str(row.sd),
                str(row.n_samples),
                f"{row.zero_fraction:.0%}",
                f"{row.loglik:.6f}",
                " ".join(f"{a:.4g}" for a in alphas),
                f"{row.delta_sm:+.1e}",
                "-" if np.isnan(row.delta_r) else f"{row.delta_r:+.1e}",
                f"{row.delta_reference:+.1e}",
                f"{row.rel_mean_sm:.0e} / "
                + ("-" if np.isnan(row.rel_mean_r) else f"{row.rel_mean_r:.0e}"),
                f"{row.rel_alpha_sm:.0e} / "
                + ("-" if np.isnan(row.rel_alpha_r) else f"{row.rel_alpha_r:.0e}"),
                str(row.n_iter),
                f"{1000 * row.time:.1f}",
            ]
        )
    return text_table(header, lines, markdown)


def report_glm(rows, markdown=False):
    print(format_glm(rows, markdown))
    print()
    within = rows["delta_reference"].abs() <= GLM_TOLERANCE
    print(
        f"|loglik - max(NB GLM, Poisson GLM)| <= {GLM_TOLERANCE:g} in "
        f"{within.sum()}/{len(rows)} cases; largest "
        f"{rows['delta_reference'].abs().max():.2e}"
    )
    # The references where they converged (not at the Poisson limit, where
    # statsmodels' Newton does not converge and glm.nb reaches its
    # iteration limit).
    references = (
        ("statsmodels", "delta_sm", rows["sm_converged"].astype(bool)),
        ("R glm.nb", "delta_r", rows["r_warnings"].fillna("") == ""),
    )
    for name, column, fine in references:
        values = rows.loc[fine, column].dropna()
        if len(values):
            print(
                f"against {name} where it converged without warnings "
                f"({len(values)}/{len(rows)} cases): largest |d loglik| "
                f"{values.abs().max():.2e}, sknbmix higher in "
                f"{(values > 0).sum()}/{len(values)}"
            )
    for row in rows[~within].itertuples():
        print(f"  {row.case} {row.fit} sd={row.sd}: {row.delta_reference:+.3e}")
    for row in rows[rows["poisson_limit"].astype(bool)].itertuples():
        print(
            f"  {row.case} sd={row.sd}: alpha at sknbmix's cap; Poisson GLM "
            f"{row.poisson_loglik:.9f}, NB GLM (statsmodels, "
            f"{'converged' if row.sm_converged else 'not converged'}) "
            f"{row.sm_loglik:.9f}; the best at alpha = {SKNBMIX_ALPHA_MAX:g} "
            f"{row.capped_loglik:.9f} (the cap costs "
            f"{row.reference_loglik - row.capped_loglik:.2e}), sknbmix "
            f"{row.delta_capped:+.1e} from it"
        )
    impossible = rows[rows["r_loglik"] > rows["reference_loglik"] + GLM_TOLERANCE]
    for row in impossible.itertuples():
        print(
            f"  R's logLik on {row.case} sd={row.sd} is "
            f"{row.r_loglik - row.reference_loglik:.2e} "
            f"above the supremum (theta {float(row.r_alpha):.3g}): rounding"
        )
    warned = rows[rows["r_warnings"].fillna("") != ""]
    for row in warned.itertuples():
        print(f"  R warned on {row.case} sd={row.sd}: {row.r_warnings}")
    versions = rows["r_version"].dropna()
    if len(versions) and versions.iloc[0]:
        print(f"R: {versions.iloc[0]}")


# -- parts 2 and 3: simulated single-cell counts -----------------------------

ALPHA = 2.0
WEIGHTS = {2: (0.6, 0.4), 3: (0.5, 0.3, 0.2)}
BASE_LOG_MEAN = np.log(0.6)
BASE_LOG_SD = 1.2
FOLD_RANGE = (0.7, 1.5)
#: (K, n cells, genes, depth sd) of part 2.
RECOVERY_SETTINGS = [
    *[(2, 3000, 500, sd) for sd in (0.3, 0.5, 0.8)],
    *[(3, 3000, 500, sd) for sd in (0.3, 0.5, 0.8)],
    # Fewer cells and genes: the types overlap.
    (2, 1000, 200, 0.8),
]
QUICK_RECOVERY = [(2, 500, 100, 0.8)]
PCA_COMPONENTS = 50


def simulate_cells(rng, n_cells, n_genes, n_types, depth_sd, de_fraction=0.1):
    """Counts of cells of ``n_types`` types and uneven depth.

    Returns
    -------
    X : csr_matrix of int64 of shape (n_cells, n_genes)
    types : ndarray of shape (n_cells,)
    depth : ndarray of shape (n_cells,)
        The true size factors, ``exp(N(0, depth_sd))``.
    truth : dict
        ``weights`` (K,), ``means`` (K, n_genes) per unit size factor,
        ``alpha`` (K, n_genes).
    """
    log_means = np.tile(rng.normal(BASE_LOG_MEAN, BASE_LOG_SD, n_genes), (n_types, 1))
    n_de = round(de_fraction * n_genes)
    for k in range(1, n_types):
        de = rng.choice(n_genes, n_de, replace=False)
        fold = rng.uniform(*FOLD_RANGE, n_de) * rng.choice([-1.0, 1.0], n_de)
        log_means[k, de] += fold
    weights = np.array(WEIGHTS[n_types])
    types = rng.choice(n_types, n_cells, p=weights)
    depth = np.exp(rng.normal(0.0, depth_sd, n_cells))
    mean = np.exp(log_means)[types] * depth[:, None]
    counts = rng.negative_binomial(ALPHA, ALPHA / (ALPHA + mean))
    truth = {
        "weights": weights,
        "means": np.exp(log_means),
        "alpha": np.full((n_types, n_genes), ALPHA),
    }
    return sp.csr_matrix(counts.astype(np.int64)), types, depth, truth


def true_log_posterior(X, depth, truth):
    """Per cell: the log joint of each type under the true parameters and
    depths (n_cells, K), for the oracle labels and the true log-likelihood."""
    dense = X.toarray()
    columns = []
    for k in range(len(truth["weights"])):
        b = truth["means"][k] / truth["alpha"][k]
        p = 1.0 / (1.0 + depth[:, None] * b)
        log_pmf = nbinom.logpmf(dense, truth["alpha"][k], p).sum(axis=1)
        columns.append(np.log(truth["weights"][k]) + log_pmf)
    return np.stack(columns, axis=1)


def pipeline_labels(X, n_types, random_state=0):
    """The usual single-cell clustering: counts scaled to the mean total,
    log1p, PCA and a Gaussian mixture."""
    totals = np.asarray(X.sum(axis=1)).ravel()
    scale = totals.mean() / np.maximum(totals, 1)
    normalised = np.log1p(sp.diags(scale) @ X.astype(np.float64)).toarray()
    n_pca = min(PCA_COMPONENTS, min(normalised.shape) - 1)
    scores = PCA(n_pca, random_state=random_state).fit_transform(normalised)
    return GaussianMixture(n_types, random_state=random_state).fit_predict(scores)


def cluster_nb(X, n_types, depth=None, hyper=None):
    """Fit and predict with NegBinomMixture(K, random_state=0); wall time,
    warnings and the model."""
    model = NegBinomMixture(n_types, random_state=0, size_factors=hyper)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X, size_factors=depth)
        labels = model.predict(X, size_factors=depth)
        elapsed = time.perf_counter() - start
    return model, labels, elapsed, len(caught)


_WARM = set()


def warm_up(n_types):
    """Fit every kind once on a small data set (once per process and K), so
    that compilation and loading of the compiled code are not timed."""
    if n_types in _WARM:
        return
    _WARM.add(n_types)
    rng = np.random.default_rng(12345)
    X, _, depth, _ = simulate_cells(rng, 200, 20, n_types, 0.5)
    cluster_nb(X, n_types)
    cluster_nb(X, n_types, hyper="total")
    cluster_nb(X, n_types, depth=depth)
    pipeline_labels(X, n_types)


def run_recovery_dataset(setting, index, seed):
    """Part 2: one data set of a setting, clustered four ways."""
    n_types, n_cells, n_genes, depth_sd = setting
    warm_up(n_types)
    key = (2, n_types, n_cells, n_genes, round(100 * depth_sd), index)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    X, types, depth, truth = simulate_cells(rng, n_cells, n_genes, n_types, depth_sd)
    deep = (depth > np.median(depth)).astype(int)
    log_joint = true_log_posterior(X, depth, truth)
    row = {
        "n_components": n_types,
        "n_cells": n_cells,
        "n_genes": n_genes,
        "depth_sd": depth_sd,
        "dataset": index,
        "mean_total": float(X.sum() / n_cells),
        "zero_fraction": 1 - X.nnz / (n_cells * n_genes),
        "ari_oracle": adjusted_rand_score(types, log_joint.argmax(axis=1)),
    }
    runs = {
        "none": {},
        "total": {"hyper": "total"},
        "true": {"depth": depth},
    }
    for name, options in runs.items():
        model, labels, elapsed, n_warnings = cluster_nb(X, n_types, **options)
        row[f"ari_{name}_types"] = adjusted_rand_score(types, labels)
        row[f"ari_{name}_depth"] = adjusted_rand_score(deep, labels)
        row[f"time_{name}"] = elapsed
        row[f"n_iter_{name}"] = model.n_iter_
        row[f"converged_{name}"] = model.converged_
        row[f"warnings_{name}"] = n_warnings
        if name == "true":
            fit_loglik = model.score(X, size_factors=depth) * n_cells
            row["gain_over_truth"] = fit_loglik - logsumexp(log_joint, axis=1).sum()
    start = time.perf_counter()
    labels = pipeline_labels(X, n_types)
    row["time_pca"] = time.perf_counter() - start
    row["ari_pca_types"] = adjusted_rand_score(types, labels)
    row["ari_pca_depth"] = adjusted_rand_score(deep, labels)
    return row


RECOVERY_KEYS = ["n_components", "n_cells", "n_genes", "depth_sd"]


def format_recovery(rows, markdown=False):
    """Per setting: the mean ARI over the data sets with its minimum, and
    the median wall time of one fit and predict."""

    def ari(values):
        return f"{values.mean():.3f} ({values.min():.3f})"

    header = [
        "K",
        "n x genes",
        "depth sd",
        "sets",
        "oracle",
        "none: types",
        "none: depth",
        "total: types",
        "total: depth",
        "true s: types",
        "PCA+GMM: types",
        "PCA+GMM: depth",
        "s none / total / true / PCA",
    ]
    lines = []
    for setting, group in rows.groupby(RECOVERY_KEYS, sort=False):
        n_types, n_cells, n_genes, depth_sd = setting
        lines.append(
            [
                str(n_types),
                f"{n_cells:,} x {n_genes}",
                f"{depth_sd:g}",
                str(len(group)),
                ari(group["ari_oracle"]),
                ari(group["ari_none_types"]),
                ari(group["ari_none_depth"]),
                ari(group["ari_total_types"]),
                ari(group["ari_total_depth"]),
                ari(group["ari_true_types"]),
                ari(group["ari_pca_types"]),
                ari(group["ari_pca_depth"]),
                " / ".join(
                    f"{group[f'time_{name}'].median():.1f}"
                    for name in ("none", "total", "true", "pca")
                ),
            ]
        )
    return text_table(header, lines, markdown)


def report_recovery(rows, markdown=False):
    print(format_recovery(rows, markdown))
    print()
    print("ARI: mean over the data sets (smallest); times: median wall seconds")
    separable = rows["ari_oracle"] >= 0.9
    goal = separable & (rows["ari_none_types"] < 0.5)
    for name in ("total", "true"):
        met = (rows.loc[goal, f"ari_{name}_types"] >= 0.9).sum()
        print(
            f"size factors {name!r}: ARI >= 0.9 in {met}/{goal.sum()} data sets "
            "where the types are separable (oracle >= 0.9) and the fit without "
            "size factors fails (ARI < 0.5)"
        )
    print(
        f"true-depth fit below the true parameters' log-likelihood: "
        f"{(rows['gain_over_truth'] < -1e-6).sum()}/{len(rows)} "
        f"(smallest gain {rows['gain_over_truth'].min():.3g})"
    )
    misses = rows[(rows["ari_true_types"] < rows["ari_oracle"] - 0.05)]
    for row in misses.itertuples():
        print(
            f"  K={row.n_components} sd={row.depth_sd} set {row.dataset}: true-depth "
            f"ARI {row.ari_true_types:.3f}, oracle {row.ari_oracle:.3f}, "
            f"total {row.ari_total_types:.3f}, "
            f"gain over truth {row.gain_over_truth:.3g}"
        )
    print(
        "iterations (median) none / total / true: "
        + " / ".join(
            f"{rows[f'n_iter_{n}'].median():.0f}" for n in ("none", "total", "true")
        )
        + "; not converged: "
        + ", ".join(
            f"{n} {(~rows[f'converged_{n}'].astype(bool)).sum()}"
            for n in ("none", "total", "true")
        )
    )


# -- part 3 -----------------------------------------------------------------

COVERAGE_SETTING = (2, 1000, 50, 0.5)
COVERAGE_DE_FRACTION = 0.3
QUICK_COVERAGE = (2, 300, 20, 0.5)
#: Means per unit size factor at least this count as "decent".
DECENT_MEAN = 1.0


def bootstrap_takes_size_factors():
    return "size_factors" in inspect.signature(bootstrap).parameters


def run_coverage_dataset(setting, index, seed, n_resamples):
    """Part 3: one data set, its fit with the true depths and, if the
    bootstrap takes size factors, its 95% percentile intervals."""
    n_types, n_cells, n_genes, depth_sd = setting
    key = (3, n_types, n_cells, n_genes, round(100 * depth_sd), index)
    draw_seed, boot_seed = np.random.SeedSequence(seed, spawn_key=key).spawn(2)
    rng = np.random.default_rng(draw_seed)
    X, types, depth, truth = simulate_cells(
        rng, n_cells, n_genes, n_types, depth_sd, COVERAGE_DE_FRACTION
    )
    model, labels, elapsed, n_warnings = cluster_nb(X, n_types, depth=depth)
    cost = ((np.log(truth["means"])[:, None, :] - np.log(model.means_)[None]) ** 2).sum(
        axis=-1
    )
    order = linear_sum_assignment(cost)[1]
    bounds = {}
    boot_time = np.nan
    n_failed = np.nan
    if bootstrap_takes_size_factors():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bootstrap(
                model,
                X,
                n_resamples=n_resamples,
                method="parametric",
                random_state=boot_seed,
                n_jobs=1,
                size_factors=depth,
            )
        boot_time = time.perf_counter() - start
        n_failed = getattr(result, "n_failed", np.nan)
        for name in ("weights", "means"):
            interval = result.confidence_interval[name]
            bounds[name] = (
                np.asarray(interval.low)[order],
                np.asarray(interval.high)[order],
            )
    common = {
        "n_components": n_types,
        "n_cells": n_cells,
        "n_genes": n_genes,
        "depth_sd": depth_sd,
        "dataset": index,
        "ari": adjusted_rand_score(types, labels),
        "fit_time": elapsed,
        "bootstrap_time": boot_time,
        "n_resamples": n_resamples if bounds else 0,
        "n_failed": n_failed,
        "fit_warnings": n_warnings,
    }
    rows = []
    estimates = {"weights": model.weights_[order], "means": model.means_[order]}
    for name in ("weights", "means"):
        true = truth[name]
        if name == "weights":
            component, gene = np.arange(n_types), np.full(n_types, -1)
        else:
            component, gene = np.indices(true.shape).reshape(2, -1)
        low, high = bounds.get(name, (np.full(true.shape, np.nan),) * 2)
        for c, g, t, e, lo, hi in zip(
            component,
            gene,
            true.ravel(),
            estimates[name].ravel(),
            low.ravel(),
            high.ravel(),
            strict=True,
        ):
            rows.append(
                {
                    **common,
                    "parameter": name,
                    "component": c,
                    "gene": g,
                    "truth": t,
                    "estimate": e,
                    "low": lo,
                    "high": hi,
                    "covered": (lo <= t <= hi) if bounds else np.nan,
                }
            )
    return rows


def wilson_interval(successes, trials):
    """95% Wilson score interval of a binomial rate."""
    ci = binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    return ci.low, ci.high


def coverage_groups(rows):
    """The rows of each line of the coverage table."""
    weights = rows[(rows["parameter"] == "weights") & (rows["component"] == 0)]
    means = rows[rows["parameter"] == "means"]
    decent = means["truth"] >= DECENT_MEAN
    small = means["truth"] < DECENT_MEAN
    return {
        "weights[0] (= weights[1])": weights,
        f"means, true mean >= {DECENT_MEAN:g}": means[decent],
        f"means, true mean in [0.1, {DECENT_MEAN:g})": means[
            small & (means["truth"] >= 0.1)
        ],
        "means, true mean < 0.1": means[means["truth"] < 0.1],
    }


def format_coverage(rows, markdown=False):
    header = [
        "parameter",
        "intervals",
        "covered",
        "rate [95% Wilson]",
        "miss low / high",
        "median rel. width",
    ]
    lines = []
    for label, group in coverage_groups(rows).items():
        group = group[group["covered"].notna()]
        if not len(group):
            continue
        covered = group["covered"].astype(bool)
        low, high = wilson_interval(covered.sum(), len(group))
        lines.append(
            [
                label,
                str(len(group)),
                str(covered.sum()),
                f"{covered.mean():.3f} [{low:.3f}, {high:.3f}]",
                f"{(group['high'] < group['truth']).sum()} / "
                f"{(group['low'] > group['truth']).sum()}",
                f"{((group['high'] - group['low']) / group['truth']).median():.3f}",
            ]
        )
    return text_table(header, lines, markdown)


def report_coverage(rows, markdown=False):
    per_set = rows.drop_duplicates("dataset")
    if per_set["n_resamples"].max() == 0:
        print("bootstrap() takes no size_factors here: fits only, no intervals")
    else:
        print(format_coverage(rows, markdown))
        print()
        print(
            f"{len(per_set)} data sets, {per_set['n_resamples'].iloc[0]} "
            f"replicates; bootstrap {per_set['bootstrap_time'].median():.1f} s "
            "per data set (median)"
        )
    weights = rows[(rows["parameter"] == "weights") & (rows["component"] == 0)]
    means = rows[(rows["parameter"] == "means") & (rows["truth"] >= DECENT_MEAN)]
    relative = (means["estimate"] / means["truth"] - 1).abs()
    print(
        f"fits: ARI median {per_set['ari'].median():.3f} "
        f"(min {per_set['ari'].min():.3f}); weights[0] error median "
        f"{(weights['estimate'] - weights['truth']).abs().median():.4f}; "
        f"means >= {DECENT_MEAN:g}: median relative error {relative.median():.3f}; "
        f"fit {per_set['fit_time'].median():.2f} s (median)"
    )


# -- driver ------------------------------------------------------------------


def out_paths(out):
    out = Path(out)
    return {
        "glm": out,
        "recovery": out.with_name(f"{out.stem}_recovery.csv"),
        "coverage": out.with_name(f"{out.stem}_coverage.csv"),
    }


REPORTS = {"glm": report_glm, "recovery": report_recovery, "coverage": report_coverage}
TITLES = {
    "glm": "Part 1: K = 1 against NB GLMs with offset log s",
    "recovery": "Part 2: clustering simulated cells of uneven depth (ARI)",
    "coverage": "Part 3: bootstrap intervals with size factors",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--n-seeds", type=int, help="data sets per setting of part 2")
    parser.add_argument("--n-coverage", type=int, help="data sets of part 3")
    parser.add_argument("--n-resamples", type=int, help="bootstrap replicates")
    parser.add_argument("--no-r", action="store_true", help="do not run R")
    add_run_arguments(
        parser,
        out=HERE / "results" / "size_factors.csv",
        out_help="part 1's rows; parts 2 and 3 go to *_recovery.csv and *_coverage.csv",
        quick_help="a smoke run: two GLM cases, one small clustering data set, "
        "two small bootstrapped data sets",
    )
    # Times are measured: one data set at a time unless asked.
    parser.set_defaults(n_jobs=1)
    args = parser.parse_args(argv)
    defaults = (1, 2, 10) if args.quick else (3, 20, 200)
    for name, default in zip(
        ("n_seeds", "n_coverage", "n_resamples"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.summarize is not None:
        for part, path in out_paths(args.summarize).items():
            if path.exists():
                print(TITLES[part])
                REPORTS[part](pd.read_csv(path), markdown=args.markdown)
                print()
        return
    paths = out_paths(args.out)
    paths["glm"].parent.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        start = time.perf_counter()
        print(TITLES[part], flush=True)
        if part == "glm":
            rows = run_glm(args.seed, quick=args.quick, use_r=not args.no_r)
        elif part == "recovery":
            settings = QUICK_RECOVERY if args.quick else RECOVERY_SETTINGS
            tasks = [
                delayed(run_recovery_dataset)(setting, index, args.seed)
                for setting in settings
                for index in range(args.n_seeds)
            ]
            rows = []
            for row in Parallel(n_jobs=args.n_jobs, return_as="generator")(tasks):
                rows.append(row)
                print(
                    f"  K={row['n_components']} sd={row['depth_sd']} set "
                    f"{row['dataset']}: oracle {row['ari_oracle']:.3f}, none "
                    f"{row['ari_none_types']:.3f}, total "
                    f"{row['ari_total_types']:.3f}, true "
                    f"{row['ari_true_types']:.3f}, PCA {row['ari_pca_types']:.3f}; "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )
            rows = pd.DataFrame(rows)
        else:
            setting = QUICK_COVERAGE if args.quick else COVERAGE_SETTING
            if not bootstrap_takes_size_factors():
                print("  bootstrap() takes no size_factors: fits only", flush=True)
            tasks = [
                delayed(run_coverage_dataset)(
                    setting, index, args.seed, args.n_resamples
                )
                for index in range(args.n_coverage)
            ]
            rows = []
            for dataset_rows in Parallel(n_jobs=args.n_jobs, return_as="generator")(
                tasks
            ):
                rows.extend(dataset_rows)
                first = dataset_rows[0]
                print(
                    f"  set {first['dataset']}: ARI {first['ari']:.3f}, fit "
                    f"{first['fit_time']:.2f} s, bootstrap "
                    f"{first['bootstrap_time']:.1f} s; "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )
            rows = pd.DataFrame(rows)
        rows.to_csv(paths[part], index=False, float_format="%.17g")
        print(
            f"wrote {len(rows)} rows to {paths[part]} "
            f"({time.perf_counter() - start:.0f} s)"
        )
        print()
        REPORTS[part](rows, markdown=args.markdown)
        print()


if __name__ == "__main__":
    main()
