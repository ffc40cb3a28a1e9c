"""Fixtures shared by the test modules: the built-in smFISH counts, and the
choice of EM step."""

import pytest

import sknbmix._em as em
from sknbmix.datasets import load_singer


@pytest.fixture(scope="module")
def singer():
    """279 cells x Rex1, Rest, Nanog, Prdm14."""
    return load_singer().data


@pytest.fixture(scope="module")
def rex1(singer):
    """Rex1 alone, as a 2-D array."""
    return singer[:, :1]


@pytest.fixture(scope="module", params=["compiled", "numpy"])
def em_backend(request):
    """Run a module's tests with the compiled EM step and with numpy's.

    In this process only: joblib and dask workers choose for themselves (by
    ``SKNBMIX_NUMBA``), so modules that compare parallel runs with serial
    ones do not use this.
    """
    saved = em._kernels
    if request.param == "compiled":
        em._kernels = None
        if em.compiled_kernels() is None:
            em._kernels = saved
            pytest.skip("numba is not installed")
    else:
        em._kernels = False
    yield request.param
    em._kernels = saved
