"""Warnings that sknbmix issues about a fit, to be filtered by category.

Both are :class:`UserWarning` subclasses: the fit is a valid maximum of the
likelihood, but one the user should know about before reading its parameters.
"""

# SPDX-License-Identifier: BSD-3-Clause

__all__ = ["DegenerateComponentWarning", "PoissonLimitWarning"]


class PoissonLimitWarning(UserWarning):
    """A component's ``alpha`` stopped at its cap, the Poisson limit.

    Where a component's counts vary no more than their mean (a Poisson or an
    under-dispersed gene), the likelihood keeps rising as ``alpha`` grows and
    has no finite maximum: the negative binomial tends to a Poisson with the
    same mean. ``alpha`` then stops at ``1e8``, where the variance exceeds the
    mean by a relative ``mean / 1e8``, and ``b`` is ``mean / 1e8``. The
    component's mean and weight are meaningful; its ``alpha`` and ``b`` are
    not estimates, and neither are intervals on them. ``poisson_limit_`` of
    the estimator says which components and features are at the cap.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sknbmix import NegBinomMixture
    >>> from sknbmix.exceptions import PoissonLimitWarning
    >>> X = np.random.default_rng(0).poisson(5.0, size=(300, 1))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", PoissonLimitWarning)
    ...     model = NegBinomMixture().fit(X)
    >>> model.poisson_limit_
    array([[ True]])
    """


class DegenerateComponentWarning(UserWarning):
    """A fitted component is empty or repeats another one.

    A component is empty when its weight is below one sample's share, and
    repeats another when its ``alpha`` and ``b`` equal those of a component
    before it (within 0.1% in every feature): the fit is then a mixture of
    fewer components, the data support no more. ``degenerate_components_``
    of the estimator says which; compare the fit with ``n_components`` one
    smaller, e.g. by :meth:`~sknbmix.NegBinomMixture.bic`.
    """
