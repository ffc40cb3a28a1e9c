"""Default EM and Powell fits of public count data against an independent
reference maximiser.

Usage::

    python validation/public_data.py [--n-starts 100] [--components 1 2 3]
        [--datasets NAME ...] [--n-jobs 1] [--seed 0]
        [--out validation/results/public_data.csv] [--quick]
    python validation/public_data.py --summarize validation/results/public_data.csv
        [--markdown]

The data are classic over-dispersed count vectors from R packages and
statsmodels, shipped as one-column CSVs under ``validation/data/`` (their
provenance is in ``validation/data/README.md``). For each data set and each
number of components K (``--components``, default 1, 2, 3) the script

1. fits ``NegBinomMixture(K)`` with its defaults (EM) and
   ``NegBinomMixture(K, solver="powell")``, timing each (wall seconds; each
   process first fits a small data set at the same K with both solvers, so
   that numba's compilation and loading are not timed);
2. maximises the same likelihood with the reference below, which shares no
   code with ``sknbmix``: numpy and scipy only, from ``--n-starts`` random
   starts, keeping the best;
3. evaluates the log-likelihood of each fit's ``weights_``, ``alpha_`` and
   ``b_`` with the reference's own likelihood code (not with ``score``), and
   records the gaps ``EM - reference`` and ``Powell - reference``. A fit is
   within tolerance if its gap is at least ``-1e-6`` (EM) or ``-1e-4``
   (Powell); a positive gap means ``sknbmix`` found a higher maximum than the
   reference.

The reference
-------------
The log-likelihood of a mixture of negative binomials, component ``k`` with
weight ``w_k``, shape ``alpha_k`` and mean ``mu_k = alpha_k * b_k``
(``scipy.stats.nbinom(n=alpha, p=1 / (1 + b))``), is
``sum_i logsumexp_k(log w_k + log f_k(x_i))`` with::

    log f(x) = sum_{j<x} log1p(j / alpha) + x log(mu)
               - (x + alpha) log1p(mu / alpha) - gammaln(x + 1),

which is ``gammaln(x + alpha) - gammaln(alpha) - gammaln(x + 1) + alpha
log(1 / (1 + b)) + x log(b / (1 + b))`` rewritten so that it keeps full
precision as ``alpha`` grows to the Poisson limit (``gammaln(x + alpha) -
gammaln(alpha)`` loses ``1e-16 * alpha log(alpha)`` to rounding). The sums
run over the distinct counts, weighted by their multiplicities. As a check,
the script also evaluates the reference's best optimum at 40 digits with
mpmath (column ``ref_mpmath_diff``, the reference's value minus mpmath's).

Each start is run by EM (the weights and means in closed form, ``alpha`` of
each component by ``scipy.optimize.brentq`` on its score in ``log alpha``,
at most ``EM_ITERATIONS`` iterations) and then finished by
``scipy.optimize.minimize(method="L-BFGS-B")`` with the analytic gradient in
the unconstrained coordinates ``log alpha``, ``log mu`` and the logits of the
weights (the first fixed at 0), within the bounds ``LOG_ALPHA_BOUNDS`` (alpha
up to 1e12, far past sknbmix's cap of 1e8), ``LOG_MU_FLOOR`` and
``LOGIT_BOUNDS``. The starts cycle through four kinds (:func:`_start`):
cuts of the counts into K ranges at random quantiles of the sample, cuts at
random distinct counts (these isolate a few large or small counts, which the
best optima of several data sets put in a component of their own), random
responsibilities (Dirichlet(1) for each distinct count), and random
parameters (means log-uniform from 0.05 to the largest count, ``alpha``
log-uniform on [0.1, 100], weights Dirichlet(1)). Each (data set, K) draws
from its own generator, ``numpy.random.default_rng(SeedSequence(seed,
spawn_key=(data set index, K)))``. ``ref_n_best`` counts the starts that
ended within ``1e-6`` of the best. At K = 1 the maximum likelihood estimate
is also computed directly (the mean, and ``alpha`` as the root of its
profile score) and the better of the two kept.

Three more columns help to read a gap: ``ref_capped_log_likelihood``, the
reference's best refined with ``alpha`` at most sknbmix's cap (1e8), so that
``ref_log_likelihood - ref_capped_log_likelihood`` is what the cap costs
where a component is at the Poisson limit; ``em_local_gain`` and
``powell_local_gain``, what L-BFGS-B (within the cap) adds from the fit's
own parameters, about 0 when the fit is at a local maximum, whether or not
the best; and ``em_score_diff`` and ``powell_score_diff``, sknbmix's
``score(X) * n`` minus the reference's log-likelihood at the same
parameters. The fitted and the reference's parameters are stored as
space-separated strings (``*_weights``, ``*_alpha``, ``*_mean``), and
sknbmix's warnings in ``*_warnings``.

The rows (one per data set and K) go to ``--out``; ``--summarize`` prints the
table from a CSV. Cases run one at a time unless ``--n-jobs`` says otherwise
(joblib workers; the times are then those of a shared machine).
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import add_run_arguments, text_table
from joblib import Parallel, delayed
from scipy.optimize import brentq, minimize
from scipy.special import gammaln, logsumexp

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

#: (name, file, column) of each data set, by size. Provenance in
#: validation/data/README.md.
DATASETS = [
    ("ships_incidents", "ships_incidents.csv", "incidents"),
    ("warpbreaks_breaks", "warpbreaks_breaks.csv", "breaks"),
    ("insectsprays_count", "insectsprays_count.csv", "count"),
    ("quine_days", "quine_days.csv", "Days"),
    ("epil_y", "epil_y.csv", "y"),
    ("biochemists_art", "biochemists_art.csv", "art"),
    ("biochemists_ment", "biochemists_ment.csv", "ment"),
    ("randhie_mdvis", "randhie_mdvis.csv", "mdvis"),
]
QUICK_DATASETS = ["warpbreaks_breaks", "insectsprays_count"]

EM_TOLERANCE = 1e-6
POWELL_TOLERANCE = 1e-4
#: Starts that end within this of the best count as having found it.
SAME_OPTIMUM = 1e-6
EM_ITERATIONS = 500
#: Bounds of the reference's coordinates: log alpha, log mu and the weights'
#: logits. alpha runs far past sknbmix's cap (1e8) towards the Poisson limit,
#: mu far below any count's scale.
LOG_ALPHA_BOUNDS = (np.log(1e-8), np.log(1e12))
LOG_MU_FLOOR = np.log(1e-12)
LOGIT_BOUNDS = (-60.0, 60.0)
#: sknbmix's cap of alpha (``sknbmix._nbinom.ALPHA_MAX``, restated here): the
#: reference's best optimum is also refined with alpha at most this, as
#: ``ref_capped_log_likelihood``, to measure what the cap costs.
SKNBMIX_ALPHA_MAX = 1e8


def load_counts(file, column):
    """One column of counts from ``validation/data``, as int64."""
    values = pd.read_csv(DATA / file)[column].to_numpy()
    if not np.issubdtype(values.dtype, np.integer) or (values < 0).any():
        raise ValueError(f"{file}: {column} is not a column of counts")
    return values.astype(np.int64)


# ---------------------------------------------------------------------------
# The reference: numpy and scipy only.


class Counts:
    """The distinct counts ``x`` of a sample, their multiplicities ``m`` and
    ``gammaln(x + 1)``."""

    def __init__(self, values):
        self.x, m = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
        self.m = m.astype(float)
        self.n = float(self.m.sum())
        self.log_factorial = gammaln(self.x + 1.0)
        self.j = np.arange(self.x[-1], dtype=float)  # 0 .. max(x) - 1
        self.xf = self.x.astype(float)


def _cumulative(values):
    """Prepend 0 and accumulate along the last axis: entry ``[..., x]`` is the
    sum of the first ``x`` values."""
    zeros = np.zeros(values.shape[:-1] + (1,))
    return np.concatenate([zeros, np.cumsum(values, axis=-1)], axis=-1)


def nb_log_pmf(counts, alpha, mu):
    """``log f_k(x)`` for every component (rows) and distinct count
    (columns)."""
    alpha = np.asarray(alpha, dtype=float)[:, None]
    mu = np.asarray(mu, dtype=float)[:, None]
    rising = _cumulative(np.log1p(counts.j / alpha))[:, counts.x]
    return (
        rising
        + counts.xf * np.log(mu)
        - (counts.xf + alpha) * np.log1p(mu / alpha)
        - counts.log_factorial
    )


def mixture_log_likelihood(counts, weights, alpha, mu):
    """The total log-likelihood of a mixture."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, dtype=float))[:, None]
    per_count = logsumexp(log_weights + nb_log_pmf(counts, alpha, mu), axis=0)
    return float(counts.m @ per_count)


