"""Independent maximisation problems side by side in one batch.

A *problem* is one independent maximisation: one start of the shared model,
or one (start, feature) pair of the independent one. The solvers run a batch
of problems in one call of the compiled loops and let each leave once it is
done. Where the problems lie in the parameter arrays depends on the model:

- shared weights: the starts, on axis 0 of every array of a :class:`Theta`;
- independent weights: start ``s`` of feature ``g`` becomes feature ``g *
  n_starts + s`` of a table that repeats each feature's entries once per
  start, on axis 2, and the parameters have a single start.

:class:`ProblemStack` keeps that layout in one place: the solvers take, put
and select problems, and judge them one value per problem, without knowing
the axis.
"""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from sknbmix._likelihood import Theta


class ProblemStack:
    """A batch of independent problems and the likelihood they share.

    Parameters
    ----------
    likelihood : MixtureLikelihood
        Of the whole batch (with independent weights, of the stacked table).
    group, start : ndarray of int of shape (n_problems,), optional
        Which group (the fit with shared weights; a feature otherwise) and
        which start each problem is. Groups come in ascending order. Default:
        the starts of one group with shared weights, features from start 0
        otherwise.
    n_problems : int, optional
        Needed for the default with shared weights.
    """

    def __init__(self, likelihood, group=None, start=None, *, n_problems=None):
        self.likelihood = likelihood
        self.axis = 0 if likelihood.shared_weights else 2
        if group is None:
            if likelihood.shared_weights:
                group = np.zeros(n_problems, dtype=int)
                start = np.arange(n_problems)
            else:
                group = np.arange(likelihood.table.n_features)
                start = np.zeros_like(group)
        self.group, self.start = group, start

    @classmethod
    def of_starts(cls, likelihood, starts):
        """The stack of a batch of starts, and its parameters.

        Parameters
        ----------
        likelihood : MixtureLikelihood
        starts : Theta
            ``n_starts`` starts on axis 0.

        Returns
        -------
        stack : ProblemStack
        theta : Theta
            ``starts`` laid out for the stack.
        """
        n_starts, _, n_features = starts.log_alpha.shape
        if likelihood.shared_weights:
            return cls(likelihood, n_problems=n_starts), starts
        group = np.repeat(np.arange(n_features), n_starts)
        stack = cls(
            likelihood.take_features(group),
            group,
            np.tile(np.arange(n_starts), n_features),
        )
        return stack, Theta(
            *(x.transpose(1, 2, 0).reshape(1, x.shape[1], -1) for x in starts)
        )

    @property
    def n_problems(self):
        return self.group.size

    def select(self, index):
        """The stack of the problems at ``index``."""
        likelihood = self.likelihood
        if not likelihood.shared_weights:
            likelihood = likelihood.take_features(index)
        return ProblemStack(likelihood, self.group[index], self.start[index])

    def take(self, array, index):
        """Problems ``index`` of a Theta or a problem-shaped array."""
        if isinstance(array, Theta):
            return Theta(*(self.take(x, index) for x in array))
        return array.take(index, axis=self.axis)

    def put(self, out, index, array):
        """Write ``array`` into problems ``index`` of ``out``."""
        if isinstance(out, Theta):
            for whole, part in zip(out, array, strict=True):
                self.put(whole, index, part)
        elif self.axis == 0:
            out[index] = array
        else:
            out[..., index] = array

    def along(self, vector):
        """A vector with one value per problem, problem-shaped: it broadcasts
        against parameter arrays."""
        return vector.reshape((-1, 1, 1) if self.axis == 0 else (1, 1, -1))

    def flat(self, array):
        """A problem-shaped array as one value per problem."""
        return array.reshape(-1)

    def rows(self, array):
        """Parameter-shaped arrays as one row per problem (shape (n_problems,
        n_values))."""
        if self.axis:
            array = np.moveaxis(array, self.axis, 0)
        return array.reshape(self.n_problems, -1)

    def from_rows(self, rows, shape):
        """Inverse of :meth:`rows`: arrays of ``shape``, a parameter shape of
        this layout whose problem axis takes the number of rows."""
        shape = list(shape)
        shape[self.axis] = rows.shape[0]
        problems_first = (
            [shape[self.axis]] + shape[: self.axis] + shape[self.axis + 1 :]
        )
        return np.moveaxis(rows.reshape(problems_first), 0, self.axis)

    def best_start(self, log_likelihood):
        """The problems that are the best start of their group, given one
        log-likelihood per problem (ties to the lower start)."""
        by_start = self.by_start(log_likelihood)
        return np.flatnonzero(self.start == by_start.argmax(axis=0)[self.group])

    def group_best(self, values, among):
        """For each problem, the largest of ``values`` (one per problem) over
        the problems of its group where ``among`` is True (-inf where
        none)."""
        best = np.full(self.group.max() + 1, -np.inf)
        np.maximum.at(best, self.group[among], values[among])
        return best[self.group]

    def by_start(self, values):
        """One value per problem laid out as (n_starts, n_groups); absent
        problems are ``-inf``. Groups must be numbered 0, 1, ..."""
        out = np.full((self.start.max() + 1, self.group.max() + 1), -np.inf)
        out[self.start, self.group] = values
        return out
