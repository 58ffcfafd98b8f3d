"""The latency lookup table (LUT): per-op latency statistics in ms measured on one device.

A LUT says which device and runtime it was measured on, which family or space its op keys belong
to, how and when it was measured, and for each op key its latency statistics.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1


class LatencyTableError(ValueError):
    """Bad latency-table input or a table that cannot answer; the API reports it as a 4xx."""

    status_code = 422
    code = "invalid_latency_table"


class DeviceDescriptor(BaseModel):
    """What changes a latency figure on a device: runtime and version, threads, batch, precision."""

    model_config = ConfigDict(extra="allow", frozen=True)

    runtime: str = Field(min_length=1, examples=["onnxruntime"])
    runtime_version: str | None = None
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=1, ge=1)
    precision: str = "fp32"
    hardware: str | None = None


class MeasurementInfo(BaseModel):
    """How and when the entries were measured (or where they were imported from)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    method: str = Field(min_length=1, examples=["onnxruntime per-op sessions, median of 50 runs"])
    measured_at: datetime | None = None
    source: str | None = None
    command: str | None = None
    notes: str | None = None
    reference_network: dict[str, Any] | None = None  # e.g. {"config": …, "median_ms": …}


# Most runs one entry may count: what the database's integer column holds, with room to spare.
MAX_COUNT = 10**9


class LatencyEntry(BaseModel):
    """Latency statistics of one op in ms; `mean_ms` is what estimates sum unless told otherwise.

    Strict: a number is a JSON number (never `true` or `"3"`), finite, and `count` a whole one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    mean_ms: float = Field(ge=0)
    std_ms: float = Field(default=0.0, ge=0)
    count: int = Field(default=1, ge=1, le=MAX_COUNT)
    median_ms: float | None = Field(default=None, ge=0)
    p90_ms: float | None = Field(default=None, ge=0)
    cv: float | None = Field(default=None, ge=0)

    def latency_ms(self, statistic: str = "mean") -> float:
        """The named statistic (`mean`, `median` or `p90`), falling back to the mean when absent."""
        if statistic == "mean":
            return self.mean_ms
        if statistic not in ("median", "p90"):
            raise LatencyTableError(f"unknown statistic {statistic!r}; use mean, median or p90")
        value = self.median_ms if statistic == "median" else self.p90_ms
        return self.mean_ms if value is None else value


class LatencyTable(BaseModel):
    """One device's LUT for one family/search space: op key → latency statistics in ms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    device: str = Field(min_length=1)
    descriptor: DeviceDescriptor
    family: str = Field(min_length=1)
    space: str | None = None
    measurement: MeasurementInfo
    entries: dict[str, LatencyEntry]

    @field_validator("entries")
    @classmethod
    def _non_empty_keys(cls, entries: dict[str, LatencyEntry]) -> dict[str, LatencyEntry]:
        if not entries:
            raise ValueError("a latency table needs at least one entry")
        blank = [key for key in entries if not key.strip()]
        if blank:
            raise ValueError("op keys must not be blank")
        return entries

    def missing_keys(self, layer_keys: list[str]) -> list[str]:
        """The distinct keys of `layer_keys` this table has no entry for, in first-seen order."""
        return list(dict.fromkeys(k for k in layer_keys if k not in self.entries))

    def fingerprint(self) -> str:
        """sha256 of device, family and entries: what a calibration fitted on it is tied to."""
        payload = {
            "device": self.device,
            "family": self.family,
            "entries": {k: v.model_dump() for k, v in sorted(self.entries.items())},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One readable line per problem, each naming the key path, e.g. `entries.Conv-….mean_ms`."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {problem['msg']}")
    return "\n".join(lines)
