"""Reading count matrices from files; saving and loading fitted mixtures.

:func:`read_counts` reads the tables single-cell and smFISH work produces:
delimited text with a header row (as written by pandas, R or a spreadsheet),
10x Genomics / Cell Ranger Matrix Market folders, and AnnData ``.h5ad`` files.
:func:`save_model` and :func:`load_model` store a fitted
:class:`~sknbmix.NegBinomMixture` as JSON, readable by any language and free of
pickle's security and version pitfalls.
"""

# SPDX-License-Identifier: BSD-3-Clause

import csv
import gzip
import json
import math
import warnings
from collections import Counter
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from sknbmix._fit import degenerate_components
from sknbmix._mixture import NegBinomMixture
from sknbmix._nbinom import at_poisson_limit

__all__ = ["load_model", "read_counts", "read_size_factors", "save_model"]

_TEXT_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
# Binary formats people try; named so the error can say what to do instead of
# failing to decode them as text.
_UNSUPPORTED = {
    ".h5": "10x .h5 files: convert with scanpy.read_10x_h5(path).write_h5ad(...)",
    ".hdf5": "convert to .h5ad with anndata",
    ".loom": "convert with anndata.read_loom(path).write_h5ad(...)",
    ".xlsx": "save the sheet as .csv",
    ".xls": "save the sheet as .csv",
    ".rds": "write it from R with write.csv or Matrix::writeMM",
    ".rda": "write it from R with write.csv or Matrix::writeMM",
    ".zarr": "convert to .h5ad with anndata",
}
_FORMATS = ".csv, .tsv or .txt (optionally gzipped), .mtx or .mtx.gz (10x), or .h5ad"

# Saved models: bump the version when the layout changes; readers refuse
# newer versions rather than misread them.
_MODEL_FORMAT = "sknbmix.NegBinomMixture"
# Version 2 added poisson_limit_ and degenerate_components_; version 3 the
# size_factors parameter and size_factors_used_ (older files: "none").
_MODEL_FORMAT_VERSION = 3
_ARRAY_ATTRIBUTES = ("weights_", "alpha_", "b_", "means_")
_MASK_ATTRIBUTES = ("poisson_limit_", "degenerate_components_")
_SIZE_FACTORS_USED = ("none", "total", "given")


###############################################################################
# Reading counts


