"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas.common import NAME_PATTERN, DescriptorValue, Key
from service.catalog.checkpoints import MAX_CHECKPOINT_NAME
from service.timestamps import UtcDatetime


class SupernetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    family: str = Field(min_length=1, max_length=200, examples=["mbv3-digits"])
    checkpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CHECKPOINT_NAME,
        description="Name of a checkpoint file inside the server's checkpoint directory "
        "(HWNAS_CHECKPOINT_DIR); the family's default weights if omitted",
        examples=["mbv3_digits.pt"],
    )


class SupernetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    family: str
    dataset: str
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    created_at: UtcDatetime


class SupernetDetailOut(SupernetOut):
    search_space: list[dict[str, Any]]
    exact_ranges: dict[str, list[float]] = Field(
        description="Exact metrics of the smallest and largest network, e.g. macs: [min, max]"
    )
    n_genes: int
    log10_size: float


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    kind: Literal["host", "agent", "lut-only"]
    descriptor: dict[Key, DescriptorValue] = Field(
        default_factory=dict,
        max_length=64,
        description="host: threads, batch_size, warmup_runs, timed_runs (onnxruntime profile); "
        "agent: the same plus free-form facts about the device (JSON scalars)",
    )


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    descriptor: dict[str, Any]
    can_measure_latency: bool
    created_at: UtcDatetime
