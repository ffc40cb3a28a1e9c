"""The statistical validity study of validation/ runs: each script's --quick
mode, in a fresh interpreter, writes a table of the expected shape and sane
values. The full study is ``make validation``; its results are in
validation/README.md."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sknbmix._bootstrap import CI_METHODS, PARAMETERS

pd = pytest.importorskip("pandas")

VALIDATION = Path(__file__).resolve().parents[1] / "validation"


def _load(name):
    """Import a script of validation/ as a module, for its summaries (with
    validation/ on the path, as when it runs, for its shared _tables)."""
    if str(VALIDATION) not in sys.path:
        sys.path.append(str(VALIDATION))
    spec = importlib.util.spec_from_file_location(name, VALIDATION / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_quick(script, out):
    done = subprocess.run(
        [sys.executable, str(VALIDATION / script), "--quick", "--n-jobs", "1"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_coverage_quick(tmp_path):
    out = tmp_path / "coverage.csv"
    stdout = _run_quick("interval_coverage.py", out)
    rows = pd.read_csv(out)
    expected = {
        "seed",
        "n_samples",
        "dataset",
        "log_likelihood",
        "restart_gap",
        "fit_converged",
        "n_failed",
        "n_start_disagreements",
        "ci_method",
        "parameter",
        "component",
        "truth",
        "estimate",
        "standard_error",
        "acceleration",
        "low",
        "high",
        "width",
        "covered",
        "miss",
    }
    assert set(rows.columns) == expected
    # The BCa acceleration is the same for every interval method.
    assert (
        rows.groupby(["n_samples", "dataset", "parameter", "component"])["acceleration"]
        .nunique()
        .eq(1)
        .all()
    )
    assert set(rows["ci_method"]) == set(CI_METHODS)
    assert set(rows["parameter"]) == set(PARAMETERS)
    # One row per data set, interval method, parameter and component.
    n_datasets = rows[["n_samples", "dataset"]].drop_duplicates().shape[0]
    assert len(rows) == n_datasets * len(CI_METHODS) * len(PARAMETERS) * 2
    assert (rows["low"] <= rows["high"]).all()
    assert np.allclose(rows["width"], rows["high"] - rows["low"])
    covered = (rows["low"] <= rows["truth"]) & (rows["truth"] <= rows["high"])
    assert (rows["covered"] == covered).all()
    assert set(rows["miss"]) <= {"none", "low", "high"}
    assert ((rows["miss"] == "none") == rows["covered"]).all()
    # The truth is the Rex1 fit; the best restart is never far above the
    # default fit (it includes the default starts).
    truth = rows[rows["parameter"] == "weights"].groupby("component")["truth"]
    assert np.allclose(truth.first(), [0.1601, 0.8399], atol=1e-4)
    assert (rows["restart_gap"] > -1e-3).all()
    assert (rows["n_failed"] >= 0).all()

    coverage = _load("interval_coverage")
    summary = coverage.summarize(rows)
    assert set(summary["ci_method"]) == set(CI_METHODS)
    assert summary["coverage"].between(0, 1).all()
    assert (summary["coverage_low"] <= summary["coverage"]).all()
    assert (summary["coverage"] <= summary["coverage_high"]).all()
    outcomes = summary["n_covered"] + summary["miss_low"] + summary["miss_high"]
    assert (outcomes == summary["n_datasets"]).all()
    for method in CI_METHODS:
        assert method in stdout


def test_recovery_quick(tmp_path):
    out = tmp_path / "recovery.csv"
    stdout = _run_quick("recovery.py", out)
    rows = pd.read_csv(out)
    assert {
        "separation",
        "n_components",
        "n_genes",
        "n_samples",
        "dataset",
        "converged",
        "gain_over_truth",
        "bic_choice",
        "parameter",
        "component",
        "gene",
        "truth",
        "estimate",
    } <= set(rows.columns)
    assert set(rows["parameter"]) == set(PARAMETERS)
    assert set(rows["n_components"]) == {2, 3}
    assert set(rows["n_genes"]) == {1, 4}
    assert np.isfinite(rows["estimate"]).all() and (rows["estimate"] > 0).all()
    assert rows["bic_choice"].between(1, rows["n_components"] + 1).all()
    weights = rows[rows["parameter"] == "weights"].groupby(
        ["n_components", "n_genes", "dataset"]
    )["estimate"]
    assert np.allclose(weights.sum(), 1.0)
    # The maximum cannot lie below the true parameters' log-likelihood.
    assert (rows["gain_over_truth"] > -1e-4).all()

    summary = pd.read_csv(tmp_path / "recovery_summary.csv")
    assert {"bias", "relative_bias", "sd", "relative_median_bias"} <= set(
        summary.columns
    )
    cells = _load("recovery").summarize_cells(rows)
    assert len(cells) == 4
    assert cells["bic_rate"].between(0, 1).all()
    assert (cells["bic_low"] <= cells["bic_rate"]).all()
    assert "BIC picks K" in stdout


def test_public_data_quick(tmp_path):
    out = tmp_path / "public_data.csv"
    stdout = _run_quick("public_data.py", out)
    rows = pd.read_csv(out)
    assert {
        "dataset",
        "n_samples",
        "n_components",
        "ref_log_likelihood",
        "ref_capped_log_likelihood",
        "ref_n_starts",
        "ref_n_best",
        "ref_time",
        "ref_mpmath_diff",
        "em_log_likelihood",
        "em_gap",
        "em_local_gain",
        "em_time",
        "em_within",
        "powell_log_likelihood",
        "powell_gap",
        "powell_time",
        "powell_within",
    } <= set(rows.columns)
    assert set(rows["dataset"]) == {"warpbreaks_breaks", "insectsprays_count"}
    assert set(rows["n_components"]) == {1, 2}
    assert set(rows["n_samples"]) == {54, 72}
    # The gaps are differences of log-likelihoods computed by the script's
    # own reference code; EM reaches the reference's optimum on these data.
    assert np.allclose(
        rows["em_gap"], rows["em_log_likelihood"] - rows["ref_log_likelihood"]
    )
    assert (rows["em_gap"] >= -1e-6).all()
    assert rows["em_within"].all()
    assert (rows["powell_within"] == (rows["powell_gap"] >= -1e-4)).all()
    # The reference's likelihood agrees with mpmath's at 40 digits, and
    # sknbmix's score with the reference's at the same parameters.
    assert (rows["ref_mpmath_diff"].abs() < 1e-8).all()
    assert (rows["em_score_diff"].abs() < 1e-8).all()
    # The reference's best is no lower than what L-BFGS-B adds to EM's fit.
    assert (rows["em_gap"] + rows["em_local_gain"] <= 1e-6).all()
    assert (rows[["em_time", "powell_time", "ref_time"]] >= 0).all().all()
    assert "EM: 4/4 cases within" in stdout

    public = _load("public_data")
    table = public.format_summary(rows, markdown=True)
    assert table.count("\n") == len(rows) + 1


def test_size_factors_quick(tmp_path):
    out = tmp_path / "size_factors.csv"
    stdout = _run_quick("size_factors.py", out)
    glm = pd.read_csv(out)
    assert {
        "case",
        "fit",
        "sd",
        "loglik",
        "sm_loglik",
        "poisson_loglik",
        "reference_loglik",
        "r_loglik",
        "delta_reference",
        "delta_sm",
        "delta_r",
    } <= set(glm.columns)
    # Rex1 and the many-zero vector, and the four genes with drawn and total
    # size factors, shared and independent.
    assert set(glm["case"]) == {"Rex1", "sim_many_zeros", "four genes"}
    assert len(glm) == 6
    # K=1 with size factors is the NB GLM with offset log s.
    assert (glm["delta_reference"].abs() < 1e-6).all()
    assert np.allclose(glm["delta_sm"], glm["loglik"] - glm["sm_loglik"])
    assert "Part 1" in stdout

    recovery = pd.read_csv(tmp_path / "size_factors_recovery.csv")
    assert len(recovery) == 1
    aris = recovery.filter(like="ari_")
    assert set(aris.columns) >= {
        "ari_oracle",
        "ari_none_types",
        "ari_none_depth",
        "ari_total_types",
        "ari_true_types",
        "ari_pca_types",
    }
    assert ((aris >= -1) & (aris <= 1)).all().all()
    assert (recovery.filter(like="time_") >= 0).all().all()
    # The fit with the true depths is no worse than the true parameters.
    assert (recovery["gain_over_truth"] > -1e-4).all()

    coverage = pd.read_csv(tmp_path / "size_factors_coverage.csv")
    assert set(coverage["parameter"]) == {"weights", "means"}
    weights = coverage[coverage["parameter"] == "weights"]
    assert np.allclose(weights.groupby("dataset")["estimate"].sum(), 1.0)
    assert (coverage["estimate"] > 0).all()
    if coverage["n_resamples"].max() > 0:
        assert (coverage["low"] <= coverage["high"]).all()
        covered = (coverage["low"] <= coverage["truth"]) & (
            coverage["truth"] <= coverage["high"]
        )
        assert (coverage["covered"].astype(bool) == covered).all()
    size_factors = _load("size_factors")
    assert size_factors.format_recovery(recovery, markdown=True).count("\n") == 2


def test_lrt_calibration_quick(tmp_path):
    out = tmp_path / "lrt_calibration.csv"
    stdout = _run_quick("lrt_calibration.py", out)
    module = _load("lrt_calibration")
    paths = module.out_paths(out)

    calibration = pd.read_csv(paths["calibration"])
    assert set(calibration["setting"]) == set(module.SETTINGS)
    assert set(calibration["n_components"]) == {1, 2}
    assert (calibration["statistic"] >= 0).all()
    assert calibration["pvalue"].between(0, 1, inclusive="right").all()
    # No test uses more resamples than asked; the smallest p-value is
    # 1 / (1 + n_resamples).
    assert (calibration["n_used"] <= calibration["n_resamples"]).all()
    assert (calibration["pvalue"] >= 1 / (1 + calibration["n_resamples"])).all()
    summary = module.summarize_calibration(calibration)
    assert len(summary) == len(module.SETTINGS)
    for level in (0.05, 0.01):
        assert (summary[f"low_{level}"] <= summary[f"rate_{level}"]).all()
        assert (summary[f"rate_{level}"] <= summary[f"high_{level}"]).all()

    restarts = pd.read_csv(paths["restarts"])
    assert set(restarts["setting"]) == set(module.SETTINGS)
    lls = restarts[["test_ll", "default_ll", "random20_ll"]]
    assert np.isfinite(lls).all().all()

    power = module.summarize_power(pd.read_csv(paths["power"]))
    assert power["power"].between(0, 1).all()
    assert (tmp_path / "lrt_power.png").stat().st_size > 0

    screen = pd.read_csv(paths["screen"])
    assert (screen["qvalue"] >= screen["pvalue"] - 1e-12).all()
    per_screen = module.summarize_screen(screen)
    assert per_screen["fdp"].between(0, 1).all()
    assert per_screen["power"].between(0, 1).all()
    assert "Part screen" in stdout
