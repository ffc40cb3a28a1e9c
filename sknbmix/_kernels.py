"""The compiled loops of the EM, of its acceleration and of the gradient.

Every likelihood computation of a fit runs here, compiled with numba: the E
step and the M step, the gradient of the log-likelihood (for Newton's
method), the log-probability of each distinct count (for prediction), and the
bookkeeping of a SQUAREM cycle (the extrapolation and its acceptance, the
stopping rule, the check for steps that lowered the likelihood, the screen's
outpacing rule). They are loops over starts, components and distinct counts
instead of dozens of numpy calls on temporaries per step: a fit of a few
hundred distinct counts would be bound by numpy's per-call overhead, and a
stacked bootstrap by the memory traffic of its temporaries. Each problem (a
start, or a start and a feature with independent weights) is computed alone
and in the same order wherever it sits in a batch, so stacks and parallel
runs give the same bits. With size factors each form has loops of its own
(the section "size factors" below).

``log Gamma`` is ``math.lgamma`` (the C library's) and ``digamma`` the
function below, both within a few ulp of scipy's. The E step of the table
form needs neither at most counts: it walks each component's probability
up a feature's distinct counts by the ratio of successive probabilities
(see :func:`_table_e_step`). Where a feature's largest
count is at most ``_GRID_RATIO`` times its number of distinct counts,
Newton's step for alpha takes the score and its exact slope from sums over
the integers below that count (see :func:`_alpha_score`), elsewhere a
forward difference of digamma sums. The first call of each function
compiles it (10-20 seconds in all, cached on disk for later processes).
"""

# SPDX-License-Identifier: BSD-3-Clause

import math

import numpy as np
from numba import njit

from sknbmix._nbinom import (
    ALPHA_MAX,
    ALPHA_MIN,
    LOG_B_BOUNDS,
    MEAN_MIN,
    SERIES_ALPHA,
    STIRLING_ALPHA,
    digamma_series_difference,
    stirling_difference,
)

_LOG_ALPHA_MIN, _LOG_ALPHA_MAX = math.log(ALPHA_MIN), math.log(ALPHA_MAX)
_LOG_B_MIN, _LOG_B_MAX = LOG_B_BOUNDS
# The largest Newton step of the M step with size factors, in e-folds.
_SCALED_STEP = 2.0
# The E step with size factors multiplies the (1 + s b)**x of counts up to
# this, and takes the log of the products before they could pass e**600
# (see _add_count_terms).
_PRODUCT_COUNT = 8.0
_PRODUCT_LOG_LIMIT = 600.0
# Sums over the integer grid replace digamma while a feature has at most this
# many grid points per distinct count: a point costs a division, a distinct
# count two digamma evaluations.
_GRID_RATIO = 4.0
# The Hessian carries digamma and trigamma differences from one distinct
# count to the next by their recurrences across at most this many integers.
_RECURRENCE_GAP = 8.0
# The E step of the table form walks a component's probability up the counts
# by products across gaps of at most _WALK_GAP integers, for at most
# _WALK_ANCHOR entries from an lgamma, keeping each product within
# _WALK_BOUND of 1 (see _table_e_step); its scratch space has _WALK_SCRATCH
# rows.
_WALK_GAP = 8.0
_WALK_ANCHOR = 64
_WALK_BOUND = 1e100
_WALK_SCRATCH = 8
_DIFFERENCE_STEP = 1e-6
# Newton's step for alpha has converged below this.
_NEWTON_DONE = 1e-10
# Above this count, lgamma(x + alpha) - log(x!) comes from Stirling's series
# (see _count_log_prob).
LARGE_COUNT = 1e4
# What a pass over the data computes besides the log-likelihood: nothing, the
# M step, or the gradient.
LOG_LIKELIHOOD, M_STEP, GRADIENT = 0, 1, 2

# The series for large alpha (sknbmix._nbinom), compiled as they are.
_stirling = njit(cache=True, error_model="numpy")(stirling_difference)
_digamma_series = njit(cache=True, error_model="numpy")(digamma_series_difference)


@njit(cache=True, error_model="numpy")
def digamma(x):
    """``digamma(x)`` for ``x > 0``: the recurrence up to 10, then the
    asymptotic series (first omitted term below 1e-15)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    r2 = 1.0 / (x * x)
    series = r2 * (
        1.0 / 12
        - r2
        * (
            1.0 / 120
            - r2 * (1.0 / 252 - r2 * (1.0 / 240 - r2 * (1.0 / 132 - r2 * 691 / 32760)))
        )
    )
    return result + math.log(x) - 0.5 / x - series


@njit(cache=True, error_model="numpy")
def _log_rising_factorial(x, alpha, log_gamma_alpha):
    """``lgamma(x + alpha) - lgamma(alpha)``; above ``STIRLING_ALPHA``,
    where the two terms cancel, Stirling's difference."""
    if alpha > STIRLING_ALPHA:
        return _stirling(x, alpha)
    return math.lgamma(x + alpha) - log_gamma_alpha


@njit(cache=True, error_model="numpy")
def _digamma_sum(values, mass, alpha):
    """``sum mass [digamma(values + alpha) - digamma(alpha)]``; above
    ``SERIES_ALPHA``, where the two terms cancel, the series difference."""
    at_alpha = digamma(alpha)
    total = 0.0
    for e in range(values.size):
        x = values[e]
        if x == 0.0:
            continue
        if alpha > SERIES_ALPHA:
            term = _digamma_series(x, alpha)
        else:
            term = digamma(x + alpha) - at_alpha
        total += mass[e] * term
    return total


@njit(cache=True, error_model="numpy")
def _alpha_score(values, mass, total, mean, log_alpha, grid):
    """The profile score for alpha of one component and feature, and its
    slope in ``log alpha``.

    With ``b = mean / alpha`` the M step for alpha solves ``sum_x m_x
    [digamma(x + a) - digamma(a)] - total log1p(mean / a) = 0``.

    On the grid, ``sum_x m_x [digamma(x + a) - digamma(a)] = sum_j T_j / (a +
    j)`` with ``T_j`` the mass above ``j`` (for integer counts), and the
    slope ``-a sum_j T_j / (a + j)**2`` is exact. Otherwise the slope is a
    forward difference in ``log alpha``.
    """
    alpha = math.exp(log_alpha)
    if not grid:
        shifted = math.exp(log_alpha + _DIFFERENCE_STEP)
        score = _digamma_sum(values, mass, alpha) - total * math.log1p(mean / alpha)
        later = _digamma_sum(values, mass, shifted) - total * math.log1p(mean / shifted)
        return score, (later - score) / _DIFFERENCE_STEP
    score, curvature, tail = 0.0, 0.0, 0.0
    for e in range(values.size - 1, 0, -1):
        tail += mass[e]
        for j in range(int(values[e - 1]), int(values[e])):
            reciprocal = 1.0 / (alpha + j)
            score += tail * reciprocal
            curvature += tail * reciprocal * reciprocal
    score -= total * math.log1p(mean / alpha)
    return score, total * mean / (alpha + mean) - alpha * curvature


@njit(cache=True, error_model="numpy")
def _solve_log_alpha(values, mass, total, mean, second_moment, alpha, max_iter):
    """``log alpha`` after up to ``max_iter`` safeguarded Newton steps in
    ``log alpha`` from ``alpha``, each at most one e-fold, uphill where the
    score is not falling. Where the weighted variance is not above the
    weighted mean there is no finite root: ``alpha`` goes to its cap, the
    Poisson limit. From the cap (a component leaving that limit) the start
    is the method of moments."""
    excess = second_moment - mean * (mean + 1.0)
    if excess <= mean * 1e-12:
        return _LOG_ALPHA_MAX  # no finite root: the Poisson limit
    if alpha >= ALPHA_MAX:
        # Leaving the cap: from the method of moments.
        alpha = min(max(mean * mean / excess, ALPHA_MIN), ALPHA_MAX)
    log_alpha = math.log(alpha)
    grid = values[values.size - 1] <= _GRID_RATIO * values.size
    for _ in range(max_iter):
        score, slope = _alpha_score(values, mass, total, mean, log_alpha, grid)
        if slope < 0.0:
            step = -score / slope
        else:
            step = float(np.sign(score))
        step = min(max(step, -1.0), 1.0)
        log_alpha = min(max(log_alpha + step, _LOG_ALPHA_MIN), _LOG_ALPHA_MAX)
        if abs(step) < _NEWTON_DONE:
            break
    return log_alpha


@njit(cache=True, error_model="numpy")
def _m_step_feature(values, mass, total, alpha, max_iter):
    """``(log alpha, log b)`` of one component and feature."""
    first = 0.0
    second = 0.0
    for e in range(values.size):
        first += mass[e] * values[e]
        second += mass[e] * values[e] * values[e]
    mean = max(first / total, MEAN_MIN)
    log_alpha = _solve_log_alpha(
        values, mass, total, mean, second / total, alpha, max_iter
    )
    return log_alpha, math.log(mean) - log_alpha


@njit(cache=True, error_model="numpy")
def _component_gradient(values, mass, total, log_alpha, log_b):
    """The gradient in ``log alpha`` and ``log b`` of one component and
    feature, from the responsibility mass at its distinct counts (Fisher's
    identity: the gradient of the expected complete log-likelihood)."""
    alpha = math.exp(log_alpha)
    b = math.exp(log_b)
    first = 0.0
    for e in range(values.size):
        first += mass[e] * values[e]
    digamma_sum = _digamma_sum(values, mass, alpha)
    return (
        alpha * (digamma_sum - total * math.log1p(b)),
        (first - total * alpha * b) / (1.0 + b),
    )


@njit(cache=True, error_model="numpy")
def _entries(starts, feature, n_entries):
    """The first entry of ``feature`` and the one past its last."""
    if feature + 1 < starts.size:
        return starts[feature], starts[feature + 1]
    return starts[feature], n_entries


