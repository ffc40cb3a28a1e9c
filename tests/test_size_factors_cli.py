"""Size factors on the command line (--size-factors total, FILE, obs:COLUMN
for fit, bootstrap, select and predict), in saved models, and in
compare_n_components: the library's numbers, and one-line errors."""

import csv
import io
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import KFold

from sknbmix import NegBinomMixture, bootstrap, compare_n_components
from sknbmix.__main__ import main
from sknbmix._data import total_size_factors
from sknbmix._likelihood import sample_mixture
from sknbmix.io import load_model

GENES = ["A", "B", "C"]
N_CELLS = 240


@pytest.fixture(scope="module")
def depth():
    """Counts of three genes in cells whose depth varies (log-normal, sd
    0.5), the depths, and the cell names."""
    rng = np.random.default_rng(11)
    size_factors = np.exp(rng.normal(0.0, 0.5, N_CELLS))
    alpha = np.array([[3.0, 5.0, 4.0], [6.0, 2.0, 5.0]])
    b = np.array([[2.0, 10.0, 5.0], [10.0, 2.0, 6.0]])
    X = sample_mixture(rng, N_CELLS, np.array([0.4, 0.6]), alpha, b, size_factors)[0]
    cells = [f"cell{i}" for i in range(N_CELLS)]
    return X, size_factors, cells


@pytest.fixture(scope="module")
def files(tmp_path_factory, depth):
    """The counts as a CSV with cell names, the size factors as a plain
    column, as named rows in another order, and both in an .h5ad file."""
    X, size_factors, cells = depth
    path = tmp_path_factory.mktemp("size_factors")
    rows = [",".join(["", *GENES])]
    rows += [",".join([c, *map(str, x)]) for c, x in zip(cells, X, strict=True)]
    (path / "counts.csv").write_text("\n".join(rows) + "\n")
    (path / "sf.txt").write_text("".join(f"{s!r}\n" for s in size_factors.tolist()))
    named = [f"{cells[i]},{size_factors[i].item()!r}" for i in range(N_CELLS)][::-1]
    (path / "named.csv").write_text("\n".join(["cell,size_factor", *named]) + "\n")
    (path / "short.txt").write_text("1.0\n2.0\n")
    negative = size_factors.copy()
    negative[3] = -0.5
    (path / "negative.txt").write_text("".join(f"{s!r}\n" for s in negative.tolist()))
    (path / "words.txt").write_text("sf\n1.0\nmany\n")
    # The first 60 cells, as new data to predict.
    (path / "new.csv").write_text("\n".join(rows[:61]) + "\n")
    (path / "new_sf.txt").write_text(
        "".join(f"{s!r}\n" for s in size_factors[:60].tolist())
    )
    return path


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory, depth):
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    X, size_factors, cells = depth
    obs = pd.DataFrame({"depth": size_factors, "batch": ["x"] * N_CELLS}, index=cells)
    adata = anndata.AnnData(
        X=sp.csr_matrix(X.astype(np.float32)), obs=obs, var=pd.DataFrame(index=GENES)
    )
    path = tmp_path_factory.mktemp("h5ad") / "cells.h5ad"
    adata.write_h5ad(path)
    return path


def run(argv, capsys, strict=True):
    """Run main in-process, warnings as errors unless ``strict`` is False;
    return its exit status, stdout and stderr."""
    with warnings.catch_warnings():
        if strict:
            warnings.simplefilter("error")
        code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def number_after(label, text):
    return float(re.search(rf"{label} (-?[\d.]+)", text).group(1))


def assert_prints_fit(out, model, X, size_factors=None):
    """The log-likelihood, BIC and AIC the command printed are the model's."""
    n = X.shape[0]
    log_likelihood = model.score(X, size_factors=size_factors) * n
    assert f"log-likelihood {log_likelihood:.6f}," in out
    assert f"BIC {model.bic(X, size_factors=size_factors):.6f}" in out
    assert f"AIC {model.aic(X, size_factors=size_factors):.6f}" in out


def predictions(out):
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["sample", "component", "p0", "p1"]
    return np.array([[float(p) for p in row[2:]] for row in rows[1:]])


