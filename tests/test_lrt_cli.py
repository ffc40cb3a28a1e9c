"""The command line's ``test``: the bootstrap likelihood-ratio test of K0
against K0 + 1 components prints (and writes) the library's numbers, with
q-values from scipy for a screen; errors are one line."""

import csv
import re
import warnings

import numpy as np
import pytest
from scipy.stats import false_discovery_control

import sknbmix.__main__ as cli
from sknbmix import NegBinomMixture, lrt_n_components
from sknbmix.__main__ import main
from sknbmix.datasets import load_singer

NAMES = ["Rex1", "Rest", "Nanog", "Prdm14"]
# 2 (log L(K=2) - log L(K=1)) of Rex1, from the known optima.
REX1_STATISTIC = 2 * (-1590.352137603 - -1638.678352600)


@pytest.fixture(scope="module")
def counts():
    return load_singer().data


@pytest.fixture(scope="module")
def folder(tmp_path_factory, counts):
    """The built-in data as a CSV with cell ids, and a size factor per cell."""
    path = tmp_path_factory.mktemp("lrt_cli")
    lines = [",".join(["", *NAMES])]
    lines += [",".join([f"cell{i}", *map(str, row)]) for i, row in enumerate(counts)]
    (path / "singer.csv").write_text("\n".join(lines) + "\n")
    size_factors = np.exp(np.random.default_rng(0).normal(0.0, 0.3, len(counts)))
    (path / "sf.txt").write_text("".join(f"{s!r}\n" for s in size_factors.tolist()))
    return path, size_factors


def run(argv, capsys, strict=True):
    """Run main in-process, warnings as errors unless ``strict`` is False;
    return its exit status, stdout and stderr."""
    with warnings.catch_warnings():
        if strict:
            warnings.simplefilter("error")
        code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def table_rows(out):
    """The rows of the per-gene table: gene, statistic, p, resamples, q."""
    return [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in NAMES
    ]


def test_one_test_prints_the_library_numbers(folder, counts, tmp_path, capsys):
    data, _ = folder
    path = tmp_path / "test.csv"
    argv = ["test", data / "singer.csv", "-k", 1, "--columns", "Rex1"]
    argv += ["--n-resamples", 19, "--seed", 0, "--n-jobs", 1, "--no-progress"]
    code, out, err = run([*argv, "--out", path], capsys)
    assert code == 0 and err == ""
    res = lrt_n_components(
        NegBinomMixture(1), counts[:, :1], n_resamples=19, random_state=0
    )
    assert res.statistic == pytest.approx(REX1_STATISTIC, abs=1e-4)
    assert (
        f"K = 1 against K = 2 components: statistic {res.statistic:.6f}, "
        f"p-value {res.pvalue:.6g}\n" in out
    )
    assert "statistic 96.652430, p-value 0.05\n" in out
    assert "parametric bootstrap: 19 of at most 19 resamples" in out
    assert "seed 0" in out
    # Far beyond every null statistic: said, with the smallest p-value.
    assert "0.05 is the smallest p-value 19 resamples can give" in out
    (row,) = read_csv(path)
    assert row == {
        "feature": "",
        "statistic": repr(res.statistic),
        "pvalue": repr(res.pvalue),
        "n_resamples_used": "19",
        "qvalue": "",
    }


def test_screen_prints_pvalues_and_scipy_qvalues(folder, counts, tmp_path, capsys):
    data, _ = folder
    path = tmp_path / "screen.csv"
    columns = [0, 1, 2]  # Prdm14 warns (the Poisson limit): see below
    argv = ["test", data / "singer.csv", "-k", 1, "--independent"]
    argv += ["--columns", "Rex1,Rest,Nanog", "--n-resamples", 29]
    argv += ["--max-exceedances", 2, "--seed", 0, "--n-jobs", 1, "--no-progress"]
    code, out, err = run([*argv, "--out", path], capsys)
    assert code == 0 and err == ""
    res = lrt_n_components(
        NegBinomMixture(1, shared_weights=False),
        counts[:, columns],
        n_resamples=29,
        max_exceedances=2,
        random_state=0,
    )
    qvalue = false_discovery_control(res.pvalue)
    assert "K = 1 against K = 2 components, each gene alone" in out
    rows = table_rows(out)
    assert [row[0] for row in rows] == ["Rex1", "Rest", "Nanog"]
    for g, row in enumerate(rows):
        assert row[1:] == [
            f"{res.statistic[g]:.4f}",
            f"{res.pvalue[g]:.4g}",
            str(res.n_resamples_used[g]),
            f"{qvalue[g]:.4g}",
        ]
    significant = int(np.sum(qvalue <= 0.05))
    assert f"{significant} of 3 genes with q <= 0.05" in out
    written = read_csv(path)
    assert [row["feature"] for row in written] == ["Rex1", "Rest", "Nanog"]
    for g, row in enumerate(written):
        assert float(row["statistic"]) == res.statistic[g]
        assert float(row["pvalue"]) == res.pvalue[g]
        assert int(row["n_resamples_used"]) == res.n_resamples_used[g]
        assert float(row["qvalue"]) == qvalue[g]
    # Rest stops early at this seed: its p-value is Besag and Clifford's.
    assert res.n_resamples_used[1] < 29
    assert res.pvalue[1] == pytest.approx(2 / res.n_resamples_used[1])


