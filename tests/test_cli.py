"""The command line: fit, bootstrap, select, predict and demo print the
library's numbers; files round-trip; errors are one line and exit status 2."""

import csv
import gzip
import io
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import sknbmix.__main__ as cli
from sknbmix import NegBinomMixture, bootstrap, compare_n_components
from sknbmix.__main__ import main
from sknbmix.datasets import load_singer
from sknbmix.io import load_model

NAMES = ["Rex1", "Rest", "Nanog", "Prdm14"]
REX1_LOGLIK = -1590.352137603
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def counts():
    return load_singer().data


@pytest.fixture(scope="module")
def folder(tmp_path_factory, counts):
    """The built-in data as files: a CSV with cell ids, and a 10x folder."""
    path = tmp_path_factory.mktemp("cli")
    cells = [f"cell{i}" for i in range(len(counts))]
    lines = [",".join(["", *NAMES])]
    lines += [
        ",".join([c, *map(str, row)]) for c, row in zip(cells, counts, strict=True)
    ]
    (path / "singer.csv").write_text("\n".join(lines) + "\n")
    tenx = path / "tenx"
    tenx.mkdir()
    scipy.io.mmwrite(tenx / "matrix.mtx", sp.coo_matrix(counts.T))
    with gzip.open(tenx / "features.tsv.gz", "wt") as file:
        file.writelines(
            f"ENSMUSG{i}\t{n}\tGene Expression\n" for i, n in enumerate(NAMES)
        )
    return path


