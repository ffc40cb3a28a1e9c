"""
Tutorial: cell states from smFISH counts
========================================

This tutorial runs a whole analysis with sknbmix on the smFISH counts that
ship with it (:func:`sknbmix.datasets.load_singer`): the transcripts of four
genes, Rex1, Rest, Nanog and Prdm14, counted one by one in each of 279 mouse
embryonic stem cells (Singer et al., Mol. Cell 2014). Do the cells fall into
distinct states? How sure can we be of what the states look like? How many
states do the data support, and is a second state more than chance? The last
section turns to simulated
single-cell sequencing counts, in which each cell's sequencing depth scales
its counts, and shows how size factors keep a mixture from sorting the cells
by depth.

The page is a Python script, ``examples/plot_tutorial.py`` in the repository,
run when the documentation is built: every number, table and figure below is
what the code computes today. :doc:`/method` explains the algorithm.
"""

# %%
# The data
# --------
#
# :func:`~sknbmix.datasets.load_singer` returns a scikit-learn
# :class:`~sklearn.utils.Bunch`; with ``as_frame=True`` its ``frame`` is a
# pandas DataFrame with one row per cell and one column per gene. The
# estimators take it as it is and remember the gene names.

# sphinx_gallery_start_ignore
import os

# sphinx_gallery_end_ignore
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2, false_discovery_control
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV

from sknbmix import (
    NegBinomMixture,
    bootstrap,
    compare_n_components,
    lrt_n_components,
)
from sknbmix.datasets import load_singer
from sknbmix.exceptions import PoissonLimitWarning
from sknbmix.plotting import (
    plot_bic_difference,
    plot_corner,
    plot_ecdf,
    plot_information_criteria,
)

# sphinx_gallery_start_ignore
# tests/test_docs.py sets SKNBMIX_TUTORIAL_QUICK=1 to run this script with
# fewer bootstrap replicates; the fits, and the numbers checked, are the same.
QUICK = bool(os.environ.get("SKNBMIX_TUTORIAL_QUICK"))
# sphinx_gallery_end_ignore

counts = load_singer(as_frame=True).frame
print(counts.shape)
counts.describe().round(1)

# %%
# The empirical cumulative distribution function (ECDF) of each gene shows
# the whole distribution of its counts without binning: the height at ``x`` is
# the fraction of cells with at most ``x`` transcripts.

fig, axes = plt.subplots(2, 2, figsize=(8, 6), layout="constrained")
for ax, gene in zip(axes.flat, counts.columns, strict=True):
    x = np.sort(counts[gene].to_numpy())
    ax.plot(x, np.arange(1, len(x) + 1) / len(x), drawstyle="steps-post")
    ax.set_xlabel(f"{gene} transcripts per cell")
    ax.set_ylabel("ECDF")
fig.suptitle("Empirical CDFs of the transcripts per cell of the four genes")

# %%
# Rex1 stands out: a group of cells with few transcripts, then a long, steep
# rise between about 100 and 250 transcripts, as if the cells came in two
# populations. The next
# sections take Rex1 alone, then all four genes together.

# %%
# Why one negative binomial does not fit Rex1
# -------------------------------------------
#
# Transcript counts are over-dispersed, and a single negative binomial is the
# usual model for the counts of one homogeneous population. Fit it with
# ``n_components=1`` (the estimators take a 2-D table: one column, Rex1):

rex1 = counts[["Rex1"]]
one = NegBinomMixture(n_components=1).fit(rex1)
print(f"log-likelihood, K=1: {one.score(rex1) * len(rex1):.9f}")
print(f"BIC, K=1: {one.bic(rex1):.1f}")

# %%
# :meth:`~sknbmix.NegBinomMixture.score` is the mean log-likelihood per cell,
# so times the number of cells it is the total log-likelihood.
#
# :func:`~sknbmix.plotting.plot_ecdf` draws the data's ECDF, the fitted
# model's CDF, and a 95% predictive band: the range of the ECDFs of data sets
# of 279 cells drawn from the fitted model. Where the data leave the band, the
# model misses something beyond sampling noise.

plot_ecdf(one, rex1, random_state=0)