def test_screen_of_all_genes_shows_the_poisson_limit_warning(folder, capsys):
    data, _ = folder
    argv = ["test", data / "singer.csv", "-k", 1, "--independent"]
    argv += ["--n-resamples", 5, "--seed", 0, "--n-jobs", 1, "--no-progress"]
    code, out, err = run(argv, capsys, strict=False)
    assert code == 0
    # Prdm14's low component of the two-component fit is at the Poisson
    # limit: one line on stderr, and the test goes on.
    assert err.startswith("sknbmix: warning: alpha reached its cap")
    assert err.count("\n") == 1
    assert [row[0] for row in table_rows(out)] == NAMES


def test_no_early_stopping_and_progress_on_stderr(folder, counts, capsys):
    data, _ = folder
    argv = ["test", data / "singer.csv", "-k", 1, "--columns", "Rest"]
    argv += ["--n-resamples", 6, "--max-exceedances", "none", "--seed", 1]
    code, out, err = run([*argv, "--n-jobs", 1], capsys)
    assert code == 0
    res = lrt_n_components(
        NegBinomMixture(1),
        counts[:, 1:2],
        n_resamples=6,
        max_exceedances=None,
        random_state=1,
    )
    exceed = int(np.sum(res.null_distribution >= res.statistic))
    assert res.pvalue == pytest.approx((1 + exceed) / 7)
    assert f"p-value {res.pvalue:.6g}\n" in out
    assert "6 of at most 6 resamples (no early stopping)" in out
    # The library's progress lines, on stderr, never among the results.
    assert "lrt_n_components: 6 resamples" in err and "lrt_n_components" not in out


def test_size_factors_from_a_file_and_total(folder, counts, capsys):
    data, size_factors = folder
    base = ["test", data / "singer.csv", "-k", 1, "--n-resamples", 4]
    base += ["--seed", 0, "--n-jobs", 1, "--no-progress"]
    code, out, err = run(
        [*base, "--columns", "Rex1", "--size-factors", data / "sf.txt"], capsys
    )
    assert code == 0 and err == ""
    assert "size factors: given" in out
    res = lrt_n_components(
        NegBinomMixture(1),
        counts[:, :1],
        n_resamples=4,
        size_factors=size_factors,
        random_state=0,
    )
    assert f"statistic {res.statistic:.6f}, p-value {res.pvalue:.6g}\n" in out

    argv = [*base, "--columns", "Rex1,Nanog", "--independent"]
    code, out, err = run([*argv, "--size-factors", "total"], capsys)
    assert code == 0 and err == ""
    assert "size factors: total counts over their mean" in out
    res = lrt_n_components(
        NegBinomMixture(1, shared_weights=False, size_factors="total"),
        counts[:, [0, 2]],
        n_resamples=4,
        random_state=0,
    )
    rows = table_rows(out)
    assert [row[1] for row in rows] == [f"{t:.4f}" for t in res.statistic]
    assert [row[2] for row in rows] == [f"{p:.4g}" for p in res.pvalue]


def test_two_against_three(folder, counts, capsys):
    data, _ = folder
    argv = ["test", data / "singer.csv", "-k", 2, "--columns", "Rex1"]
    code, out, err = run(
        [*argv, "--n-resamples", 3, "--seed", 0, "--n-jobs", 1, "--no-progress"],
        capsys,
    )
    assert code == 0 and err == ""
    res = lrt_n_components(
        NegBinomMixture(2), counts[:, :1], n_resamples=3, random_state=0
    )
    assert (
        f"K = 2 against K = 3 components: statistic {res.statistic:.6f}, "
        f"p-value {res.pvalue:.6g}\n" in out
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-k", "0"], "expected a positive integer"),
        ([], "required: -k"),
        (["-k", "1", "--n-resamples", "0"], "expected a positive integer"),
        (["-k", "1", "--max-exceedances", "0"], "positive integer or none"),
        (["-k", "1", "--max-exceedances", "x"], "positive integer or none"),
        (["-k", "1", "--n-jobs", "0"], "non-zero"),
        (["-k", "1", "--columns", "Foo"], "unknown column Foo"),
        (["-k", "300", "--columns", "Rex1"], "n_samples >= n_components"),
        (
            ["-k", "1", "--columns", "Rex1", "--size-factors", "total"],
            "--size-factors total with one gene",
        ),
    ],
)
def test_errors_are_one_line(folder, argv, message, capsys):
    data, _ = folder
    code, _, err = run(["test", data / "singer.csv", *argv], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sknbmix test: error: ")
    assert message in err and "Traceback" not in err


def test_help():
    parser = cli._build_parser()
    test = parser._subparsers._group_actions[0].choices["test"]
    for action in test._actions:
        assert action.help, action.dest
    assert "examples:" in test.epilog
    text = test.format_help()
    for option in (
        "--independent",
        "--n-resamples",
        "--max-exceedances",
        "--seed",
        "--n-jobs",
        "--size-factors",
        "--out",
    ):
        assert option in text
    assert re.search(r"K0 \+ 1", " ".join(text.split()))
