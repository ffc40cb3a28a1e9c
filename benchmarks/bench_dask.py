"""In memory against dask on a two-worker LocalCluster, from an .h5ad file
(issue 19).

Usage::

    python benchmarks/bench_dask.py [--n-samples 1000000] [--density 0.02]
                                    [--chunk 100000] [--quick]

``make_counts(n, 2_000, 8, density=...)`` is written to a CSR ``.h5ad``
file. Then each way runs in a fresh process, after a small fit that puts the
compiled kernels in memory:

- ``memory``: ``read_counts(path)`` reads the whole matrix; the shared
  model's table is built as ``fit`` builds it (canonical orders, then the
  compression to distinct counts).
- ``dask``: a ``LocalCluster`` of two single-threaded worker processes;
  ``read_counts(path, chunks=N)`` opens the file lazily and
  ``distributed_likelihood`` reads it twice, block by block on the workers
  (the canonical order of the genes, then the tables).

Both then time the EM step of the default screen's 15 starts and of one
start (the median of a few), and a whole ``NegBinomMixture(8,
max_iter=30).fit`` (the screen of the starts; from the file for dask, from
the matrix in memory otherwise). Peak resident memory (``VmHWM``) is read
per process: the one process in memory; the driver and each worker with
dask. The warm-up's peak is reset; the resident memory after it (Python and
the libraries) is given in parentheses. Linux only.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _synthetic import make_counts

N_FEATURES, N_COMPONENTS = 2_000, 8

# Runs in the fresh process: argv[1] the .h5ad file, argv[2] the way,
# argv[3] the rows per block.
_CHILD = """
import json, statistics, sys, time, warnings
import numpy as np
from sknbmix import NegBinomMixture
from sknbmix._fit import FitSettings, initial_starts
from sknbmix.io import read_counts

warnings.simplefilter("ignore")  # Poisson limits, max_iter: expected here


def peak(reset=False):
    if reset:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024


def warm():
    # Load the kernels; the resident memory after (the peak is reset to it).
    from sknbmix.datasets import load_singer

    NegBinomMixture(2, max_iter=5).fit(load_singer().data)
    peak(reset=True)
    return peak()


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


path, way, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = FitSettings(n_components=8)
out = {"base_main": warm()}
if way == "memory":
    from sknbmix._data import check_count_block
    from sknbmix._fit import canonical_feature_order, canonical_order
    from sknbmix._likelihood import MixtureLikelihood

    start = time.perf_counter()
    X = check_count_block(read_counts(path)[0], "NegBinomMixture", 0)
    out["read"] = time.perf_counter() - start
    features = canonical_feature_order(X)
    likelihood = MixtureLikelihood.of_counts(
        X, True, order=(canonical_order(X, features), features)
    )
    out["setup"] = time.perf_counter() - start
    fit_input = X
else:
    from distributed import Client, LocalCluster
    from sknbmix._distributed import distributed_likelihood

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    out["base_workers"] = client.run(warm)
    start = time.perf_counter()
    X = read_counts(path, chunks=chunk)[0]
    likelihood, _ = distributed_likelihood(X)
    out["setup"] = time.perf_counter() - start
    fit_input = X
starts = initial_starts(likelihood, settings, 0, None)
one = starts._replace(**{name: x[:1] for name, x in starts._asdict().items()})
out["step_15"] = timed(lambda: likelihood.em_step(starts), 3)
out["step_1"] = timed(lambda: likelihood.em_step(one), 5)
del likelihood
start = time.perf_counter()
NegBinomMixture(8, max_iter=30).fit(fit_input)
out["fit_30"] = time.perf_counter() - start
out["peak_main"] = peak()
if way == "dask":
    peaks = client.run(peak)
    out["workers"] = sorted((out["base_workers"][w], peaks[w]) for w in peaks)
    del out["base_workers"]
    client.close()
    cluster.close()
print(json.dumps(out))
"""


def measure(path, way, chunk):
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), way, str(chunk)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="100,000 cells")
    args = parser.parse_args()
    n_samples = 100_000 if args.quick else args.n_samples
    chunk = min(args.chunk, n_samples)
    import anndata

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counts.h5ad"
        X, _ = make_counts(
            n_samples, N_FEATURES, N_COMPONENTS, density=args.density, random_state=0
        )
        nnz = X.nnz
        anndata.AnnData(X.astype(np.float32)).write_h5ad(path)
        del X
        size = path.stat().st_size / 1e6
        print(
            f"{n_samples:,} cells x {N_FEATURES:,} genes, {nnz:,} non-zeros "
            f"({nnz / n_samples / N_FEATURES:.1%}); file {size:,.0f} MB; dask "
            f"blocks of {chunk:,} cells",
            flush=True,
        )
        print(
            "| way | setup s | EM step, 15 starts s | EM step, 1 start s "
            "| fit, 30 iterations s | peak MB per process (after warm-up) |"
        )
        print("|---|---|---|---|---|---|")
        for way in ("memory", "dask"):
            r = measure(path, way, chunk)
            peaks = f"{r['peak_main'] / 1e6:,.0f} ({r['base_main'] / 1e6:,.0f})"
            if way == "dask":
                workers = ", ".join(
                    f"{peak / 1e6:,.0f} ({base / 1e6:,.0f})"
                    for base, peak in r["workers"]
                )
                peaks = f"driver {peaks}; workers {workers}"
            setup = f"{r['setup']:.1f}"
            if way == "memory":
                setup += f" (reading {r['read']:.1f})"
            print(
                f"| {way} | {setup} | {r['step_15']:.2f} | {r['step_1']:.3f} "
                f"| {r['fit_30']:.1f} | {peaks} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