def read_counts(
    path,
    *,
    columns=None,
    layer=None,
    transpose=False,
    return_sample_names=False,
    chunks=None,
):
    """Read a matrix of counts, one row per sample (cell), from a file.

    The format follows the file name:

    - ``.csv``, ``.tsv``, ``.tab``, ``.txt`` and other text, optionally
      gzipped (``.csv.gz``): a delimited table with a header row of feature
      (gene) names. The delimiter is ``,`` for ``.csv``, a tab for ``.tsv``
      and ``.tab`` (if the header holds it); otherwise a tab if the header
      has one, else ``,``, else ``;``, else whitespace. A first column of
      sample names (cell ids or barcodes) is recognised and dropped; see
      Notes.
    - ``.mtx`` or ``.mtx.gz``: a Matrix Market file of genes x cells, as
      10x Genomics' Cell Ranger writes it, with ``features.tsv(.gz)`` or
      ``genes.tsv(.gz)`` (gene names in its second column if it has one,
      else the first) and optionally ``barcodes.tsv(.gz)`` beside it, with
      the same prefix if the matrix has one (``GSM1_matrix.mtx.gz`` goes
      with ``GSM1_features.tsv.gz``). The matrix is transposed to cells x
      genes and stays sparse.
    - ``.h5ad``: an :class:`anndata.AnnData` file (needs the optional
      ``anndata`` package: ``pip install 'sknbmix[anndata]'``); the counts
      are ``.X`` or the layer ``layer``, the feature names ``.var_names``.

    Parameters
    ----------
    path : str or path-like
        The file.

    columns : sequence of str, str or None, default=None
        The features to read, by name and in this order; None reads all. For
        ``.mtx`` the ids of the features file's first column are accepted too
        (10x files have a few duplicated gene names).

    layer : str or None, default=None
        ``.h5ad`` only: read the counts from ``.layers[layer]`` instead of
        ``.X``.

    transpose : bool, default=False
        Text tables only: the file has one row per feature (gene), its name
        in the first column, and one column per sample (cell), as many GEO
        tables do.

    return_sample_names : bool, default=False
        Also return the sample names: the first column of a text table (the
        header row if ``transpose``), ``barcodes.tsv`` beside a ``.mtx``, or
        ``.obs_names``; None where the file has none.

    chunks : int or None, default=None
        ``.h5ad`` only: open the file lazily and return the counts as a
        :class:`dask.array.Array` of blocks of ``chunks`` samples (sparse
        blocks for a sparse matrix), each read from the file where it is
        computed (AnnData's lazy reading; needs dask). The data need not fit
        in memory: :class:`~sknbmix.NegBinomMixture` fits and predicts on
        such an array block by block (see :doc:`/scaling`). The values are
        checked as the blocks are read, not here.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features) or scipy.sparse.csr_matrix
        The counts as int64: a NumPy array for text, a CSR matrix for ``.mtx``
        and for ``.h5ad`` files that store a sparse matrix. With ``chunks``, a
        dask array in the file's data type.

    feature_names : list of str
        The names of the columns of ``X`` (the names asked for in
        ``columns``, when given).

    sample_names : list of str or None
        Only if ``return_sample_names``.

    Raises
    ------
    ValueError
        If the file cannot be parsed, a name in ``columns`` is not in it, or
        a value is not a non-negative whole number (normalised or
        log-transformed data are not counts).
    ImportError
        For ``.h5ad`` when anndata is not installed.
    OSError
        If the file cannot be read.

    See Also
    --------
    sknbmix.NegBinomMixture : Fit a mixture to the counts.

    Notes
    -----
    Single-cell exports usually put cell ids in the first column. It is taken
    as sample names, not counts, when its header is empty (pandas'
    ``to_csv``, R's ``write.csv``), when the header has one field fewer than
    the rows (R's ``write.table``), when its first value is not a number, or
    when it counts 0, 1, 2, ... or 1, 2, 3, ... down the rows (a row index).

    Examples
    --------
    >>> import os, tempfile
    >>> from sknbmix.io import read_counts
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "counts.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("cell,Rex1,Nanog\\nAAAC-1,11,39\\nAAAG-1,172,33\\n")
    >>> X, genes = read_counts(path)
    >>> X
    array([[ 11,  39],
           [172,  33]])
    >>> genes
    ['Rex1', 'Nanog']
    >>> read_counts(path, columns=["Nanog"], return_sample_names=True)
    (array([[39],
           [33]]), ['Nanog'], ['AAAC-1', 'AAAG-1'])
    >>> folder.cleanup()
    """
    path = Path(path)
    name = path.name.lower()
    stem = name[: -len(".gz")] if name.endswith(".gz") else name
    suffix = Path(stem).suffix
    if isinstance(columns, str):
        columns = [columns]
    if layer is not None and suffix != ".h5ad":
        raise ValueError(f"{path.name}: layer applies to .h5ad files only.")
    if chunks is not None and suffix != ".h5ad":
        raise ValueError(f"{path.name}: chunks applies to .h5ad files only.")
    if transpose and suffix in (".mtx", ".h5ad"):
        raise ValueError(
            f"{path.name}: transpose applies to text tables only (.mtx files "
            "are read as genes x cells, .h5ad as cells x genes)."
        )
    if suffix in _UNSUPPORTED:
        raise ValueError(
            f"{path.name}: cannot read {suffix} files ({_UNSUPPORTED[suffix]}); "
            f"sknbmix reads {_FORMATS}."
        )
    if suffix == ".h5ad" and chunks is not None:
        X, names, samples = _read_h5ad_lazily(path, columns, layer, chunks)
    elif suffix == ".h5ad":
        X, names, samples = _read_h5ad(path, columns, layer)
    elif suffix == ".mtx":
        X, names, samples = _read_mtx(path, columns)
    else:
        X, names, samples = _read_text(path, columns, transpose, suffix)
    return (X, names, samples) if return_sample_names else (X, names)


