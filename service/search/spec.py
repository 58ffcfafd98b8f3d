"""What a search asks for: objectives, constraints, budget, tactic and seed, parsed from text."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from predictors.candidates import check_candidate_names

Direction = Literal["max", "min"]
Tactic = Literal["linas", "evolutionary", "random"]
TACTICS: tuple[str, ...] = get_args(Tactic)
# Algorithms by number of objectives; the first of each list is the default.
ALGORITHMS: dict[str, tuple[str, ...]] = {
    "single": ("ga",),
    "two": ("nsga2", "agemoea"),
    "many": ("unsga3",),
}

_METRIC = r"[A-Za-z_][A-Za-z0-9_.\-]*(?:@[A-Za-z0-9_.\-]+)?"
_OBJECTIVE_RE = re.compile(rf"^\s*(?P<metric>{_METRIC})\s*:\s*(?P<direction>max|min)\s*$")
_CONSTRAINT_RE = re.compile(rf"^\s*(?P<metric>{_METRIC})\s*(?P<op><=|>=)\s*(?P<value>\S+)\s*$")
_METRIC_RE = re.compile(rf"^{_METRIC}$")


def _check_metric(metric: str) -> None:
    if not _METRIC_RE.match(metric):
        raise ValueError(
            f"metric {metric!r} must look like 'name' or 'name@device', e.g. 'accuracy', "
            "'latency@host', 'macs'"
        )


@dataclass(frozen=True)
class Objective:
    """One metric to maximise or minimise, e.g. `accuracy` (max) or `latency@host` (min)."""

    metric: str
    direction: Direction

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if self.direction not in ("max", "min"):
            raise ValueError(f"objective direction must be 'max' or 'min', not {self.direction!r}")

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    """`metric op value` with op `<=` or `>=`; becomes a pymoo constraint G <= 0."""

    metric: str
    op: Literal["<=", ">="]
    value: float

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if self.op not in ("<=", ">="):
            raise ValueError(f"constraint operator must be '<=' or '>=', not {self.op!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"constraint bound for {self.metric!r} must be finite")

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_objective(text: str) -> Objective:
    """Parse `metric[@device]:max|min`, e.g. `accuracy:max` or `latency@host:min`."""
    match = _OBJECTIVE_RE.match(text)
    if match is None:
        raise ValueError(
            f"objective {text!r} must look like 'metric[@device]:max' or ':min', "
            "e.g. 'accuracy:max' or 'latency@host:min'"
        )
    return Objective(match["metric"], match["direction"])  # type: ignore[arg-type]


def parse_constraint(text: str) -> Constraint:
    """Parse `metric[@device] <= value` or `>= value`, e.g. `latency@host<=8` or `macs<=5e6`."""
    match = _CONSTRAINT_RE.match(text)
    hint = "e.g. 'latency@host<=8', 'macs<=5e6' or 'accuracy>=90'"
    if match is None:
        raise ValueError(
            f"constraint {text!r} must look like 'metric[@device]<=value' or '>=value'; {hint}"
        )
    try:
        value = float(match["value"])
    except ValueError:
        bad = match["value"]
        raise ValueError(f"constraint {text!r}: {bad!r} is not a number; {hint}") from None
    return Constraint(match["metric"], match["op"], value)  # type: ignore[arg-type]


def default_algorithm(n_objectives: int) -> str:
    return ALGORITHMS[_arity(n_objectives)][0]


def _arity(n_objectives: int) -> str:
    return "single" if n_objectives == 1 else "two" if n_objectives == 2 else "many"


# Ridge, and ridge with every weight one sign (`monotone`, on the thermometer encoding), chosen
# between by cross-validated Kendall tau at every fit, with the exact metrics (MACs, params) as
# features (`exact_features`): they rank accuracy and latency better than ridge on one-hot alone
# (docs/predictors.md), and on the real measurements LINAS needed fewer validations with them in
# 4 of 5 seeds (docs/benchmarks.md). GP and the ensemble take seconds per fit.
DEFAULT_PREDICTORS: tuple[str, ...] = ("ridge", "monotone", "svr")
DEFAULT_EXACT_FEATURES = True


PositiveCount = Annotated[int, Field(strict=True, ge=1)]


@pydantic_dataclass(frozen=True)
class SearchSpec:
    """A search job's question. `hv_bounds` maps a metric to its (low, high) for hypervolume.

    Objectives without bounds are normalised by the range seen in iteration 0 (see docs/library.md).
    `population_size`, `initial_size` and `batch_size` override the budget-derived defaults;
    `predictors` are the candidate models LINAS selects among (names from `predictors`);
    `exact_features` gives them the `exact_metrics` values (MACs, params) as extra features.
    The field types carry the constraints; a bad spec raises a `ValueError` (pydantic's
    `ValidationError`) naming each field at fault (`spec_error_text` renders it in one line).
    """

    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)
    budget: PositiveCount = 100
    tactic: Tactic = "linas"
    seed: int = 0
    algorithm: str | None = None
    hv_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    population_size: PositiveCount | None = None
    initial_size: PositiveCount | None = None
    batch_size: PositiveCount | None = None
    predictors: tuple[str, ...] = DEFAULT_PREDICTORS
    exact_features: bool = DEFAULT_EXACT_FEATURES

    @field_validator("predictors")
    @classmethod
    def _known_predictors(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        check_candidate_names(list(names))
        return names

    @field_validator("hv_bounds")
    @classmethod
    def _ordered_bounds(
        cls, bounds: Mapping[str, tuple[float, float]]
    ) -> Mapping[str, tuple[float, float]]:
        for metric, (low, high) in bounds.items():
            if not low < high:
                raise ValueError(f"hv_bounds[{metric!r}] must be (low, high) with low < high")
        return bounds

    @model_validator(mode="after")
    def _objectives_fit(self) -> SearchSpec:
        """At least one objective, each metric once, and an algorithm for that many."""
        if not self.objectives:
            raise ValueError("a search needs at least one objective, e.g. 'accuracy:max'")
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"each metric may be one objective only; got {metrics}")
        allowed = ALGORITHMS[_arity(len(self.objectives))]
        if self.algorithm is not None and self.algorithm not in allowed:
            raise ValueError(
                f"algorithm {self.algorithm!r} does not fit {len(self.objectives)} objective(s); "
                f"use one of {list(allowed)}"
            )
        return self

    @property
    def algorithm_name(self) -> str:
        return self.algorithm or default_algorithm(len(self.objectives))

    @property
    def metrics(self) -> list[str]:
        """Every metric the search needs: objectives first, then constraint-only metrics."""
        out = [o.metric for o in self.objectives]
        out += [c.metric for c in self.constraints if c.metric not in out]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "objectives": [str(o) for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "budget": self.budget,
            "tactic": self.tactic,
            "seed": self.seed,
            "algorithm": self.algorithm,
            "hv_bounds": {k: list(v) for k, v in self.hv_bounds.items()},
            "population_size": self.population_size,
            "initial_size": self.initial_size,
            "batch_size": self.batch_size,
            "predictors": list(self.predictors),
            "exact_features": self.exact_features,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpec:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown search spec field(s) {unknown}")
        if "objectives" not in data:
            raise ValueError("a search spec needs 'objectives', e.g. ['accuracy:max']")
        objectives = [
            o if isinstance(o, Objective) else parse_objective(o) for o in data["objectives"]
        ]
        constraints = [
            c if isinstance(c, Constraint) else parse_constraint(c)
            for c in data.get("constraints", [])
        ]
        bounds = {k: (float(v[0]), float(v[1])) for k, v in (data.get("hv_bounds") or {}).items()}
        return cls(
            objectives=objectives,
            constraints=constraints,
            budget=data.get("budget", 100),
            tactic=data.get("tactic", "linas"),
            seed=int(data.get("seed", 0)),
            algorithm=data.get("algorithm"),
            hv_bounds=bounds,
            population_size=data.get("population_size"),
            initial_size=data.get("initial_size"),
            batch_size=data.get("batch_size"),
            predictors=tuple(data.get("predictors", DEFAULT_PREDICTORS)),
            exact_features=bool(data.get("exact_features", DEFAULT_EXACT_FEATURES)),
        )


def spec_error_text(error: ValueError) -> str:
    """A spec error in one line: each field at fault with pydantic's message, or ours."""
    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for detail in error.errors(include_url=False):
        cause = (detail.get("ctx") or {}).get("error")
        text = str(cause) if isinstance(cause, ValueError) else detail["msg"]
        field_name = ".".join(str(part) for part in detail["loc"])
        parts.append(f"{field_name}: {text}" if field_name else text)
    return "; ".join(parts)
