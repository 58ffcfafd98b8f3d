"""Value objects a search produces: evaluations, per-iteration records and the Pareto front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.supernets.space import Config

WARM_START = "warm_start"


@dataclass(frozen=True)
class Evaluation:
    """A validated network: canonical config, its hash, measured + exact metrics, provenance.

    `origin` is the tactic step that proposed it (`initial`, `linas`, `evolutionary`, `random`,
    `padding`) or `warm_start` for free results validated elsewhere (not counted in the budget).
    """

    config: Config
    config_hash: str
    metrics: dict[str, float]
    iteration: int
    origin: str

    @property
    def counts_against_budget(self) -> bool:
        return self.origin != WARM_START

    def to_json(self) -> dict[str, Any]:
        return {
            "config": dict(self.config),
            "config_hash": self.config_hash,
            "metrics": dict(self.metrics),
            "iteration": self.iteration,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            config=dict(data["config"]),
            config_hash=str(data["config_hash"]),
            metrics={k: float(v) for k, v in data["metrics"].items()},
            iteration=int(data["iteration"]),
            origin=str(data["origin"]),
        )


@dataclass(frozen=True)
class IterationRecord:
    """One ask/tell round: hypervolume of the validated feasible front after it, and its cost.

    `seconds` is the search's own wall time in this round (ask + tell), excluding validation;
    `cpu_seconds` the process CPU time of the same work (robust to a busy host).
    """

    iteration: int
    hypervolume: float
    front_size: int
    validations_used: int
    predictor_scores: dict[str, dict[str, float | str]] = field(default_factory=dict)
    seconds: float = 0.0
    batch_size: int = 0
    cpu_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "hypervolume": self.hypervolume,
            "front_size": self.front_size,
            "validations_used": self.validations_used,
            "predictor_scores": {k: dict(v) for k, v in self.predictor_scores.items()},
            "seconds": self.seconds,
            "batch_size": self.batch_size,
            "cpu_seconds": self.cpu_seconds,
        }


@dataclass(frozen=True)
class FrontResult:
    """The non-dominated feasible validated points, sorted by the first objective (best first).

    With no feasible point, `feasible` is False, `points` is empty and `closest` holds the
    least-violating validated points (smallest total relative constraint violation first).
    """

    points: list[Evaluation]
    feasible: bool
    closest: list[Evaluation]
    hypervolume: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "hypervolume": self.hypervolume,
            "points": [p.to_json() for p in self.points],
            "closest": [p.to_json() for p in self.closest],
        }
