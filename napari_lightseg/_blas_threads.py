"""One BLAS thread for ``lightseg`` processes: imported by the CLI before anything loads NumPy.

Nothing here needs threaded BLAS (the heavy work is ONNX Runtime's, with its own threads), but OpenBLAS
starts a thread per core when NumPy loads, and after any small linear-algebra call (nibabel's
orientation SVD, an affine product) those threads spin on the cores that gzip inflation and ONNX
Runtime need. One thread: whole ``lightseg segment`` process ~0.2 s and ~0.4 CPU s less on 2 cores
(``benchmarks/RESULTS_speed.md``), same masks. A value the user set is kept; Dask workers started by
``lightseg batch`` inherit it.
"""
from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

for _variable in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")