# %%
# The single negative binomial cannot follow both the low group and the steep
# rise: it puts too few cells at the lowest counts, too many between about 50
# and 150, and its tail is too long; in each of these places the data leave
# the band.

# %%
# Two components
# --------------
#
# A mixture of two negative binomials lets the cells come from two
# populations, each with its own burst frequency ``alpha`` and burst size
# ``b`` (mean ``alpha * b``), in proportions given by the weights:

two = NegBinomMixture(n_components=2).fit(rex1)
log_likelihood = two.score(rex1) * len(rex1)
print(f"log-likelihood, K=2: {log_likelihood:.9f}")
print("the known optimum:   -1590.352137603")
# sphinx_gallery_start_ignore
assert abs(log_likelihood - -1590.352137603) < 1e-6
# sphinx_gallery_end_ignore
pd.DataFrame(
    {
        "weight": two.weights_,
        "alpha": two.alpha_[:, 0],
        "b": two.b_[:, 0],
        "mean": two.means_[:, 0],
    },
    index=pd.Index(["low", "high"], name="component"),
).round(4)

# %%
# The fit reaches the best log-likelihood known for these data, found by
# several independent implementations with many restarts, to all the digits
# shown. The classic hand-written fit with :func:`scipy.optimize.minimize`
# (Powell's method) stops at -1590.3537 (see :doc:`/method`).
#
# The mixture follows the data within the predictive band:

plot_ecdf(two, rex1, random_state=0)

# %%
# The Bayesian information criterion (BIC, lower is better) weighs the better
# fit against the three extra parameters, and prefers two components by a wide
# margin:

print(f"BIC, K=1: {one.bic(rex1):.1f}")
print(f"BIC, K=2: {two.bic(rex1):.1f}")
print(f"difference: {one.bic(rex1) - two.bic(rex1):.1f}")

# %%
# Each cell can be assigned to its more probable component.
# :meth:`~sknbmix.NegBinomMixture.predict_proba` gives the posterior
# probabilities; few cells are in doubt, because the two components barely
# overlap:

labels = two.predict(rex1)
probabilities = two.predict_proba(rex1)
print("cells per component:", np.bincount(labels))
print("cells less than 90% sure:", int(np.sum(probabilities.max(axis=1) < 0.9)))

# %%
# Label switching
# ---------------
#
# Which component is called 0 and which 1 is arbitrary: the likelihood of a
# mixture does not change when its components are permuted. Swap the two
# components of the fit, and it scores exactly the same, while every label
# flips:

swapped = NegBinomMixture(n_components=2).fit(rex1)
for name in ("weights_", "alpha_", "b_", "means_"):
    setattr(swapped, name, getattr(two, name)[::-1].copy())
print(f"log-likelihood, swapped: {swapped.score(rex1) * len(rex1):.9f}")
print("labels flipped:", bool(np.all(swapped.predict(rex1) == 1 - labels)))

# %%
# So a fitting algorithm has no reason to return the components in any
# particular order: EM or Powell's method returns them in whatever order its
# start put them. That matters for the bootstrap, which refits the model on
# many data sets drawn from the fit (below) and reads off the spread of each
# parameter. If "component 0" is the low component in one replicate and the
# high one in the next, the spread of "the weight of component 0" mixes the
# two components and means nothing.
#
# To see it, draw replicates by hand: data sets of 279 counts from the fitted
# mixture, each refitted. sknbmix's fits come back in a fixed order (below),
# so to mimic a fitter without one, shuffle each replicate's components at
# random:

n_replicates = 200
# sphinx_gallery_start_ignore
if QUICK:
    n_replicates = 50
# sphinx_gallery_end_ignore
rng = np.random.default_rng(0)
p = 1 / (1 + two.b_[:, 0])
shuffled_weights, shuffled_log_means = [], []
for _ in range(n_replicates):
    component = rng.choice(2, size=len(rex1), p=two.weights_)
    draw = rng.negative_binomial(two.alpha_[component, 0], p[component])
    replicate = NegBinomMixture(n_components=2).fit(draw[:, None])
    order = rng.permutation(2)
    shuffled_weights.append(replicate.weights_[order])
    shuffled_log_means.append(np.log(replicate.means_[order, 0]))