# -- fit --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["sf.txt", "named.csv"])
def test_fit_with_a_file(files, depth, source, capsys):
    X, size_factors, _ = depth
    argv = ["fit", files / "counts.csv", "-k", 2]
    code, out, err = run([*argv, "--size-factors", files / source], capsys)
    assert code == 0 and err == ""
    model = NegBinomMixture(2).fit(X, size_factors=size_factors)
    assert_prints_fit(out, model, X, size_factors)
    assert "size factors: given, " in out
    assert "(b and mean are per unit of size factor)" in out
    # Without them the fit is another.
    code, plain, _ = run(argv, capsys)
    assert code == 0 and "size factors" not in plain
    assert number_after("log-likelihood", plain) != number_after("log-likelihood", out)


def test_fit_with_total(files, depth, capsys):
    X, _, _ = depth
    argv = ["fit", files / "counts.csv", "-k", 2, "--size-factors", "total"]
    code, out, err = run(argv, capsys)
    assert code == 0 and err == ""
    model = NegBinomMixture(2, size_factors="total").fit(X)
    assert_prints_fit(out, model, X)
    totals = total_size_factors(X)
    assert f"size factors: total counts over their mean, {totals.min():.4g} " in out
    # "none" is the default.
    none = run(["fit", files / "counts.csv", "-k", 2, "--size-factors", "none"], capsys)
    assert none[0] == 0
    assert none[1] == run(["fit", files / "counts.csv", "-k", 2], capsys)[1]


def test_fit_with_an_obs_column(h5ad, depth, capsys):
    X, size_factors, _ = depth
    argv = ["fit", h5ad, "-k", 2, "--size-factors", "obs:depth"]
    code, out, err = run(argv, capsys)
    assert code == 0 and err == ""
    # float32 in the file: the counts are whole numbers all the same.
    model = NegBinomMixture(2).fit(X, size_factors=size_factors)
    assert_prints_fit(out, model, X, size_factors)


# -- saved models and predict -------------------------------------------------------


def test_model_fitted_with_total_predicts_with_the_new_cells_totals(
    files, depth, tmp_path, capsys
):
    X, size_factors, _ = depth
    path = tmp_path / "total.json"
    argv = ["fit", files / "counts.csv", "-k", 2, "--size-factors", "total"]
    assert run([*argv, "--out", path], capsys)[0] == 0
    saved = load_model(path)
    assert saved.size_factors == "total" and saved.size_factors_used_ == "total"
    model = NegBinomMixture(2, size_factors="total").fit(X)
    new = X[:60]
    code, out, err = run(["predict", files / "new.csv", "--model", path], capsys)
    assert code == 0 and err == ""
    # The totals of the 60 new cells over their own mean, not of all cells.
    expected = model.predict_proba(new, size_factors=total_size_factors(new))
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)
    assert not np.allclose(
        expected, model.predict_proba(new, size_factors=total_size_factors(X)[:60])
    )
    # --size-factors says otherwise: a file, or none.
    argv = ["predict", files / "new.csv", "--model", path, "--size-factors"]
    code, out, err = run([*argv, files / "new_sf.txt"], capsys)
    assert code == 0 and err == ""
    expected = model.predict_proba(new, size_factors=size_factors[:60])
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)
    code, out, err = run([*argv, "none"], capsys)
    assert code == 0 and err == ""
    expected = model.predict_proba(new, size_factors=np.ones(60))
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)


def test_model_fitted_with_a_file_needs_size_factors_to_predict(
    files, depth, tmp_path, capsys
):
    X, size_factors, _ = depth
    path = tmp_path / "given.json"
    argv = ["fit", files / "counts.csv", "-k", 2, "--size-factors", files / "sf.txt"]
    assert run([*argv, "--out", path], capsys)[0] == 0
    saved = load_model(path)
    assert saved.size_factors is None and saved.size_factors_used_ == "given"
    model = NegBinomMixture(2).fit(X, size_factors=size_factors)
    code, out, err = run(["predict", files / "new.csv", "--model", path], capsys)
    assert code == 2 and out == ""
    assert err == (
        "sknbmix predict: error: given.json was fitted with size factors given "
        "per cell: give those of these cells with --size-factors FILE, "
        "obs:COLUMN or total (or none, for 1 each).\n"
    )
    argv = ["predict", files / "new.csv", "--model", path, "--size-factors"]
    code, out, err = run([*argv, files / "new_sf.txt"], capsys)
    assert code == 0 and err == ""
    expected = model.predict_proba(X[:60], size_factors=size_factors[:60])
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)
    code, out, _ = run([*argv, "total"], capsys)
    assert code == 0
    expected = model.predict_proba(X[:60], size_factors=total_size_factors(X[:60]))
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)


