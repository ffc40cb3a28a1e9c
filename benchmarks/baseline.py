"""The classic hand-written fit of a two-component negative binomial mixture.

This is the baseline that sknbmix is benchmarked against: a faithful copy of
the approach taught and used today (e.g. the BE/Bi 103a lesson "Mixture
models" on the Singer et al. 2014 smFISH counts). The likelihood goes through
``scipy.stats.nbinom.logpmf`` and ``scipy.special.logsumexp``, the start comes
from single-NB Powell fits on a 20th-percentile split, and the mixture is fit
by ``scipy.optimize.minimize(method="Powell", tol=1e-6)`` directly on
``(alpha, b, w)``, with an infinite penalty outside the domain.

Its shortcomings are kept on purpose, since they are what is being measured:
no reparametrisation, no gradient, and for four genes a start vector packed
per gene but read per parameter (see :func:`initial_guess_four_genes`).

NB parametrisation: ``(alpha, b)`` with mean ``alpha * b``, i.e.
``scipy.stats.nbinom(n=alpha, p=1 / (1 + b))``.
"""

import warnings
from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats as st

W_GUESS = 0.2  # read off the Rex1 ECDF: about 20% of cells are "low"


class BaselineFit(NamedTuple):
    """Result of a classic Powell fit.

    Attributes
    ----------
    weights : ndarray of shape (2,)
        Mixing weights ``(w, 1 - w)``.
    alpha, b : ndarray of shape (2, n_genes)
        NB parameters per component and gene.
    loglik : float
        Total log-likelihood at the returned parameters.
    nfev : int
        Mixture log-likelihood evaluations made by Powell (the start-up
        single-NB fits are not counted).
    success : bool
        What Powell reported.
    x : ndarray
        The raw parameter vector, in the layout the objective reads.
    """

    weights: np.ndarray
    alpha: np.ndarray
    b: np.ndarray
    loglik: float
    nfev: int
    success: bool
    x: np.ndarray


def log_like_mix(alpha1, b1, alpha2, b2, w, X):
    """Log-likelihood of a two-component NB mixture with shared weights.

    Parameters
    ----------
    alpha1, b1, alpha2, b2 : array_like of shape (n_genes,)
        NB parameters of components 1 and 2 for each gene.
    w : float
        Weight of component 1.
    X : ndarray of shape (n_cells, n_genes)
        Counts.

    Returns
    -------
    float
        Total log-likelihood, or ``-inf`` outside the domain (any alpha or b
        not positive, or ``w`` outside [0, 1]).
    """
    if not 0 <= w <= 1:
        return -np.inf
    if min(np.min(alpha1), np.min(b1), np.min(alpha2), np.min(b2)) <= 0:
        return -np.inf
    # Genes are independent given the component: sum the log-pmfs over genes.
    logx1 = st.nbinom.logpmf(X, alpha1, 1 / (1 + b1)).sum(axis=1)
    logx2 = st.nbinom.logpmf(X, alpha2, 1 / (1 + b2)).sum(axis=1)
    # log(w x1 + (1 - w) x2) without underflow: the weights go in as `b`.
    coeffs = np.array([[w], [1 - w]])
    return np.sum(scipy.special.logsumexp(np.vstack([logx1, logx2]), axis=0, b=coeffs))


def mle_iid_nbinom(n):
    """Single-NB maximum likelihood by Powell from ``(alpha, b) = (3, 3)``.

    Parameters
    ----------
    n : ndarray of shape (n_cells,)
        Counts of one gene.

    Returns
    -------
    ndarray of shape (2,)
        ``(alpha, b)``.
    """

    def neg_log_like(params):
        alpha, b = params
        if alpha <= 0 or b <= 0:
            return np.inf
        return -np.sum(st.nbinom.logpmf(n, alpha, 1 / (1 + b)))

    with warnings.catch_warnings():  # as in the classic code
        warnings.simplefilter("ignore")
        res = scipy.optimize.minimize(neg_log_like, x0=[3.0, 3.0], method="Powell")
    if not res.success:
        raise RuntimeError(f"single-NB fit failed: {res.message}")
    return res.x


def _powell(neg_log_like, x0, args=()):
    # The classic code silences the RuntimeWarnings scipy raises when Powell's
    # line searches wander to extreme parameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.optimize.minimize(
            neg_log_like, x0, args=args, method="Powell", tol=1e-6
        )