shuffled_weights = np.array(shuffled_weights)
shuffled_log_means = np.array(shuffled_log_means)

# %%
# To undo the shuffle, match each replicate's components to those of the
# original fit: the assignment that makes the log-means closest, found by the
# Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`).

reference = np.log(two.means_[:, 0])
aligned_weights = np.empty_like(shuffled_weights)
for i, log_means in enumerate(shuffled_log_means):
    cost = (reference[:, None] - log_means[None, :]) ** 2
    _, match = linear_sum_assignment(cost)
    aligned_weights[i] = shuffled_weights[i, match]

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
left.hist(shuffled_weights[:, 0], bins=40, range=(0, 1))
left.set_title("shuffled labels")
right.hist(aligned_weights[:, 0], bins=40, range=(0, 1))
right.set_title("matched to the fit")
for ax in (left, right):
    ax.axvline(two.weights_[0], color="C3")
    ax.set_xlabel("weight of component 0")
left.set_ylabel("replicates")
fig.tight_layout()

# %%
# With shuffled labels, "the weight of component 0" piles up both near
# the low component's weight and near one minus it; matched, it clusters
# around the fitted weight (red line).
#
# sknbmix removes label switching in two steps:
#
# * Every fit stores its components in a canonical order, by ascending total
#   mean ``means_.sum(axis=1)``, so the same data always give the same labels.
# * :func:`sknbmix.bootstrap` matches every replicate to the point estimate by
#   the assignment above, on the log-means of all genes at once. It does not
#   simply sort each replicate: sorting is right only while no two components'
#   means cross between replicates, and the assignment follows the components
#   even when they do. For Rex1, whose components lie far apart, the two agree:

sorted_weights = np.take_along_axis(
    shuffled_weights, np.argsort(shuffled_log_means, axis=1), axis=1
)
agree = int(np.sum(np.all(sorted_weights == aligned_weights, axis=1)))
print(f"sorting and matching agree on {agree} of {n_replicates} replicates")

# %%
# Bootstrap confidence intervals
# ------------------------------
#
# :func:`sknbmix.bootstrap` (or :meth:`~sknbmix.NegBinomMixture.bootstrap`)
# does all of the above in parallel: it draws each replicate from the fit
# (``method="parametric"``, the default; ``"nonparametric"`` resamples the
# cells), refits it from two starts (the point estimate and the default
# initialisation, keeping the better), aligns its components, and reports
# BCa intervals: percentile intervals whose quantiles are moved to correct
# the replicates' bias and skewness, with an acceleration from a jackknife of
# the counts (``ci_method="percentile"`` and three more kinds are there too).
# Replicate ``i`` draws from its own child of one
# :class:`numpy.random.SeedSequence`, so the result depends on
# ``random_state`` alone, not on ``n_jobs``. A replicate whose fit fails is
# counted in ``n_failed`` and left out, never fatal.
#
# ``make demo`` and the benchmarks use 10,000 replicates (about half a minute
# on two cores); 1,000 keep this page quick.

n_resamples = 1000
# sphinx_gallery_start_ignore
if QUICK:
    n_resamples = 100
# sphinx_gallery_end_ignore
result = bootstrap(two, rex1, n_resamples=n_resamples, n_jobs=2, random_state=0)
print(f"{result.n_resamples} replicates, {result.n_failed} failed")
result.to_frame().round(4)

# %%
# ``standard_error`` holds the standard deviations of the replicates and
# ``estimates`` the replicates themselves, one row each.
# :func:`~sknbmix.plotting.plot_corner` shows them: a histogram of each
# parameter with its point estimate (red) and 95% interval (shaded) on the
# diagonal, and every pair of parameters below it.

fig = plot_corner(result, ("weights", "means"), log=True)
fig.suptitle(
    f"Rex1, K=2: {result.n_resamples:,} bootstrap replicates\n"
    "of the low component's weight and both means",
    x=0.02,
    ha="left",
)

# %%
# Only the first weight is drawn: the two add up to one, so the second is
# one minus it. The low component, with few cells, is the less certain one:
# its weight and mean spread far more, relative to their size, than the high
# component's mean (the means are on log scales). An isolated point is a
# replicate that landed far from the rest; intervals from quantiles are
# robust to a few of them, standard errors less so.