def test_predict_with_size_factors_for_a_model_without_warns(
    files, depth, tmp_path, capsys
):
    X, size_factors, _ = depth
    path = tmp_path / "plain.json"
    assert run(["fit", files / "counts.csv", "-k", 2, "--out", path], capsys)[0] == 0
    assert load_model(path).size_factors_used_ == "none"
    argv = ["predict", files / "new.csv", "--model", path, "--size-factors"]
    code, out, err = run([*argv, files / "new_sf.txt"], capsys, strict=False)
    assert code == 0
    assert err == (
        "sknbmix: warning: plain.json was fitted without size factors (1 for "
        "every cell); the cells are assigned with those of --size-factors, as "
        "asked.\n"
    )
    model = NegBinomMixture(2).fit(X)
    expected = model.predict_proba(X[:60], size_factors=size_factors[:60])
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)
    code, _, err = run([*argv, "none"], capsys)
    assert code == 0 and err == ""


def test_predict_h5ad_with_an_obs_column(h5ad, depth, tmp_path, capsys):
    X, size_factors, _ = depth
    path = tmp_path / "obs.json"
    argv = ["fit", h5ad, "-k", 2, "--size-factors", "obs:depth", "--out", path]
    assert run(argv, capsys)[0] == 0
    argv = ["predict", h5ad, "--model", path, "--size-factors", "obs:depth"]
    code, out, err = run(argv, capsys)
    assert code == 0 and err == ""
    model = NegBinomMixture(2).fit(X, size_factors=size_factors)
    expected = model.predict_proba(X, size_factors=size_factors)
    np.testing.assert_allclose(predictions(out), expected, rtol=0, atol=1e-12)


# -- bootstrap, select --------------------------------------------------------------


@pytest.mark.parametrize(
    "source, method, columns",
    [
        ("sf.txt", "parametric", [0]),
        ("total", "nonparametric", [0, 1, 2]),
    ],
)
def test_bootstrap_with_size_factors(
    files, depth, tmp_path, source, method, columns, capsys
):
    pd = pytest.importorskip("pandas")
    X, size_factors, _ = depth
    X = X[:, columns]
    names = [GENES[g] for g in columns]
    path = tmp_path / "ci.csv"
    argv = ["bootstrap", files / "counts.csv", "-k", 2, "--columns", ",".join(names)]
    argv += ["--size-factors", files / source if source != "total" else source]
    argv += ["--method", method, "--n-resamples", 8, "--n-jobs", 1, "--seed", 0]
    code, out, err = run([*argv, "--no-progress", "--out", path], capsys)
    assert code == 0 and err == ""
    if source == "total":
        model = NegBinomMixture(2, size_factors="total").fit(X)
        result = bootstrap(model, X, n_resamples=8, method=method, random_state=0)
    else:
        model = NegBinomMixture(2).fit(X, size_factors=size_factors)
        result = bootstrap(
            model,
            X,
            size_factors=size_factors,
            n_resamples=8,
            method=method,
            random_state=0,
        )
    assert result.n_failed == 0
    written = pd.read_csv(path)
    expected = result.to_frame()
    for column in ("estimate", "standard_error", "low", "high"):
        np.testing.assert_allclose(written[column], expected[column], rtol=1e-12)


def test_select_with_a_file_and_with_total(files, depth, capsys):
    X, size_factors, _ = depth
    argv = ["select", files / "counts.csv", "-k", "1-2", "--cv", 3]
    code, out, err = run([*argv, "--size-factors", files / "sf.txt"], capsys)
    assert code == 0 and err == ""
    comparison = compare_n_components(X, [1, 2], cv=3, size_factors=size_factors)
    for i, K in enumerate([1, 2]):
        assert (
            f"{K:>3} {comparison.log_likelihood[i]:14.6f} "
            f"{comparison.bic[i]:12.3f} {comparison.aic[i]:12.3f} "
            f"{comparison.cv_log_likelihood[i]:17.6f}"
        ) in out
    code, out, err = run([*argv, "--size-factors", "total"], capsys)
    assert code == 0 and err == ""
    comparison = compare_n_components(
        X, [1, 2], cv=3, estimator=NegBinomMixture(size_factors="total")
    )
    for i, K in enumerate([1, 2]):
        assert f"{K:>3} {comparison.log_likelihood[i]:14.6f} " in out
        assert f"{comparison.cv_log_likelihood[i]:17.6f}" in out


# -- compare_n_components -----------------------------------------------------------


