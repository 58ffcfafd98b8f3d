"""`JobSpec`: the typed spec stored with a job, read back by the worker."""

from __future__ import annotations

from typing import Any

import pytest

from service.jobs.specs import JobSpec
from service.search.spec import SearchSpec, parse_constraint, parse_objective

SEARCH = SearchSpec(
    [parse_objective("accuracy:max"), parse_objective("latency@phone:min")],
    [parse_constraint("macs<=5e6")],
    budget=12,
    seed=3,
    predictors=("ridge", "monotone"),  # as STORED has them, whatever today's default is
)

# A spec as jobs stored it before `JobSpec` existed: the search fields with the sources beside them.
STORED: dict[str, Any] = {
    "objectives": ["accuracy:max", "latency@phone:min"],
    "constraints": ["macs<=5e+06"],
    "budget": 12,
    "tactic": "linas",
    "seed": 3,
    "algorithm": None,
    "hv_bounds": {},
    "population_size": None,
    "initial_size": None,
    "batch_size": None,
    "predictors": ["ridge", "monotone"],
    "exact_features": True,
    "latency_sources": {"phone": "lut"},
}


def test_round_trip_keeps_search_and_sources() -> None:
    spec = JobSpec(SEARCH, {"phone": "lut"})
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.latency_sources == {"phone": "lut"}


def test_stored_shape_is_the_search_fields_with_the_sources_beside_them() -> None:
    stored = JobSpec(SEARCH, {"phone": "lut"}).to_json()
    assert stored == {**SEARCH.to_json(), "latency_sources": {"phone": "lut"}}
    assert JobSpec.from_json(STORED) == JobSpec(SEARCH, {"phone": "lut"})


def test_a_spec_stored_without_sources_takes_the_defaults() -> None:
    legacy = {k: v for k, v in STORED.items() if k != "latency_sources"}
    assert JobSpec.from_json(legacy) == JobSpec(SEARCH, {})
    assert JobSpec.from_json({**legacy, "latency_sources": None}).latency_sources == {}


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="'measured', 'lut'"):
        JobSpec.from_json({**STORED, "latency_sources": {"phone": "guess"}})