@njit(cache=True, error_model="numpy")
def _count_terms(log_alpha, log_b):
    """What a component's log-probabilities of counts share: ``alpha``,
    ``lgamma(alpha)``, the slope ``log(b / (1 + b))`` of the term in ``x``
    (as ``-log1p(1 / b)``, which keeps its digits when ``b`` is large and the
    slope tiny), and the zero count's ``-alpha log1p(b)``."""
    alpha = math.exp(log_alpha)
    slope = -math.log1p(math.exp(-log_b))
    return alpha, math.lgamma(alpha), slope, -alpha * math.log1p(math.exp(log_b))


@njit(cache=True, error_model="numpy")
def _large_count_ratio(x, alpha):
    """``lgamma(x + alpha) - lgamma(x + 1)`` for large ``x``, from Stirling's
    series of both, differenced so that nothing cancels: ``(alpha - 1)
    log(x + alpha) + (x + 1/2) log1p((alpha - 1) / (x + 1)) - (alpha - 1)``
    plus ``(1 / (x + alpha) - 1 / (x + 1)) / 12``; the next terms are below
    ``1 / (360 x**3)``."""
    shift = alpha - 1.0
    return (
        shift * math.log(x + alpha)
        + (x + 0.5) * math.log1p(shift / (x + 1.0))
        - shift
        + (1.0 / (x + alpha) - 1.0 / (x + 1.0)) / 12.0
    )


@njit(cache=True, error_model="numpy")
def _count_log_prob(x, log_factorial, alpha, log_gamma_alpha, slope):
    """``log NB(x)`` less its value at zero: ``lgamma(x + alpha) -
    lgamma(alpha) - log(x!) + x slope``.

    ``lgamma(x + alpha)`` and ``log(x!)`` grow as ``x log x``: for a count
    above ``LARGE_COUNT`` and above alpha their difference comes from
    :func:`_large_count_ratio` instead, so that the rounding of each (half a
    unit at ``x = 1e14``) does not swamp a log-probability of a few tens.
    """
    if x < LARGE_COUNT or x < alpha:
        coefficient = _log_rising_factorial(x, alpha, log_gamma_alpha) - log_factorial
    else:
        coefficient = _large_count_ratio(x, alpha) - log_gamma_alpha
    return coefficient + x * slope


@njit(cache=True, error_model="numpy")
def entry_log_prob(values, log_factorial, starts, log_alpha, log_b):
    """``log NB(x)`` less ``log NB(0)`` at each distinct count, shaped
    (n_starts, n_components, n_entries), and ``log NB(0) = -alpha
    log1p(b)``, shaped as ``log_alpha``."""
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    out = np.empty((n_starts, n_components, n_entries))
    zero = np.empty(log_alpha.shape)
    for s in range(n_starts):
        for k in range(n_components):
            for f in range(n_features):
                alpha, log_gamma_alpha, slope, zero[s, k, f] = _count_terms(
                    log_alpha[s, k, f], log_b[s, k, f]
                )
                low, high = _entries(starts, f, n_entries)
                for e in range(low, high):
                    out[s, k, e] = _count_log_prob(
                        values[e], log_factorial[e], alpha, log_gamma_alpha, slope
                    )
    return out, zero


@njit(cache=True, error_model="numpy")
def _table_e_step(
    values,
    log_factorial,
    multiplicity,
    low,
    high,
    log_weights,
    log_alpha,
    log_b,
    mass,
    scratch,
):
    """The E step of one problem's feature (entries ``low`` to ``high``,
    counts ascending): its responsibility mass into ``mass[:, low:high]``,
    and its log-likelihood. The parameters are those of the feature's
    components; ``scratch`` has ``_WALK_SCRATCH`` rows of one value per
    component.

    The probabilities walk up the counts: from count ``x`` to ``x + 1`` a
    component's probability is multiplied by ``(x + alpha) / (x + 1) *
    b / (1 + b)``, so that a count a few integers above the previous one
    costs a few products, where its log-probability costs an ``lgamma``
    and its responsibility an ``exp``. Each component carries its
    probability as ``exp(level) * linear``, ``linear`` kept within
    ``_WALK_BOUND`` of 1 by moving its log into ``level``; the walk starts
    again from ``lgamma`` (:func:`_count_log_prob`) after a gap of more
    than ``_WALK_GAP``, at a count that is not an integer step away, and
    every ``_WALK_ANCHOR`` entries, so that the rounding of the products
    (about one ulp each) adds up over at most a few hundred of them.
    """
    n_components = log_alpha.size
    alpha, log_gamma_alpha, slope = scratch[0], scratch[1], scratch[2]
    ratio, base, level, linear, factor = (
        scratch[3],
        scratch[4],
        scratch[5],
        scratch[6],
        scratch[7],
    )
    for k in range(n_components):
        alpha[k], log_gamma_alpha[k], slope[k], zero = _count_terms(
            log_alpha[k], log_b[k]
        )
        ratio[k] = math.exp(slope[k])
        base[k] = log_weights[k] + zero
    previous = -math.inf  # the first entry starts the walk
    walked = 0
    reference = 0.0
    total_log = 0.0
    # The log-likelihood of entries of multiplicity 1, as a product of their
    # probabilities: one log per dozens of them.
    product = 1.0
    for e in range(low, high):
        x = values[e]
        gap = x - previous
        moved = False
        if 0.0 < gap <= _WALK_GAP and gap == math.floor(gap) and walked < _WALK_ANCHOR:
            walked += 1
            denominator = 1.0
            j = previous
            while j < x:
                j += 1.0
                denominator *= j
            inverse = 1.0 / denominator
            for k in range(n_components):
                step = inverse
                j = previous
                while j < x:
                    step *= (j + alpha[k]) * ratio[k]
                    j += 1.0
                value = linear[k] * step
                if value > _WALK_BOUND or value < 1.0 / _WALK_BOUND:
                    level[k] += math.log(value)
                    value = 1.0
                    moved = True
                linear[k] = value
        elif gap != 0.0:
            walked = 0
            for k in range(n_components):
                level[k] = base[k] + _count_log_prob(
                    x, log_factorial[e], alpha[k], log_gamma_alpha[k], slope[k]
                )
                linear[k] = 1.0
            moved = True
        previous = x
        if moved:
            # Probabilities relative to the largest level; a component more
            # than e**708 below it is below e**-248 after its linear part.
            reference = level[0]
            for k in range(1, n_components):
                reference = max(reference, level[k])
            for k in range(n_components):
                below = level[k] - reference
                factor[k] = math.exp(below) if below > -708.0 else 0.0
        norm = 0.0
        for k in range(n_components):
            mass[k, e] = factor[k] * linear[k]
            norm += mass[k, e]
        count = multiplicity[e]
        total_log += count * reference
        if count == 1.0:
            product *= norm
            if product > _WALK_BOUND or product < 1.0 / _WALK_BOUND:
                total_log += math.log(product)
                product = 1.0
        else:
            total_log += count * math.log(norm)
        scale = count / norm
        for k in range(n_components):
            mass[k, e] *= scale
    return total_log + math.log(product)


@njit(cache=True, error_model="numpy")
def _normalise_entries(multiplicity, low, high, mass):
    """Turn the joint log-probabilities ``mass[:, low:high]`` of one feature's
    entries into responsibility mass (times each entry's multiplicity), and
    return their log-likelihood."""
    n_components = mass.shape[0]
    total_log = 0.0
    for e in range(low, high):
        best = 0
        for k in range(1, n_components):
            if mass[k, e] > mass[best, e]:
                best = k
        top = mass[best, e]
        # exp(0) = 1 for the largest: one exp fewer per count.
        norm = 1.0
        for k in range(n_components):
            if k != best:
                mass[k, e] = math.exp(mass[k, e] - top)
                norm += mass[k, e]
        mass[best, e] = 1.0
        total_log += multiplicity[e] * (math.log(norm) + top)
        for k in range(n_components):
            mass[k, e] *= multiplicity[e] / norm
    return total_log


@njit(cache=True, error_model="numpy")
def _update(values, mass, total, log_alpha, log_b, newton_steps, mode):
    """The M step's ``(log alpha, log b)`` of one component and feature, or
    the gradient in them, from its responsibility mass."""
    if mode == GRADIENT:
        return _component_gradient(values, mass, total, log_alpha, log_b)
    return _m_step_feature(values, mass, total, math.exp(log_alpha), newton_steps)


@njit(cache=True, error_model="numpy")
def _update_weights(totals, log_weights, out, mode):
    """The M step's log-weights of one group, or (from component 2 on) the
    gradient in the logits of components 2..K against component 1."""
    all_mass = totals.sum()
    if mode == GRADIENT:
        for k in range(1, totals.size):
            out[k] = totals[k] - all_mass * math.exp(log_weights[k])
        return
    log_total = math.log(all_mass)
    for k in range(totals.size):
        out[k] = math.log(totals[k]) - log_total


@njit(cache=True, error_model="numpy")
def table_step(
    values,
    log_factorial,
    multiplicity,
    starts,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    mass_floor,
):
    """A pass over table-form problems (one feature, or independent
    features): the E step, then the M step or the gradient.

    Parameters
    ----------
    values, log_factorial, multiplicity : ndarray of shape (n_entries,)
        The distinct counts, ``log(x!)`` of each, and how often each occurs.
    starts : ndarray of int of shape (n_features,)
    log_weights : ndarray of shape (n_starts, n_components, 1 or n_features)
    log_alpha, log_b : ndarray of shape (n_starts, n_components, n_features)
    newton_steps : int
        Newton steps for alpha in the M step.
    mode : int
        ``LOG_LIKELIHOOD``, ``M_STEP`` or ``GRADIENT``.
    mass_floor : float

    Returns
    -------
    log_likelihood : ndarray of shape (n_starts, 1, n_features)
    weights, alpha, b : ndarray
        Shaped as the inputs (empty with ``LOG_LIKELIHOOD``): the new
        log-weights, log alpha and log b, or the gradient in the logits of
        components 2..K against component 1 (component 0 unused), in
        ``log alpha`` and in ``log b``.
    """
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_weight_groups = log_weights.shape[2]
    log_likelihood = np.empty((n_starts, 1, n_features))
    size = n_starts if mode != LOG_LIKELIHOOD else 0
    out_weights = np.empty((size, n_components, n_weight_groups))
    out_alpha = np.empty((size, n_components, n_features))
    out_b = np.empty((size, n_components, n_features))
    mass = np.empty((n_components, n_entries))
    totals = np.empty(n_components)
    scratch = np.empty((_WALK_SCRATCH, n_components))
    for s in range(n_starts):
        for f in range(n_features):
            low, high = _entries(starts, f, n_entries)
            w = f if n_weight_groups > 1 else 0
            log_likelihood[s, 0, f] = _table_e_step(
                values,
                log_factorial,
                multiplicity,
                low,
                high,
                log_weights[s, :, w],
                log_alpha[s, :, f],
                log_b[s, :, f],
                mass,
                scratch,
            )
            if mode == LOG_LIKELIHOOD:
                continue
            for k in range(n_components):
                total = mass_floor
                for e in range(low, high):
                    total += mass[k, e]
                totals[k] = total
                out_alpha[s, k, f], out_b[s, k, f] = _update(
                    values[low:high],
                    mass[k, low:high],
                    total,
                    log_alpha[s, k, f],
                    log_b[s, k, f],
                    newton_steps,
                    mode,
                )
            _update_weights(totals, log_weights[s, :, w], out_weights[s, :, w], mode)
    return log_likelihood, out_weights, out_alpha, out_b


