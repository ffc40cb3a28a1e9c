"""Sphinx configuration for the sknbmix documentation.

The documentation tools are not test dependencies; install them with the
``docs`` extra, then build from the repository root::

    pip install -e ".[docs]"
    python -m sphinx -b html docs docs/_build/html
    python -m sphinx -b doctest docs docs/_build/doctest

The second command runs the ``>>>`` examples of these pages and of the
docstrings pulled in by autodoc.
"""

import doctest
import sys
from pathlib import Path

# Document the source tree next to this file, even when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sknbmix  # noqa: E402

# -- Project information -----------------------------------------------------

project = "sknbmix"
author = "sknbmix developers"
copyright = "sknbmix developers"
release = sknbmix.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.extlinks",
    "sphinx.ext.mathjax",
    "numpydoc",
]
# sphinx.ext.intersphinx is deliberately left out: it downloads inventories
# at build time, and the documentation must build without network access.

templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# :doi:`10.1016/...` in docstrings, as in scikit-learn.
extlinks = {"doi": ("https://doi.org/%s", "doi:%s")}

# -- autodoc / autosummary / numpydoc ----------------------------------------

# The API page lists its entries with autodoc directives; no stub files.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"

# numpydoc writes the Parameters/Returns/... sections; ``:members:`` on the
# API page lists the methods, so numpydoc must not add a second table.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- doctest -----------------------------------------------------------------

# Same flags as the pytest run (pyproject.toml: doctest_optionflags).
doctest_global_setup = "import numpy as np"
doctest_default_flags = (
    doctest.ELLIPSIS
    | doctest.NORMALIZE_WHITESPACE
    | doctest.IGNORE_EXCEPTION_DETAIL
    | doctest.DONT_ACCEPT_TRUE_FOR_1
)

# -- HTML output -------------------------------------------------------------

html_theme = "alabaster"
html_title = f"sknbmix {release}"
html_static_path = []
