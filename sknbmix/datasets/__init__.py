"""Small count datasets shipped with sknbmix, loaded as in :mod:`sklearn.datasets`."""

from sknbmix.datasets._base import load_singer

__all__ = ["load_singer"]
