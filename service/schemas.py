"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from predictors.candidates import CANDIDATES
from service.search.spec import DEFAULT_EXACT_FEATURES, DEFAULT_PREDICTORS

MAX_BUDGET = 10_000


class ErrorOut(BaseModel):
    error: str
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str
    schema_revision: str | None


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


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supernet: str = Field(description="Name of a registered supernet")
    objectives: list[str] = Field(min_length=1, examples=[["accuracy:max", "latency@host:min"]])
    constraints: list[str] = Field(default_factory=list, examples=[["macs<=5e6"]])
    budget: int = Field(default=60, description=f"Validations to spend, 1..{MAX_BUDGET}")
    tactic: Literal["linas", "evolutionary", "random"] = "linas"
    seed: int = 0
    algorithm: str | None = None
    population_size: int | None = None
    initial_size: int | None = None
    batch_size: int | None = None
    predictors: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PREDICTORS),
        description="LINAS only: the candidate predictor models, chosen among by cross-validated "
        f"Kendall tau at every fit; any of {sorted(CANDIDATES)}",
        examples=[["ridge", "monotone"]],
    )
    exact_features: bool = Field(
        default=DEFAULT_EXACT_FEATURES,
        description="LINAS only: give the predictors the exact MACs and params as features",
    )
    latency_sources: dict[str, Literal["measured", "lut"]] = Field(
        default_factory=dict,
        description="Per latency device: 'measured' (host or agent) or 'lut' (its latency "
        "table); default by kind: host/agent measured, lut-only lut",
        examples=[{"npu": "lut"}],
    )
    hv_bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Per objective metric, the (low, high) its hypervolume is normalised over; "
        "set the same bounds on jobs whose hypervolumes you compare. Default: MACs and params "
        "the supernet's exact range, other metrics the range of the first validated batch",
        examples=[{"accuracy": [80, 100], "latency@host": [1, 10]}],
    )


class IterationOut(BaseModel):
    iteration: int
    hypervolume: float | None
    front_size: int
    validations_used: int
    seconds: float
    predictor_scores: dict[str, dict[str, Any]]


class JobOut(BaseModel):
    id: int
    supernet_id: int
    status: str
    spec: dict[str, Any]
    budget: int
    validations_used: int
    progress: float = Field(description="validations_used / budget, 0..1")
    attempts: int
    worker_id: str | None
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    iterations: list[IterationOut] = Field(default_factory=list)


class MetricOut(BaseModel):
    value: float
    device: str | None
    source: Literal["measured", "predicted"]
    method: Literal["host", "agent", "lut"] | None = Field(
        default=None,
        description="For latency: measured on the service host, by a device agent, or read "
        "from the device's latency table",
    )


class CandidateOut(BaseModel):
    id: int
    config: dict[str, Any]
    config_hash: str
    iteration: int
    origin: str
    pareto_role: str | None
    metrics: dict[str, MetricOut]


class CandidatePageOut(BaseModel):
    items: list[CandidateOut]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at the end")


class ParetoOut(BaseModel):
    job_id: int
    status: str
    objectives: list[str]
    constraints: list[str]
    feasible: bool = Field(description="False when no validated point meets every constraint")
    points: list[CandidateOut]
    closest: list[CandidateOut] = Field(
        description="Least-violating points, only while no point is feasible"
    )