def _select(names, columns, path, ids=None):
    """Indices and labels of the requested features.

    Unknown, ambiguous (duplicated in the file) and repeated names are
    errors that list what is wrong.
    """
    if columns is None:
        return np.arange(len(names)), list(names)
    columns = [str(column) for column in columns]
    if not columns:
        raise ValueError(f"{path.name}: columns is empty; select at least one.")
    positions = {}
    for index, name in enumerate(names):
        positions.setdefault(name, []).append(index)
    id_positions = {}
    for index, name in enumerate(ids or ()):
        id_positions.setdefault(name, []).append(index)
    unknown = [c for c in columns if c not in positions and c not in id_positions]
    if unknown:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(
            f"{path.name}: unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; the file has {len(names)}: {shown}"
        )
    repeated = sorted(c for c, n in Counter(columns).items() if n > 1)
    if repeated:
        raise ValueError(f"{path.name}: columns lists {', '.join(repeated)} twice.")
    indices = []
    for column in columns:
        found = positions.get(column) or id_positions[column]
        if len(found) > 1:
            hint = " (select it by its id)" if ids else ""
            raise ValueError(
                f"{path.name}: {column} names {len(found)} columns "
                f"({', '.join(map(str, found))}){hint}."
            )
        indices.append(found[0])
    return np.array(indices), columns