def mpmath_log_likelihood(counts, weights, alpha, mu):
    """The same at 40 significant digits with mpmath, in the ``(alpha, b)``
    form with ``loggamma``, as a check of :func:`mixture_log_likelihood`
    (NaN without mpmath). ``scipy.stats.nbinom.logpmf`` cannot serve: it
    loses up to ``1e-16 * alpha log(alpha)`` per count, several units in all
    at the reference's ``alpha`` of ``1e12``."""
    try:
        import mpmath
    except ImportError:
        return np.nan
    with mpmath.workdps(40):
        total = mpmath.mpf(0)
        for x, m in zip(counts.x.tolist(), counts.m.tolist(), strict=True):
            terms = []
            for w, a, mean in zip(weights, alpha, mu, strict=True):
                if w <= 0:
                    continue
                a, b = mpmath.mpf(float(a)), mpmath.mpf(float(mean)) / float(a)
                terms.append(
                    mpmath.log(float(w))
                    + mpmath.loggamma(x + a)
                    - mpmath.loggamma(a)
                    - mpmath.loggamma(x + 1)
                    - a * mpmath.log1p(b)
                    + x * mpmath.log(b / (1 + b))
                )
            peak = max(terms)
            total += m * (
                peak + mpmath.log(mpmath.fsum(mpmath.exp(t - peak) for t in terms))
            )
        return float(total)