# %%
# Four genes, one cell state per cell
# -----------------------------------
#
# With several genes, ``shared_weights=True`` (the default) puts every cell in
# one component for all its genes at once, a cell state; given the state the
# genes are independent. The two-component model of all four genes:

four = NegBinomMixture(n_components=2).fit(counts)
log_likelihood = four.score(counts) * len(counts)
print(f"log-likelihood: {log_likelihood:.9f}")
print("the known optimum: -5025.819341247")
# sphinx_gallery_start_ignore
assert abs(log_likelihood - -5025.819341247) < 1e-6
# sphinx_gallery_end_ignore
table = pd.DataFrame(four.means_, columns=counts.columns).round(2)
table.insert(0, "weight", four.weights_.round(4))
table.rename_axis("component")

# %%
# The table gives the weights and the mean count of each gene in each state.
# Again the fit reaches the best log-likelihood known; the classic Powell fit
# ends between -5029 and -5037, depending on the machine. The marginal fit of
# each gene:

fig, axes = plt.subplots(2, 2, figsize=(9, 7), layout="constrained")
for ax, gene in zip(axes.flat, counts.columns, strict=True):
    plot_ecdf(four, counts, gene, ax=ax, random_state=0)

# %%
# Bootstrap intervals work the same way for the four genes; the replicates
# are aligned on the log-means of all four at once.

n_resamples = 200
# sphinx_gallery_start_ignore
if QUICK:
    n_resamples = 50
# sphinx_gallery_end_ignore
result4 = bootstrap(four, counts, n_resamples=n_resamples, n_jobs=2, random_state=0)
print(f"{result4.n_resamples} replicates, {result4.n_failed} failed")
frame = result4.to_frame()
frame[frame.parameter.isin(["weights", "means"])].round(3)

# %%
# The corner plot of the first weight and the means of Nanog:

fig = plot_corner(result4, ("weights", "means"), feature="Nanog")
fig.suptitle(
    f"Four genes, K=2: {result4.n_resamples:,} bootstrap replicates\n"
    "of the low state's weight and both means of Nanog",
    x=0.02,
    ha="left",
)

# %%
# Which genes are bimodal on their own? With ``shared_weights=False`` every
# gene gets its own mixture, with its own weights, all fitted in one run: a
# screen. :meth:`~sknbmix.NegBinomMixture.bic` with ``per_feature=True``
# gives one BIC per gene, and :func:`~sknbmix.plotting.plot_bic_difference`
# ranks the genes by how much two components improve on one:

one_each = NegBinomMixture(n_components=1, shared_weights=False).fit(counts)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    two_each = NegBinomMixture(n_components=2, shared_weights=False).fit(counts)
for warning in caught:
    print(textwrap.fill(f"{warning.category.__name__}: {warning.message}", 79))

# %%
# The two-component fit warns with a
# :class:`~sknbmix.exceptions.PoissonLimitWarning`: in one of its eight
# components (two per gene) ``alpha`` ran to its cap, the Poisson limit.
# ``poisson_limit_`` says which:

pd.DataFrame(two_each.poisson_limit_, columns=counts.columns).rename_axis("component")

# %%
# It is Prdm14's low component: about 28% of the cells, with a mean of a
# third of a transcript. Its counts vary no more than their mean, as a
# Poisson's do, so the likelihood keeps rising as ``alpha`` grows with the
# mean ``alpha * b`` fixed, and has no finite maximum: ``alpha`` stops at
# ``1e8`` and ``b`` at the mean divided by it. The component's weight and
# mean are estimates; its ``alpha`` and ``b`` are not, and neither would be
# intervals on them. The log-likelihood, and so the BIC below, is that of the
# Poisson limit to far better than the decimal shown. The warning comes once
# per fit; a script that expects it silences the category inside
# ``warnings.catch_warnings()``, as the sections below do.
#
# The BIC differences:

delta = one_each.bic(counts, per_feature=True) - two_each.bic(counts, per_feature=True)
print(pd.Series(delta, index=counts.columns).round(1).to_string())
plot_bic_difference(one_each, two_each, counts)