@njit(cache=True, error_model="numpy")
def _cell_e_step(
    values,
    log_factorial,
    starts,
    indptr,
    indices,
    log_weights,
    log_alpha,
    log_b,
    entry,
    mass,
    totals,
    responsibilities,
    mass_floor,
):
    """The E step of one start of the shared model, one sample at a time.

    The log-likelihood is returned; with
    ``responsibilities``, each sample's responsibilities are added to the
    mass of its non-zero counts' entries (``mass``, entries by components,
    zeroed here) and to ``totals`` (from ``mass_floor``). ``entry`` is
    scratch space of the shape of ``mass``.
    """
    constant = _cell_terms(
        values, log_factorial, starts, log_weights, log_alpha, log_b, entry
    )
    return _cell_samples(
        entry, constant, indptr, indices, mass, totals, responsibilities, mass_floor
    )


@njit(cache=True, error_model="numpy")
def _cell_terms(values, log_factorial, starts, log_weights, log_alpha, log_b, entry):
    """What every sample's E step of one start reads: the log-probability of
    each entry's count under each component, into ``entry`` (entries by
    components), and, returned, each component's log-weight plus the
    log-probabilities of a zero count of all features (the same for every
    sample)."""
    n_components, n_features = log_alpha.shape
    n_entries = values.size
    constant = log_weights.copy()
    for k in range(n_components):
        for f in range(n_features):
            alpha, log_gamma_alpha, slope, zero = _count_terms(
                log_alpha[k, f], log_b[k, f]
            )
            constant[k] += zero
            low, high = _entries(starts, f, n_entries)
            for e in range(low, high):
                entry[e, k] = _count_log_prob(
                    values[e], log_factorial[e], alpha, log_gamma_alpha, slope
                )
    return constant


@njit(cache=True, error_model="numpy")
def _cell_samples(
    entry, constant, indptr, indices, mass, totals, responsibilities, mass_floor
):
    """The per-sample part of :func:`_cell_e_step`, for the samples of
    ``indptr`` (a slice of the indicator's, into the whole ``indices``)."""
    n_components = constant.size
    n_samples = indptr.size - 1
    joint = np.empty(n_components)
    total_log = 0.0
    mass[:] = 0.0
    totals[:] = mass_floor
    for n in range(n_samples):
        joint[:] = constant
        for p in range(indptr[n], indptr[n + 1]):
            e = indices[p]
            for k in range(n_components):
                joint[k] += entry[e, k]
        top = joint.max()
        norm = 0.0
        for k in range(n_components):
            joint[k] = math.exp(joint[k] - top)
            norm += joint[k]
        total_log += math.log(norm) + top
        if not responsibilities:
            continue
        for k in range(n_components):
            joint[k] /= norm
            totals[k] += joint[k]
        for p in range(indptr[n], indptr[n + 1]):
            e = indices[p]
            for k in range(n_components):
                mass[e, k] += joint[k]
    return total_log


@njit(cache=True, error_model="numpy")
def _update_from_mass(
    values,
    starts,
    by_component,
    totals,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    out_weights,
    out_alpha,
    out_b,
):
    """The M step, or the gradient, of one start of the shared model from its
    responsibility mass ``by_component`` (components by entries) and
    ``totals`` (per component), into ``out_weights`` (n_components,),
    ``out_alpha`` and ``out_b`` (n_components, n_features)."""
    n_components, n_features = log_alpha.shape
    n_entries = values.size
    for k in range(n_components):
        for f in range(n_features):
            low, high = _entries(starts, f, n_entries)
            out_alpha[k, f], out_b[k, f] = _update(
                values[low:high],
                by_component[k, low:high],
                totals[k],
                log_alpha[k, f],
                log_b[k, f],
                newton_steps,
                mode,
            )
    _update_weights(totals, log_weights, out_weights, mode)


@njit(cache=True, error_model="numpy", nogil=True)
def cell_step(
    values,
    log_factorial,
    starts,
    indptr,
    indices,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    mass_floor,
):
    """A pass over starts of the shared model on many features, one sample
    at a time: the E step, then the M step or the gradient.

    ``indptr`` and ``indices`` are the CSR indicator of the table: the
    entries of each sample's non-zero counts. Arguments and returns as
    :func:`table_step`, with ``log_weights`` of shape (n_starts,
    n_components, 1) and log-likelihoods of shape (n_starts, 1, 1).
    """
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    log_likelihood = np.empty((n_starts, 1, 1))
    size = n_starts if mode != LOG_LIKELIHOOD else 0
    all_mass = np.empty((size, n_components, n_entries))
    all_totals = np.empty((size, n_components))
    # Entries lead, components last: a sample's non-zero counts each read
    # (and write back) the K values of their entry at once.
    entry = np.empty((n_entries, n_components))
    mass = np.empty((n_entries, n_components))
    totals = np.empty(n_components)
    for s in range(n_starts):
        log_likelihood[s, 0, 0] = _cell_e_step(
            values,
            log_factorial,
            starts,
            indptr,
            indices,
            log_weights[s, :, 0],
            log_alpha[s],
            log_b[s],
            entry,
            mass,
            totals,
            size > 0,
            mass_floor,
        )
        if size:
            all_mass[s] = mass.T
            all_totals[s] = totals
    return (
        log_likelihood,
        *update_from_mass(
            values,
            starts,
            all_mass,
            all_totals,
            log_weights[:size],
            log_alpha[:size],
            log_b[:size],
            newton_steps,
            mode,
        ),
    )


@njit(cache=True, error_model="numpy", nogil=True)
def cell_terms(values, log_factorial, starts, log_weights, log_alpha, log_b):
    """:func:`_cell_terms` of each start of the shared model: the constants
    (n_starts, n_components) and the entries' log-probabilities (n_starts,
    n_entries, n_components) that :func:`cell_block_statistics` reads."""
    n_starts, n_components, n_features = log_alpha.shape
    constant = np.empty((n_starts, n_components))
    entry = np.empty((n_starts, values.size, n_components))
    for s in range(n_starts):
        constant[s] = _cell_terms(
            values,
            log_factorial,
            starts,
            log_weights[s, :, 0],
            log_alpha[s],
            log_b[s],
            entry[s],
        )
    return constant, entry


@njit(cache=True, error_model="numpy", nogil=True)
def cell_block_statistics(entry, constant, indptr, indices, responsibilities):
    """The E step of :func:`cell_step` on a block of samples (``indptr``, a
    slice of the indicator's), from :func:`cell_terms`, returning what the M
    step needs from it, which adds up over blocks: the log-likelihood
    (n_starts,), and with ``responsibilities`` the responsibility mass at
    each entry (n_starts, n_components, n_entries) and its total per
    component (n_starts, n_components); both are empty without."""
    n_starts, n_entries, n_components = entry.shape
    size = n_starts if responsibilities else 0
    log_likelihood = np.empty(n_starts)
    out_mass = np.empty((size, n_components, n_entries))
    out_totals = np.empty((size, n_components))
    mass = np.empty((n_entries, n_components))
    totals = np.empty(n_components)
    for s in range(n_starts):
        log_likelihood[s] = _cell_samples(
            entry[s],
            constant[s],
            indptr,
            indices,
            mass,
            totals,
            responsibilities,
            0.0,
        )
        if responsibilities:
            out_mass[s] = mass.T
            out_totals[s] = totals
    return log_likelihood, out_mass, out_totals


@njit(cache=True, error_model="numpy", nogil=True)
def update_from_mass(
    values, starts, mass, totals, log_weights, log_alpha, log_b, newton_steps, mode
):
    """The M step or the gradient (``mode``) of starts of the shared model
    from the responsibility mass and totals of :func:`cell_block_statistics`,
    added over the blocks of samples (``totals`` with the mass floor added
    once); returns the new parameters as :func:`cell_step` does."""
    n_starts, n_components, n_features = log_alpha.shape
    out_weights = np.empty((n_starts, n_components, 1))
    out_alpha = np.empty((n_starts, n_components, n_features))
    out_b = np.empty((n_starts, n_components, n_features))
    for s in range(n_starts):
        _update_from_mass(
            values,
            starts,
            np.ascontiguousarray(mass[s]),
            np.ascontiguousarray(totals[s]),
            log_weights[s, :, 0],
            log_alpha[s],
            log_b[s],
            newton_steps,
            mode,
            out_weights[s, :, 0],
            out_alpha[s],
            out_b[s],
        )
    return out_weights, out_alpha, out_b


# -- size factors -------------------------------------------------------------
#
# With a size factor s per sample, a count is NB(alpha, s b): its
# log-probability is ``lgamma(x + alpha) - lgamma(alpha) - log(x!) + x log(s
# b) - (x + alpha) log1p(s b)``. In the table form every entry is a distinct
# (count, size factor) pair of a feature. In the per-sample form the entries
# stay the distinct counts, and what depends on s is summed per sample: over
# its non-zero counts directly, and over all features, zeros included, as
# ``Z_k(log s) = sum_g alpha_kg log1p(s b_kg)``, a smooth function of the
# scalar ``log s`` that is interpolated from Chebyshev nodes (see
# sknbmix._likelihood.size_factor_nodes). The M step's sums over all samples
# of functions of ``s`` reduce, by the same interpolation, to sums over the
# nodes with the responsibility mass that the samples' Lagrange weights put
# on them.