def _responsibilities(counts, weights, alpha, mu):
    """Posterior of each component at each distinct count, and the total
    log-likelihood."""
    with np.errstate(divide="ignore"):
        joint = np.log(weights)[:, None] + nb_log_pmf(counts, alpha, mu)
    total = logsumexp(joint, axis=0)
    return np.exp(joint - total), float(counts.m @ total)


def _alpha_score(log_alpha, counts, v, mu):
    """``alpha`` times the derivative in ``alpha`` (``mu`` fixed) of the
    log-likelihood of one component with sample weights ``v``."""
    alpha = np.exp(log_alpha)
    digamma_difference = _cumulative(1.0 / (alpha + counts.j))[counts.x]
    score = digamma_difference - np.log1p(mu / alpha) + (mu - counts.xf) / (alpha + mu)
    return alpha * float(v @ score)


def alpha_given_mean(counts, v, mu):
    """The maximising ``alpha`` of one component with sample weights ``v`` and
    mean ``mu``: the root of its score, or a bound if there is none (the
    upper one when the weighted counts vary no more than their mean)."""
    low, high = LOG_ALPHA_BOUNDS
    if _alpha_score(high, counts, v, mu) >= 0:
        return np.exp(high)
    if _alpha_score(low, counts, v, mu) <= 0:
        return np.exp(low)
    return np.exp(brentq(_alpha_score, low, high, args=(counts, v, mu), xtol=1e-12))


def _m_step(counts, resp):
    """Weights, ``alpha`` and means from responsibilities."""
    v = resp * counts.m
    n_k = np.maximum(v.sum(axis=1), 1e-300)
    weights = n_k / counts.n
    mu = np.maximum(v @ counts.xf / n_k, np.exp(LOG_MU_FLOOR))
    alpha = np.array(
        [alpha_given_mean(counts, v[k], mu[k]) for k in range(len(weights))]
    )
    return weights, alpha, mu