# %%
# Choosing the number of components
# ---------------------------------
#
# BIC is one way to choose the number of components ``K``. The Akaike
# information criterion (AIC) penalises each parameter less, and the
# cross-validated log-likelihood (the mean log-likelihood per cell of cells
# held out of the fit) measures how well a model predicts new cells.
# :func:`sknbmix.compare_n_components` computes all three. Some of its fits of
# three and four components to parts of the cells (the cross-validation)
# put a component at the Poisson limit, the warning explained above:

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PoissonLimitWarning)
    comparison = compare_n_components(rex1, [1, 2, 3, 4])
print("BIC chooses K =", comparison.bic_choice)
print("AIC chooses K =", comparison.aic_choice)
print("cross-validation chooses K =", comparison.cv_choice)
# sphinx_gallery_start_ignore
assert comparison.bic_choice == 2
assert comparison.aic_choice == 3
assert comparison.cv_choice == 3
# sphinx_gallery_end_ignore
pd.DataFrame(
    {
        "log-likelihood": comparison.log_likelihood,
        "BIC": comparison.bic,
        "AIC": comparison.aic,
        "CV log-likelihood per cell": comparison.cv_log_likelihood,
    },
    index=pd.Index(comparison.n_components, name="K"),
).round(4)

# %%
# :func:`~sknbmix.plotting.plot_information_criteria` draws them, each
# criterion's choice starred:

fig, ax = plt.subplots()
plot_information_criteria(comparison, ax=ax)
fig.suptitle("Rex1: BIC, AIC and cross-validated log-likelihood against K")
fig.tight_layout()

# %%
# Because :meth:`~sknbmix.NegBinomMixture.score` is a log-likelihood, the
# estimator also works with scikit-learn's own model selection, which makes
# the same choice as the cross-validated column above (5-fold, unshuffled):

search = GridSearchCV(NegBinomMixture(), {"n_components": [1, 2, 3]}, cv=5)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PoissonLimitWarning)
    search.fit(rex1)
print("GridSearchCV chooses", search.best_params_)

# sphinx_gallery_start_ignore
assert search.best_params_ == {"n_components": 3}
# sphinx_gallery_end_ignore

# %%
# The criteria disagree: BIC chooses two components for Rex1, while AIC and
# cross-validation choose three. The third component buys a small gain in
# log-likelihood. How well do the data determine it? The bootstrap answers:

three = NegBinomMixture(n_components=3).fit(rex1)
n_resamples = 200
# sphinx_gallery_start_ignore
if QUICK:
    n_resamples = 50
# sphinx_gallery_end_ignore
result3 = bootstrap(three, rex1, n_resamples=n_resamples, n_jobs=2, random_state=0)
frame = result3.to_frame()
frame[frame.parameter.isin(["weights", "means"])].round(3)

# %%
# The middle component's weight and mean range over much of their possible
# values: the data do not pin it down. Two well-determined states with a
# clear BIC margin, or three states of which one is vague, is a judgement for
# the biologist; the tools above give the evidence for it.
#
# For the four genes together every criterion asks for more than two
# components, a sign of structure beyond two cell states:

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PoissonLimitWarning)
    comparison4 = compare_n_components(counts, [1, 2, 3, 4])
print("BIC chooses K =", comparison4.bic_choice)
print("AIC chooses K =", comparison4.aic_choice)
print("cross-validation chooses K =", comparison4.cv_choice)

# sphinx_gallery_start_ignore
assert min(comparison4.bic_choice, comparison4.aic_choice, comparison4.cv_choice) > 2
# sphinx_gallery_end_ignore

# %%
# Is Rex1 bimodal?
# ----------------
#
# The criteria above weigh the gain in fit against the extra parameters. A
# test asks a sharper question: could counts this far from one negative
# binomial come from one negative binomial? The likelihood-ratio statistic
# ``T = 2 (log L(K=2) - log L(K=1))`` measures the gain of the second
# component, but the textbook chi-square reference distribution does not
# apply to the number of components (:doc:`/method` explains why).
# :func:`sknbmix.lrt_n_components` simulates the distribution instead, by the
# parametric bootstrap: it draws data sets of 279 cells from the fitted
# one-component model, fits one and two components to each, and compares the
# observed ``T`` with theirs. The p-value is ``(1 + g) / (1 + n)`` with ``g``
# of the ``n`` null statistics at or above the observed one, so its smallest
# value is ``1 / (1 + n)``. The default is 999 resamples; 199, a fifth of the
# time, keep this page quick.

