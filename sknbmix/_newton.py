"""Newton's method on the mixture log-likelihood, to finish what EM starts.

EM, even accelerated, crawls where components overlap heavily or a component
nears the Poisson limit: the fits of Rest or Nanog in the built-in data take
more than a hundred iterations. Newton's method converges quadratically there,
and its decrement ``g' (-H)^-1 g / 2`` estimates the gain still to come, so it
also certifies that a fit is within ``tol`` of a maximum.

In the table form (one feature per problem: a gene alone, or independent
weights) the Hessian is analytic (:func:`sknbmix._kernels.table_hessian`),
and a Newton step costs about two passes over the data. Elsewhere the
problems are independent (one per start of the shared model), so each column
of the Hessian, a forward difference of the analytic gradient, is computed
for all problems at once: a step costs ``n_params + 1`` gradient evaluations
of the whole batch, where ``n_params`` counts the parameters of one problem.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from sknbmix._em import outpaced
from sknbmix._likelihood import (
    LOG_ALPHA_BOUNDS,
    Theta,
    clip_theta,
    log_weights_from_logits,
)
from sknbmix._nbinom import MEAN_MIN

# Forward-difference step of the Hessian, in log coordinates.
_HESSIAN_STEP = 1e-5
# Largest change of any coordinate in one step (a factor of e), and how many
# times a step that fails to go uphill is cut by 4 before the problem is
# given up as stuck.
_MAX_STEP = 1.0
_MAX_CUTS = 8
# Relative to the largest, a negative curvature of -H beyond this is a real
# saddle direction, not rounding noise of the finite-difference Hessian.
_SADDLE_CURVATURE = 1e-6
# Beyond this alpha (1e2) a rising likelihood may be flat in alpha all the
# way to the Poisson limit: a jump to the cap is tried (and kept only if it
# gains). Newton's quadratic model cannot see such a gain: a component with a
# mean of 0.01 gained 1e-6 between alpha 442 and the cap, past a decrement
# below tol.
_LOG_ALPHA_FLAT = np.log(1e2)
# A component whose mean falls below this (1e-4) and keeps falling is
# becoming a point mass at zero (zero inflation): its mean goes to the floor
# of the EM in one jump.
_LOG_MEAN_FLAT = np.log(1e-4)
_LOG_MEAN_MIN = np.log(MEAN_MIN)


def to_rows(stack, theta):
    """One row of unconstrained coordinates per problem.

    The coordinates are the logits of components 2..K against component 1,
    ``log alpha`` and ``log mean``. With the mean held, the Poisson limit is
    ``log alpha`` running to its bound alone, where it can be held fixed.
    """
    logits = theta.log_weights[:, 1:] - theta.log_weights[:, :1]
    log_mean = theta.log_alpha + theta.log_b
    return _rows(stack, Theta(logits, theta.log_alpha, log_mean))


def _rows(stack, parts):
    return np.concatenate([stack.rows(x) for x in parts], axis=1)


class _Coordinates:
    """The layout of :func:`to_rows` for parameters shaped as ``theta``: its
    inverse, and the bounds of each coordinate."""

    def __init__(self, stack, theta):
        logits = theta.log_weights[:, 1:]
        self.shapes = (logits.shape, theta.log_alpha.shape, theta.log_b.shape)
        n_logits, n_alpha = (stack.rows(x).shape[1] for x in (logits, theta.log_alpha))
        self.split = np.cumsum([n_logits, n_alpha])
        self.low = np.concatenate(
            [
                np.full(n_logits, -np.inf),
                np.full(n_alpha, LOG_ALPHA_BOUNDS[0]),
                np.full(n_alpha, _LOG_MEAN_MIN),
            ]
        )
        self.high = np.concatenate(
            [
                np.full(n_logits, np.inf),
                np.full(n_alpha, LOG_ALPHA_BOUNDS[1]),
                np.full(n_alpha, np.inf),
            ]
        )

    def theta(self, stack, rows):
        """Inverse of :func:`to_rows`, with ``log alpha`` and ``log b``
        clipped to the bounds of the EM."""
        logits, log_alpha, log_mean = (
            stack.from_rows(part, shape)
            for part, shape in zip(
                np.split(rows, self.split, axis=1), self.shapes, strict=True
            )
        )
        log_alpha = np.clip(log_alpha, *LOG_ALPHA_BOUNDS)
        return clip_theta(
            log_weights_from_logits(logits), log_alpha, log_mean - log_alpha
        )


def _hessian(stack, coordinates, rows, gradient, evaluate):
    """The Hessian of each problem at ``rows``: analytic in the table form,
    elsewhere by forward differences of the gradient ``evaluate`` gives,
    one column per parameter of a problem."""
    if stack.likelihood.has_hessian:
        return stack.likelihood.hessian(coordinates.theta(stack, rows))
    n_params = rows.shape[1]
    hessian = np.empty(rows.shape + (n_params,))
    for p in range(n_params):
        shifted = rows.copy()
        shifted[:, p] += _HESSIAN_STEP
        hessian[..., p] = (evaluate(stack, shifted)[1] - gradient) / _HESSIAN_STEP
    return 0.5 * (hessian + np.swapaxes(hessian, -1, -2))


def newton_maximise(stack, theta, *, max_iter, tol, n_protected=0):
    """Maximise each problem's log-likelihood by modified Newton steps.

    The Hessian's eigenvalues are replaced by their absolute values (a
    saddle-free Newton step goes uphill also where the surface is not
    concave), and each problem keeps a trust radius: the largest change of any
    coordinate in one step, at most one e-fold, cut by 4 (up to eight times
    per iteration) while a step does not raise the log-likelihood and doubled
    after a step that does. Coordinates at a bound with the gradient pointing
    out of it (``alpha`` at the Poisson cap) are held fixed. A problem leaves
    the batch once it has converged, once no step raises it any more, or
    once it has come within the same basin as a better start of its group
    (see :func:`sknbmix._em.outpaced`).

    Parameters
    ----------
    stack : ProblemStack
    theta : Theta
        Starting points, laid out for ``stack``.
    max_iter : int
        Newton steps at most.
    tol : float
        A problem has converged when the Newton decrement, the gain a full
        step is expected to bring, is below ``tol``.
    n_protected : int, default=0
        Starts numbered below this are never left for a better start.

    Returns
    -------
    theta : Theta
    log_likelihood : ndarray, problem-shaped
    n_iter : ndarray of int with one entry per problem
    converged : ndarray of bool, problem-shaped
        True where a problem converged, or was left for a better start.
    """
    coordinates = _Coordinates(stack, theta)
    rows = to_rows(stack, theta)
    n_batch = rows.shape[0]
    low, high = coordinates.low, coordinates.high
    alpha_coordinate = high == LOG_ALPHA_BOUNDS[1]
    mean_coordinate = low == _LOG_MEAN_MIN

    def evaluate(sub, sub_rows):
        log_likelihood, gradient = sub.likelihood.gradient(
            coordinates.theta(sub, sub_rows)
        )
        # From (log alpha, log b) to (log alpha, log mean): log b = log mean -
        # log alpha.
        gradient = Theta(
            gradient.log_weights,
            gradient.log_alpha - gradient.log_b,
            gradient.log_b,
        )
        return sub.flat(log_likelihood), _rows(sub, gradient)

    log_likelihood, gradient = evaluate(stack, rows)
    converged = np.zeros(n_batch, dtype=bool)
    radius = np.full(n_batch, _MAX_STEP)
    active, sub = np.arange(n_batch), stack
    n_iter = np.zeros(n_batch, dtype=int)
    iteration = 0
    while iteration < max_iter and active.size:
        iteration += 1
        n_iter[active] = iteration
        x, g, f = rows[active], gradient[active], log_likelihood[active]
        # Deep in the Poisson limit the likelihood is flat in alpha and
        # rising: alpha goes to its cap in one jump, where it is held. So
        # does the mean of a component turning into a point mass at zero.
        to_cap = alpha_coordinate & (x > _LOG_ALPHA_FLAT) & (x < high) & (g > 0)
        to_floor = mean_coordinate & (x < _LOG_MEAN_FLAT) & (x > low) & (g < 0)
        if to_cap.any() or to_floor.any():
            jumped = np.where(to_cap, high, np.where(to_floor, low, x))
            jumped_f, jumped_g = evaluate(sub, jumped)
            gained = jumped_f >= f
            x = np.where(gained[:, None], jumped, x)
            g = np.where(gained[:, None], jumped_g, g)
            f = np.where(gained, jumped_f, f)
        hessian = _hessian(sub, coordinates, x, g, evaluate)
        frozen = ((x >= high) & (g > 0)) | ((x <= low) & (g < 0))
        free_gradient = np.where(frozen, 0.0, g)
        hessian = np.where(frozen[..., None] | frozen[..., None, :], 0.0, hessian)
        # Along each eigenvector of -H, a step of (gradient component) /
        # |curvature|; directions flat to rounding are left alone.
        curvature, basis = np.linalg.eigh(-hessian)
        size = np.abs(curvature)
        flat = size <= 1e-12 * size.max(axis=-1, keepdims=True)
        component = np.einsum("...pq,...p->...q", basis, free_gradient)
        coefficient = np.where(flat, 0.0, component / np.where(flat, 1.0, size))
        step = np.einsum("...pq,...q->...p", basis, coefficient)
        decrement = 0.5 * np.einsum("...q,...q->...", component, coefficient)
        # A small decrement at a saddle point (EM can stall at one, e.g. where
        # a component is on its way to the Poisson limit) is no maximum: step
        # along the direction of positive curvature instead, uphill.
        saddle = (decrement < tol) & (
            curvature[:, 0] < -_SADDLE_CURVATURE * size.max(axis=-1)
        )
        escape = basis[:, :, 0] * np.where(component[:, :1] < 0, -1.0, 1.0)
        step = np.where(saddle[:, None], escape, step)
        done = (decrement < tol) & ~saddle
        length = np.abs(step).max(axis=-1)
        scale = np.minimum(1.0, radius[active] / np.maximum(length, 1e-300))
        scale[done] = 0.0
        trial, trial_f, trial_g = x, f, g
        better = np.zeros_like(done)
        flipped = np.zeros_like(done)
        for _ in range(_MAX_CUTS + 1 if not done.all() else 0):
            trial = np.clip(x + scale[:, None] * step, low, high)
            trial_f, trial_g = evaluate(sub, trial)
            better = trial_f > f
            if (better | done).all():
                break
            # A saddle is left on either side: try the other before a
            # shorter step.
            flip = ~better & saddle
            step[flip] *= -1.0
            scale[~better & ~(flip & ~flipped)] /= 4.0
            flipped ^= flip
        moved = better & ~done
        rows[active] = np.where(moved[:, None], trial, x)
        gradient[active] = np.where(moved[:, None], trial_g, g)
        log_likelihood[active] = np.where(moved, trial_f, f)
        radius[active] = np.where(
            moved, np.minimum(2.0 * scale * length, _MAX_STEP), scale * length
        )
        # No gain even from a very short step: rounding has the last word.
        # Report convergence only if the step promised little anyway.
        stuck = ~better & ~done
        converged[active] = done | (stuck & (decrement < 1e3 * tol))
        # Starts of a group that meet in one basin end at one maximum: the
        # worse goes no further (as in EM's screen).
        moot = stack.flat(
            outpaced(stack, coordinates.theta(stack, rows), stack.along(log_likelihood))
        )
        moot = moot[active] & (stack.start[active] >= n_protected) & ~(done | stuck)
        converged[active[moot]] = True
        staying = np.flatnonzero(~(done | stuck | moot))
        active = active[staying]
        sub = sub.select(staying)
    return (
        coordinates.theta(stack, rows),
        stack.along(log_likelihood),
        n_iter,
        stack.along(converged),
    )
