"""What a compiled EM step would buy: a numba prototype against numpy.

Usage::

    pip install numba   # not a dependency of sknbmix
    python benchmarks/bench_kernel.py

An experiment for a decision, not part of the library. The speed goals of
issues 3 and 4 (Rex1 fit 100x the classic approach, four genes 300x, a
bootstrap replicate 100x) are out of reach of numpy with the robust default
starts: one EM step is about 60 numpy calls, and each element costs a
``gammaln`` and two ``digamma`` evaluations plus a dozen passes over
temporaries (see ``benchmarks/README.md``). This script times one
table-form EM step (E step, then the M step with one Newton step for
alpha), for the nine default starts of a Rex1 fit, three ways in one
process:

- ``MixtureProblem.em_step``, the library's numpy code;
- a numba loop doing the same, with scipy's own ``gammaln`` and ``digamma``
  (``scipy.special.cython_special``, so the special functions are the very
  ones numpy calls);
- the same loop with the score for alpha summed over the integers below the
  largest count (``sum_x m_x [digamma(x + a) - digamma(a)] = sum_j T_j / (a +
  j)``, ``T_j`` the mass above ``j``), which gives Newton's step its exact
  slope without ``digamma``.

It then projects a default Rex1 fit: its measured time, less the time of its
own EM steps in numpy, plus the same steps in the grid kernel. The prototype
leaves out what the library's step adds for edge cases (series differences
for alpha above 1e3, the mass floor of empty components): it is an estimate
of the attainable speed, checked against numpy on this data only.
"""

import ctypes
import math
import sys
import time

import numpy as np

try:
    import numba
    from numba.extending import get_cython_function_address
except ImportError:
    sys.exit("bench_kernel.py needs numba (pip install numba), not a dependency")

import sknbmix._em as em
from sknbmix import NegBinomMixture
from sknbmix._data import build_count_table
from sknbmix._em import MixtureProblem
from sknbmix.datasets import load_singer

_DOUBLE_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)
_SPECIAL = "scipy.special.cython_special"
gammaln = _DOUBLE_FUNCTION(get_cython_function_address(_SPECIAL, "gammaln"))
digamma = _DOUBLE_FUNCTION(get_cython_function_address(_SPECIAL, "__pyx_fuse_1psi"))

LOG_ALPHA_MIN, LOG_ALPHA_MAX = math.log(1e-8), math.log(1e8)
DIFFERENCE_STEP = 1e-6
STIRLING_ALPHA, SERIES_ALPHA = 1e4, 1e3


@numba.njit
def _e_step(values, multiplicity, log_weights, log_alpha, log_b, start, mass):
    """Responsibility mass of one start into ``mass``; its log-likelihood
    without ``log(x!)``."""
    n_components, n_entries = mass.shape
    for k in range(n_components):
        alpha = math.exp(log_alpha[start, k])
        log1p_b = math.log1p(math.exp(log_b[start, k]))
        slope = log_b[start, k] - log1p_b
        offset = log_weights[start, k] - alpha * log1p_b
        at_alpha = gammaln(alpha)
        for e in range(n_entries):
            x = values[e]
            if alpha > STIRLING_ALPHA:  # as the library: no cancellation
                rising = (
                    (alpha - 0.5) * math.log1p(x / alpha)
                    + x * (math.log(alpha + x) - 1.0)
                    - x / (12.0 * alpha * (alpha + x))
                )
            else:
                rising = gammaln(x + alpha) - at_alpha
            mass[k, e] = rising + x * slope + offset
    log_likelihood = 0.0
    for e in range(n_entries):
        top = mass[0, e]
        for k in range(1, n_components):
            top = max(top, mass[k, e])
        norm = 0.0
        for k in range(n_components):
            mass[k, e] = math.exp(mass[k, e] - top)
            norm += mass[k, e]
        log_likelihood += multiplicity[e] * (math.log(norm) + top)
        for k in range(n_components):
            mass[k, e] *= multiplicity[e] / norm
    return log_likelihood


@numba.njit
def _newton_step(log_alpha, score, slope):
    """One safeguarded Newton step in log alpha, as ``solve_alpha`` takes."""
    step = -score / slope if slope < 0 else math.copysign(1.0, score)
    step = min(max(step, -1.0), 1.0)
    return min(max(log_alpha + step, LOG_ALPHA_MIN), LOG_ALPHA_MAX)


@numba.njit
def _digamma_newton(values, mass_k, total, mean, log_alpha):
    """Newton step from the digamma score, slope by a forward difference."""
    scores = np.empty(2)
    for i in range(2):
        a = math.exp(log_alpha + i * DIFFERENCE_STEP)
        at_alpha = digamma(a)
        score = 0.0
        for e in range(values.size):
            x = values[e]
            if x > 0 and a > SERIES_ALPHA:  # as the library: no cancellation
                z = a + x
                az = a * z
                score += mass_k[e] * (
                    math.log1p(x / a)
                    + x / (2.0 * az)
                    + x * (a + z) / (12.0 * az**2)
                    - x * (a + z) * (a * a + z * z) / (120.0 * az**4)
                )
            elif x > 0:
                score += mass_k[e] * (digamma(x + a) - at_alpha)
        alpha = a
        scores[i] = score - total * math.log1p(mean / alpha)
    slope = (scores[1] - scores[0]) / DIFFERENCE_STEP
    return _newton_step(log_alpha, scores[0], slope)


