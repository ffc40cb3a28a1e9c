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
import html.parser
import re
import sys
import sysconfig
import urllib.parse
from pathlib import Path

from sphinx.util import logging

# Document the source tree next to this file, even when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sknbmix  # noqa: E402

_logger = logging.getLogger(__name__)

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


# -- checks of the built pages -----------------------------------------------

# A warning that Python printed: "path/to/file.py:858: SomeWarning: ...".
_PRINTED_WARNING = re.compile(r"\.py:\d+: \w*Warning\b")


class _PageScan(html.parser.HTMLParser):
    """The ids, and the local targets of links, images and scripts, of a page."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.targets = []
        self.gallery_images = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        if tag == "img" and "sphx_glr_" in attrs.get("src", ""):
            self.gallery_images.append((attrs["src"], attrs.get("alt", "")))
        for name in ("href", "src", "srcset"):
            value = attrs.get(name)
            if value:
                # A srcset lists "url size, url size"; each url is a target.
                urls = value.split(",") if name == "srcset" else [value]
                self.targets += [(tag, url.split()[0]) for url in urls if url.strip()]


def _gallery_fallback_alt(src):
    """The alt text sphinx-gallery gives a figure with no title: its file
    name, sphx_glr_plot_tutorial_001.png giving "plot tutorial"."""
    return re.sub(r"[-,_]", " ", Path(src).stem[len("sphx_glr_") : -len("_001")])


def _check_built_pages(app, exception):
    """Warn (an error under -W) about what a reader of the HTML would meet:
    a link to a page or anchor that does not exist, a script or style loaded
    from the network (the pages must work offline: MathJax is bundled), and
    a path of the machine that built the pages, as in a warning that a
    tutorial printed into its output, and a tutorial figure whose alt text
    is only its file name."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    build_paths = {
        str(Path(app.srcdir).resolve().parent),
        sys.prefix,
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["stdlib"],
    }
    pages = {}
    for page in sorted(outdir.rglob("*.html")):
        scan = _PageScan()
        text = page.read_text(encoding="utf-8")
        scan.feed(text)
        pages[page.resolve()] = (scan, text)
    problems = []
    for page, (scan, text) in pages.items():
        name = page.relative_to(outdir.resolve()).as_posix()
        for tag, url in scan.targets:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme or url.startswith("//"):
                if tag in ("script", "link") and parts.scheme in ("http", "https"):
                    problems.append(f"{name}: <{tag}> loads {url} from the network")
                continue
            target = (page.parent / urllib.parse.unquote(parts.path)).resolve()
            if not parts.path:
                target = page
            if not target.exists():
                problems.append(f"{name}: <{tag}> points to a missing file: {url}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target][0].ids if target in pages else set()
                if urllib.parse.unquote(parts.fragment) not in ids:
                    problems.append(f"{name}: link to a missing anchor: {url}")
        shown = sorted(path for path in build_paths if path in text)
        if shown:
            problems.append(f"{name}: shows paths of the build machine: {shown}")
        for match in _PRINTED_WARNING.finditer(text):
            problems.append(f"{name}: shows a printed warning: ...{match.group()}")
        for src, alt in scan.gallery_images:
            if alt == _gallery_fallback_alt(src):
                problems.append(
                    f"{name}: {src} has the file name as alt text; give the "
                    "figure a suptitle or an Axes title (sphinx-gallery's alt)"
                )
    for problem in problems:
        _logger.warning(problem, type="sknbmix", subtype="built_pages")


def setup(app):
    app.connect("missing-reference", _link_sklearn_glossary)
    app.connect("autodoc-process-docstring", _quote_shape_names)
    # After the other handlers of build-finished: sphinx-mathjax-offline
    # copies MathJax into _static there.
    app.connect("build-finished", _check_built_pages, priority=900)