def test_compare_n_components_gives_each_fold_its_size_factors(depth):
    X, size_factors, _ = depth
    comparison = compare_n_components(X, [1, 2], cv=3, size_factors=size_factors)
    for i, K in enumerate([1, 2]):
        model = NegBinomMixture(K).fit(X, size_factors=size_factors)
        assert comparison.log_likelihood[i] == pytest.approx(
            model.score(X, size_factors=size_factors) * N_CELLS, rel=1e-12
        )
        assert comparison.bic[i] == model.bic(X, size_factors=size_factors)
        scores = [
            NegBinomMixture(K)
            .fit(X[train], size_factors=size_factors[train])
            .score(X[test], size_factors=size_factors[test])
            for train, test in KFold(3).split(X)
        ]
        assert comparison.cv_log_likelihood[i] == pytest.approx(
            np.mean(scores), rel=1e-12
        )
    # The same for any n_jobs.
    again = compare_n_components(X, [1, 2], cv=3, size_factors=size_factors, n_jobs=2)
    np.testing.assert_array_equal(again.cv_log_likelihood, comparison.cv_log_likelihood)


def test_compare_n_components_unit_size_factors_are_none(singer):
    X = singer[:, :1]
    plain = compare_n_components(X, [1, 2], cv=3)
    ones = compare_n_components(X, [1, 2], cv=3, size_factors=np.ones(len(X)))
    # To the precision of the convergence test (tol=1e-9 per sample): the
    # held-out scores are of parameters that agree to about 1e-5.
    for name in ("log_likelihood", "bic", "aic"):
        np.testing.assert_allclose(ones[name], plain[name], rtol=1e-9)
    np.testing.assert_allclose(
        ones.cv_log_likelihood, plain.cv_log_likelihood, rtol=1e-6
    )
    assert ones.bic_choice == plain.bic_choice


def test_compare_n_components_checks_the_size_factors(depth):
    X, _, _ = depth
    with pytest.raises(ValueError, match="size_factors has 3 values but X has 240"):
        compare_n_components(X, [1], cv=None, size_factors=[1.0, 2.0, 3.0])


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["fit", "{d}/counts.csv", "-k", "2", "--size-factors", "{d}/short.txt"],
            "short.txt has 2 size factors but counts.csv has 240 cells: give one "
            "per cell.",
        ),
        (
            ["fit", "{d}/counts.csv", "-k", "2", "--size-factors", "{d}/negative.txt"],
            "negative.txt: line 4 holds -0.5: size factors must be finite and "
            "positive (1 of 240 are not).",
        ),
        (
            ["select", "{d}/counts.csv", "--size-factors", "{d}/words.txt"],
            "words.txt: line 3 holds 'many', not a number.",
        ),
        (
            ["bootstrap", "{d}/counts.csv", "-k", "2", "--size-factors", "obs:x"],
            "--size-factors obs:x reads an .obs column of an .h5ad file; "
            "counts.csv is not one",
        ),
        (
            ["fit", "{d}/counts.csv", "-k", "2", "--size-factors", "{d}/missing.txt"],
            "No such file",
        ),
        (
            ["fit", "{d}/counts.csv", "-k", "2", "--columns", "A"]
            + ["--size-factors", "total"],
            "--size-factors total with one gene would divide each count by itself",
        ),
        (
            ["fit", "{d}/counts.csv", "-k", "2", "--size-factors", "total"]
            + ["--plot", "{d}/f.png"],
            "--plot draws the model for cells without size factors",
        ),
        (
            ["predict", "{d}/counts.csv", "--model", "{d}/missing.json"]
            + ["--size-factors", "total"],
            "No such file",
        ),
    ],
)
def test_size_factor_errors_are_one_line(files, argv, message, capsys):
    code, out, err = run([arg.format(d=files) for arg in argv], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"sknbmix {argv[0]}: error: ")
    assert message in err and "Traceback" not in err


def test_obs_column_errors(h5ad, capsys):
    argv = ["fit", h5ad, "-k", "2", "--size-factors"]
    code, _, err = run([*argv, "obs:sf"], capsys)
    assert code == 2
    assert "cells.h5ad has no .obs column 'sf'; its columns: depth, batch." in err
    code, _, err = run([*argv, "obs:batch"], capsys)
    assert code == 2 and ".obs column 'batch' holds" in err


def test_every_command_has_the_option(capsys):
    for command in ("fit", "bootstrap", "select", "predict"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0 and "--size-factors SOURCE" in out
    code, out, _ = run(["predict", "--help"], capsys)
    assert "as the model was fitted" in " ".join(out.split())
