"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from predictors.candidates import CANDIDATES
from service.jobs.specs import MAX_BUDGET
from service.search.spec import DEFAULT_EXACT_FEATURES, DEFAULT_PREDICTORS, Tactic


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supernet: str = Field(description="Name of a registered supernet")
    objectives: list[str] = Field(min_length=1, examples=[["accuracy:max", "latency@host:min"]])
    constraints: list[str] = Field(default_factory=list, examples=[["macs<=5e6"]])
    budget: int = Field(default=60, description=f"Validations to spend, 1..{MAX_BUDGET}")
    tactic: Tactic = "linas"
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