def fit_one_gene(n, w_guess=W_GUESS):
    """Classic fit of a two-component NB mixture to one gene.

    Parameters
    ----------
    n : ndarray of shape (n_cells,)
        Counts of one gene.
    w_guess : float, default=0.2
        Start for the weight of component 1, and the quantile at which the
        counts are split for the start of ``(alpha, b)``.

    Returns
    -------
    BaselineFit
        Parameters ``(alpha1, b1, alpha2, b2, w)`` in ``x``; ``alpha`` and
        ``b`` of shape (2, 1).
    """
    n = np.asarray(n)
    cut = np.percentile(n, 100 * w_guess)
    alpha1, b1 = mle_iid_nbinom(n[n < cut])
    alpha2, b2 = mle_iid_nbinom(n[n >= cut])
    X = n[:, None]

    def neg_log_like(params):
        return -log_like_mix(*params[:4], params[4], X)

    res = _powell(neg_log_like, [alpha1, b1, alpha2, b2, w_guess])
    a1, b1, a2, b2, w = res.x
    return BaselineFit(
        weights=np.array([w, 1 - w]),
        alpha=np.array([[a1], [a2]]),
        b=np.array([[b1], [b2]]),
        loglik=-res.fun,
        nfev=res.nfev,
        success=res.success,
        x=res.x,
    )


def initial_guess_four_genes(X, w_guess=W_GUESS):
    """Classic start vector for the shared-weight fit, packed *per gene*.

    Cells whose first gene (Rex1) is below its ``100 * w_guess`` percentile
    form the "pseudo cell type" 1, the rest type 2; each gene and type gets a
    single-NB Powell fit.

    Parameters
    ----------
    X : ndarray of shape (n_cells, n_genes)
        Counts; column 0 is the gene that defines the pseudo cell types.
    w_guess : float, default=0.2
        Start for the weight of component 1.

    Returns
    -------
    ndarray of shape (4 * n_genes + 1,)
        ``[a1_g0, b1_g0, a2_g0, b2_g0, a1_g1, ..., w]``. Note that
        :func:`neg_log_like_four_genes` reads the vector per *parameter*
        (``[a1_g0, a1_g1, ..., b1_g0, ...]``), so this start is scrambled,
        exactly as in the classic code.
    """
    low = X[:, 0] < np.percentile(X[:, 0], 100 * w_guess)
    guess = []
    for n in X.T:
        guess.extend(mle_iid_nbinom(n[low]))
        guess.extend(mle_iid_nbinom(n[~low]))
    return np.array([*guess, w_guess])


def _unpack_four_genes(params, n_genes):
    # Per parameter: alpha1 for all genes, then b1, alpha2, b2, then w.
    alpha1, b1, alpha2, b2 = np.reshape(params[:-1], (4, n_genes))
    return alpha1, b1, alpha2, b2, params[-1]


def neg_log_like_four_genes(params, X):
    """Negative log-likelihood of the shared-weight mixture, classic layout.

    Parameters
    ----------
    params : ndarray of shape (4 * n_genes + 1,)
        ``[alpha1 (n_genes), b1 (n_genes), alpha2 (n_genes), b2 (n_genes), w]``.
    X : ndarray of shape (n_cells, n_genes)
        Counts.

    Returns
    -------
    float
        Negative log-likelihood, ``+inf`` outside the domain.
    """
    return -log_like_mix(*_unpack_four_genes(params, X.shape[1]), X)


def fit_four_genes(X, w_guess=W_GUESS):
    """Classic fit of a two-component NB mixture with weights shared by genes.

    One latent cell type per cell, genes independent given the type: 17
    parameters for four genes, started from :func:`initial_guess_four_genes`
    and optimised by Powell with ``tol=1e-6``.

    Parameters
    ----------
    X : ndarray of shape (n_cells, n_genes)
        Counts; column 0 defines the pseudo cell types of the start.
    w_guess : float, default=0.2
        Start for the weight of component 1.

    Returns
    -------
    BaselineFit
        ``alpha`` and ``b`` of shape (2, n_genes).
    """
    X = np.asarray(X)
    x0 = initial_guess_four_genes(X, w_guess)
    res = _powell(neg_log_like_four_genes, x0, args=(X,))
    alpha1, b1, alpha2, b2, w = _unpack_four_genes(res.x, X.shape[1])
    return BaselineFit(
        weights=np.array([w, 1 - w]),
        alpha=np.vstack([alpha1, alpha2]),
        b=np.vstack([b1, b2]),
        loglik=-res.fun,
        nfev=res.nfev,
        success=res.success,
        x=res.x,
    )


def loglik_scipy(X, weights, alpha, b):
    """Total log-likelihood of a K-component shared-weight NB mixture.

    Written independently of any fitting code, to check a fit from anywhere.

    Parameters
    ----------
    X : array_like of shape (n_cells, n_genes)
        Counts.
    weights : array_like of shape (n_components,)
        Mixing weights.
    alpha, b : array_like of shape (n_components, n_genes)
        NB parameters; mean ``alpha * b``.

    Returns
    -------
    float
        ``sum_i log sum_k w_k prod_g NB(x_ig; alpha_kg, b_kg)``.
    """
    X = np.asarray(X)[:, None, :]  # (n, 1, G) against (K, G)
    alpha, b = np.asarray(alpha, dtype=float), np.asarray(b, dtype=float)
    log_joint = st.nbinom.logpmf(X, alpha, 1 / (1 + b)).sum(axis=2)
    with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf, fine
        log_joint = log_joint + np.log(np.asarray(weights, dtype=float))
    return float(scipy.special.logsumexp(log_joint, axis=1).sum())