def run(argv, capsys):
    """Run main in-process; return its exit status, stdout and stderr."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def number_after(label, text):
    return float(re.search(rf"{label} (-?[\d.]+)", text).group(1))


# -- fit --------------------------------------------------------------------------


def test_fit_prints_the_library_numbers(folder, counts, capsys):
    code, out, err = run(
        ["fit", folder / "singer.csv", "-k", "2", "--columns", "Rex1"], capsys
    )
    assert code == 0 and err == ""
    model = NegBinomMixture(2).fit(counts[:, :1])
    log_likelihood = number_after("log-likelihood", out)
    assert abs(log_likelihood - REX1_LOGLIK) < 1e-6
    assert f"log-likelihood {model.score(counts[:, :1]) * 279:.6f}," in out
    assert f"BIC {model.bic(counts[:, :1]):.6f}" in out
    assert f"AIC {model.aic(counts[:, :1]):.6f}" in out
    rows = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])
    ]
    assert [float(row[1]) for row in rows] == list(model.weights_.round(4))
    assert [row[2] for row in rows] == ["Rex1", "Rex1"]


def test_fit_independent_shows_each_genes_weights(folder, counts, capsys):
    code, out, _ = run(
        ["fit", folder / "singer.csv", "-k", "2", "--independent"], capsys
    )
    assert code == 0
    model = NegBinomMixture(2, shared_weights=False).fit(counts)
    rows = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])
    ]
    assert len(rows) == 8  # every component and gene, each with its weight
    for row in rows:
        k, g = int(row[0]), NAMES.index(row[2])
        assert float(row[1]) == round(model.weights_[g, k], 4)
    assert f"log-likelihood {model.score(counts) * 279:.6f}," in out


def test_fit_out_writes_a_model_predict_reads(folder, counts, tmp_path, capsys):
    path = tmp_path / "model.json"
    argv = ["fit", folder / "singer.csv", "-k", "2", "--columns", "Nanog,Rex1"]
    code, out, _ = run([*argv, "--out", path], capsys)
    assert code == 0 and f"model written to {path}" in out
    model = load_model(path)
    reference = NegBinomMixture(2).fit(counts[:, [2, 0]])
    assert list(model.feature_names_in_) == ["Nanog", "Rex1"]
    np.testing.assert_array_equal(model.alpha_, reference.alpha_)

    # predict finds the model's genes in the file by name, in its order.
    code, out, err = run(["predict", folder / "singer.csv", "--model", path], capsys)
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["sample", "component", "p0", "p1"]
    assert [row[0] for row in rows[1:4]] == ["cell0", "cell1", "cell2"]
    labels = np.array([int(row[1]) for row in rows[1:]])
    proba = np.array([[float(p) for p in row[2:]] for row in rows[1:]])
    np.testing.assert_array_equal(labels, reference.predict(counts[:, [2, 0]]))
    np.testing.assert_array_equal(proba, reference.predict_proba(counts[:, [2, 0]]))

    labels_path = tmp_path / "labels.csv"
    argv = ["predict", folder / "singer.csv", "--model", path, "--out", labels_path]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "279 samples assigned" in out
    assert labels_path.read_text().splitlines() == [",".join(row) for row in rows]


def test_predict_independent_model(folder, counts, tmp_path, capsys):
    path = tmp_path / "model.json"
    argv = ["fit", folder / "singer.csv", "-k", "2", "--independent", "--out", path]
    assert run(argv, capsys)[0] == 0
    code, out, _ = run(["predict", folder / "singer.csv", "--model", path], capsys)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["sample", "Rex1_component", "Rex1_p0", "Rex1_p1"]
    labels = NegBinomMixture(2, shared_weights=False).fit(counts).predict(counts)
    assert rows[0][4] == "Rest_component"
    np.testing.assert_array_equal([int(row[4]) for row in rows[1:]], labels[:, 1])


def test_fit_mtx_equals_dense(folder, capsys):
    dense = run(
        ["fit", folder / "singer.csv", "-k", "2", "--columns", "Nanog,Rex1"], capsys
    )
    sparse = run(
        ["fit", folder / "tenx" / "matrix.mtx", "-k", "2", "--columns", "Nanog,Rex1"],
        capsys,
    )
    assert "(sparse)" in sparse[1] and "(dense)" in dense[1]
    assert sparse[1].splitlines()[1:] == dense[1].splitlines()[1:]


def test_fit_h5ad_layer(tmp_path, counts, capsys):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    adata = anndata.AnnData(
        X=np.log1p(counts).astype(np.float32), var=pd.DataFrame(index=NAMES)
    )
    adata.layers["counts"] = sp.csr_matrix(counts)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    argv = ["fit", tmp_path / "cells.h5ad", "-k", "2", "--columns", "Rex1"]
    code, out, _ = run([*argv, "--layer", "counts"], capsys)
    assert code == 0 and "(sparse)" in out
    assert abs(number_after("log-likelihood", out) - REX1_LOGLIK) < 1e-6
    # .X holds log-normalised values: a one-line error naming the layer.
    code, out, err = run(argv, capsys)
    assert code == 2 and "layer (this file has: counts)" in err


# -- bootstrap, select ------------------------------------------------------------


def test_bootstrap_csv_equals_to_frame(folder, counts, tmp_path, capsys):
    pytest.importorskip("pandas")
    path = tmp_path / "ci.csv"
    argv = ["bootstrap", folder / "singer.csv", "-k", "2", "--columns", "Rex1,Nanog"]
    argv += ["--n-resamples", 50, "--n-jobs", 1, "--seed", 0, "--out", path]
    code, out, err = run(argv, capsys)
    assert code == 0 and f"intervals written to {path}" in out
    assert "bootstrap" in err  # the progress bar
    model = NegBinomMixture(2).fit(counts[:, [0, 2]])
    result = bootstrap(model, counts[:, [0, 2]], n_resamples=50, random_state=0)
    frame = result.to_frame()
    frame["feature"] = frame["feature"].map(
        lambda g: "" if g is None else ["Rex1", "Nanog"][g]
    )
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == list(frame.columns)
    expected = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    assert rows[1:] == expected
    # The printed table shows the same intervals.
    low, high = result.confidence_interval["means"]
    assert f"{low[1, 1]:10.4f} {high[1, 1]:10.4f}" in out


def test_select_prints_compare_n_components(folder, counts, capsys):
    argv = [
        "select",
        folder / "singer.csv",
        "-k",
        "1-3",
        "--cv",
        3,
        "--columns",
        "Rex1",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    comparison = compare_n_components(counts[:, :1], [1, 2, 3], cv=3)
    rows = [line.split() for line in out.splitlines() if line[:3].strip().isdigit()]
    assert [int(row[0]) for row in rows] == [1, 2, 3]
    for row, i in zip(rows, range(3), strict=True):
        assert row[1:] == [
            f"{comparison.log_likelihood[i]:.6f}",
            f"{comparison.bic[i]:.3f}",
            f"{comparison.aic[i]:.3f}",
            f"{comparison.cv_log_likelihood[i]:.6f}",
        ]
    assert "BIC chooses K = 2, AIC chooses K = 3, cross-validation chooses" in out


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1-6", [1, 2, 3, 4, 5, 6]),
        ("1,2,4", [1, 2, 4]),
        ("3", [3]),
        ("4,1-2", [1, 2, 4]),
    ],
)
def test_n_components_lists(text, expected):
    assert cli._components_list(text) == expected


def test_select_without_cv(folder, capsys):
    argv = ["select", folder / "singer.csv", "-k", "1,3", "--cv", 0, "--independent"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "CV" not in out and "cross-validation" not in out
    assert re.search(r"^  3 ", out, flags=re.M)


# -- figures ----------------------------------------------------------------------


def test_plots_are_written(folder, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = folder / "singer.csv"
    commands = {
        "ecdf.png": ["fit", data, "-k", "2", "--columns", "Rex1,Nanog"],
        "corner.png": ["bootstrap", data, "-k", "2", "--columns", "Rex1"]
        + ["--n-resamples", 20, "--n-jobs", 1, "--no-progress"],
        "bic.pdf": ["select", data, "-k", "1-2", "--cv", 0, "--columns", "Rex1"],
    }
    for name, argv in commands.items():
        code, out, err = run([*argv, "--plot", tmp_path / name], capsys)
        assert code == 0 and err == "", name
        assert f"figure written to {tmp_path / name}" in out
    assert (tmp_path / "ecdf.png").read_bytes().startswith(PNG)
    assert (tmp_path / "corner.png").read_bytes().startswith(PNG)
    assert (tmp_path / "bic.pdf").read_bytes().startswith(b"%PDF")


def test_plot_without_matplotlib_is_a_one_line_error(
    folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["fit", folder / "singer.csv", "-k", "1", "--columns", "Rex1"]
    code, _, err = run([*argv, "--plot", tmp_path / "f.png"], capsys)
    assert code == 2
    assert (
        err
        == "sknbmix fit: error: figures need matplotlib: pip install 'sknbmix[plot]'\n"
    )


# -- demo ---------------------------------------------------------------------------


@pytest.fixture
def fast_bootstrap(monkeypatch):
    """The demo with 20 replicates in-process: its layout, not its time."""

    def few(model, X, **kwargs):
        return bootstrap(model, X, **{**kwargs, "n_resamples": 20, "n_jobs": 1})

    monkeypatch.setattr(cli, "bootstrap", few)


def test_demo_writes_figures(fast_bootstrap, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out, _ = run(["demo", "--quick", "--figures", tmp_path / "figs"], capsys)
    assert code == 0
    assert "log-likelihood -1590.352138, converged True" in out
    assert "BIC chooses K = 2, AIC chooses K = 3" in out
    assert f"in {tmp_path / 'figs'}" in out
    for name in ("rex1_ecdf", "rex1_bootstrap_corner", "rex1_information_criteria"):
        assert (tmp_path / "figs" / f"{name}.png").read_bytes().startswith(PNG)


def test_demo_without_matplotlib_still_prints(
    fast_bootstrap, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    code, out, _ = run(["demo", "--figures", tmp_path / "figs"], capsys)
    assert code == 0
    assert (
        out.splitlines()[0]
        == "(No figures: figures need matplotlib: pip install 'sknbmix[plot]')"
    )
    assert "== All four genes" in out and not (tmp_path / "figs").exists()


# -- feature names ------------------------------------------------------------------


def test_commands_emit_no_feature_name_warning(
    folder, tmp_path, fast_bootstrap, capsys
):
    pytest.importorskip("matplotlib")
    data = folder / "singer.csv"
    model = tmp_path / "model.json"
    commands = [
        ["fit", data, "-k", "2", "--columns", "Nanog,Rex1", "--out", model]
        + ["--plot", tmp_path / "ecdf.png"],
        ["fit", folder / "tenx" / "matrix.mtx", "-k", "2", "--independent"],
        ["bootstrap", data, "-k", "2", "--columns", "Rex1", "--n-resamples", 20]
        + ["--n-jobs", 1, "--no-progress", "--out", tmp_path / "intervals.csv"]
        + ["--plot", tmp_path / "corner.png"],
        ["select", data, "-k", "1-2", "--cv", 2, "--columns", "Rex1"],
        ["predict", data, "--model", model],
        ["predict", folder / "tenx" / "matrix.mtx", "--model", model],
        ["demo", "--quick", "--figures", tmp_path / "figs"],
    ]
    for argv in commands:
        # scikit-learn's "X does not have valid feature names" (a model with
        # names given an array) and "X has feature names" would raise here.
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*feature names")
            code, _, err = run(argv, capsys)
        assert code == 0, argv
        assert "feature names" not in err, argv
    # The names still reach the saved model and the intervals.
    assert list(load_model(model).feature_names_in_) == ["Nanog", "Rex1"]
    with open(tmp_path / "intervals.csv", newline="") as file:
        assert {row["feature"] for row in csv.DictReader(file)} == {"", "Rex1"}


def test_ecdf_figure_is_labelled_by_gene(counts, tmp_path):
    pytest.importorskip("matplotlib")
    # The command line's model has no names; the panels still have them.
    model = NegBinomMixture(2).fit(counts[:, [2, 0]])
    names = ["Nanog", "Rex1"]
    fig = cli._ecdf_figure(model, counts[:, [2, 0]], tmp_path / "e.png", names)
    assert [ax.get_xlabel() for ax in fig.axes] == ["Nanog count", "Rex1 count"]
    assert fig.axes[1].get_title() == "Rex1: data and 2-component mixture"


def test_feature_name_warnings_are_not_filtered(monkeypatch, capsys):
    # A warning about names from inside a command reaches the user: main
    # silences none of them, and leaves the caller's filters as they were.
    def warns(args, out):
        warnings.warn(
            "X does not have valid feature names, but NegBinomMixture was "
            "fitted with feature names",
            UserWarning,
            stacklevel=1,
        )

    monkeypatch.setitem(cli._COMMANDS, "fit", warns)
    filters = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = run(["fit", "counts.csv", "-k", "2"], capsys)
    assert code == 0
    assert err == (
        "sknbmix: warning: X does not have valid feature names, but "
        "NegBinomMixture was fitted with feature names\n"
    )
    assert warnings.filters == filters


def test_predict_other_columns_than_the_models_warns(folder, tmp_path, capsys):
    path = tmp_path / "model.json"
    argv = ["fit", folder / "singer.csv", "-k", "2", "--columns", "Nanog,Rex1"]
    assert run([*argv, "--out", path], capsys)[0] == 0
    argv = ["predict", folder / "singer.csv", "--model", path, "--columns"]
    code, out, err = run([*argv, "Rest,Rex1"], capsys)
    assert code == 0
    assert err == (
        f"sknbmix: warning: the columns Rest, Rex1 of {folder / 'singer.csv'} are "
        "not the model's genes Nanog, Rex1; they are used in that order.\n"
    )
    assert len(out.splitlines()) == 280
    # The model's own genes, by name, are not worth a warning.
    code, _, err = run([*argv, "Nanog,Rex1"], capsys)
    assert code == 0 and err == ""


# -- errors -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(folder):
    (folder / "fractions.csv").write_text("Rex1\n1.5\n2\n")
    (folder / "model.json").write_text('{"format": "something else"}')
    return folder


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "{d}/missing.csv", "-k", "2"], "No such file"),
        (
            ["fit", "{d}/singer.csv", "-k", "2", "--columns", "Foo,Rex1"],
            "unknown column Foo",
        ),
        (["fit", "{d}/singer.csv", "-k", "x"], "argument -k/--n-components"),
        (["fit", "{d}/singer.csv", "-k", "0"], "expected a positive integer"),
        (["fit", "{d}/singer.csv"], "required: -k"),
        (["fit", "{d}/singer.csv", "-k", "300"], "n_samples >= n_components"),
        (["fit", "{d}/fractions.csv", "-k", "1"], "holds 1.5, not a count"),
        (["fit", "{d}/tenx/matrix.mtx", "-k", "2", "--transpose"], "transpose applies"),
        (["fit", "{d}/table.xlsx", "-k", "2"], "cannot read .xlsx"),
        (["select", "{d}/singer.csv", "-k", "3-1"], "like 1-6, 1,2,4 or 3"),
        (["select", "{d}/singer.csv", "--cv", "1"], "--cv must be 0"),
        (
            ["bootstrap", "{d}/singer.csv", "-k", "2", "--confidence-level", "95"],
            "between 0 and 1",
        ),
        (["bootstrap", "{d}/singer.csv", "-k", "2", "--n-jobs", "0"], "non-zero"),
        (
            ["predict", "{d}/singer.csv", "--model", "{d}/model.json"],
            "not a sknbmix model",
        ),
        (["predict", "{d}/singer.csv", "--model", "{d}/singer.csv"], "not JSON"),
        (["frobnicate"], "invalid choice"),
        ([], "a command is required"),
    ],
)
def test_errors_are_one_line(bad_files, argv, message, capsys):
    code, out, err = run([arg.format(d=bad_files) for arg in argv], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sknbmix") and "error: " in err
    assert message in err and "Traceback" not in err


def test_h5ad_without_anndata_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "anndata", None)
    code, _, err = run(["fit", tmp_path / "cells.h5ad", "-k", "2"], capsys)
    assert code == 2
    assert err == (
        "sknbmix fit: error: reading .h5ad files needs anndata: "
        "pip install 'sknbmix[anndata]'\n"
    )


# -- help -----------------------------------------------------------------------------


def test_every_option_has_help():
    parser = cli._build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    assert set(subparsers) == {"fit", "bootstrap", "select", "test", "predict", "demo"}
    for name, subparser in subparsers.items():
        for action in subparser._actions:
            assert action.help, (name, action.dest)
        assert "examples:" in subparser.epilog, name


def test_help_in_process(capsys):
    code, out, _ = run(["bootstrap", "--help"], capsys)
    assert code == 0
    for option in ("--n-resamples", "--n-jobs", "--method", "--ci-method", "--seed"):
        assert option in out


# -- the installed command ------------------------------------------------------------


def test_python_m_sknbmix_help():
    done = subprocess.run(
        [sys.executable, "-m", "sknbmix", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for command in ("fit", "bootstrap", "select", "predict", "demo"):
        assert command in done.stdout


def test_console_script(folder):
    script = shutil.which("sknbmix", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the sknbmix console script is not installed")
    done = subprocess.run(
        [script, "fit", str(folder / "singer.csv"), "-k", "2", "--columns", "Rex1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "log-likelihood -1590.352138," in done.stdout
    done = subprocess.run(
        [script, "fit", str(folder / "missing.csv"), "-k", "2"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