@njit(cache=True, error_model="numpy")
def _softplus(z):
    """``log(1 + exp(z))``, without overflow, and 0 at ``-inf``."""
    if z > 0.0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@njit(cache=True, error_model="numpy")
def _sigmoid(z):
    """``1 / (1 + exp(-z))``, the derivative of :func:`_softplus`."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def _lagrange(t, nodes, barycentric, out):
    """The Lagrange basis of ``nodes`` at ``t``, into ``out``, by the
    barycentric formula (stable, and exact at a node)."""
    total = 0.0
    for j in range(nodes.size):
        if t == nodes[j]:
            out[:] = 0.0
            out[j] = 1.0
            return
        out[j] = barycentric[j] / (t - nodes[j])
        total += out[j]
    for j in range(nodes.size):
        out[j] /= total


@njit(cache=True, error_model="numpy")
def _scaled_objective(
    values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b
):
    """The M step's objective of one component and feature with size
    factors, up to a constant: ``sum_x m_x [lgamma(x + alpha) -
    lgamma(alpha)] + first log b - sum_j (alpha w_j + v_j) log1p(s_j b)``,
    less a quadratic model of the count terms.

    ``node_t`` holds log size factors with mass ``node_w`` and count mass
    ``node_v``. ``count = (log b0, slope, curvature, kappa)`` models the
    count terms that the nodes leave out, ``sum_i r_i x_i log1p(s_i b)``
    (see :func:`scaled_cell_step`), as ``slope d + kappa curvature d**2 /
    2`` in ``d = log b - log b0``; zeros where the nodes hold them all.
    """
    alpha = math.exp(log_alpha)
    log_gamma_alpha = math.lgamma(alpha)
    total = 0.0
    for e in range(values.size):
        if values[e] > 0.0:
            total += mass[e] * _log_rising_factorial(values[e], alpha, log_gamma_alpha)
    for j in range(node_t.size):
        total -= (alpha * node_w[j] + node_v[j]) * _softplus(node_t[j] + log_b)
    d = log_b - count[0]
    return total + first * log_b - d * (count[1] + 0.5 * _count_curvature(count, d) * d)


@njit(cache=True, error_model="numpy")
def _count_curvature(count, d):
    """The curvature of the count terms' model at ``d = log b - log b0``:
    ``kappa`` times their curvature at ``b0``, or the curvature itself on
    the way down where every ``s b0 <= 1`` (``count[4]``): there each term's
    curvature falls as ``b`` does (see :func:`scaled_cell_step`)."""
    if d < 0.0 and count[4] > 0.0:
        return count[2]
    return count[3] * count[2]


@njit(cache=True, error_model="numpy")
def _scaled_derivatives(
    values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b, grid
):
    """Gradient and Hessian of :func:`_scaled_objective` in ``(log alpha,
    log b)``: ``(g_a, g_b, h_aa, h_ab, h_bb)``."""
    alpha = math.exp(log_alpha)
    # The digamma sum and alpha times its slope (no profile term: total 0).
    digamma_sum, digamma_slope = _alpha_score(values, mass, 0.0, 1.0, log_alpha, grid)
    w_soft, w_sig, w_curve, v_sig, v_curve = 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(node_t.size):
        z = node_t[j] + log_b
        sig = _sigmoid(z)
        w_soft += node_w[j] * _softplus(z)
        w_sig += node_w[j] * sig
        w_curve += node_w[j] * sig * (1.0 - sig)
        v_sig += node_v[j] * sig
        v_curve += node_v[j] * sig * (1.0 - sig)
    d = log_b - count[0]
    model_curvature = _count_curvature(count, d)
    g_a = alpha * (digamma_sum - w_soft)
    g_b = first - alpha * w_sig - v_sig - count[1] - model_curvature * d
    return (
        g_a,
        g_b,
        g_a + alpha * digamma_slope,
        -alpha * w_sig,
        -alpha * w_curve - v_curve - model_curvature,
    )


@njit(cache=True, error_model="numpy")
def _scaled_m_step_feature(
    values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b, max_iter
):
    """``(log alpha, log b)`` of one component and feature with size factors:
    up to ``max_iter`` Newton steps on :func:`_scaled_objective` from the
    current parameters. One step is taken as it is (like the M step without
    size factors, it need not be a maximum; the EM driver redoes the rare
    step that lowers the likelihood, with more steps); more are each halved
    until the objective does not fall, which makes them an ascent.

    The steps are taken in ``log alpha`` and ``log mean``: towards the
    Poisson limit the objective depends on the mean alone, so there a step
    capped in ``log alpha`` (at most two e-folds, or by alpha's bound) must
    not cap the step in the mean. Where the Hessian is not negative definite
    each coordinate moves by its gradient over its curvature, or one e-fold
    uphill where that curvature is not negative. With a count model of
    ``kappa > 1`` (a bound, see :func:`scaled_cell_step`) ``log b`` stays
    within ``log kappa`` of ``log b0``, where the bound holds.
    """
    grid = values[values.size - 1] <= _GRID_RATIO * values.size
    log_b0, kappa = count[0], count[3]
    reach = math.log(kappa) if kappa > 1.0 else np.inf
    reach_down = np.inf if count[4] > 0.0 else reach
    # A bound makes every checked step an ascent of the likelihood.
    checked = max_iter > 1 or kappa > 1.0
    current = (
        _scaled_objective(
            values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b
        )
        if checked
        else 0.0
    )
    for _ in range(max_iter):
        g_a, g_b, h_aa, h_ab, h_bb = _scaled_derivatives(
            values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b, grid
        )
        # To (log alpha, log mean): log b = log mean - log alpha.
        g_a, h_aa, h_ab = g_a - g_b, h_aa - 2.0 * h_ab + h_bb, h_ab - h_bb
        det = h_aa * h_bb - h_ab * h_ab
        if h_aa < 0.0 and det > 0.0:
            step_a = (h_ab * g_b - h_bb * g_a) / det
            step_m = (h_ab * g_a - h_aa * g_b) / det
        else:
            step_a = -g_a / h_aa if h_aa < 0.0 else float(np.sign(g_a))
            step_m = -g_b / h_bb if h_bb < 0.0 else float(np.sign(g_b))
        step_a = min(max(step_a, -_SCALED_STEP), _SCALED_STEP)
        step_m = min(max(step_m, -_SCALED_STEP), _SCALED_STEP)
        # Within the bound's reach, the whole step shrunk (a step in log b
        # alone would unbalance alpha and the mean).
        step_b = step_m - step_a
        room = (log_b0 + reach if step_b > 0.0 else log_b0 - reach_down) - log_b
        if abs(step_b) > abs(room):
            shrink = abs(room) / abs(step_b)
            step_a *= shrink
            step_m *= shrink
        log_mean = log_alpha + log_b
        length = 1.0
        moved = False
        for _ in range(40):
            new_a = log_alpha + length * step_a
            new_a = min(max(new_a, _LOG_ALPHA_MIN), _LOG_ALPHA_MAX)
            new_b = log_mean + length * step_m - new_a
            new_b = min(max(new_b, log_b0 - reach_down, _LOG_B_MIN), log_b0 + reach)
            new_b = min(new_b, _LOG_B_MAX)
            if not checked:
                return new_a, new_b
            value = _scaled_objective(
                values, mass, node_t, node_w, node_v, first, count, new_a, new_b
            )
            if value >= current:
                moved = True
                break
            length *= 0.5
        if not moved:
            break
        done = abs(new_a - log_alpha) + abs(new_b - log_b) < _NEWTON_DONE
        log_alpha, log_b, current = new_a, new_b, value
        if done:
            break
    return log_alpha, log_b


@njit(cache=True, error_model="numpy")
def _scaled_update(
    values, mass, node_t, node_w, node_v, count, log_alpha, log_b, newton_steps, mode
):
    """:func:`_update` with size factors: the M step's ``(log alpha, log b)``
    of one component and feature, or the gradient in them."""
    first = 0.0
    for e in range(values.size):
        first += mass[e] * values[e]
    if mode == GRADIENT:
        grid = values[values.size - 1] <= _GRID_RATIO * values.size
        return _scaled_derivatives(
            values, mass, node_t, node_w, node_v, first, count, log_alpha, log_b, grid
        )[:2]
    return _scaled_m_step_feature(
        values,
        mass,
        node_t,
        node_w,
        node_v,
        first,
        count,
        log_alpha,
        log_b,
        newton_steps,
    )


@njit(cache=True, error_model="numpy")
def _scaled_entry_log_prob(x, log_factorial, t, alpha, log_gamma_alpha, log_b):
    """``log NB(x; alpha, s b)`` with ``t = log s`` (``-inf`` for a sample
    without counts, whose zeros have probability 1)."""
    z = t + log_b
    out = -alpha * _softplus(z)
    if x > 0.0:
        # x log(s b / (1 + s b)) = -x log1p(1 / (s b)).
        out += _count_log_prob(x, log_factorial, alpha, log_gamma_alpha, -_softplus(-z))
    return out


@njit(cache=True, error_model="numpy")
def _softplus_pair(z):
    """``(log1p(exp(z)), log1p(exp(-z)))``, sharing their one log1p."""
    shared = math.log1p(math.exp(-abs(z)))
    return max(z, 0.0) + shared, max(-z, 0.0) + shared


@njit(cache=True, error_model="numpy")
def _scaled_table_e_step(
    values,
    log_factorial,
    multiplicity,
    scale_index,
    log_scales,
    low,
    high,
    log_weights,
    log_alpha,
    log_b,
    mass,
    soft,
    soft_inverse,
):
    """:func:`_table_e_step` with size factors (see
    :func:`scaled_table_step`); ``soft`` and ``soft_inverse`` are scratch
    space of one value per distinct size factor."""
    for k in range(log_alpha.size):
        alpha = math.exp(log_alpha[k])
        log_gamma_alpha = math.lgamma(alpha)
        for d in range(log_scales.size):
            soft[d], soft_inverse[d] = _softplus_pair(log_scales[d] + log_b[k])
        coefficient = 0.0
        previous = 0.0
        for e in range(low, high):
            x = values[e]
            d = scale_index[e]
            log_prob = log_weights[k] - alpha * soft[d]
            if x > 0.0:
                if x != previous:
                    # lgamma(x + alpha) - lgamma(alpha) - log(x!).
                    coefficient = _count_log_prob(
                        x, log_factorial[e], alpha, log_gamma_alpha, 0.0
                    )
                    previous = x
                # x log(s b / (1 + s b)) = -x log1p(1 / (s b)).
                log_prob += coefficient - x * soft_inverse[d]
            mass[k, e] = log_prob
    return _normalise_entries(multiplicity, low, high, mass)


@njit(cache=True, error_model="numpy")
def scaled_table_step(
    values,
    log_factorial,
    multiplicity,
    scale_index,
    log_scales,
    starts,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    mass_floor,
):
    """:func:`table_step` with size factors: each entry is a distinct
    (count, size factor) pair of a feature, its size factor
    ``log_scales[scale_index[e]]`` (see
    :func:`sknbmix._data.build_scaled_table`: a feature's entries begin with
    a zero for each distinct size factor, then its non-zero counts by
    count).

    What an entry's log-probability needs is computed once per distinct
    count (``lgamma``) and once per distinct size factor (``log1p(s b)``
    and ``log1p(1 / (s b))``), not once per entry. The M step is exact: its
    nodes are the distinct size factors with the responsibility mass (and
    count mass) of the feature's entries at each, and its digamma sums run
    over the distinct counts.
    """
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_scales = log_scales.size
    n_weight_groups = log_weights.shape[2]
    log_likelihood = np.empty((n_starts, 1, n_features))
    size = n_starts if mode != LOG_LIKELIHOOD else 0
    out_weights = np.empty((size, n_components, n_weight_groups))
    out_alpha = np.empty((size, n_components, n_features))
    out_b = np.empty((size, n_components, n_features))
    mass = np.empty((n_components, n_entries))
    soft = np.empty(n_scales)
    soft_inverse = np.empty(n_scales)
    node_mass = np.empty(n_scales)
    node_count_mass = np.empty(n_scales)
    distinct = np.empty(n_entries)
    distinct_mass = np.empty(n_entries)
    totals = np.empty(n_components)
    for s in range(n_starts):
        for f in range(n_features):
            low, high = _entries(starts, f, n_entries)
            w = f if n_weight_groups > 1 else 0
            log_likelihood[s, 0, f] = _scaled_table_e_step(
                values,
                log_factorial,
                multiplicity,
                scale_index,
                log_scales,
                low,
                high,
                log_weights[s, :, w],
                log_alpha[s, :, f],
                log_b[s, :, f],
                mass,
                soft,
                soft_inverse,
            )
            if mode == LOG_LIKELIHOOD:
                continue
            for k in range(n_components):
                total = mass_floor
                node_mass[:] = 0.0
                node_count_mass[:] = 0.0
                n_distinct = 0
                for e in range(low, high):
                    m = mass[k, e]
                    total += m
                    d = scale_index[e]
                    node_mass[d] += m
                    node_count_mass[d] += m * values[e]
                    if n_distinct == 0 or values[e] != distinct[n_distinct - 1]:
                        distinct[n_distinct] = values[e]
                        distinct_mass[n_distinct] = 0.0
                        n_distinct += 1
                    distinct_mass[n_distinct - 1] += m
                totals[k] = total
                out_alpha[s, k, f], out_b[s, k, f] = _scaled_update(
                    distinct[:n_distinct],
                    distinct_mass[:n_distinct],
                    log_scales,
                    node_mass,
                    node_count_mass,
                    (log_b[s, k, f], 0.0, 0.0, 1.0, 0.0),
                    log_alpha[s, k, f],
                    log_b[s, k, f],
                    newton_steps,
                    mode,
                )
            _update_weights(totals, log_weights[s, :, w], out_weights[s, :, w], mode)
    return log_likelihood, out_weights, out_alpha, out_b


@njit(cache=True, error_model="numpy")
def scaled_entry_log_prob(
    values, log_factorial, entry_log_scale, starts, log_alpha, log_b
):
    """``log NB`` of each entry of a table with size factors, shaped
    (n_starts, n_components, n_entries)."""
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    out = np.empty((n_starts, n_components, n_entries))
    for s in range(n_starts):
        for k in range(n_components):
            for f in range(n_features):
                alpha = math.exp(log_alpha[s, k, f])
                log_gamma_alpha = math.lgamma(alpha)
                low, high = _entries(starts, f, n_entries)
                for e in range(low, high):
                    out[s, k, e] = _scaled_entry_log_prob(
                        values[e],
                        log_factorial[e],
                        entry_log_scale[e],
                        alpha,
                        log_gamma_alpha,
                        log_b[s, k, f],
                    )
    return out


@njit(cache=True, error_model="numpy")
def repeated_counts(indptr, indices, values):
    """Each sample's entries of counts above 1, as CSR ``(indptr,
    indices)`` (the second pass of :func:`_add_count_terms`), and each
    sample's total count."""
    n_samples = indptr.size - 1
    out_indptr = np.zeros(n_samples + 1, dtype=np.int64)
    totals = np.zeros(n_samples)
    for n in range(n_samples):
        found = 0
        for p in range(indptr[n], indptr[n + 1]):
            totals[n] += values[indices[p]]
            if values[indices[p]] > 1.0:
                found += 1
        out_indptr[n + 1] = out_indptr[n] + found
    out_indices = np.empty(out_indptr[n_samples], dtype=indices.dtype)
    q = 0
    for n in range(n_samples):
        for p in range(indptr[n], indptr[n + 1]):
            if values[indices[p]] > 1.0:
                out_indices[q] = indices[p]
                q += 1
    return out_indptr, out_indices, totals


