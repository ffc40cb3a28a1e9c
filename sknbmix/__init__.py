"""Mixtures of negative binomial distributions for count data.

sknbmix fits mixtures of negative binomials to transcript counts (smFISH,
single-cell RNA) by maximum likelihood, as scikit-learn estimators.
"""

# SPDX-License-Identifier: BSD-3-Clause

from sknbmix._bootstrap import BootstrapResult, bootstrap
from sknbmix._lrt import LRTResult, lrt_n_components
from sknbmix._mixture import NegBinomMixture
from sknbmix._selection import compare_n_components

__version__ = "0.1.0.dev0"

__all__ = [
    "BootstrapResult",
    "LRTResult",
    "NegBinomMixture",
    "bootstrap",
    "compare_n_components",
    "lrt_n_components",
    "__version__",
]
