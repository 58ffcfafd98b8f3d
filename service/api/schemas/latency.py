"""Pydantic types of the latency-table and device-agent endpoints (never ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LatencyTableOut(BaseModel):
    id: int
    device_id: int
    device: str
    family: str
    format: str
    source_name: str | None
    entries_count: int
    unmapped_keys: list[str] = Field(
        description="Keys of the uploaded file no op of the family runs (not imported)"
    )
    renamed_keys_count: int = Field(description="Foreign keys rewritten into hwnas op keys")
    descriptor: dict[str, Any]
    measurement: dict[str, Any]
    fingerprint: str = Field(description="sha256 of the table as uploaded (calibrations match it)")
    calibrated: bool
    calibration_model: str | None
    created_at: datetime


class LatencyTableDetailOut(LatencyTableOut):
    entries: dict[str, dict[str, float | int | None]]


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=200, examples=["jetson-01:4242"])
    limit: int = Field(default=1, ge=1, le=64, description="Most tasks to lease at once")


class TaskOut(BaseModel):
    id: int
    config_hash: str
    config: dict[str, Any]
    input_shape: list[int] = Field(description="One input without the batch axis")
    batch_size: int
    attempts: int
    lease_expires_at: datetime | None
    model_url: str = Field(description="GET it (with the agent token) for the ONNX model")


class ClaimOut(BaseModel):
    device_id: int
    device: str
    profile: dict[str, Any] = Field(description="The device descriptor to measure with")
    lease_s: float
    tasks: list[TaskOut]


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=200)
    stats: dict[str, Any] = Field(
        description="median_ms, p90_ms, mean_ms, std_ms, cv, runs (and attempts)"
    )
    runtime: dict[str, Any] = Field(description="Runtime, version, threads, provider, …")


class FailureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=200)
    error: str = Field(
        min_length=1, max_length=2000, description="Why the agent cannot measure this network"
    )


class ResultOut(BaseModel):
    task_id: int
    status: str
    agent_id: str | None
    stats: dict[str, Any] | None
