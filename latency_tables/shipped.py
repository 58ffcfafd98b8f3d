"""LUTs and calibrations that ship with the package in `latency_tables/data/`."""

from __future__ import annotations

import json
from pathlib import Path

from latency_tables.calibration import CalibratedLatencyEstimator
from latency_tables.importers import read_table_json
from latency_tables.schema import LatencyTable, LatencyTableError

DATA_DIR = Path(__file__).parent / "data"


def lut_path(family: str, device: str) -> Path:
    return DATA_DIR / f"{family}__{device}.lut.json"


def calibration_path(family: str, device: str) -> Path:
    return DATA_DIR / f"{family}__{device}.calibration.json"


def shipped_lut(family: str = "mbv3-digits", device: str = "host") -> LatencyTable:
    """The shipped LUT of `family` on `device` (the reference host profile by default)."""
    path = lut_path(family, device)
    if not path.is_file():
        available = sorted(p.name for p in DATA_DIR.glob("*.lut.json"))
        raise LatencyTableError(f"no shipped LUT {path.name}; available: {available}")
    return read_table_json(path.read_bytes(), str(path))


def shipped_calibration(
    family: str = "mbv3-digits", device: str = "host"
) -> CalibratedLatencyEstimator | None:
    """The calibrated estimator shipped with that LUT, or None when none was shipped."""
    path = calibration_path(family, device)
    if not path.is_file():
        return None
    return CalibratedLatencyEstimator.from_json(
        json.loads(path.read_text()), shipped_lut(family, device)
    )
