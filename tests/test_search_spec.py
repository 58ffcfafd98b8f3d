"""Parsing objectives and constraints, and the SearchSpec checks and JSON round trip."""

from __future__ import annotations

import pytest

from service.search import Constraint, Objective, SearchSpec, parse_constraint, parse_objective


def test_parse_objective_reads_metric_device_and_direction() -> None:
    assert parse_objective("accuracy:max") == Objective("accuracy", "max")
    assert parse_objective(" latency@host : min ") == Objective("latency@host", "min")


@pytest.mark.parametrize("text", ["accuracy", "accuracy:up", "lat ency:min", "@host:min", ""])
def test_parse_objective_rejects_bad_text_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 'accuracy:max'"):
        parse_objective(text)


def test_parse_constraint_reads_operator_and_number() -> None:
    assert parse_constraint("latency@host<=8") == Constraint("latency@host", "<=", 8.0)
    assert parse_constraint("macs <= 5e6") == Constraint("macs", "<=", 5e6)
    assert parse_constraint("accuracy>=90.5") == Constraint("accuracy", ">=", 90.5)


@pytest.mark.parametrize("text", ["latency@host<8", "macs=5", "macs<=five", "<=3", "macs<=nan"])
def test_parse_constraint_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="constraint"):
        parse_constraint(text)


def test_spec_checks_budget_tactic_algorithm_and_objectives() -> None:
    acc = parse_objective("accuracy:max")
    lat = parse_objective("latency@host:min")
    with pytest.raises(ValueError, match="budget"):
        SearchSpec([acc], budget=0)
    with pytest.raises(ValueError, match="tactic"):
        SearchSpec([acc], tactic="greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit 1 objective"):
        SearchSpec([acc], algorithm="nsga2")
    with pytest.raises(ValueError, match="at least one objective"):
        SearchSpec([])
    with pytest.raises(ValueError, match="one objective only"):
        SearchSpec([acc, Objective("accuracy", "min")])
    assert SearchSpec([acc]).algorithm_name == "ga"
    assert SearchSpec([acc, lat]).algorithm_name == "nsga2"
    assert SearchSpec([acc, lat, parse_objective("macs:min")]).algorithm_name == "unsga3"


def test_spec_json_round_trip_keeps_every_field() -> None:
    spec = SearchSpec(
        [parse_objective("accuracy:max"), parse_objective("latency@host:min")],
        [parse_constraint("macs<=5e6")],
        budget=42,
        tactic="evolutionary",
        seed=7,
        algorithm="nsga2",
        hv_bounds={"accuracy": (50.0, 100.0)},
        population_size=12,
        predictors=("ridge", "gp"),
        exact_features=False,
    )
    again = SearchSpec.from_json(spec.to_json())
    assert again == spec
    assert again.metrics == ["accuracy", "latency@host", "macs"]


def test_spec_from_json_names_unknown_fields() -> None:
    with pytest.raises(ValueError, match="budjet"):
        SearchSpec.from_json({"objectives": ["accuracy:max"], "budjet": 3})
