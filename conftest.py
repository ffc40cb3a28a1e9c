"""Collection settings for the doctests of the package (run from the root)."""

import importlib.util

# The compiled EM step imports numba, an optional dependency (the ``fast``
# extra): without it, its module is not collected for doctests.
collect_ignore = [] if importlib.util.find_spec("numba") else ["sknbmix/_em_numba.py"]
