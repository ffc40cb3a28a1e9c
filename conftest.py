"""Collection settings for the doctests of the package (run from the root)."""

# The compiled EM step imports numba, an optional dependency (the ``fast``
# extra): without it (or with one that does not import), its module is not
# collected for doctests.
try:
    import numba  # noqa: F401
except ImportError:
    collect_ignore = ["sknbmix/_em_numba.py"]
else:
    collect_ignore = []