@njit(cache=True, error_model="numpy")
def _add_count_terms(
    values,
    feature,
    indices,
    low,
    high,
    repeated,
    repeated_low,
    repeated_high,
    entry,
    b,
    s,
    budget,
    product,
    joint,
):
    """Add to ``joint`` the terms of one sample's non-zero counts (entries
    ``indices[low:high]``) that depend on the component: ``entry[e, k] - x
    log1p(s b[f, k])``.

    ``sum x log1p(s b)`` is taken as the log of a product of the factors
    ``1 + s b``: one log per component and a few dozen counts instead of
    one per count, the cost of the E step with size factors. A first pass
    takes one factor of every count, branch-free; a second, over the
    sample's counts above 1 (``repeated[repeated_low:repeated_high]``),
    the other ``x - 1`` (a count above ``_PRODUCT_COUNT`` takes its log1p
    directly). A factor rounds ``s b`` to the ulp of ``1 + s b``, which
    moves the log by at most 1.1e-16 in absolute terms, as the rounding of
    a log1p would. The products are folded into ``joint`` before
    ``budget`` factors (as many as the largest factor can take before they
    could overflow) have gone in.
    """
    n_components = joint.size
    chunk = max(int(budget), 1)
    for first in range(low, high, chunk):
        product[:] = 1.0
        last = min(first + chunk, high)
        # Two loops, each over one output, vectorise where one would not.
        for p in range(first, last):
            e = indices[p]
            for k in range(n_components):
                joint[k] += entry[e, k]
        for p in range(first, last):
            f = feature[indices[p]]
            for k in range(n_components):
                product[k] *= 1.0 + s * b[f, k]
        for k in range(n_components):
            joint[k] -= math.log(product[k])
    product[:] = 1.0
    used = 0.0
    for p in range(repeated_low, repeated_high):
        e = repeated[p]
        x = values[e]
        f = feature[e]
        if x > _PRODUCT_COUNT or x - 1.0 > budget:
            for k in range(n_components):
                joint[k] -= (x - 1.0) * math.log1p(s * b[f, k])
            continue
        if used + x - 1.0 > budget:
            for k in range(n_components):
                joint[k] -= math.log(product[k])
            product[:] = 1.0
            used = 0.0
        used += x - 1.0
        extra = int(x) - 1
        for k in range(n_components):
            factor = 1.0 + s * b[f, k]
            power = factor
            for _ in range(extra - 1):
                power *= factor
            product[k] *= power
    for k in range(n_components):
        joint[k] -= math.log(product[k])