def reference_em(counts, resp, max_iter=EM_ITERATIONS, tol=1e-10):
    """EM from responsibilities: the weights, alpha and means."""
    previous = -np.inf
    for _ in range(max_iter):
        weights, alpha, mu = _m_step(counts, resp)
        resp, log_likelihood = _responsibilities(counts, weights, alpha, mu)
        if log_likelihood - previous < tol * counts.n:
            break
        previous = log_likelihood
    return weights, alpha, mu


def _pack(weights, alpha, mu):
    logits = np.log(np.maximum(weights, 1e-300))
    logits = np.clip(logits[1:] - logits[0], *LOGIT_BOUNDS)
    return np.concatenate([np.log(alpha), np.log(mu), logits])


def _unpack(theta, n_components):
    alpha = np.exp(theta[:n_components])
    mu = np.exp(theta[n_components : 2 * n_components])
    logits = np.concatenate([[0.0], theta[2 * n_components :]])
    weights = np.exp(logits - logsumexp(logits))
    return weights, alpha, mu


def _negative_log_likelihood(theta, counts, n_components):
    """Minus the log-likelihood and its gradient in ``(log alpha, log mu,
    logits)``."""
    weights, alpha, mu = _unpack(theta, n_components)
    resp, log_likelihood = _responsibilities(counts, weights, alpha, mu)
    v = resp * counts.m  # (K, D)
    a, m = alpha[:, None], mu[:, None]
    x = counts.xf[None, :]
    shifted = counts.j[None, :] / (alpha[:, None] + counts.j[None, :])
    sum_shifted = _cumulative(shifted)[:, counts.x]  # sum_{j<x} j / (alpha + j)
    d_log_alpha = -sum_shifted - a * np.log1p(m / a) + (x + a) * m / (a + m)
    d_log_mu = x - m * (x + a) / (a + m)
    gradient = np.concatenate(
        [
            (v * d_log_alpha).sum(axis=1),
            (v * d_log_mu).sum(axis=1),
            (v.sum(axis=1) - counts.n * weights)[1:],
        ]
    )
    return -log_likelihood, -gradient


def reference_polish(counts, weights, alpha, mu, alpha_max=None):
    """Finish a start with L-BFGS-B from EM's end point (with ``alpha`` at
    most ``alpha_max``, if given)."""
    n_components = len(weights)
    log_mu_high = np.log(10.0 * counts.x[-1] + 10.0)
    log_alpha_bounds = LOG_ALPHA_BOUNDS
    if alpha_max is not None:
        log_alpha_bounds = (LOG_ALPHA_BOUNDS[0], np.log(alpha_max))
    bounds = (
        [log_alpha_bounds] * n_components
        + [(LOG_MU_FLOOR, log_mu_high)] * n_components
        + [LOGIT_BOUNDS] * (n_components - 1)
    )
    theta = _pack(weights, alpha, mu)
    theta = np.clip(theta, [lo for lo, _ in bounds], [hi for _, hi in bounds])
    result = minimize(
        _negative_log_likelihood,
        theta,
        args=(counts, n_components),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 20000, "maxfun": 40000, "ftol": 1e-15, "gtol": 1e-9},
    )
    return _unpack(result.x, n_components)


N_START_KINDS = 4


def _start(counts, n_components, kind, rng):
    """Responsibilities at the distinct counts of one random start of the
    given kind: 0, cuts of the counts into K ranges at random quantiles of the
    sample; 1, cuts at random distinct counts (which isolate the tails more
    often); 2, random responsibilities; 3, random parameters."""
    n_distinct = len(counts.x)
    samples = np.repeat(counts.x, counts.m.astype(int))
    if kind in (0, 1):
        if kind == 0:
            cuts = np.quantile(samples, rng.random(n_components - 1))
        else:
            cuts = rng.choice(counts.x, n_components - 1, replace=False)
        # Component k holds the counts above k of the cuts.
        labels = np.searchsorted(np.sort(cuts), counts.x, side="left")
        # Cuts that coincide leave components empty: give them random counts.
        for k in set(range(n_components)) - set(labels.tolist()):
            labels[rng.integers(n_distinct)] = k
        resp = np.full((n_components, n_distinct), 1e-3)
        resp[labels, np.arange(n_distinct)] = 1.0
        return resp / resp.sum(axis=0)
    if kind == 2:
        return rng.dirichlet(np.ones(n_components), size=n_distinct).T
    # Means log-uniform from 0.05 to the largest count, alpha log-uniform on
    # [0.1, 100], weights Dirichlet(1).
    mu = np.exp(rng.uniform(np.log(0.05), np.log(max(counts.x[-1], 1)), n_components))
    alpha = np.exp(rng.uniform(np.log(0.1), np.log(100.0), n_components))
    weights = rng.dirichlet(np.ones(n_components))
    return _responsibilities(counts, weights, alpha, mu)[0]