def _as_counts(values, describe, hint=""):
    """``values`` (an array, or the data of a sparse matrix) as int64 counts.

    ``describe(flat_index)`` says where a bad value is.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        bad = values < 0
    else:
        bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{describe(first)} holds {values.ravel()[first]:g}, not a count "
            f"(a non-negative whole number){hint}."
        )
    return values.astype(np.int64, copy=False)


# -- text -------------------------------------------------------------------


def _open_text(path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    # utf-8-sig drops the byte-order mark spreadsheets put at the start.
    return opener(path, "rt", encoding="utf-8-sig")


def _split(line, delimiter):
    """The fields of one line, quotes removed; ``None`` splits on whitespace."""
    if delimiter is None:
        fields = next(csv.reader([line.strip()], delimiter=" ", skipinitialspace=True))
        return [field for field in fields if field != ""]
    return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter))


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text(path, columns, transpose, suffix):
    try:
        with _open_text(path) as file:
            header_line = file.readline()
            first_line = file.readline()
    except UnicodeDecodeError:
        raise ValueError(
            f"{path.name} is not a text table; sknbmix reads {_FORMATS}."
        ) from None
    delimiter = _TEXT_DELIMITERS.get(suffix)
    if delimiter is None or delimiter not in header_line:
        # No extension, or one that does not match (a tab-separated ".csv").
        delimiter = next((d for d in "\t,;" if d in header_line), delimiter)
    if not header_line.strip():
        raise ValueError(f"{path.name} is empty.")
    if not first_line.strip():
        raise ValueError(f"{path.name} has a header row but no data below it.")
    header = _split(header_line, delimiter)
    first = _split(first_line, delimiter)
    if len(first) == len(header) + 1:
        # R's write.table leaves out the header field of the row names.
        header = ["", *header]
    elif len(first) != len(header):
        raise ValueError(
            f"{path.name}: line 2 has {len(first)} fields but the header has "
            f"{len(header)} (delimiter {_delimiter_name(delimiter)})."
        )
    n_fields = len(header)

    def load(usecols, dtype=np.float64, lines=None):
        kwargs = dict(
            delimiter=delimiter,
            usecols=usecols,
            dtype=dtype,
            quotechar='"',
            comments=None,
            ndmin=2 if dtype is np.float64 else 1,
        )
        with _open_text(path) as file:
            file.readline()  # the header
            source = (
                file
                if lines is None
                else (line for number, line in enumerate(file) if number in lines)
            )
            try:
                return np.loadtxt(source, **kwargs)
            except ValueError:
                raise ValueError(
                    _bad_text_cell(path, delimiter, header, usecols, lines)
                ) from None

    if transpose:
        # Genes x cells: gene names down the first column, cells across.
        names = [str(name) for name in load([0], dtype=str)]
        samples = header[1:]
        rows, labels = _select(names, columns, path)
        order = np.argsort(rows)
        block = load(range(1, n_fields), lines=set(rows.tolist()))
        values = np.empty_like(block)
        values[order] = block  # loadtxt returns the rows in file order
        values = values.T

        def describe(flat):
            row, col = divmod(flat, values.shape[1])
            return f"{path.name}: line {rows[col] + 2}, column {samples[row]!r}"

        return _as_counts(values, describe), labels, samples

    index = header[0].strip() == "" or not _is_number(first[0])
    if not index and first[0].strip() in ("0", "1"):
        # A numeric first column that counts the rows is a row index.
        column = load([0])[:, 0]
        start = float(first[0])
        index = bool(np.array_equal(column, start + np.arange(len(column))))
    names = header[1:] if index else header
    selected, labels = _select(names, columns, path)
    usecols = (selected + int(index)).tolist()
    values = load(usecols)
    samples = [str(s) for s in load([0], dtype=str)] if index else None

    def describe(flat):
        row, col = divmod(flat, len(usecols))
        return f"{path.name}: line {row + 2}, column {labels[col]!r}"

    return _as_counts(values, describe), labels, samples


def _delimiter_name(delimiter):
    return {None: "whitespace", "\t": "tab"}.get(delimiter, repr(delimiter))


def _bad_text_cell(path, delimiter, header, usecols, lines):
    """Find the cell that stopped np.loadtxt, to name it in the error."""
    with _open_text(path) as file:
        file.readline()
        for number, line in enumerate(file):
            if lines is not None and number not in lines:
                continue
            fields = _split(line, delimiter)
            if not fields:
                return f"{path.name}: line {number + 2} is empty."
            if len(fields) != len(header):
                return (
                    f"{path.name}: line {number + 2} has {len(fields)} fields "
                    f"but the header has {len(header)}."
                )
            for col in usecols:
                if not _is_number(fields[col]):
                    return (
                        f"{path.name}: line {number + 2}, column "
                        f"{header[col]!r} holds {fields[col]!r}, not a count."
                    )
    return f"{path.name}: cannot parse the table."


# -- Matrix Market (10x) ----------------------------------------------------


def _beside(path, kinds):
    """The first existing companion file of a 10x matrix (features, barcodes)."""
    name = path.name
    lower = name.lower()
    ending = next(e for e in (".mtx.gz", ".mtx") if lower.endswith(e))
    stem = name[: -len(ending)]
    # "GSM1_matrix.mtx.gz" goes with "GSM1_features.tsv.gz".
    prefix = stem[: -len("matrix")] if stem.lower().endswith("matrix") else ""
    for start in dict.fromkeys([prefix, ""]):
        for kind in kinds:
            for extension in (".tsv.gz", ".tsv"):
                candidate = path.with_name(f"{start}{kind}{extension}")
                if candidate.exists():
                    return candidate
    return None


def _read_tsv_column(path, expected, what):
    """The rows of a 10x features/barcodes file, split at tabs."""
    with _open_text(path) as file:
        rows = [line.rstrip("\r\n").split("\t") for line in file if line.strip()]
    if len(rows) == expected + 1:
        rows = rows[1:]  # a header row, as some non-10x tools write
    if len(rows) != expected:
        raise ValueError(
            f"{path.name} has {len(rows)} rows but the matrix has {expected} {what}."
        )
    return rows


def _read_mtx(path, columns):
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    try:
        matrix = scipy.io.mmread(path)
    except (ValueError, OSError, IndexError) as exc:
        raise ValueError(f"{path.name} is not a Matrix Market file: {exc}") from None
    n_genes, n_cells = matrix.shape
    features = _beside(path, ("features", "genes"))
    if features is None:
        names, ids = [str(g) for g in range(n_genes)], None
    else:
        rows = _read_tsv_column(features, n_genes, "genes (rows)")
        names = [row[1] if len(row) > 1 else row[0] for row in rows]
        ids = [row[0] for row in rows] if len(rows[0]) > 1 else None
    barcodes = _beside(path, ("barcodes",))
    samples = None
    if barcodes is not None:
        samples = [row[0] for row in _read_tsv_column(barcodes, n_cells, "cells")]
    selected, labels = _select(names, columns, path, ids=ids)
    X = sp.csr_matrix(matrix.T)
    if columns is not None:
        X = X[:, selected]
    X.sum_duplicates()

    def describe(flat):
        row = int(np.searchsorted(X.indptr, flat, side="right")) - 1
        return f"{path.name}: gene {labels[X.indices[flat]]!r}, cell {row}"

    X.data = _as_counts(X.data, describe)
    return X, labels, samples


# -- AnnData ----------------------------------------------------------------


def _import_anndata():
    try:
        import anndata
    except ImportError:
        raise ImportError(
            "reading .h5ad files needs anndata: pip install 'sknbmix[anndata]'"
        ) from None
    return anndata


def _read_h5ad(path, columns, layer):
    anndata = _import_anndata()
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    try:
        adata = anndata.read_h5ad(path)
    except OSError as exc:
        raise ValueError(f"{path.name} is not an .h5ad file: {exc}") from None
    layers = list(adata.layers.keys())
    if layer is None:
        X, where = adata.X, ".X"
    elif layer in adata.layers:
        X, where = adata.layers[layer], f"layer {layer!r}"
    else:
        raise ValueError(
            f"{path.name} has no layer {layer!r}; its layers: "
            f"{', '.join(layers) or 'none'}."
        )
    if X is None:
        raise ValueError(f"{path.name} has no .X; name a layer.")
    names = [str(name) for name in adata.var_names]
    selected, labels = _select(names, columns, path)
    hint = ""
    if layer is None and layers:
        hint = f"; raw counts may be in a layer (this file has: {', '.join(layers)})"
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if columns is not None:
            X = X[:, selected]
        X.sum_duplicates()

        def describe(flat):
            row = int(np.searchsorted(X.indptr, flat, side="right")) - 1
            return (
                f"{path.name}: {where}, row {row}, column {labels[X.indices[flat]]!r}"
            )

        X.data = _as_counts(X.data, describe, hint)
    else:
        X = np.asarray(X)
        if columns is not None:
            X = X[:, selected]

        def describe(flat):
            row, col = divmod(flat, X.shape[1])
            return f"{path.name}: {where}, row {row}, column {labels[col]!r}"

        X = _as_counts(X, describe, hint)
    return X, labels, [str(name) for name in adata.obs_names]


def _open_backed(path):
    """An ``.h5ad`` file opened in backed mode: its annotations read, its
    counts left on disk (close ``.file`` when done)."""
    anndata = _import_anndata()
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    try:
        return anndata.read_h5ad(path, backed="r")
    except OSError as exc:
        raise ValueError(f"{path.name} is not an .h5ad file: {exc}") from None


def _read_h5ad_lazily(path, columns, layer, chunks):
    """``.X`` or a layer of an ``.h5ad`` file as a dask array of blocks of
    ``chunks`` rows, read where they are computed."""
    anndata = _import_anndata()
    if not isinstance(chunks, Integral) or isinstance(chunks, bool) or chunks < 1:
        raise ValueError(
            f"chunks must be a positive number of samples, got {chunks!r}."
        )
    import h5py

    adata = _open_backed(path)
    try:
        layers = list(adata.layers.keys())
        names = [str(name) for name in adata.var_names]
        samples = [str(name) for name in adata.obs_names]
    finally:
        adata.file.close()
    if layer is not None and layer not in layers:
        raise ValueError(
            f"{path.name} has no layer {layer!r}; its layers: "
            f"{', '.join(layers) or 'none'}."
        )
    key = "X" if layer is None else f"layers/{layer}"
    with h5py.File(path, "r") as file:
        if key not in file:
            raise ValueError(f"{path.name} has no .X; name a layer.")
        if file[key].attrs.get("encoding-type") == "csc_matrix":
            raise ValueError(
                f"{path.name} stores {key} by columns (CSC), which cannot be "
                "read in blocks of samples: store it by rows (CSR) first, e.g. "
                "adata.X = adata.X.tocsr(); adata.write_h5ad(path)."
            )
        # The blocks reopen the file by its path when they are read.
        X = anndata.experimental.read_elem_lazy(file[key], chunks=(chunks, len(names)))
    selected, labels = _select(names, columns, path)
    if columns is not None:
        X = X[:, selected]
    return X, labels, samples


###############################################################################
# Reading size factors


def read_size_factors(path, *, column=None, sample_names=None):
    """Read size factors, one finite positive number per sample (cell).

    Parameters
    ----------
    path : str or path-like
        A text file (``.csv``, ``.tsv``, ``.txt`` or other, optionally
        gzipped) with one value per line and an optional header line; or
        with two columns, sample names and values (as pandas'
        ``Series.to_csv`` writes them), separated by a comma, a tab, a
        semicolon or spaces. Or an ``.h5ad`` file, whose ``.obs`` column
        ``column`` holds them (needs anndata).

    column : str, default=None
        ``.h5ad`` only, and required there: the ``.obs`` column to read.

    sample_names : sequence of str, default=None
        The names of the samples the size factors are for, in order (the
        ``sample_names`` of :func:`read_counts`). A two-column file is then
        matched to them by name, and must name every one of them; without
        ``sample_names``, its values are taken in the order of the file.
        One-column files and ``.obs`` columns are always taken in order.

    Returns
    -------
    size_factors : ndarray of float64 of shape (n_samples,)

    Raises
    ------
    ValueError
        If a value is not a finite positive number (the error says where),
        the file has more than two columns, or a sample is missing from it.

    Examples
    --------
    >>> import os, tempfile
    >>> from sknbmix.io import read_size_factors
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "size_factors.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("cell,size_factor\\nAAAC-1,0.8\\nAAAG-1,1.25\\n")
    >>> read_size_factors(path)
    array([0.8 , 1.25])
    >>> read_size_factors(path, sample_names=["AAAG-1", "AAAC-1"])
    array([1.25, 0.8 ])
    >>> folder.cleanup()
    """
    path = Path(path)
    name = path.name.lower()
    stem = name[: -len(".gz")] if name.endswith(".gz") else name
    if Path(stem).suffix == ".h5ad":
        if column is None:
            raise ValueError(
                f"{path.name}: name the .obs column that holds the size factors."
            )
        return _read_obs_column(path, column)
    if column is not None:
        raise ValueError(f"{path.name}: column applies to .h5ad files only.")
    return _read_size_factor_text(path, sample_names)


def _read_size_factor_text(path, sample_names):
    try:
        with _open_text(path) as file:
            lines = [
                (number, line) for number, line in enumerate(file, 1) if line.strip()
            ]
    except UnicodeDecodeError:
        raise ValueError(
            f"{path.name} is not a text file of size factors (one number per "
            "line, or sample names and numbers)."
        ) from None
    if not lines:
        raise ValueError(f"{path.name} is empty: it holds no size factors.")
    start = "".join(line for _, line in lines[:2])
    delimiter = next((d for d in "\t,;" if d in start), None)
    rows = [(number, _split(line, delimiter)) for number, line in lines]
    header = rows[0][1]
    # A header names the values (pandas writes an empty name for the index).
    if not _is_number(header[-1]) or (len(header) == 2 and header[0].strip() == ""):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path.name} has a header but no size factors.")
    n_fields = len(rows[0][1])
    if n_fields not in (1, 2):
        raise ValueError(
            f"{path.name}: line {rows[0][0]} has {n_fields} fields; a size factor "
            "file has one column of values, or sample names and values."
        )
    values = np.empty(len(rows))
    for i, (number, fields) in enumerate(rows):
        if len(fields) != n_fields:
            raise ValueError(
                f"{path.name}: line {number} has {len(fields)} fields but line "
                f"{rows[0][0]} has {n_fields}."
            )
        if not _is_number(fields[-1]):
            raise ValueError(
                f"{path.name}: line {number} holds {fields[-1]!r}, not a number."
            )
        values[i] = float(fields[-1])
    _check_positive(values, lambda i: f"{path.name}: line {rows[i][0]}")
    if n_fields == 1 or sample_names is None:
        return values
    names = [fields[0].strip() for _, fields in rows]
    positions = {}
    for i, sample in enumerate(names):
        earlier = positions.setdefault(sample, i)
        if earlier != i:
            raise ValueError(
                f"{path.name}: sample {sample!r} is on line {rows[earlier][0]} "
                f"and on line {rows[i][0]}."
            )
    missing = [str(sample) for sample in sample_names if str(sample) not in positions]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{path.name} has no size factor for {len(missing)} of the "
            f"{len(sample_names)} samples: {shown}."
        )
    return values[[positions[str(sample)] for sample in sample_names]]


def _read_obs_column(path, column):
    """The ``.obs`` column ``column`` of an ``.h5ad`` file, as size factors."""
    adata = _open_backed(path)
    try:
        obs = adata.obs
        if column not in obs.columns:
            shown = ", ".join(map(str, obs.columns[:10]))
            more = ", ..." if len(obs.columns) > 10 else ""
            raise ValueError(
                f"{path.name} has no .obs column {column!r}; its columns: "
                f"{shown + more or 'none'}."
            )
        series = obs[column]
        cells = [str(cell) for cell in obs.index]
        try:
            values = np.asarray(series, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{path.name}: .obs column {column!r} holds {series.dtype} "
                "values, not numbers."
            ) from None
    finally:
        adata.file.close()
    _check_positive(
        values, lambda i: f"{path.name}: .obs column {column!r}, cell {cells[i]!r}"
    )
    return values


def _check_positive(values, describe):
    """Raise a ValueError at the first value that is not finite and positive;
    ``describe(index)`` says where it is."""
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{describe(first)} holds {values[first]:g}: size factors must be "
            f"finite and positive ({np.count_nonzero(bad)} of {values.size} "
            "are not)."
        )


###############################################################################
# Saving and loading models


def _json_scalar(value):
    """A parameter value as a plain JSON type (NumPy scalars are not)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    return value