n_resamples = 199
# sphinx_gallery_start_ignore
if QUICK:
    n_resamples = 49
# sphinx_gallery_end_ignore
lrt = lrt_n_components(
    NegBinomMixture(n_components=1), rex1, n_resamples=n_resamples, random_state=0
)
print(f"statistic: {lrt.statistic:.4f}")
print(f"p-value: {lrt.pvalue:.4f}, the smallest possible with {n_resamples} resamples")
print(f"largest null statistic: {lrt.null_distribution.max():.2f}")
# sphinx_gallery_start_ignore
assert abs(lrt.statistic - 96.6524) < 1e-4
assert lrt.pvalue == 1 / (1 + n_resamples)
assert lrt.n_resamples_used == n_resamples
# sphinx_gallery_end_ignore

# %%
# The statistic, about 96.7, is twice the gap between the known optima of one
# and two components above. No data set drawn from one negative binomial came
# near it, so the p-value is the smallest these resamples can give: Rex1's
# second component is no accident of sampling, and more resamples would only
# lower the bound. The null statistics beside the chi-square distribution
# with 3 degrees of freedom (the second component's weight, ``alpha`` and
# ``b``), and the observed statistic:

null = lrt.null_distribution
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
left.hist(null, bins=np.arange(0, null.max() + 1), density=True, label="null")
t = np.linspace(0.05, null.max() + 1, 200)
left.plot(t, chi2(3).pdf(t), color="C1", label="chi-square, 3 df")
left.set_xlabel("likelihood-ratio statistic")
left.set_ylabel("density")
left.set_title(f"{len(null)} null statistics")
left.legend()
right.hist(null, bins=np.arange(0, 101), label="null")
right.axvline(lrt.statistic, color="C3", label=f"observed: {lrt.statistic:.1f}")
right.set_xlabel("likelihood-ratio statistic")
right.set_ylabel("resamples")
right.set_title("the observed statistic")
right.legend(loc="upper center")
fig.suptitle("Rex1, one against two components: the bootstrap null distribution")

# %%
# The observed statistic lies far beyond them all. The null statistics
# themselves lie further right than the chi-square distribution. The share of
# them above its 95th percentile is how often a chi-square test at the 5%
# level would reject a true single negative binomial fitted to Rex1:

print(f"above chi-square's 95th percentile: {np.mean(null > chi2(3).ppf(0.95)):.0%}")

# %%
# Every gene can be tested on its own: with ``shared_weights=False`` each gets
# its own test, all in one run, and a test stops early once
# ``max_exceedances`` (10) of its null statistics have reached the observed
# one, with p-value ``10 / n`` at its ``n``-th resample (Besag and Clifford,
# 1991). Genes that are plainly unimodal stop within a few dozen resamples;
# the others run to ``n_resamples``. For a screen of many genes,
# :func:`scipy.stats.false_discovery_control` turns the p-values into
# q-values (Benjamini-Hochberg): a gene's q-value is the smallest false
# discovery rate at which it would be called. Beside them, the chi-square
# p-value that the naive test would give. Prdm14's two-component fit puts a
# component at the Poisson limit, explained above; here it is silenced:

n_resamples = 99
# sphinx_gallery_start_ignore
if QUICK:
    n_resamples = 29
# sphinx_gallery_end_ignore
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PoissonLimitWarning)
    screen = lrt_n_components(
        NegBinomMixture(n_components=1, shared_weights=False),
        counts,
        n_resamples=n_resamples,
        random_state=0,
    )
