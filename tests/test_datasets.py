"""Tests for sknbmix.datasets."""

import csv
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

import sknbmix.datasets
from sknbmix.datasets import load_singer

FEATURE_NAMES = ["Rex1", "Rest", "Nanog", "Prdm14"]


def _read_package_csv():
    """Read the package's copy of the CSV independently of the loader."""
    path = Path(sknbmix.datasets.__file__).parent / "data" / "singer.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return header, np.array([[int(v) for v in row] for row in body])


def test_public_names():
    assert sknbmix.datasets.__all__ == ["load_singer"]


def test_load_singer_bunch():
    singer = load_singer()
    assert isinstance(singer, Bunch)
    assert set(singer) == {
        "data",
        "feature_names",
        "frame",
        "DESCR",
        "filename",
        "data_module",
    }
    X = singer.data
    assert isinstance(X, np.ndarray)
    assert X.shape == (279, 4)
    assert X.dtype == np.int64
    assert np.all(X >= 0)
    assert singer.feature_names == FEATURE_NAMES
    assert singer.frame is None


def test_load_singer_matches_csv():
    header, expected = _read_package_csv()
    X = load_singer().data
    assert header == FEATURE_NAMES
    np.testing.assert_array_equal(X, expected)
    # Column sums straight from the file, with numpy alone.
    path = Path(sknbmix.datasets.__file__).parent / "data" / "singer.csv"
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.int64)
    np.testing.assert_array_equal(X.sum(axis=0), raw.sum(axis=0))
    np.testing.assert_array_equal(X.sum(axis=0), [38604, 20906, 24479, 1265])


def test_load_singer_file_is_reachable():
    singer = load_singer()
    path = resources.files(singer.data_module) / singer.filename
    assert path.is_file()
    with path.open("r", encoding="utf-8") as f:
        assert f.readline().strip() == ",".join(FEATURE_NAMES)


def test_load_singer_returns_fresh_arrays():
    # Mutating one result must not leak into the next call.
    X = load_singer().data
    X[:] = -1
    assert np.all(load_singer().data >= 0)
    X, _ = load_singer(return_X_y=True)
    X[:] = -1
    assert np.all(load_singer(return_X_y=True)[0] >= 0)


def test_load_singer_descr():
    descr = load_singer().DESCR
    assert isinstance(descr, str)
    assert "Singer" in descr
    assert "2014" in descr
    assert "10.1016/j.molcel.2014.06.029" in descr
    assert "-1590.352137603" in descr
    for name in FEATURE_NAMES:
        assert name in descr


def test_load_singer_return_X_y():
    # (data, target) like every scikit-learn loader; there is no target.
    result = load_singer(return_X_y=True)
    assert isinstance(result, tuple)
    assert len(result) == 2
    X, y = result
    assert y is None
    assert isinstance(X, np.ndarray)
    np.testing.assert_array_equal(X, load_singer().data)


def test_load_singer_as_frame():
    pd = pytest.importorskip("pandas")
    singer = load_singer(as_frame=True)
    df = singer.data
    assert isinstance(df, pd.DataFrame)
    assert singer.frame is df
    assert df.shape == (279, 4)
    assert list(df.columns) == FEATURE_NAMES
    assert all(dtype == np.int64 for dtype in df.dtypes)
    np.testing.assert_array_equal(df.to_numpy(), load_singer().data)


def test_load_singer_as_frame_return_X_y():
    pd = pytest.importorskip("pandas")
    X, y = load_singer(return_X_y=True, as_frame=True)
    assert y is None
    assert isinstance(X, pd.DataFrame)
    assert list(X.columns) == FEATURE_NAMES
    np.testing.assert_array_equal(X.to_numpy(), load_singer().data)


def test_load_singer_as_frame_without_pandas(monkeypatch):
    # A None entry in sys.modules makes `import pandas` raise ImportError.
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="load_singer with as_frame=True requires"):
        load_singer(as_frame=True)
    # The array path never needs pandas.
    assert load_singer().data.shape == (279, 4)


@pytest.mark.parametrize("kwargs", [{"return_X_y": "yes"}, {"as_frame": 1}])
def test_load_singer_invalid_params(kwargs):
    with pytest.raises(ValueError, match="parameter of load_singer must be"):
        load_singer(**kwargs)


def test_load_singer_keyword_only():
    with pytest.raises(TypeError):
        load_singer(True)
