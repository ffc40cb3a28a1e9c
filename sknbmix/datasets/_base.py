"""Loaders for the small datasets shipped with sknbmix.

The layout follows :mod:`sklearn.datasets`: each dataset is a CSV file under
``sknbmix/datasets/data`` with a description in ``sknbmix/datasets/descr``, both
located with :mod:`importlib.resources` so that they are found wherever and
however the package is installed.
"""

from importlib import resources

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params

# The data and descr folders are package data of ``sknbmix.datasets`` (see
# pyproject.toml), not regular packages, so the loaders reach them from the
# package itself. DATA_MODULE is only what a Bunch reports, as in scikit-learn;
# importlib.resources resolves it as a namespace package.
PACKAGE = "sknbmix.datasets"
DATA_MODULE = "sknbmix.datasets.data"


###############################################################################
# Private helpers


def _data_path(data_file_name):
    """Return the :class:`~importlib.resources.abc.Traversable` of a data file."""
    return resources.files(PACKAGE) / "data" / data_file_name


def _load_count_csv(data_file_name):
    """Read a CSV of counts with a one-line header of feature names.

    Parameters
    ----------
    data_file_name : str
        Name of the file in ``sknbmix/datasets/data``.

    Returns
    -------
    data : ndarray of shape (n_samples, n_features), dtype=int64
        The counts, one row per cell.

    feature_names : list of str
        The column names read from the header.
    """
    with _data_path(data_file_name).open("r", encoding="utf-8") as csv_file:
        feature_names = csv_file.readline().strip().split(",")
        data = np.loadtxt(csv_file, delimiter=",", dtype=np.int64, ndmin=2)
    if data.shape[1] != len(feature_names):
        # A malformed copy of the data must not load with shifted columns.
        raise ValueError(
            f"{data_file_name} has {len(feature_names)} column names but "
            f"{data.shape[1]} columns of data."
        )
    return data, feature_names


def _load_descr(descr_file_name):
    """Return the text of ``sknbmix/datasets/descr/<descr_file_name>``."""
    path = resources.files(PACKAGE) / "descr" / descr_file_name
    return path.read_text(encoding="utf-8")


def _import_pandas(caller_name):
    """Import pandas lazily, or raise an ImportError that says what needs it."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            f"{caller_name} requires pandas, which is not installed. Install it "
            "with `pip install pandas`, or use as_frame=False to get a NumPy array."
        ) from exc
    return pandas


###############################################################################
# Public loaders


@validate_params(
    {"return_X_y": ["boolean"], "as_frame": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_singer(*, return_X_y=False, as_frame=False):
    """Load the smFISH transcript counts of Singer et al. (2014).

    Single-molecule FISH counts of four transcripts in 279 mouse embryonic stem
    cells. The counts are over-dispersed, and those of Rex1 (Zfp42) are clearly
    bimodal: the data set on which mixtures of negative binomials are usually
    introduced.

    =================   ==============================
    Samples total                                  279
    Dimensionality                                   4
    Features            integer, non-negative (counts)
    Target              none (unsupervised)
    =================   ==============================

    Read more in the :ref:`description of the data set <singer_dataset>`.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch object, as
        scikit-learn's loaders do. This data set has no target, so ``target``
        is None: write ``X, _ = load_singer(return_X_y=True)``.

    as_frame : bool, default=False
        If True, the data is a pandas DataFrame with one int64 column per gene,
        named as in ``feature_names``, and ``frame`` is that same DataFrame. If
        `return_X_y` is also True, the DataFrame is the first element of the
        tuple. Requires pandas.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : {ndarray, DataFrame} of shape (279, 4)
            The counts, one row per cell and one column per gene: a NumPy
            array of dtype int64, or a pandas DataFrame if `as_frame=True`.
        feature_names : list of str
            The gene names, ``['Rex1', 'Rest', 'Nanog', 'Prdm14']``.
        frame : DataFrame of shape (279, 4) or None
            The same DataFrame as `data` if `as_frame=True`, otherwise None.
        DESCR : str
            The full description of the data set: origin, columns, units,
            citation, licence, and known maximum-likelihood fits.
        filename : str
            The name of the CSV file, ``'singer.csv'``.
        data_module : str
            The module that holds the file:
            ``importlib.resources.files(data_module) / filename`` opens it.

    (data, target) : tuple if `return_X_y` is True
        ``data`` is the `data` attribute described above; ``target`` is None,
        as the data set is unsupervised.

    Raises
    ------
    ImportError
        If `as_frame=True` and pandas is not installed.

    See Also
    --------
    sknbmix.NegBinomMixture : Fit a mixture of negative binomials to these counts.

    Notes
    -----
    Each value is the number of mRNA molecules of one gene counted in one cell,
    so every column is a non-negative integer count (transcripts per cell).

    References
    ----------
    .. [1] Singer ZS, Yong J, Tischler J, Hackett JA, Altinok A, Surani MA,
       Cai L, Elowitz MB. "Dynamic heterogeneity and DNA methylation in
       embryonic stem cells." Molecular Cell 55(2):319-331, 2014.
       :doi:`10.1016/j.molcel.2014.06.029`

    Examples
    --------
    >>> from sknbmix.datasets import load_singer
    >>> singer = load_singer()
    >>> singer.data.shape
    (279, 4)
    >>> singer.feature_names
    ['Rex1', 'Rest', 'Nanog', 'Prdm14']
    >>> singer.data[:3]
    array([[ 11,  34,  39,   0],
           [172,  91,  33,   5],
           [261,  70,  68,   0]])

    With ``return_X_y=True`` the counts come back with a target of None:

    >>> X, y = load_singer(return_X_y=True)
    >>> X.sum(axis=0)
    array([38604, 20906, 24479,  1265])
    >>> y is None
    True

    With ``as_frame=True`` the columns are named by gene:

    >>> df = load_singer(as_frame=True).frame
    >>> df.head(3)
       Rex1  Rest  Nanog  Prdm14
    0    11    34     39       0
    1   172    91     33       5
    2   261    70     68       0
    >>> df.dtypes
    Rex1      int64
    Rest      int64
    Nanog     int64
    Prdm14    int64
    dtype: object
    """
    data_file_name = "singer.csv"
    data, feature_names = _load_count_csv(data_file_name)
    fdescr = _load_descr("singer.rst")

    frame = None
    if as_frame:
        pd = _import_pandas("load_singer with as_frame=True")
        frame = pd.DataFrame(data, columns=feature_names)
        data = frame

    if return_X_y:
        # (data, target) as in sklearn.datasets; there is no target.
        return data, None

    return Bunch(
        data=data,
        feature_names=feature_names,
        frame=frame,
        DESCR=fdescr,
        filename=data_file_name,
        data_module=DATA_MODULE,
    )