@numba.njit
def _grid_newton(values, mass_k, total, mean, log_alpha):
    """Newton step from the score summed over the integer grid, exact slope."""
    alpha = math.exp(log_alpha)
    score, curvature, tail = 0.0, 0.0, 0.0
    for e in range(values.size - 1, 0, -1):
        tail += mass_k[e]
        for j in range(int(values[e - 1]), int(values[e])):
            reciprocal = 1.0 / (alpha + j)
            score += tail * reciprocal
            curvature += tail * reciprocal * reciprocal
    score -= total * math.log1p(mean / alpha)
    slope = -alpha * curvature + total * mean / (alpha + mean)
    return _newton_step(log_alpha, score, slope)


def _make_em_step(newton):
    @numba.njit
    def em_step(values, multiplicity, log_factorial_sum, log_weights, log_alpha, log_b):
        n_starts, n_components = log_alpha.shape
        log_likelihood = np.empty(n_starts)
        new = np.empty((3, n_starts, n_components))
        mass = np.empty((n_components, values.size))
        totals = np.empty(n_components)
        for s in range(n_starts):
            log_likelihood[s] = (
                _e_step(values, multiplicity, log_weights, log_alpha, log_b, s, mass)
                - log_factorial_sum
            )
            for k in range(n_components):
                total, first, second = 0.0, 0.0, 0.0
                for e in range(values.size):
                    total += mass[k, e]
                    first += mass[k, e] * values[e]
                    second += mass[k, e] * values[e] * values[e]
                mean = max(first / total, 1e-12)
                excess = second / total - mean * (mean + 1.0)
                if excess > mean * 1e-12:
                    log_a = log_alpha[s, k]
                    if log_a >= LOG_ALPHA_MAX - 1e-12:
                        # Leaving the Poisson limit: from the moments.
                        log_a = min(
                            max(math.log(mean**2 / excess), LOG_ALPHA_MIN),
                            LOG_ALPHA_MAX,
                        )
                    log_a = newton(values, mass[k], total, mean, log_a)
                else:
                    log_a = LOG_ALPHA_MAX  # the Poisson limit
                totals[k] = total
                new[1, s, k] = log_a
                new[2, s, k] = math.log(mean) - log_a
            new[0, s] = np.log(totals) - math.log(totals.sum())
        return log_likelihood, new

    return em_step


em_step_digamma = _make_em_step(_digamma_newton)
em_step_grid = _make_em_step(_grid_newton)


def _kernel_args(table, theta):
    return (
        table.values,
        table.multiplicity.astype(np.float64),
        float(table.log_factorial_sum[0]),
        *(np.ascontiguousarray(x[:, :, 0]) for x in theta),
    )


def _per_call(function, *args, repeat=2000):
    function(*args)
    start = time.perf_counter()
    for _ in range(repeat):
        function(*args)
    return (time.perf_counter() - start) / repeat


def main():
    X = load_singer().data[:, :1]
    table = build_count_table(X)
    problem = MixtureProblem(table, shared_weights=True)
    starts = NegBinomMixture(2)._initial_starts(problem, X, 0, None)
    args = _kernel_args(table, starts)
    reference_ll, reference = problem.em_step(starts)
    print("One EM step of Rex1, K=2, from the default starts")
    for name, kernel in (("digamma", em_step_digamma), ("grid", em_step_grid)):
        ll, new = kernel(*args)
        print(
            f"  {name} kernel against numpy: log-likelihood within "
            f"{np.abs(ll - reference_ll[:, 0, 0]).max():.1e}, log alpha within "
            f"{np.abs(new[1] - reference.log_alpha[:, :, 0]).max():.1e}"
        )
    print(f"  {'starts':>6} {'numpy us':>9} {'digamma us':>11} {'grid us':>8} ratio")
    per_call = {}
    for n_starts in (9, 3, 1):
        sub = em.Theta(*(x[:n_starts] for x in starts))
        sub_args = _kernel_args(table, sub)
        numpy_s = _per_call(problem.em_step, sub)
        digamma_s = _per_call(em_step_digamma, *sub_args)
        grid_s = _per_call(em_step_grid, *sub_args)
        per_call[n_starts] = (numpy_s, grid_s)
        print(
            f"  {n_starts:>6} {numpy_s * 1e6:>9.1f} {digamma_s * 1e6:>11.1f} "
            f"{grid_s * 1e6:>8.1f} {numpy_s / grid_s:4.1f}x"
        )

    # A default fit: its time, and the batch sizes of its EM steps.
    batches = []
    original = MixtureProblem.em_step

    def counting(self, theta):
        batches.append(theta.log_alpha.shape[0])
        return original(self, theta)

    MixtureProblem.em_step = counting
    NegBinomMixture(2).fit(X)
    MixtureProblem.em_step = original
    fits = []
    for _ in range(41):
        start = time.perf_counter()
        NegBinomMixture(2).fit(X)
        fits.append(time.perf_counter() - start)
    fit_s = float(np.median(fits))
    numpy_em = grid_em = 0.0
    for size in batches:
        sub = em.Theta(*(x[:size] for x in starts))
        numpy_em += _per_call(problem.em_step, sub, repeat=200)
        grid_em += _per_call(em_step_grid, *_kernel_args(table, sub), repeat=200)
    print(
        f"Default Rex1 fit: {fit_s * 1e3:.2f} ms, of which {len(batches)} EM "
        f"steps ({sum(batches)} start-steps) {numpy_em * 1e3:.2f} ms in numpy; "
        f"with the grid kernel {grid_em * 1e3:.2f} ms: projected fit "
        f"{(fit_s - numpy_em + grid_em) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
