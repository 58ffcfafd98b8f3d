"""pymoo pieces over integer gene indices: the problem, canonical repair, duplicate elimination
against every network already known, and the algorithm for the number of objectives.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.unsga3 import UNSGA3
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.algorithm import Algorithm
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.util.ref_dirs import get_reference_directions

from service.search.encoding import SpaceEncoding, row_key

RowScorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class RowProblem(Problem):
    """Integer gene-index problem; `score_rows(canonical_rows) -> (F, G)` does the work."""

    def __init__(
        self, encoding: SpaceEncoding, n_obj: int, n_constr: int, score_rows: RowScorer
    ) -> None:
        n_var = len(encoding.n_choices)
        super().__init__(
            n_var=n_var,
            n_obj=n_obj,
            n_ieq_constr=n_constr,
            xl=np.zeros(n_var),
            xu=(encoding.n_choices - 1).astype(float),
            vtype=int,
        )
        self.encoding = encoding
        self.score_rows = score_rows

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        F, G = self.score_rows(self.encoding.canonical_rows(X))
        out["F"] = F
        out["G"] = G


class CanonicalRepair(Repair):
    """Round to indices and reset inactive genes, so equal networks have equal rows."""

    def __init__(self, encoding: SpaceEncoding) -> None:
        super().__init__()
        self.encoding = encoding

    def _do(self, problem: Problem, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        return self.encoding.canonical_rows(X)


class KnownNetworkElimination(DuplicateElimination):
    """Drops offspring that repeat each other, the population, or any network in `known`."""

    def __init__(self, encoding: SpaceEncoding, known: Collection[bytes]) -> None:
        super().__init__()
        self.encoding = encoding
        self.known = known

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> Any:
        seen: set[bytes] = set()
        if other is not None:
            seen.update(row_key(r) for r in self.encoding.canonical_rows(other.get("X")))
        for i, row in enumerate(self.encoding.canonical_rows(pop.get("X"))):
            key = row_key(row)
            if key in seen or (other is None and key in self.known):
                is_duplicate[i] = True
            seen.add(key)
        return is_duplicate


class FixedSampling(Sampling):
    """An initial population given as index rows (the best known points plus a LHS fill)."""

    def __init__(self, rows: np.ndarray) -> None:
        super().__init__()
        self.rows = rows

    def _do(self, problem: Problem, n_samples: int, **kwargs: Any) -> np.ndarray:
        return self.rows[:n_samples].astype(float)


def check_algorithm_available(name: str) -> None:
    """AGE-MOEA needs numba (an optional pymoo dependency); say so before the search starts."""
    if name == "agemoea":
        try:
            import numba  # noqa: F401
        except ImportError:
            raise ValueError(
                "algorithm 'agemoea' needs the numba package (pip install numba); "
                "use 'nsga2' or install numba"
            ) from None


def reference_directions(n_obj: int, at_most: int) -> np.ndarray:
    """Das-Dennis directions, the most partitions giving no more than `at_most` (at least 1)."""
    partitions = 1
    while (
        len(get_reference_directions("das-dennis", n_obj, n_partitions=partitions + 1)) <= at_most
    ):
        partitions += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=partitions)


def make_algorithm(
    name: str,
    n_obj: int,
    pop_size: int,
    encoding: SpaceEncoding,
    sampling: Sampling,
    known: Collection[bytes] = frozenset(),
    seed: int = 0,
    mating_rounds: int = 100,
) -> Algorithm:
    """GA / NSGA-II / AGE-MOEA / U-NSGA-III with integer SBX + PM (rounding repair)."""
    operators: dict[str, Any] = {
        "sampling": sampling,
        "crossover": SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        "mutation": PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        "repair": CanonicalRepair(encoding),
        "eliminate_duplicates": KnownNetworkElimination(encoding, known),
    }
    algorithm: Algorithm
    if name == "ga":
        algorithm = GA(pop_size=pop_size, seed=seed, **operators)
    elif name == "nsga2":
        algorithm = NSGA2(pop_size=pop_size, seed=seed, **operators)
    elif name == "agemoea":
        check_algorithm_available(name)
        from pymoo.algorithms.moo.age import AGEMOEA

        algorithm = AGEMOEA(pop_size=pop_size, seed=seed, **operators)
    elif name == "unsga3":
        ref_dirs = reference_directions(n_obj, pop_size)
        size = max(pop_size, len(ref_dirs))
        algorithm = UNSGA3(ref_dirs=ref_dirs, pop_size=size, seed=seed, **operators)
    else:
        raise ValueError(f"unknown algorithm {name!r}; use ga, nsga2, agemoea or unsga3")
    # The initial population may hold known networks on purpose (the best ones seed the search).
    algorithm.initialization.eliminate_duplicates = KnownNetworkElimination(encoding, frozenset())
    # Each mating round retries selection, crossover and mutation when offspring are all known.
    algorithm.mating.n_max_iterations = mating_rounds
    return algorithm