def save_model(estimator, path):
    """Save a fitted :class:`~sknbmix.NegBinomMixture` as JSON.

    The file holds a format version, the sknbmix version that wrote it, the
    estimator's :meth:`~sknbmix.NegBinomMixture.get_params` and its fitted
    attributes (``weights_``, ``alpha_``, ``b_``, ``means_``,
    ``poisson_limit_``, ``degenerate_components_``, ``converged_``,
    ``n_iter_``, ``lower_bound_``, ``size_factors_used_``,
    ``n_features_in_`` and ``feature_names_in_`` when present) as lists.
    Floats are written in full (shortest round-trip) precision, so
    :func:`load_model` gives back the same numbers.

    Whether and how the fit used size factors is kept: the ``size_factors``
    parameter (with ``"total"`` the loaded model computes the size factors
    of the data it is given, as the saved one does) and
    ``size_factors_used_``. Size factors given to ``fit`` as an array are
    not saved: they belong to the training samples, and new samples need
    their own.

    Parameters
    ----------
    estimator : NegBinomMixture
        A fitted mixture. A ``random_state`` that is a RandomState instance
        cannot be saved; it is stored as None, with a warning.

    path : str or path-like
        The file to write (conventionally ``.json``).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    See Also
    --------
    load_model : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> from sknbmix import NegBinomMixture
    >>> from sknbmix.datasets import load_singer
    >>> from sknbmix.io import load_model, save_model
    >>> X = load_singer().data[:, :1]
    >>> model = NegBinomMixture(n_components=2).fit(X)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "rex1.json")
    >>> save_model(model, path)
    >>> loaded = load_model(path)
    >>> loaded.weights_.round(4)
    array([0.1601, 0.8399])
    >>> bool(loaded.score(X) == model.score(X))
    True
    >>> folder.cleanup()
    """
    from sknbmix import __version__

    if not isinstance(estimator, NegBinomMixture):
        raise ValueError(
            f"save_model saves a NegBinomMixture, got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    params = {key: _json_scalar(v) for key, v in estimator.get_params().items()}
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        warnings.warn(
            "random_state is a RandomState instance, which cannot be saved; "
            "the saved model has random_state=None.",
            UserWarning,
            stacklevel=2,
        )
        params["random_state"] = None
    attributes = {
        name: getattr(estimator, name).tolist()
        for name in _ARRAY_ATTRIBUTES + _MASK_ATTRIBUTES
    }
    attributes.update(
        converged_=bool(estimator.converged_),
        n_iter_=int(estimator.n_iter_),
        lower_bound_=float(estimator.lower_bound_),
        size_factors_used_=str(getattr(estimator, "size_factors_used_", "none")),
        n_features_in_=int(estimator.n_features_in_),
    )
    if hasattr(estimator, "feature_names_in_"):
        attributes["feature_names_in_"] = [str(n) for n in estimator.feature_names_in_]
    document = {
        "format": _MODEL_FORMAT,
        "format_version": _MODEL_FORMAT_VERSION,
        "sknbmix_version": __version__,
        "params": params,
        "attributes": attributes,
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
        file.write("\n")


def load_model(path):
    """Load a mixture saved by :func:`~sknbmix.io.save_model`.

    Parameters
    ----------
    path : str or path-like
        The JSON file.

    Returns
    -------
    estimator : NegBinomMixture
        A fitted mixture: ``predict``, ``predict_proba``, ``score_samples``,
        ``score``, ``sample``, ``bic``, ``aic`` and :func:`sknbmix.bootstrap`
        give the numbers the saved estimator gave.

    Raises
    ------
    ValueError
        If the file is not a sknbmix model, is damaged, or was written in a
        newer format.

    See Also
    --------
    save_model : Write the file.
    """

    path = Path(path)
    with open(path, encoding="utf-8") as file:
        try:
            document = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(
                f"{path.name} is not a sknbmix model (not JSON)."
            ) from None
    if not isinstance(document, dict) or document.get("format") != _MODEL_FORMAT:
        raise ValueError(
            f"{path.name} is not a sknbmix model (it has no "
            f'"format": "{_MODEL_FORMAT}" entry).'
        )
    version = document.get("format_version")
    if not isinstance(version, int) or version > _MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path.name} has model format version {version!r}, written by "
            f"sknbmix {document.get('sknbmix_version')}; this sknbmix reads "
            f"versions up to {_MODEL_FORMAT_VERSION}. Upgrade sknbmix."
        )
    try:
        estimator = NegBinomMixture(**document["params"])
        estimator._validate_params()
        _set_fitted(estimator, document["attributes"], version)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{path.name} is a damaged sknbmix model: {detail}") from None
    return estimator


