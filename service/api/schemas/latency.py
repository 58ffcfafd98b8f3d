"""Pydantic types of the latency-table and device-agent endpoints (never ORM rows)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, computed_field

from service.api.schemas.common import DescriptorValue, Key
from service.timestamps import UtcDatetime

AgentId = Annotated[str, Field(min_length=1, max_length=200)]


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
    created_at: UtcDatetime
    family_ops: int | None = Field(
        default=None, description="Ops a network of the family can run (None: it cannot list them)"
    )
    coverage: float | None = Field(
        default=None, description="Share of the family's ops the table holds, 0 to 1"
    )


class LatencyTableDetailOut(LatencyTableOut):
    entries: dict[str, dict[str, float | int | None]]


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: AgentId = Field(examples=["jetson-01:4242"])
    limit: StrictInt = Field(default=1, ge=1, le=64, description="Most tasks to lease at once")


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    config_hash: str
    config: dict[str, Any]
    input_shape: list[int] = Field(description="One input without the batch axis")
    batch_size: int
    attempts: int
    lease_expires_at: UtcDatetime | None

    @computed_field(description="GET it (with the agent token) for the ONNX model")  # type: ignore[prop-decorator]
    @property
    def model_url(self) -> str:
        return f"/v1/tasks/{self.id}/model.onnx"


class AgentDeviceOut(BaseModel):
    id: int
    name: str
    kind: str


class ClaimOut(BaseModel):
    device_id: int
    device: str
    profile: dict[str, Any] = Field(description="The device descriptor to measure with")
    lease_s: float
    tasks: list[TaskOut]


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: AgentId
    stats: dict[Key, Any] = Field(
        max_length=32, description="median_ms, p90_ms, mean_ms, std_ms, cv, runs (and attempts)"
    )
    runtime: dict[Key, DescriptorValue] = Field(
        max_length=64, description="Runtime, version, threads, provider, …"
    )


class FailureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: AgentId
    error: str = Field(
        min_length=1, max_length=2000, description="Why the agent cannot measure this network"
    )


class ResultOut(BaseModel):
    task_id: int
    status: str
    agent_id: str | None
    stats: dict[str, Any] | None