@njit(cache=True, error_model="numpy")
def _scaled_cell_e_step(
    values,
    log_factorial,
    feature,
    starts,
    indptr,
    indices,
    repeated,
    cell_log_scale,
    node_t,
    barycentric,
    log_weights,
    log_alpha,
    log_b,
    work,
    responsibilities,
    mass_floor,
    cell_log_prob,
    cell_resp,
):
    """:func:`_cell_e_step` with size factors, for one start.

    ``repeated`` is what :func:`repeated_counts` returns for the indicator.

    ``work`` holds the scratch and the statistics: ``entry`` and ``mass``
    (entries by components), ``totals`` (components), ``node_mass``
    (components by nodes: each sample's responsibilities spread over the
    nodes by its Lagrange weights), and ``slope`` and ``curvature``
    (features by components: ``sum_i r_ik x_ig p_ikg`` and ``sum_i r_ik x_ig
    p_ikg (1 - p_ikg)``, ``p = s b / (1 + s b)``, the first two derivatives
    in ``log b`` of the count terms ``x log1p(s b)``). With non-empty
    ``cell_log_prob`` and ``cell_resp`` each sample's log-likelihood and
    responsibilities go there too.
    """
    entry, mass, totals, node_mass, slope, curvature = work
    n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_samples = indptr.size - 1
    n_nodes = node_t.size
    b = np.empty((n_features, n_components))
    node_value = np.zeros((n_nodes, n_components))
    for k in range(n_components):
        for f in range(n_features):
            alpha = math.exp(log_alpha[k, f])
            log_gamma_alpha = math.lgamma(alpha)
            b[f, k] = math.exp(log_b[k, f])
            for j in range(n_nodes):
                node_value[j, k] += alpha * _softplus(node_t[j] + log_b[k, f])
            low, high = _entries(starts, f, n_entries)
            for e in range(low, high):
                # The terms without s: lgamma(x + alpha) - lgamma(alpha) -
                # log(x!) + x log b.
                entry[e, k] = _count_log_prob(
                    values[e], log_factorial[e], alpha, log_gamma_alpha, log_b[k, f]
                )
    lagrange = np.empty(n_nodes)
    joint = np.empty(n_components)
    product = np.empty(n_components)
    largest_b = b.max()
    total_log = 0.0
    mass[:] = 0.0
    totals[:] = mass_floor
    node_mass[:] = 0.0
    slope[:] = 0.0
    curvature[:] = 0.0
    keep = cell_log_prob.size > 0
    for n in range(n_samples):
        t = cell_log_scale[n]
        joint[:] = log_weights
        # A sample without counts (size factor 0) has probability 1 under
        # every component: its responsibilities are the weights.
        scaled = t > -np.inf
        count_total = 0.0
        if scaled:
            _lagrange(t, node_t, barycentric, lagrange)
            for k in range(n_components):
                z = 0.0
                for j in range(n_nodes):
                    z += lagrange[j] * node_value[j, k]
                joint[k] -= z
            s = math.exp(t)
            _add_count_terms(
                values,
                feature,
                indices,
                indptr[n],
                indptr[n + 1],
                repeated[1],
                repeated[0][n],
                repeated[0][n + 1],
                entry,
                b,
                s,
                _PRODUCT_LOG_LIMIT / math.log1p(s * largest_b),
                product,
                joint,
            )
            count_total = repeated[2][n]
        top = joint.max()
        norm = 0.0
        for k in range(n_components):
            joint[k] = math.exp(joint[k] - top)
            norm += joint[k]
        # x log s is the same for every component.
        log_prob = math.log(norm) + top + (count_total * t if scaled else 0.0)
        total_log += log_prob
        for k in range(n_components):
            joint[k] /= norm
        if keep:
            cell_log_prob[n] = log_prob
            cell_resp[n, :] = joint
        if not responsibilities:
            continue
        for k in range(n_components):
            totals[k] += joint[k]
        if not scaled:
            continue
        for k in range(n_components):
            for j in range(n_nodes):
                node_mass[k, j] += joint[k] * lagrange[j]
        for p in range(indptr[n], indptr[n + 1]):
            e = indices[p]
            for k in range(n_components):
                mass[e, k] += joint[k]
        for p in range(indptr[n], indptr[n + 1]):
            e = indices[p]
            x = values[e]
            f = feature[e]
            for k in range(n_components):
                scaled_b = s * b[f, k]
                p_scaled = scaled_b / (1.0 + scaled_b)
                weighted = joint[k] * x * p_scaled
                slope[f, k] += weighted
                curvature[f, k] += weighted * (1.0 - p_scaled)
    return total_log


@njit(cache=True, error_model="numpy", nogil=True)
def scaled_cell_step(
    values,
    log_factorial,
    feature,
    starts,
    indptr,
    indices,
    repeated,
    cell_log_scale,
    node_t,
    barycentric,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    mass_floor,
    count_bound,
):
    """:func:`cell_step` with a size factor per sample (``cell_log_scale``,
    its log), interpolated between the Chebyshev nodes ``node_t`` with
    barycentric weights ``barycentric``.

    In EM's objective the count terms ``-sum_i r_i x_i log1p(s_i b)`` of a
    component and feature run over its samples with non-zero counts, each
    with its own size factor, and would need a pass over them for every
    trial ``b``. The M step takes them as a quadratic in ``d = log b - log
    b0`` from their first two derivatives at the current ``b0``, summed in
    the E step, with the curvature times ``count_bound``. With 1 that is
    Newton's model of them (EM's rate of convergence; a step may lower the
    likelihood, and the EM driver then redoes it exactly). With ``kappa =
    count_bound > 1`` and ``|d| <= log kappa`` it is a bound: the curvature
    of ``log1p(s e**u)`` in ``u`` is ``1 / (4 cosh(z / 2)**2)``, ``z = u +
    log s``, which changes by at most ``e**|d|`` over a step ``d``, and only
    falls as ``u`` falls where ``z <= 0``: so where every ``s b0 <= 1`` the
    curvature itself bounds the way down, however far. The M step then
    maximises a minorant by steps that do not lower it, and cannot lower
    the likelihood. The rest is exact. The gradient at the current
    parameters is the log-likelihood's (Fisher's identity)."""
    statistics = scaled_cell_block_statistics(
        values,
        log_factorial,
        feature,
        starts,
        indptr,
        indices,
        repeated,
        cell_log_scale,
        node_t,
        barycentric,
        log_weights,
        log_alpha,
        log_b,
        mode != LOG_LIKELIHOOD,
        mass_floor,
    )
    size = n_starts = log_alpha.shape[0]
    if mode == LOG_LIKELIHOOD:
        size = 0
    return (
        statistics[0].reshape(n_starts, 1, 1),
        *scaled_update_from_statistics(
            values,
            starts,
            node_t,
            statistics[1:],
            log_weights[:size],
            log_alpha[:size],
            log_b[:size],
            newton_steps,
            mode,
            count_bound,
        ),
    )


@njit(cache=True, error_model="numpy")
def _scaled_work(n_entries, n_components, n_nodes, n_features):
    """Scratch and statistics of :func:`_scaled_cell_e_step` for one start:
    ``entry``, ``mass``, ``totals``, ``node_mass``, ``slope``,
    ``curvature``."""
    return (
        np.empty((n_entries, n_components)),
        np.empty((n_entries, n_components)),
        np.empty(n_components),
        np.empty((n_components, n_nodes)),
        np.empty((n_features, n_components)),
        np.empty((n_features, n_components)),
    )


@njit(cache=True, error_model="numpy", nogil=True)
def scaled_cell_block_statistics(
    values,
    log_factorial,
    feature,
    starts,
    indptr,
    indices,
    repeated,
    cell_log_scale,
    node_t,
    barycentric,
    log_weights,
    log_alpha,
    log_b,
    responsibilities,
    mass_floor,
):
    """The E step of :func:`scaled_cell_step` on a block of samples, for
    each start: the log-likelihood (n_starts,) and, with
    ``responsibilities``, the statistics of :func:`_scaled_cell_e_step`
    (mass, totals from ``mass_floor``, node mass, slope and curvature, each
    with a leading start axis; empty without), which add up over blocks.
    ``indptr``, ``cell_log_scale`` and the per-sample parts of ``repeated``
    are the block's slices; ``indices`` is whole."""
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_nodes = node_t.size
    size = n_starts if responsibilities else 0
    log_likelihood = np.empty(n_starts)
    mass = np.empty((size, n_entries, n_components))
    totals = np.empty((size, n_components))
    node_mass = np.empty((size, n_components, n_nodes))
    slope = np.empty((size, n_features, n_components))
    curvature = np.empty((size, n_features, n_components))
    work = _scaled_work(n_entries, n_components, n_nodes, n_features)
    for s in range(n_starts):
        log_likelihood[s] = _scaled_cell_e_step(
            values,
            log_factorial,
            feature,
            starts,
            indptr,
            indices,
            repeated,
            cell_log_scale,
            node_t,
            barycentric,
            log_weights[s, :, 0],
            log_alpha[s],
            log_b[s],
            work,
            responsibilities,
            mass_floor,
            np.empty(0),
            np.empty((0, n_components)),
        )
        if responsibilities:
            mass[s] = work[1]
            totals[s] = work[2]
            node_mass[s] = work[3]
            slope[s] = work[4]
            curvature[s] = work[5]
    return log_likelihood, mass, totals, node_mass, slope, curvature


@njit(cache=True, error_model="numpy", nogil=True)
def scaled_update_from_statistics(
    values,
    starts,
    node_t,
    statistics,
    log_weights,
    log_alpha,
    log_b,
    newton_steps,
    mode,
    count_bound,
):
    """The M step or the gradient (``mode``) of :func:`scaled_cell_step` for
    each start, from the statistics of :func:`scaled_cell_block_statistics`
    (added over the blocks of samples; the totals with the mass floor)."""
    mass, totals, node_mass, slope, curvature = statistics
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    out_weights = np.empty((n_starts, n_components, 1))
    out_alpha = np.empty((n_starts, n_components, n_features))
    out_b = np.empty((n_starts, n_components, n_features))
    no_count_mass = np.zeros(node_t.size)
    largest_log_scale = node_t.max()
    for s in range(n_starts):
        by_component = np.ascontiguousarray(mass[s].T)
        for k in range(n_components):
            for f in range(n_features):
                low, high = _entries(starts, f, n_entries)
                out_alpha[s, k, f], out_b[s, k, f] = _scaled_update(
                    values[low:high],
                    by_component[k, low:high],
                    node_t,
                    node_mass[s, k],
                    no_count_mass,
                    (
                        log_b[s, k, f],
                        slope[s, f, k],
                        curvature[s, f, k],
                        count_bound,
                        # Every s b <= 1: the bound holds all the way down.
                        1.0 if largest_log_scale + log_b[s, k, f] <= 0.0 else 0.0,
                    ),
                    log_alpha[s, k, f],
                    log_b[s, k, f],
                    newton_steps,
                    mode,
                )
        _update_weights(
            np.ascontiguousarray(totals[s]),
            log_weights[s, :, 0],
            out_weights[s, :, 0],
            mode,
        )
    return out_weights, out_alpha, out_b


@njit(cache=True, error_model="numpy")
def scaled_cell_log_prob(
    values,
    log_factorial,
    feature,
    starts,
    indptr,
    indices,
    repeated,
    cell_log_scale,
    node_t,
    barycentric,
    log_weights,
    log_alpha,
    log_b,
):
    """Each sample's log-likelihood and responsibilities under one start of
    the shared model with size factors (``log_weights`` of shape
    (n_components,), ``log_alpha`` and ``log_b`` (n_components,
    n_features))."""
    n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_samples = indptr.size - 1
    work = _scaled_work(n_entries, n_components, node_t.size, n_features)
    cell_log_prob = np.empty(n_samples)
    cell_resp = np.empty((n_samples, n_components))
    _scaled_cell_e_step(
        values,
        log_factorial,
        feature,
        starts,
        indptr,
        indices,
        repeated,
        cell_log_scale,
        node_t,
        barycentric,
        log_weights,
        log_alpha,
        log_b,
        work,
        False,
        0.0,
        cell_log_prob,
        cell_resp,
    )
    return cell_log_prob, cell_resp


