"""What the read side of jobs returns: frozen views of a job, its candidates and its front.

They are the API's response bodies too (`service/api/schemas/jobs.py` serves them as they are), so
they live here, below the API, and the read side never imports the API. Those of one row are read
from it (`from_attributes`); what another table holds is filled in by `jobs.results`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from service.timestamps import UtcDatetime


class IterationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    iteration: int
    hypervolume: float | None
    front_size: int
    validations_used: int
    seconds: float
    predictor_scores: dict[str, dict[str, Any]] = Field(default_factory=dict)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    supernet_id: int
    status: str
    spec: dict[str, Any]
    budget: int
    validations_used: int
    attempts: int
    worker_id: str | None
    cancel_requested: bool
    error: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    iterations: list[IterationOut] = Field(default_factory=list)

    @computed_field(description="validations_used / budget, 0..1")  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        return min(1.0, self.validations_used / self.budget) if self.budget else 0.0


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
    model_config = ConfigDict(from_attributes=True)

    id: int
    config: dict[str, Any]
    config_hash: str
    iteration: int
    origin: str
    pareto_role: str | None
    metrics: dict[str, MetricOut] = Field(default_factory=dict)


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