def reference_fit(counts, n_components, n_starts, rng):
    """The best of ``n_starts`` EM + L-BFGS-B runs.

    Returns
    -------
    best : tuple
        ``(log_likelihood, weights, alpha, mu)``.
    n_best : int
        How many starts ended within ``SAME_OPTIMUM`` of the best.
    """
    ends = []
    for start in range(n_starts):
        resp = _start(counts, n_components, start % N_START_KINDS, rng)
        with np.errstate(over="ignore", under="ignore"):
            weights, alpha, mu = reference_em(counts, resp)
            weights, alpha, mu = reference_polish(counts, weights, alpha, mu)
        ends.append(
            (mixture_log_likelihood(counts, weights, alpha, mu), weights, alpha, mu)
        )
    if n_components == 1:
        # The single negative binomial's MLE: the mean, and alpha as the root
        # of its profile score.
        mu = np.array([counts.m @ counts.xf / counts.n])
        alpha = np.array([alpha_given_mean(counts, counts.m, mu[0])])
        weights = np.ones(1)
        ends.append(
            (mixture_log_likelihood(counts, weights, alpha, mu), weights, alpha, mu)
        )
    best = max(ends, key=lambda end: end[0])
    n_best = sum(end[0] >= best[0] - SAME_OPTIMUM for end in ends[:n_starts])
    return best, n_best


# ---------------------------------------------------------------------------
# The fits under test.


def _fit_sknbmix(X, n_components, solver):
    """Fit, time and report a ``NegBinomMixture``: its parameters (means
    ``alpha * b``), wall seconds and warnings."""
    from sknbmix import NegBinomMixture

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model = NegBinomMixture(n_components=n_components, solver=solver).fit(X)
        elapsed = time.perf_counter() - start
    weights = np.asarray(model.weights_, dtype=float).ravel()
    alpha = np.asarray(model.alpha_, dtype=float)[:, 0]
    mu = alpha * np.asarray(model.b_, dtype=float)[:, 0]
    messages = "; ".join(sorted({str(w.message).split(".")[0] for w in caught}))
    return {
        "weights": weights,
        "alpha": alpha,
        "mu": mu,
        "time": elapsed,
        "warnings": messages,
        "score": model.score(X) * len(X),
    }


_WARMED_UP = set()


def warm_up(n_components):
    """Compile and load sknbmix's kernels in this process, off the clock: fit
    a small data set at ``n_components`` with both solvers, once."""
    if n_components in _WARMED_UP:
        return
    X = load_counts("warpbreaks_breaks.csv", "breaks")[:, None]
    for solver in ("em", "powell"):
        _fit_sknbmix(X, n_components, solver)
    _WARMED_UP.add(n_components)


def _local_gain(counts, fit, log_likelihood):
    with np.errstate(over="ignore", under="ignore"):
        polished = reference_polish(
            counts,
            fit["weights"],
            np.minimum(fit["alpha"], SKNBMIX_ALPHA_MAX),
            fit["mu"],
            alpha_max=SKNBMIX_ALPHA_MAX,
        )
    return mixture_log_likelihood(counts, *polished) - log_likelihood


def _format(values):
    return " ".join(f"{value:.10g}" for value in values)