# sphinx_gallery_start_ignore
smallest = 1 / (1 + n_resamples)
assert screen.pvalue[0] == screen.pvalue[2] == smallest  # Rex1, Nanog
assert screen.n_resamples_used[3] < n_resamples  # Prdm14 stops early
assert screen.pvalue[3] > 0.3
assert screen.pvalue[1] > 2 * chi2(3).sf(screen.statistic[1])  # Rest
# sphinx_gallery_end_ignore
pd.DataFrame(
    {
        "statistic": screen.statistic,
        "p-value": screen.pvalue,
        "resamples": screen.n_resamples_used,
        "q-value": false_discovery_control(screen.pvalue),
        "chi-square p-value": chi2(3).sf(screen.statistic),
    },
    index=counts.columns,
).round(4)

# %%
# Rex1 and Nanog reach the smallest p-value of 99 resamples, 0.01: both are
# bimodal. Prdm14's test stopped early (the resamples column), at its tenth
# null statistic at or above the observed one: nothing suggests a second
# component. Rest lies in between, with a statistic that the chi-square
# distribution would call significant and a bootstrap p-value several times
# larger. Rex1's statistic is the same as in the test above (each gene's test
# is the test of that gene alone), but its null statistics are drawn anew.
#
# A screen of thousands of genes needs more resamples: no p-value is below
# ``1 / (1 + n_resamples)``, so calling ``m`` of ``G`` genes at a false
# discovery rate of 5% takes ``n_resamples`` above about ``20 G / m``. The
# early stopping is what makes that many affordable: only the genes that
# look bimodal run to the end.
# From the shell, ``sknbmix test COUNTS -k 1 --independent --out tests.csv``
# runs the same screen.

# %%
# Sequencing depth and size factors
# ---------------------------------
#
# smFISH counts every transcript of a cell. Single-cell RNA sequencing
# captures and sequences only a fraction of them, and the fraction varies
# several-fold from cell to cell: a cell sequenced twice as deep shows about
# twice the counts in every gene without being a different kind of cell.
# Simulated counts show what that does to a mixture: 2,000 cells of two
# types, A and B, and 300 genes, of which 30 (10%) differ between the types,
# 15 five times higher in type B and 15 five times lower. Each cell has a
# depth drawn from a log-normal distribution (standard deviation 0.5 of the
# logarithm: the middle 95% of the cells span a factor of seven), which
# scales the means of all its genes; given its type and depth, a count is
# negative binomial with ``alpha = 2``. Most counts are zeros, and the matrix
# is stored sparse, as sequencing counts usually are.

rng = np.random.default_rng(0)
n_cells, n_genes = 2000, 300
cell_type = rng.integers(2, size=n_cells)  # 0 is type A, 1 type B
depth = rng.lognormal(0.0, 0.5, size=n_cells)
gene_mean = rng.lognormal(-1.0, 0.6, size=n_genes)
up, down = np.split(rng.choice(n_genes, size=30, replace=False), 2)
fold = np.ones((2, n_genes))
fold[1, up], fold[1, down] = 5.0, 0.2
mean = depth[:, None] * gene_mean * fold[cell_type]
alpha = 2.0
b = mean / alpha
X = sparse.csr_matrix(rng.negative_binomial(alpha, 1 / (1 + b)))
total = np.asarray(X.sum(axis=1)).ravel()
print(f"{n_cells} cells x {n_genes} genes, {1 - X.nnz / (n_cells * n_genes):.0%} zeros")
print(
    f"total count per cell: median {np.median(total):.0f},",
    f"from {total.min()} to {total.max()}",
)

# %%
# Fit two components as before, and again with ``size_factors="total"``:
# every cell's size factor is its total count over the mean total, and given
# component ``k`` its count of gene ``g`` is negative binomial with burst size
# ``s * b[k, g]``, mean ``s * means_[k, g]`` (:doc:`/method` derives the model
# and how it is fitted). Genes with a handful of counts are Poisson-like in
# some components, the warning explained above, here silenced:

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PoissonLimitWarning)
    plain = NegBinomMixture(n_components=2)
    plain_labels = plain.fit_predict(X)
    scaled = NegBinomMixture(n_components=2, size_factors="total")
    scaled_labels = scaled.fit_predict(X)

