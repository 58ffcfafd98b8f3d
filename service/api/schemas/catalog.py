"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SupernetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    family: str = Field(min_length=1, max_length=200, examples=["mbv3-digits"])
    checkpoint: str | None = Field(
        default=None,
        description="Path of a checkpoint file on the server; default weights if omitted",
    )


class SupernetOut(BaseModel):
    id: int
    name: str
    family: str
    dataset: str
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    created_at: datetime


class SupernetDetailOut(SupernetOut):
    search_space: list[dict[str, Any]]
    exact_ranges: dict[str, list[float]] = Field(
        description="Exact metrics of the smallest and largest network, e.g. macs: [min, max]"
    )
    n_genes: int
    log10_size: float


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Literal["host", "agent", "lut-only"]
    descriptor: dict[str, Any] = Field(
        default_factory=dict,
        description="host: threads, batch_size, warmup_runs, timed_runs (onnxruntime profile)",
    )


class DeviceOut(BaseModel):
    id: int
    name: str
    kind: str
    descriptor: dict[str, Any]
    can_measure_latency: bool
    created_at: datetime