# -- the Hessian of the table form ---------------------------------------------


@njit(cache=True, error_model="numpy")
def trigamma(x):
    """``trigamma(x)`` for ``x > 0``: the recurrence up to 10, then the
    asymptotic series (first omitted term below 1e-16)."""
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    r = 1.0 / x
    r2 = r * r
    series = r2 * (
        1.0 / 6
        - r2
        * (
            1.0 / 30
            - r2
            * (
                1.0 / 42
                - r2 * (1.0 / 30 - r2 * (5.0 / 66 - r2 * (691 / 2730 - r2 * 7 / 6)))
            )
        )
    )
    return result + r + 0.5 * r2 + r * series


@njit(cache=True, error_model="numpy")
def _digamma_difference(x, alpha, at_alpha):
    """``digamma(x + alpha) - digamma(alpha)``, given ``digamma(alpha)``."""
    if x == 0.0:
        return 0.0
    if alpha > SERIES_ALPHA:
        return _digamma_series(x, alpha)
    return digamma(x + alpha) - at_alpha


@njit(cache=True, error_model="numpy")
def _trigamma_difference(x, alpha, at_alpha):
    """``trigamma(x + alpha) - trigamma(alpha)``, given ``trigamma(alpha)``;
    above ``SERIES_ALPHA``, where the two cancel, the difference of the
    first terms of their series (``1/z + 1/(2 z**2) + 1/(6 z**3)``; the
    next, ``1 / (30 alpha**5)``, is below 1e-16)."""
    if x == 0.0:
        return 0.0
    if alpha <= SERIES_ALPHA:
        return trigamma(x + alpha) - at_alpha
    z = x + alpha
    az = alpha * z
    return -x * (
        1.0 / az
        + (alpha + z) / (2.0 * az * az)
        + (z * z + az + alpha * alpha) / (6.0 * az * az * az)
    )


@njit(cache=True, error_model="numpy")
def _polygamma_differences(values, low, high, alpha, digamma_out, trigamma_out):
    """``digamma(x + alpha) - digamma(alpha)`` and the same of trigamma at
    the counts ``x`` of entries ``low`` to ``high`` (ascending).

    Across a short gap from the previous count the differences are carried
    on by the recurrences, ``+ 1 / (alpha + j)`` and ``- 1 / (alpha +
    j)**2`` per integer ``j`` in between (divisions, where a direct
    difference costs two series); across a long one they are computed
    directly.
    """
    at_digamma, at_trigamma = digamma(alpha), trigamma(alpha)
    first, second, j = 0.0, 0.0, 0.0
    for e in range(low, high):
        x = values[e]
        if x - j > _RECURRENCE_GAP or x != math.floor(x):
            first = _digamma_difference(x, alpha, at_digamma)
            second = _trigamma_difference(x, alpha, at_trigamma)
            j = x
        while j < x:
            reciprocal = 1.0 / (alpha + j)
            first += reciprocal
            second -= reciprocal * reciprocal
            j += 1.0
        digamma_out[e] = first
        trigamma_out[e] = second


@njit(cache=True, error_model="numpy")
def _scale_terms(log_alpha, log_b, log_scales, out):
    """What an entry's derivatives share with every entry of its size factor
    (one, ``s = 1``, without size factors): for each component and size
    factor, ``q = s b / (1 + s b)``, ``1 - q``, the mean ``s alpha b`` and
    ``log1p(s b)``."""
    for k in range(log_alpha.size):
        alpha = math.exp(log_alpha[k])
        for d in range(out.shape[2]):
            z = log_b[k] + (log_scales[d] if log_scales.size else 0.0)
            out[0, k, d] = _sigmoid(z)
            out[1, k, d] = _sigmoid(-z)
            out[2, k, d] = alpha * math.exp(z)
            out[3, k, d] = _softplus(z)


@njit(cache=True, error_model="numpy")
def _add_entry_hessian(
    x,
    d,
    alphas,
    scale_terms,
    mass,
    n,
    e,
    digammas,
    trigammas,
    mean_gradient,
    hessian,
):
    """Add the term of entry ``e`` (count ``x``, size factor ``d`` of
    :func:`_scale_terms`, multiplicity ``n``) to the Hessian of one problem.

    With ``a_k`` the log of component k's weight times its probability of
    the entry, the entry's log-likelihood is ``log sum_k exp(a_k)``, whose
    Hessian is ``sum_k r_k (H a_k + g_k g_k') - gbar gbar'`` (``r`` the
    responsibilities, ``g_k`` the gradient of ``a_k``, ``gbar = sum_k r_k
    g_k``). ``g_k`` holds 1 at component k's logit (the part from the other
    logits, the same for every k, drops out of the difference), and the
    derivatives of ``log NB(x; alpha, s mean)`` in ``u = log alpha`` and
    ``v = log mean``. The logits' own second derivatives, the same for every
    entry, are added once per problem by the caller. Only the upper triangle
    is filled (the caller mirrors it).
    """
    n_components = alphas.size
    first = n_components - 1
    mean_gradient[:] = 0.0
    for k in range(n_components):
        r = mass[k, e]  # n r_k
        alpha = alphas[k]
        q, p = scale_terms[0, k, d], scale_terms[1, k, d]
        m, soft = scale_terms[2, k, d], scale_terms[3, k, d]
        # x - (x + alpha) q, without its cancellation at large counts.
        d_v = (x - m) * p
        d_u = alpha * (digammas[k, e] - soft) + p * (m - x)
        d_uu = d_u + alpha * alpha * trigammas[k, e] + alpha * q - (m - x) * p * p
        d_uv = (x - m) * q * p
        d_vv = -(x + alpha) * q * p
        u, v = first + k, first + n_components + k
        if k > 0:
            j = k - 1
            mean_gradient[j] += r
            hessian[j, j] += r
            hessian[j, u] += r * d_u
            hessian[j, v] += r * d_v
        mean_gradient[u] += r * d_u
        mean_gradient[v] += r * d_v
        hessian[u, u] += r * (d_u * d_u + d_uu)
        hessian[v, v] += r * (d_v * d_v + d_vv)
        hessian[u, v] += r * (d_u * d_v + d_uv)
    for i in range(mean_gradient.size):
        scaled = mean_gradient[i] / n
        for j in range(i, mean_gradient.size):
            hessian[i, j] -= scaled * mean_gradient[j]


@njit(cache=True, error_model="numpy")
def table_hessian(
    values,
    log_factorial,
    multiplicity,
    scale_index,
    log_scales,
    starts,
    log_weights,
    log_alpha,
    log_b,
):
    """The Hessian of each table-form problem's log-likelihood, in Newton's
    coordinates (see :func:`sknbmix._newton.to_rows`): the logits of
    components 2..K against component 1, then ``log alpha`` and ``log
    mean`` of each component.

    The arguments are those of :func:`table_step`, with ``scale_index`` and
    ``log_scales`` those of :func:`scaled_table_step` (both empty without
    size factors).

    Returns
    -------
    hessian : ndarray of shape (n_starts, n_features, n_params, n_params)
        ``n_params = 3 n_components - 1``.
    """
    n_starts, n_components, n_features = log_alpha.shape
    n_entries = values.size
    n_weight_groups = log_weights.shape[2]
    n_params = 3 * n_components - 1
    hessian = np.zeros((n_starts, n_features, n_params, n_params))
    mass = np.empty((n_components, n_entries))
    soft = np.empty(log_scales.size)
    soft_inverse = np.empty(log_scales.size)
    mean_gradient = np.empty(n_params)
    digammas = np.empty((n_components, n_entries))
    trigammas = np.empty((n_components, n_entries))
    scaled = scale_index.size > 0
    scale_terms = np.empty((4, n_components, max(log_scales.size, 1)))
    alphas = np.empty(n_components)
    walk_scratch = np.empty((_WALK_SCRATCH, n_components))
    for s in range(n_starts):
        for f in range(n_features):
            low, high = _entries(starts, f, n_entries)
            w = f if n_weight_groups > 1 else 0
            if scaled:
                _scaled_table_e_step(
                    values,
                    log_factorial,
                    multiplicity,
                    scale_index,
                    log_scales,
                    low,
                    high,
                    log_weights[s, :, w],
                    log_alpha[s, :, f],
                    log_b[s, :, f],
                    mass,
                    soft,
                    soft_inverse,
                )
            else:
                _table_e_step(
                    values,
                    log_factorial,
                    multiplicity,
                    low,
                    high,
                    log_weights[s, :, w],
                    log_alpha[s, :, f],
                    log_b[s, :, f],
                    mass,
                    walk_scratch,
                )
            for k in range(n_components):
                alphas[k] = math.exp(log_alpha[s, k, f])
                _polygamma_differences(
                    values, low, high, alphas[k], digammas[k], trigammas[k]
                )
            _scale_terms(log_alpha[s, :, f], log_b[s, :, f], log_scales, scale_terms)
            out = hessian[s, f]
            total = 0.0
            for e in range(low, high):
                if multiplicity[e] == 0.0:
                    continue  # a feature's zero entry, where it has no zeros
                total += multiplicity[e]
                _add_entry_hessian(
                    values[e],
                    scale_index[e] if scaled else 0,
                    alphas,
                    scale_terms,
                    mass,
                    multiplicity[e],
                    e,
                    digammas,
                    trigammas,
                    mean_gradient,
                    out,
                )
            # The logits' second derivatives: log w_k = z_k - log sum_j
            # exp(z_j) has Hessian -(diag(w) - w w') in the logits z.
            for i in range(1, n_components):
                weight_i = math.exp(log_weights[s, i, w])
                out[i - 1, i - 1] -= total * weight_i
                for j in range(i, n_components):
                    out[i - 1, j - 1] += (
                        total * weight_i * math.exp(log_weights[s, j, w])
                    )
            for i in range(n_params):
                for j in range(i):
                    out[i, j] = out[j, i]
    return hessian


