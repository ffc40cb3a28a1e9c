"""Choosing the number of components: information criteria and
cross-validated log-likelihood side by side."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import check_cv, cross_val_score
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils.parallel import Parallel, delayed

from sknbmix._data import check_size_factors
from sknbmix._mixture import NegBinomMixture


def compare_n_components(
    X,
    n_components=(1, 2, 3, 4),
    *,
    estimator=None,
    cv=5,
    n_jobs=None,
    size_factors=None,
):
    """Fit mixtures with each number of components and compare them.

    Each candidate is fit to all of X for its log-likelihood, BIC and AIC, and
    scored by K-fold cross-validation (mean held-out log-likelihood per
    sample, the criterion :class:`~sklearn.model_selection.GridSearchCV`
    would use).

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Non-negative integer counts.

    n_components : sequence of int, default=(1, 2, 3, 4)
        The numbers of components to compare.

    estimator : NegBinomMixture, default=None
        Template whose other parameters (``shared_weights``, ``tol``, ...)
        are used; ``NegBinomMixture()`` when None.

    cv : int, cross-validation generator or None, default=5
        Folds for the cross-validated log-likelihood, as in
        :func:`~sklearn.model_selection.cross_val_score`; None skips it.

    n_jobs : int, default=None
        Workers for the cross-validation folds. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means using all
        processors.

    size_factors : array-like of shape (n_samples,), default=None
        The size factor of each sample, given to every fit and score (each
        fold's fit and score get those of its samples). When None, the
        estimator's own ``size_factors`` apply: with ``"total"`` every fit
        and score computes them from the samples it is given.

    Returns
    -------
    comparison : :class:`~sklearn.utils.Bunch`
        ``n_components``, ``log_likelihood`` (total, on all of X), ``bic``,
        ``aic``, ``cv_log_likelihood`` (mean held-out log-likelihood per
        sample; NaN when ``cv=None``), each an array with one entry per
        candidate, and ``bic_choice``, ``aic_choice``, ``cv_choice``: the
        number of components each criterion prefers.

    Examples
    --------
    >>> from sknbmix import compare_n_components
    >>> from sknbmix.datasets import load_singer
    >>> X = load_singer().data[:, :1]
    >>> comparison = compare_n_components(X, [1, 2, 3], cv=None)
    >>> comparison.bic.round(1)
    array([3288.6, 3208.9, 3215.6])
    >>> int(comparison.bic_choice), int(comparison.aic_choice)
    (2, 3)
    """
    n_components = np.asarray(n_components, dtype=int).ravel()
    if n_components.size == 0 or n_components.min() < 1:
        raise ValueError(
            "n_components must be a non-empty sequence of positive integers; "
            f"got {n_components.tolist()}."
        )
    template = NegBinomMixture() if estimator is None else estimator
    if not isinstance(template, NegBinomMixture):
        raise ValueError(
            f"estimator must be a NegBinomMixture, got {type(template).__name__}."
        )
    n_samples = X.shape[0]
    if size_factors is not None:
        size_factors = check_size_factors(size_factors, n_samples)
    given = {"size_factors": size_factors}
    log_likelihood, bic, aic, cv_log_likelihood = [], [], [], []
    for k in n_components:
        model = clone(template).set_params(n_components=int(k)).fit(X, **given)
        log_likelihood.append(model.score(X, **given) * n_samples)
        bic.append(model.bic(X, **given))
        aic.append(model.aic(X, **given))
        if cv is None:
            cv_log_likelihood.append(np.nan)
        elif size_factors is None:
            scores = cross_val_score(clone(model), X, cv=cv, n_jobs=n_jobs)
            cv_log_likelihood.append(scores.mean())
        else:
            scores = _cross_val_scores(model, X, size_factors, cv, n_jobs)
            cv_log_likelihood.append(scores.mean())
    bic, aic = np.array(bic), np.array(aic)
    cv_log_likelihood = np.array(cv_log_likelihood)
    return Bunch(
        n_components=n_components,
        log_likelihood=np.array(log_likelihood),
        bic=bic,
        aic=aic,
        cv_log_likelihood=cv_log_likelihood,
        bic_choice=n_components[np.argmin(bic)],
        aic_choice=n_components[np.argmin(aic)],
        cv_choice=(None if cv is None else n_components[np.argmax(cv_log_likelihood)]),
    )


def _cross_val_scores(estimator, X, size_factors, cv, n_jobs):
    """:func:`~sklearn.model_selection.cross_val_score` with the size factors
    of each fold's samples given to its fit and to its score."""
    folds = check_cv(cv).split(X)
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_fold_score)(clone(estimator), X, size_factors, train, test)
        for train, test in folds
    )
    return np.asarray(scores)


def _fold_score(estimator, X, size_factors, train, test):
    estimator.fit(_safe_indexing(X, train), size_factors=size_factors[train])
    return estimator.score(_safe_indexing(X, test), size_factors=size_factors[test])
