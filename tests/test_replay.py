"""The replay check: `benchmarks.replay` gives the committed figures to the last digit, here and
under other BLAS thread counts, OpenBLAS kernels and numpy SIMD paths (docs/benchmarks.md,
"Reproducible on any machine")."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks import replay

ROOT = Path(__file__).resolve().parents[1]
# Enough to fork the search before the fix (it forked at the 7th LINAS iteration at worst).
VARIANT_TACTICS = "linas"
VARIANT_SEEDS = "0,1"


def committed() -> dict:
    return json.loads(replay.DATA.read_text())


def numpy_simd_features() -> str:
    """The numpy SIMD targets above the baseline that this CPU has (disabling them emulates an
    older CPU for numpy's own sorts and transcendental functions)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another numpy layout: no SIMD variant
        return ""
    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


def variants() -> dict[str, dict[str, str]]:
    out = {
        "1 BLAS/OpenMP thread": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        "2 BLAS/OpenMP threads": {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"},
    }
    if platform.machine().lower() in ("x86_64", "amd64"):  # other kernels than the detected ones
        out["OPENBLAS_CORETYPE=Sandybridge"] = {"OPENBLAS_CORETYPE": "Sandybridge"}
    simd = numpy_simd_features()
    if simd:
        out[f"numpy without {simd}"] = {"NPY_DISABLE_CPU_FEATURES": simd}
    return out


def run_variant(extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_", "NPY_"))}
    env.update(extra, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "benchmarks.replay", "--tactics", VARIANT_TACTICS]
    command += ["--seeds", VARIANT_SEEDS]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_replay_gives_the_committed_figures():
    result = replay.run()
    expected = committed()
    assert result["runs"] == expected["runs"], (
        "the replay figures moved: if the change is meant to move them, rerun "
        "`python -m benchmarks.replay --write` and say why in the commit"
    )
    assert result == expected


@pytest.mark.slow
def test_replay_is_the_same_under_other_threads_kernels_and_simd_paths():
    expected = committed()["runs"]
    settings = variants()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(settings, pool.map(run_variant, settings.values()), strict=True))
    for name, result in results.items():
        for tactic, by_seed in result["runs"].items():
            for seed, figures in by_seed.items():
                assert figures == expected[tactic][seed], f"{name}: {tactic} seed {seed} moved"
