"""Fixtures shared by the test modules: the built-in smFISH counts."""

import pytest

from sknbmix.datasets import load_singer


@pytest.fixture(scope="module")
def singer():
    """279 cells x Rex1, Rest, Nanog, Prdm14."""
    return load_singer().data


@pytest.fixture(scope="module")
def rex1(singer):
    """Rex1 alone, as a 2-D array."""
    return singer[:, :1]