deep = depth > np.median(depth)
summary = pd.DataFrame(
    {
        labels_name: {
            "cells per component": " / ".join(map(str, np.bincount(labels))),
            "ARI with the types": adjusted_rand_score(cell_type, labels),
            "ARI with deep vs shallow": adjusted_rand_score(deep, labels),
            "median depth per component": " / ".join(
                f"{np.median(depth[labels == k]):.2f}" for k in range(2)
            ),
        }
        for labels_name, labels in [
            ("without size factors", plain_labels),
            ('size_factors="total"', scaled_labels),
        ]
    }
)
print(summary.to_string(float_format="{:.3f}".format))
# sphinx_gallery_start_ignore
assert adjusted_rand_score(cell_type, plain_labels) < 0.05
assert adjusted_rand_score(deep, plain_labels) > 0.4
assert adjusted_rand_score(cell_type, scaled_labels) > 0.95
assert abs(adjusted_rand_score(deep, scaled_labels)) < 0.05
# sphinx_gallery_end_ignore

# %%
# The adjusted Rand index (ARI, :func:`sklearn.metrics.adjusted_rand_score`)
# is 1 when two partitions of the cells agree and about 0 when they are
# unrelated. Without size factors the mixture finds the largest difference
# between the cells, their depth: its components are the shallow and the deep
# cells, unrelated to the types. With size factors it finds the types, and
# is unrelated to depth.
#
# A plot shows it: each cell's total count against a score of the marker
# genes, ``log2`` of (1 + its counts in the genes up in type B) over (1 + its
# counts in the genes down), coloured by the component it is assigned to:

score = np.log2(
    (1 + np.asarray(X[:, up].sum(axis=1)).ravel())
    / (1 + np.asarray(X[:, down].sum(axis=1)).ravel())
)
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True, layout="constrained")
for ax, labels, title in zip(
    axes,
    (plain_labels, scaled_labels),
    ("without size factors", 'size_factors="total"'),
    strict=True,
):
    for k in range(2):
        ax.scatter(
            total[labels == k],
            score[labels == k],
            s=4,
            alpha=0.5,
            label=f"component {k}",
        )
    ax.set_xscale("log")
    ax.set_xticks([30, 100, 300], labels=["30", "100", "300"])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("total count per cell")
    ax.set_title(title)
    ax.legend(loc="center right", markerscale=3)
axes[0].set_ylabel("marker score")
fig.suptitle("Simulated cells of two types: components with and without size factors")

# %%
# The types are the two horizontal bands, high and low marker scores. Without
# size factors the line between the components is vertical, a total count;
# with size factors it runs between the bands. The cells still in doubt are
# shallow ones, with few marker counts to go by.
#
# With size factors, ``means_`` are per unit of size factor, here per cell
# of the mean total count, so the components' means compare the types at
# equal total count. Their ratios:

type_b = np.bincount(scaled_labels[cell_type == 1]).argmax()
ratio = scaled.means_[type_b] / scaled.means_[1 - type_b]
others = np.setdiff1d(np.arange(n_genes), np.concatenate([up, down]))
print("median ratio of type B's means to type A's")
for name, genes in (("up", up), ("down", down), ("other", others)):
    print(f"  {name:>5} genes: {np.median(ratio[genes]):.2f}")
true_totals = (gene_mean * fold).sum(axis=1)
print(f"type A's mean total over type B's: {true_totals[0] / true_totals[1]:.2f}")

# %%
# The genes that do not differ come out at about 0.8, not 1: the 15 genes
# up in type B happen to be more expressed than the 15 down, so a cell of
# type B holds more transcripts in all, and the size factors from the totals
# absorb that. Every ratio is the simulated fold change times the ratio of
# the types' totals, about 0.8 (4 for the genes up five-fold, 0.16 for those
# down). Size factors from the total count compare the composition of
# cells, not their amount; size factors that measure capture alone (from
# spike-ins, say) would keep the difference in total.

# %%
# ``size_factors="total"`` is the simplest choice, and it is computed anew
# from the counts given to each method, so pipelines and cross-validation
# need nothing else. Size factors from elsewhere (spike-ins, or another
# normalisation method) are given as an array, one per cell:
# ``fit(X, size_factors=s)``, and likewise to ``predict``, ``score`` and
# the others. Only their ratios matter: scaling them all by a constant
# divides ``b_`` and ``means_`` by it and leaves the fit unchanged.
