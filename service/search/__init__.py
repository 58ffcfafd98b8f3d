"""Search: objectives and constraints, the ask/tell engine (LINAS, evolutionary, random tactics),
Pareto fronts and hypervolume. Plain library: no database, usable with any search space."""

from service.search.engine import SearchEngine, run_search
from service.search.pareto import HypervolumeScale
from service.search.records import Evaluation, FrontResult, IterationRecord
from service.search.spec import Constraint, Objective, SearchSpec, parse_constraint, parse_objective

__all__ = [
    "Constraint",
    "Evaluation",
    "FrontResult",
    "HypervolumeScale",
    "IterationRecord",
    "Objective",
    "SearchEngine",
    "SearchSpec",
    "parse_constraint",
    "parse_objective",
    "run_search",
]
