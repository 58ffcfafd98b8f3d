"""Latency lookup tables: schema, importers, estimators (plain and calibrated) and the builder.

Plain library: never touches the database. The builder (`latency_tables.builder`) needs torch and
onnxruntime and is imported on its own.
"""

from latency_tables.calibration import CalibratedLatencyEstimator, CalibrationScores
from latency_tables.estimator import MissingOpKeysError, estimate_latency
from latency_tables.importers import (
    ImportedTable,
    load_table_file,
    read_ofa_yaml,
    read_table_csv,
    read_table_json,
    table_to_csv,
)
from latency_tables.schema import (
    DeviceDescriptor,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MeasurementInfo,
)

__all__ = [
    "CalibratedLatencyEstimator",
    "CalibrationScores",
    "DeviceDescriptor",
    "ImportedTable",
    "LatencyEntry",
    "LatencyTable",
    "LatencyTableError",
    "MeasurementInfo",
    "MissingOpKeysError",
    "estimate_latency",
    "load_table_file",
    "read_ofa_yaml",
    "read_table_csv",
    "read_table_json",
    "table_to_csv",
]