def _set_fitted(estimator, attributes, version):
    """Set the fitted attributes, checking shapes and values."""
    arrays = {
        name: np.asarray(attributes[name], dtype=np.float64)
        for name in _ARRAY_ATTRIBUTES
    }
    K = estimator.n_components
    n_features = int(attributes["n_features_in_"])
    weights_shape = (K,) if estimator.shared_weights else (n_features, K)
    shapes = {"weights_": weights_shape, "alpha_": (K, n_features)}
    shapes["b_"] = shapes["means_"] = shapes["poisson_limit_"] = (K, n_features)
    shapes["degenerate_components_"] = weights_shape
    for name, array in arrays.items():
        if array.shape != shapes[name]:
            raise ValueError(
                f"{name} has shape {array.shape}, expected {shapes[name]}."
            )
        if not (np.isfinite(array).all() and (array >= 0).all()):
            raise ValueError(f"{name} has negative or non-finite values.")
    for name, array in arrays.items():
        setattr(estimator, name, array)
    _set_fitted_masks(estimator, attributes, shapes, version)
    estimator.converged_ = bool(attributes["converged_"])
    estimator.n_iter_ = int(attributes["n_iter_"])
    estimator.lower_bound_ = float(attributes["lower_bound_"])
    if not math.isfinite(estimator.lower_bound_):
        raise ValueError("lower_bound_ is not a number.")
    # Files before version 3 are of fits without size factors.
    used = attributes["size_factors_used_"] if version >= 3 else "none"
    if used not in _SIZE_FACTORS_USED:
        raise ValueError(
            f"size_factors_used_ must be one of {', '.join(_SIZE_FACTORS_USED)}, "
            f"got {used!r}."
        )
    estimator.size_factors_used_ = used
    estimator.n_features_in_ = n_features
    if "feature_names_in_" in attributes:
        names = np.asarray(attributes["feature_names_in_"], dtype=object)
        if names.shape != (n_features,):
            raise ValueError(
                f"feature_names_in_ has {names.size} names for {n_features} features."
            )
        estimator.feature_names_in_ = names


def _set_fitted_masks(estimator, attributes, shapes, version):
    """Set ``poisson_limit_`` and ``degenerate_components_``."""
    if version == 1:
        # A version 1 file: the masks follow from the parameters, except
        # for components emptied below one sample, whose number of samples
        # the file does not hold.
        estimator.poisson_limit_ = at_poisson_limit(estimator.alpha_)
        estimator.degenerate_components_ = degenerate_components(
            estimator.weights_, estimator.alpha_, estimator.b_
        )
        return
    for name in _MASK_ATTRIBUTES:
        mask = np.asarray(attributes[name])
        if mask.shape != shapes[name] or mask.dtype != bool:
            raise ValueError(
                f"{name} must be booleans of shape {shapes[name]}, got "
                f"{mask.dtype} of shape {mask.shape}."
            )
        setattr(estimator, name, mask)
