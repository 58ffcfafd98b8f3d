"""The library versions a benchmark ran with, recorded beside its figures.

LINAS's trajectories depend on the numerics of scikit-learn, scipy, numpy and pymoo, and measured
figures on torch and onnxruntime, so a figure without them cannot be checked later.
"""

from __future__ import annotations

import platform
from importlib import metadata

LIBRARIES = ("numpy", "scipy", "scikit-learn", "pymoo", "torch", "onnxruntime")


def numerics() -> dict[str, object]:
    """The BLAS libraries, their kernels and thread counts, and numpy's SIMD targets in use: what
    made figures differ between machines before the search decided on rounded values."""
    from threadpoolctl import threadpool_info

    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another numpy layout
        __cpu_dispatch__, __cpu_features__ = [], {}

    return {
        "machine": platform.machine(),
        "threadpools": [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in threadpool_info()
        ],
        "numpy_simd": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
    }


def library_versions() -> dict[str, str]:
    """Python and each library's installed version ("missing" where it is not installed)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
