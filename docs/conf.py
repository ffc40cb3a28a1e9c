"""Sphinx configuration for the sknbmix documentation.

The documentation tools are not test dependencies; ``make docs`` installs
the ``docs`` extra into ``.venv`` and builds the HTML pages, warnings being
errors. By hand, from the repository root::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -b doctest docs docs/_build/doctest

The build runs the tutorial scripts of ``examples/`` with sphinx-gallery (into
``docs/auto_examples``, not kept in git), so every number and figure on their
pages comes from the code as it is. The second command runs the ``>>>``
examples of these pages and of the docstrings pulled in by autodoc.
"""

import doctest
import re
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
    # MathJax (3.2) comes with the build, in _static/mathjax, instead of from
    # a CDN: the formulas render with no network (a cluster node, a laptop
    # offline, the pages that make docs writes).
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# sphinx.ext.intersphinx is deliberately left out: it downloads inventories
# at build time, and the documentation must build without network access.
# The docstrings follow scikit-learn's, whose :term: roles point into
# scikit-learn's glossary; _link_sklearn_glossary below resolves them.

# Every cross-reference must resolve: with -W an unresolved one (a misspelt
# name, a method that is not documented, a relative name in the wrong
# module) fails the build. The one exception is other projects' objects,
# which only intersphinx could resolve (see above): they render as code, not
# links. The list names projects, not objects, so nothing of sknbmix's own
# can hide behind it.
nitpicky = True
_OUTSIDE_PROJECTS = (
    "numpy",
    "scipy",
    "sklearn",
    "pandas",
    "matplotlib",
    "joblib",
    "anndata",
    "dask",
    "distributed",
)
nitpick_ignore_regex = [(r"py:.*", rf"(?:{'|'.join(_OUTSIDE_PROJECTS)})(?:\..+)?")]

templates_path = []
# The gallery's own index page is left out: the table of contents links the
# tutorial page directly.
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "auto_examples/index.rst",
]
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

# -- sphinx-gallery ----------------------------------------------------------

# examples/plot_*.py run at every build (run_stale_examples: not only when the
# script changed), so their pages show what the code computes today; an
# example that raises fails the build.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "run_stale_examples": True,
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    # Tables (pandas) show as HTML; the repr of a returned Axes does not.
    "capture_repr": ("_repr_html_",),
    "min_reported_time": 1,
    "doc_module": ("sknbmix",),
    "reference_url": {"sknbmix": None},
    "backreferences_dir": None,
    "write_computation_times": False,
}

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

html_theme = "furo"
html_title = f"sknbmix {release}"
html_static_path = []

# -- docstring fix-ups -------------------------------------------------------

_SKLEARN_GLOSSARY = "https://scikit-learn.org/stable/glossary.html#term-"


def _link_sklearn_glossary(app, env, node, contnode):
    """Resolve a :term: that no page here defines to scikit-learn's glossary,
    as intersphinx would, without downloading its inventory."""
    from docutils import nodes

    if node.get("refdomain") != "std" or node.get("reftype") != "term":
        return None
    # Sphinx's anchor for a glossary term (sphinx.util.nodes.make_id).
    target = re.sub(r"[^a-zA-Z0-9._]+", "-", node["reftarget"].strip())
    reference = nodes.reference(
        "", "", internal=False, refuri=_SKLEARN_GLOSSARY + target
    )
    reference += contnode
    return reference


def _quote_shape_names(app, what, name, obj, options, lines):
    """``shape (n_features_in_,)`` reads as a link target in reST; quote the
    attribute name, as scikit-learn's docstrings do with backquotes."""
    lines[:] = [re.sub(r"\((\w+_),\)", r"(`\1`,)", line) for line in lines]


def setup(app):
    app.connect("missing-reference", _link_sklearn_glossary)
    app.connect("autodoc-process-docstring", _quote_shape_names)