def run_case(index, n_components, n_starts, seed):
    """One data set and K: the reference, EM and Powell; one row."""
    warm_up(n_components)
    name, file, column = DATASETS[index]
    values = load_counts(file, column)
    counts = Counts(values)
    K = n_components
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, K)))
    start = time.perf_counter()
    (ref_ll, ref_w, ref_alpha, ref_mu), n_best = reference_fit(counts, K, n_starts, rng)
    ref_time = time.perf_counter() - start
    ref_capped_ll = ref_ll
    if ref_alpha.max() > SKNBMIX_ALPHA_MAX:
        with np.errstate(over="ignore", under="ignore"):
            capped = reference_polish(
                counts,
                ref_w,
                np.minimum(ref_alpha, SKNBMIX_ALPHA_MAX),
                ref_mu,
                alpha_max=SKNBMIX_ALPHA_MAX,
            )
        ref_capped_ll = mixture_log_likelihood(counts, *capped)
    row = {
        "dataset": name,
        "n_samples": len(values),
        "n_components": K,
        "mean": values.mean(),
        "variance": values.var(ddof=1),
        "ref_log_likelihood": ref_ll,
        "ref_n_starts": n_starts,
        "ref_n_best": n_best,
        "ref_time": ref_time,
        "ref_mpmath_diff": ref_ll
        - mpmath_log_likelihood(counts, ref_w, ref_alpha, ref_mu),
        # The best with alpha at most sknbmix's cap.
        "ref_capped_log_likelihood": ref_capped_ll,
        "ref_weights": _format(ref_w),
        "ref_alpha": _format(ref_alpha),
        "ref_mean": _format(ref_mu),
    }
    X = values[:, None]
    for solver in ("em", "powell"):
        fit = _fit_sknbmix(X, K, solver)
        log_likelihood = mixture_log_likelihood(
            counts, fit["weights"], fit["alpha"], fit["mu"]
        )
        row.update(
            {
                f"{solver}_log_likelihood": log_likelihood,
                f"{solver}_gap": log_likelihood - ref_ll,
                # What L-BFGS-B from the fit (alpha at most sknbmix's cap)
                # adds: about 0 if the fit is at a local maximum, whether or
                # not the best.
                f"{solver}_local_gain": _local_gain(counts, fit, log_likelihood),
                f"{solver}_time": fit["time"],
                # sknbmix's own score against the reference's likelihood code
                # at the same parameters.
                f"{solver}_score_diff": fit["score"] - log_likelihood,
                f"{solver}_weights": _format(fit["weights"]),
                f"{solver}_alpha": _format(fit["alpha"]),
                f"{solver}_mean": _format(fit["mu"]),
                f"{solver}_warnings": fit["warnings"],
            }
        )
    row["em_within"] = row["em_gap"] >= -EM_TOLERANCE
    row["powell_within"] = row["powell_gap"] >= -POWELL_TOLERANCE
    return row


# ---------------------------------------------------------------------------
# Tables.


def format_summary(rows, markdown=False):
    """One line per data set and K. The alpha-cap cost is how much lower the
    reference's best is with alpha at most sknbmix's cap (1e8)."""
    header = [
        "data set",
        "n",
        "K",
        "reference log-lik",
        "starts at best",
        "alpha-cap cost",
        "EM gap",
        "Powell gap",
        "EM s",
        "Powell s",
        "reference s",
        "EM within 1e-6",
        "Powell within 1e-4",
    ]
    lines = [
        [
            row.dataset,
            f"{row.n_samples}",
            f"{row.n_components}",
            f"{row.ref_log_likelihood:.6f}",
            f"{row.ref_n_best}/{row.ref_n_starts}",
            f"{row.ref_log_likelihood - row.ref_capped_log_likelihood:.1e}",
            f"{row.em_gap:+.2e}",
            f"{row.powell_gap:+.2e}",
            f"{row.em_time:.3f}",
            f"{row.powell_time:.2f}",
            f"{row.ref_time:.1f}",
            "yes" if row.em_within else "**no**" if markdown else "NO",
            "yes" if row.powell_within else "**no**" if markdown else "NO",
        ]
        for row in rows.itertuples()
    ]
    return text_table(header, lines, markdown)


