"""The documentation's code runs: the tutorial scripts of examples/ (which the
Sphinx build executes with sphinx-gallery) and the names on the API page.

The scripts run here with SKNBMIX_TUTORIAL_QUICK=1, which only shrinks their
bootstraps; the published build runs them at full size (``make docs``).
"""

import importlib
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Each script of examples/, run once in a fresh interpreter."""
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "SKNBMIX_TUTORIAL_QUICK": "1",
        # The scripts import the package from the source tree.
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    cwd = tmp_path_factory.mktemp("examples")
    return {
        script.name: subprocess.run(
            [sys.executable, str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        for script in EXAMPLES
    }


def test_examples_are_gallery_scripts():
    # sphinx-gallery executes only files named plot_*.py (docs/conf.py), and
    # takes the page title from the module docstring.
    assert EXAMPLES
    for script in EXAMPLES:
        assert script.name.startswith("plot_"), script.name
        assert script.read_text().startswith('"""'), script.name


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, ran):
    completed = ran[script.name]
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_tutorial_reaches_the_known_optima(ran):
    completed = ran["plot_tutorial.py"]
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert "log-likelihood, K=1: -1638.678352600" in out
    assert "log-likelihood, K=2: -1590.352137603" in out
    assert "log-likelihood: -5025.819341247" in out
    assert "labels flipped: True" in out
    assert "BIC chooses K = 2" in out
    assert "GridSearchCV chooses {'n_components': 3}" in out
    assert re.search(r"\d+ replicates, 0 failed", out)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_prints_no_warning_and_no_path(script, ran):
    # sphinx-gallery puts what a script prints, stderr included, into its
    # page: a warning that Python prints there shows the path of the machine
    # that built the docs, and a line too long for the block. A script shows
    # a warning that is part of its lesson by printing its category and
    # message, and silences the ones it expects elsewhere.
    completed = ran[script.name]
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout + completed.stderr
    printed = re.findall(r"^.*\.py:\d+: \w*Warning\b.*$", output, flags=re.M)
    assert not printed, printed
    for path in {str(ROOT), sys.prefix, sysconfig.get_paths()["purelib"]}:
        assert path not in output, path
    # The output blocks of the furo pages hold about 85 characters a line.
    long_lines = [line for line in output.splitlines() if len(line) > 80]
    assert not long_lines, long_lines


def test_tutorial_shows_the_poisson_limit_warning_once(ran):
    out = ran["plot_tutorial.py"].stdout
    assert out.count("PoissonLimitWarning: alpha reached its cap") == 1, out


def _api_names():
    text = (ROOT / "docs" / "api.rst").read_text()
    block = text.split(".. autosummary::", 1)[1]
    names = re.findall(r"^   ([A-Za-z_][\w.]*)$", block, flags=re.M)
    return [f"sknbmix.{name}" for name in names]


@pytest.mark.parametrize("name", _api_names())
def test_api_page_names_exist(name):
    module_name, _, attribute = name.rpartition(".")
    module = importlib.import_module(module_name)
    assert hasattr(module, attribute), name