@njit(cache=True, error_model="numpy")
def _first_second(x0, x1, x2, s, k, c):
    """SQUAREM's ``r = x1 - x0`` and ``v = x2 - 2 x1 + x0`` at one element."""
    return x1[s, k, c] - x0[s, k, c], x2[s, k, c] - 2.0 * x1[s, k, c] + x0[s, k, c]


@njit(cache=True, error_model="numpy")
def _squarem_point(x0, x1, x2, s, k, c, step):
    """``x0 - 2 step r + step**2 v`` at one element."""
    r, v = _first_second(x0, x1, x2, s, k, c)
    return x0[s, k, c] - 2.0 * step * r + step * step * v


@njit(cache=True, error_model="numpy")
def extrapolate(
    theta0, theta1, theta2, step_max, shared, log_alpha_bounds, log_b_bounds
):
    """The SQUAREM step of :func:`sknbmix._em.run_em`, problem by
    problem (a start with shared weights, a feature otherwise).

    ``theta0``, ``theta1`` and ``theta2`` are tuples of the three parameter
    arrays; ``step_max`` has one value per problem. Returns the proposal's
    three arrays and whether each problem's step was capped.
    """
    weights0, alpha0, b0 = theta0
    weights1, alpha1, b1 = theta1
    weights2, alpha2, b2 = theta2
    n_starts, n_components, n_features = alpha0.shape
    n_weight_groups = weights0.shape[2]
    n_problems = n_starts if shared else n_features
    new_weights = np.empty_like(weights0)
    new_alpha = np.empty_like(alpha0)
    new_b = np.empty_like(b0)
    capped = np.empty(n_problems, dtype=np.bool_)
    for p in range(n_problems):
        starts = (p, p + 1) if shared else (0, n_starts)
        features = (0, n_features) if shared else (p, p + 1)
        weight_groups = (0, n_weight_groups) if shared else (p, p + 1)
        r_norm2, v_norm2 = 0.0, 0.0
        for s in range(starts[0], starts[1]):
            for k in range(n_components):
                for g in range(weight_groups[0], weight_groups[1]):
                    r, v = _first_second(weights0, weights1, weights2, s, k, g)
                    r_norm2 += r * r
                    v_norm2 += v * v
                for f in range(features[0], features[1]):
                    r, v = _first_second(alpha0, alpha1, alpha2, s, k, f)
                    r_norm2 += r * r
                    v_norm2 += v * v
                    r, v = _first_second(b0, b1, b2, s, k, f)
                    r_norm2 += r * r
                    v_norm2 += v * v
        length = math.sqrt(r_norm2 / v_norm2) if v_norm2 > 0.0 else np.inf
        # Length 1 gives theta2, the plain EM point; never go below it.
        length = max(length, 1.0) if np.isfinite(length) else 1.0
        capped[p] = length >= step_max[p]
        step = -min(length, step_max[p])
        for s in range(starts[0], starts[1]):
            for g in range(weight_groups[0], weight_groups[1]):
                top = -np.inf
                for k in range(n_components):
                    new_weights[s, k, g] = _squarem_point(
                        weights0, weights1, weights2, s, k, g, step
                    )
                    top = max(top, new_weights[s, k, g])
                norm = 0.0
                for k in range(n_components):
                    norm += math.exp(new_weights[s, k, g] - top)
                log_norm = math.log(norm) + top
                for k in range(n_components):
                    new_weights[s, k, g] -= log_norm
            for k in range(n_components):
                for f in range(features[0], features[1]):
                    x = _squarem_point(alpha0, alpha1, alpha2, s, k, f, step)
                    new_alpha[s, k, f] = min(
                        max(x, log_alpha_bounds[0]), log_alpha_bounds[1]
                    )
                    x = _squarem_point(b0, b1, b2, s, k, f, step)
                    new_b[s, k, f] = min(max(x, log_b_bounds[0]), log_b_bounds[1])
    return new_weights, new_alpha, new_b, capped


@njit(cache=True, error_model="numpy")
def outpaced(
    group,
    start,
    reached,
    last_gain,
    finished,
    parameters,
    trail_gains,
    trail_margin,
    same_basin,
):
    """The problems that a better start of their group makes moot (see
    :func:`sknbmix._em.outpaced`; groups come in ascending order;
    ``finished`` is the best log-likelihood of the group's starts outside
    the batch; ``parameters`` holds each problem's log-weights, log alpha
    and log b as three arrays of one row per problem)."""
    n_batch = reached.size
    out = np.zeros(n_batch, dtype=np.bool_)
    first = 0
    while first < n_batch:
        end = first
        best = -np.inf
        while end < n_batch and group[end] == group[first]:
            best = max(best, reached[end], finished[end])
            end += 1
        for i in range(first, end):
            if best - reached[i] > trail_gains * last_gain[i] + trail_margin:
                out[i] = True
                continue
            for j in range(first, end):
                # j is better than i: higher log-likelihood, ties to the
                # lower start.
                if not (
                    reached[j] > reached[i]
                    or (reached[j] == reached[i] and start[j] < start[i])
                ):
                    continue
                distance = 0.0
                for kind in parameters:
                    largest = 0.0
                    for m in range(kind.shape[1]):
                        largest = max(largest, abs(kind[i, m] - kind[j, m]))
                    distance += largest
                if distance < same_basin:
                    out[i] = True
                    break
        first = end
    return out


@njit(cache=True, error_model="numpy")
def m_step(values, starts, mass, total, alpha, newton_steps):
    """The M step from given responsibility mass (n_starts, n_components,
    n_entries) and ``total`` (n_starts, n_components, n_features or 1), as
    starts from initial responsibilities need it; ``alpha`` of shape
    (n_starts, n_components, n_features) warm-starts Newton's method, where
    ``inf`` starts it from the method of moments."""
    n_starts, n_components, n_features = alpha.shape
    n_entries = values.size
    n_groups = total.shape[2]
    new_log_weights = np.empty(total.shape)
    new_log_alpha = np.empty(alpha.shape)
    new_log_b = np.empty(alpha.shape)
    for s in range(n_starts):
        for f in range(n_features):
            low, high = _entries(starts, f, n_entries)
            g = f if n_groups > 1 else 0
            for k in range(n_components):
                new_log_alpha[s, k, f], new_log_b[s, k, f] = _m_step_feature(
                    values[low:high],
                    mass[s, k, low:high],
                    total[s, k, g],
                    alpha[s, k, f],
                    newton_steps,
                )
        for g in range(n_groups):
            _update_weights(
                np.ascontiguousarray(total[s, :, g]),
                total[s, :, g],
                new_log_weights[s, :, g],
                M_STEP,
            )
    return new_log_weights, new_log_alpha, new_log_b


@njit(cache=True, error_model="numpy")
def accept_extrapolation(
    ll1,
    ll_proposal,
    capped,
    step_max,
    theta1,
    theta2,
    proposal,
    theta3,
    shared,
    step_growth,
    step_shrink,
    step_max_start,
):
    """The end of a SQUAREM cycle in :func:`sknbmix._em.run_em`, problem by
    problem: where the proposal beats the plain EM iterate ``theta1``, keep
    it (``source``) and the EM step from it (``theta3``), and let the step
    cap grow if the step was capped; elsewhere fall back to ``theta1`` and
    ``theta2`` and shrink the cap. ``ll1``, ``ll_proposal``, ``capped`` and
    ``step_max`` hold one value per problem.

    Returns ``source``, ``claim`` (its log-likelihood), ``theta`` (the next
    cycle's start) and the new ``step_max``.
    """
    n_problems = ll1.size
    accept = ll_proposal >= ll1
    claim = np.maximum(ll_proposal, ll1)
    new_step_max = np.empty(n_problems)
    for p in range(n_problems):
        if accept[p]:
            new_step_max[p] = step_growth * step_max[p] if capped[p] else step_max[p]
        else:
            new_step_max[p] = max(step_max[p] / step_shrink, step_max_start)
    source = _select(accept, proposal, theta1, shared)
    theta = _select(accept, theta3, theta2, shared)
    return source, claim, theta, new_step_max


@njit(cache=True, error_model="numpy")
def _select(accept, chosen, other, shared):
    """Per problem, the parameters of ``chosen`` where ``accept``, else of
    ``other`` (each a tuple of three arrays)."""
    out = (chosen[0].copy(), chosen[1].copy(), chosen[2].copy())
    for i in range(3):
        n_starts, n_components, n_columns = out[i].shape
        for s in range(n_starts):
            for k in range(n_components):
                for c in range(n_columns):
                    if not accept[s if shared else c]:
                        out[i][s, k, c] = other[i][s, k, c]
    return out


@njit(cache=True, error_model="numpy")
def converged(gain, last_gain, tol):
    """EM's stopping rule, one value per problem.

    EM converges linearly, so the gain still to come is estimated from the
    last two gains ``g1, g2`` as ``g2 q / (1 - q)``, ``q = g2 / g1``; a
    problem has converged when both its last gain and that estimate are
    below ``tol``, or when it gains nothing within rounding. An empty
    ``last_gain`` (the first cycle) judges by rounding alone.
    """
    out = np.empty(gain.size, dtype=np.bool_)
    for p in range(gain.size):
        # Rounding noise of a log-likelihood sum; gains below it mean nothing.
        out[p] = gain[p] <= tol * 1e-3
        if last_gain.size and gain[p] < tol:
            ratio = gain[p] / last_gain[p]
            remaining = gain[p] * ratio / (1.0 - ratio) if ratio < 1.0 else np.inf
            out[p] |= remaining < tol
    return out


@njit(cache=True, error_model="numpy")
def lowered(log_likelihood, claim, round_off):
    """The problems whose ``log_likelihood`` fell below ``claim`` by more
    than rounding."""
    out = np.empty(claim.size, dtype=np.intp)
    n = 0
    for p in range(claim.size):
        if log_likelihood[p] < claim[p] - round_off * max(abs(claim[p]), 1.0):
            out[n] = p
            n += 1
    return out[:n]