def report(rows, markdown=False):
    """The table, the count of cases within tolerance and every miss."""
    print(format_summary(rows, markdown))
    print()
    n_cases = len(rows)
    for solver, tolerance in (("em", EM_TOLERANCE), ("powell", POWELL_TOLERANCE)):
        within = rows[f"{solver}_within"].astype(bool)
        label = "EM" if solver == "em" else "Powell"
        print(f"{label}: {within.sum()}/{n_cases} cases within {tolerance:g}")
        for row in rows[~within].itertuples():
            print(
                f"  {row.dataset} K={row.n_components}: "
                f"gap {getattr(row, f'{solver}_gap'):+.6g}"
            )
        short = rows[~within & (rows[f"{solver}_local_gain"] > tolerance)]
        for row in short.itertuples():
            print(
                f"  {row.dataset} K={row.n_components}: {label} stopped short "
                f"of a local maximum by {getattr(row, f'{solver}_local_gain'):.6g}"
            )
        ahead = rows[rows[f"{solver}_gap"] > SAME_OPTIMUM]
        for row in ahead.itertuples():
            print(
                f"  {row.dataset} K={row.n_components}: {label} above the "
                f"reference by {getattr(row, f'{solver}_gap'):.6g}"
            )
    # A mixture of K components contains those of K - 1: a best that falls
    # with K shows a reference that missed the maximum.
    previous = rows.set_index(["dataset", "n_components"])["ref_log_likelihood"]
    for row in rows.itertuples():
        below = previous.get((row.dataset, row.n_components - 1))
        if below is not None and row.ref_log_likelihood < below - SAME_OPTIMUM:
            print(f"  reference at K={row.n_components} below K-1 on {row.dataset}")
    print(
        f"total time: EM {rows['em_time'].sum():.2f} s, "
        f"Powell {rows['powell_time'].sum():.1f} s, "
        f"reference {rows['ref_time'].sum():.0f} s"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-starts", type=int, help="reference starts per case (default 100)"
    )
    parser.add_argument(
        "--components", type=int, nargs="+", help="values of K (default 1 2 3)"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=[name for name, _, _ in DATASETS],
        help="data sets (default all)",
    )
    add_run_arguments(
        parser,
        out=HERE / "results" / "public_data.csv",
        out_help="one row per data set and K",
        quick_help="a smoke run: two small data sets, K = 1, 2, 4 reference "
        "starts (unless given)",
    )
    # Times are measured: one case at a time unless asked.
    parser.set_defaults(n_jobs=1)
    args = parser.parse_args(argv)
    if args.quick:
        defaults = (4, [1, 2], QUICK_DATASETS)
    else:
        defaults = (100, [1, 2, 3], [name for name, _, _ in DATASETS])
    for name, default in zip(
        ("n_starts", "components", "datasets"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.summarize is not None:
        report(pd.read_csv(args.summarize), markdown=args.markdown)
        return
    names = [name for name, _, _ in DATASETS]
    tasks = [
        delayed(run_case)(names.index(name), K, args.n_starts, args.seed)
        for name in args.datasets
        for K in args.components
    ]
    print(
        f"{len(tasks)} cases, {args.n_starts} reference starts each, seed {args.seed}",
        flush=True,
    )
    start = time.perf_counter()
    rows = []
    for row in Parallel(n_jobs=args.n_jobs, return_as="generator")(tasks):
        rows.append(row)
        print(
            f"{row['dataset']} K={row['n_components']}: "
            f"reference {row['ref_log_likelihood']:.6f} "
            f"({row['ref_n_best']}/{row['ref_n_starts']} starts, "
            f"{row['ref_time']:.1f} s), EM gap {row['em_gap']:+.2e} "
            f"({row['em_time']:.3f} s), Powell gap {row['powell_gap']:+.2e} "
            f"({row['powell_time']:.2f} s); {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    rows = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False, float_format="%.17g")
    print(f"wrote {len(rows)} rows to {args.out}")
    print()
    report(rows, markdown=args.markdown)


if __name__ == "__main__":
    main()
