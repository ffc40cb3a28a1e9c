"""Memory per non-zero of a default fit of the shared model (issue 19).

Usage::

    python benchmarks/bench_memory.py [--n-samples 50000 100000] [--quick]

For each size, ``make_counts(n, 2_000, 8, random_state=0)`` (sparse CSR,
about 10% non-zero) is written to a temporary ``.npz`` file; then a fresh
Python process loads it, fits a tiny problem first (so that the compiled
kernels and the imports are in memory before the measurement), resets the
kernel's high-water mark of its resident memory (``VmHWM``, by writing 5 to
``/proc/self/clear_refs``) and runs one step:

- ``table``: ``build_count_table(X)``, the compression to distinct counts;
- ``fit``: ``NegBinomMixture(8, random_state=0).fit(X)`` with its defaults.

It prints the rise of ``VmHWM`` above the resident memory after loading,
per non-zero of X (the CSR matrix itself takes 12 bytes per non-zero:
float64 values and int32 column indices). Linux only.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import scipy.sparse as sp
from _synthetic import make_counts

N_FEATURES, N_COMPONENTS = 2_000, 8

# Runs in the fresh process: argv[1] is the .npz file, argv[2] the step.
_CHILD = """
import json, sys, time, warnings
import scipy.sparse as sp
from sknbmix import NegBinomMixture
from sknbmix._data import build_count_table


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024


path, step = sys.argv[1], sys.argv[2]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    small = sp.load_npz(path)[:2000]
    NegBinomMixture(8, random_state=0, max_iter=3).fit(small)
    del small
X = sp.load_npz(path).tocsr()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Poisson-limit components are expected
    if step == "table":
        build_count_table(X)
    else:
        NegBinomMixture(8, random_state=0).fit(X)
print(json.dumps({
    "nnz": X.nnz,
    "input": X.data.nbytes + X.indices.nbytes + X.indptr.nbytes,
    "added": status("VmHWM:") - base,
    "seconds": time.perf_counter() - start,
}))
"""


def measure(path, step):
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), step],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, nargs="+", default=[50_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="10,000 cells")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else args.n_samples
    print(
        "| cells | non-zeros | input MB | step | seconds | peak added MB "
        "| bytes per non-zero |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n_samples in sizes:
            path = Path(tmp) / f"counts_{n_samples}.npz"
            X, _ = make_counts(n_samples, N_FEATURES, N_COMPONENTS, random_state=0)
            sp.save_npz(path, X, compressed=False)
            del X
            for step in ("table", "fit"):
                r = measure(path, step)
                print(
                    f"| {n_samples:,} | {r['nnz']:,} | {r['input'] / 1e6:.0f} | {step} "
                    f"| {r['seconds']:.1f} | {r['added'] / 1e6:.0f} "
                    f"| {r['added'] / r['nnz']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
