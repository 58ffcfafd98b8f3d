"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from predictors.candidates import CANDIDATES
from service.api.schemas.common import FiniteFloat, Key
from service.jobs.specs import MAX_BUDGET
from service.search.spec import DEFAULT_EXACT_FEATURES, DEFAULT_PREDICTORS, Tactic

# An objective or constraint, e.g. `latency@host:min` or `macs<=5e6`.
Expression = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Size = Annotated[StrictInt | None, Field(ge=1, le=1_000_000)]


class JobIn(BaseModel):
    # Strict numbers: a budget of "12" or true is refused, not coerced; floats must be finite.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    supernet: str = Field(min_length=1, max_length=200, description="Name of a registered supernet")
    objectives: list[Expression] = Field(
        min_length=1, max_length=8, examples=[["accuracy:max", "latency@host:min"]]
    )
    constraints: list[Expression] = Field(
        default_factory=list, max_length=32, examples=[["macs<=5e6"]]
    )
    budget: StrictInt = Field(default=60, description=f"Validations to spend, 1..{MAX_BUDGET}")
    tactic: Tactic = "linas"
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)
    algorithm: str | None = Field(default=None, min_length=1, max_length=100)
    population_size: Size = None
    initial_size: Size = None
    batch_size: Size = None
    predictors: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=lambda: list(DEFAULT_PREDICTORS),
        max_length=len(CANDIDATES),
        description="LINAS only: the candidate predictor models, chosen among by cross-validated "
        f"Kendall tau at every fit; any of {sorted(CANDIDATES)}",
        examples=[["ridge", "monotone"]],
    )
    exact_features: StrictBool = Field(
        default=DEFAULT_EXACT_FEATURES,
        description="LINAS only: give the predictors the exact MACs and params as features",
    )
    latency_sources: dict[Key, Literal["measured", "lut"]] = Field(
        default_factory=dict,
        max_length=32,
        description="Per latency device: 'measured' (host or agent) or 'lut' (its latency "
        "table); default by kind: host/agent measured, lut-only lut",
        examples=[{"npu": "lut"}],
    )
    hv_bounds: dict[Key, tuple[FiniteFloat, FiniteFloat]] = Field(
        default_factory=dict,
        max_length=32,
        description="Per objective metric, the (low, high) its hypervolume is normalised over; "
        "set the same bounds on jobs whose hypervolumes you compare. Default: MACs and params "
        "the supernet's exact range, other metrics the range of the first validated batch",
        examples=[{"accuracy": [80, 100], "latency@host": [1, 10]}],
    )
