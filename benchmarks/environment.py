"""The library versions a benchmark ran with, recorded beside its figures.

LINAS's trajectories depend on the numerics of scikit-learn, scipy, numpy and pymoo, and measured
figures on torch and onnxruntime, so a figure without them cannot be checked later.
"""

from __future__ import annotations

import platform
from importlib import metadata

LIBRARIES = ("numpy", "scipy", "scikit-learn", "pymoo", "torch", "onnxruntime")


def library_versions() -> dict[str, str]:
    """Python and each library's installed version ("missing" where it is not installed)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
