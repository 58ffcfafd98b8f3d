"""SearchSpec's constraints are its field types; a bad spec names each field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from service.search.spec import SearchSpec, parse_objective, spec_error_text

ACC = parse_objective("accuracy:max")


def _error(**fields: Any) -> str:
    with pytest.raises(ValueError) as raised:
        SearchSpec(**{"objectives": [ACC], **fields})
    return spec_error_text(raised.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"budget": 0}, "budget: Input should be greater than or equal to 1"),
        ({"budget": True}, "budget: Input should be a valid integer"),
        ({"budget": 2.5}, "budget: Input should be a valid integer"),
        ({"initial_size": 0}, "initial_size: Input should be greater than or equal to 1"),
        ({"tactic": "greedy"}, "tactic: Input should be 'linas', 'evolutionary' or 'random'"),
        ({"hv_bounds": {"accuracy": (1.0, 2.0, 3.0)}}, "hv_bounds.accuracy: Tuple should have"),
        ({"hv_bounds": {"accuracy": (2.0, 1.0)}}, "must be (low, high) with low < high"),
        ({"predictors": ("ridge", "xgboost")}, "predictors: unknown candidate(s) ['xgboost']"),
        ({"algorithm": "nsga2"}, "algorithm 'nsga2' does not fit 1 objective(s)"),
        ({"objectives": []}, "a search needs at least one objective, e.g. 'accuracy:max'"),
    ],
)
def test_each_bad_field_is_named_in_one_line(fields: dict[str, Any], expected: str) -> None:
    text = _error(**fields)
    assert expected in text
    assert "\n" not in text and "errors.pydantic.dev" not in text


def test_every_bad_field_is_reported_at_once() -> None:
    text = _error(population_size=0, batch_size=-1)
    assert text.startswith("population_size: ") and "; batch_size: " in text


def test_a_plain_value_error_keeps_its_text() -> None:
    assert spec_error_text(ValueError("budget 0 is out of range")) == "budget 0 is out of range"


def test_a_good_spec_keeps_what_it_was_given() -> None:
    spec = SearchSpec([ACC], budget=5, hv_bounds={"accuracy": (0, 100)}, predictors=("ridge",))
    assert (spec.budget, spec.predictors) == (5, ("ridge",))
    assert spec.hv_bounds == {"accuracy": (0.0, 100.0)}
    assert spec.objectives == [ACC]
