"""pymoo pieces over integer gene indices: the problem, canonical repair, duplicate elimination
against every network already known, and the algorithm for the number of objectives.

Only pymoo's public API: operators passed to the algorithm's constructor (`sampling=`,
`survival=`, `mating=`), ask/tell. NSGA-II's survival is `StableRankAndCrowding`: pymoo's own
breaks ties with numpy's unstable `argsort`, whose order among equal values differs between CPUs
(numpy's AVX-512, AVX2 and baseline sorts), which made LINAS fork between machines.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
from pymoo.algorithms.moo.unsga3 import UNSGA3, comp_by_rank_and_ref_line_dist
from pymoo.algorithms.soo.nonconvex.ga import GA, comp_by_cv_and_fitness
from pymoo.core.algorithm import Algorithm
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mating import Mating
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.core.survival import Survival
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
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
    """Drops offspring that repeat each other, the population, or any network in `known`.

    pymoo compares a new population with itself alone when it initialises (so the best known
    networks may seed the search) and with the parents as well when it mates: `known` applies
    only to the latter, offspring."""

    def __init__(self, encoding: SpaceEncoding, known: Collection[bytes]) -> None:
        super().__init__()
        self.encoding = encoding
        self.known = known

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> Any:
        seen: set[bytes] = set()
        if other is not None:
            seen.update(row_key(r) for r in self.encoding.canonical_rows(other.get("X")))
            seen.update(self.known)
        for i, row in enumerate(self.encoding.canonical_rows(pop.get("X"))):
            key = row_key(row)
            if key in seen:
                is_duplicate[i] = True
            if other is None:
                seen.add(key)
        return is_duplicate


class StableRankAndCrowding(Survival):
    """NSGA-II's survival (non-dominated rank, then crowding distance in the splitting front)
    with every tie in an order that does not depend on the CPU: a seeded permutation, then a
    stable sort. Infeasible points follow the feasible ones by constraint violation (stable)."""

    def __init__(self) -> None:
        super().__init__(filter_infeasible=False)
        self.nds = NonDominatedSorting()
        self.crowding = get_crowding_function("cd")

    def _do(
        self,
        problem: Problem,
        pop: Population,
        *args: Any,
        random_state: np.random.Generator | None = None,
        n_survive: int | None = None,
        **kwargs: Any,
    ) -> Population:
        n_survive = len(pop) if n_survive is None else n_survive
        rng = random_state if random_state is not None else np.random.default_rng(0)
        F = pop.get("F").astype(float)
        violation = np.asarray(pop.get("CV"), dtype=float).reshape(len(pop), -1)[:, 0]
        feasible = np.flatnonzero(violation <= 0)
        survivors: list[int] = []
        if len(feasible):
            fronts = self.nds.do(F[feasible], n_stop_if_ranked=min(n_survive, len(feasible)))
            for rank, local in enumerate(fronts):
                front = feasible[np.asarray(local, dtype=int)]
                n_remove = max(len(survivors) + len(front) - n_survive, 0)
                crowding = self.crowding.do(F[front], n_remove=n_remove)
                order = np.arange(len(front))
                if n_remove:
                    shuffled = rng.permutation(len(front))
                    order = shuffled[np.argsort(-crowding[shuffled], kind="stable")]
                    order = order[: len(front) - n_remove]
                for j, i in enumerate(front):
                    pop[i].set("rank", rank)
                    pop[i].set("crowding", crowding[j])
                survivors.extend(front[order].tolist())
                if len(survivors) >= n_survive:
                    break
        infeasible = np.flatnonzero(violation > 0)
        infeasible = infeasible[np.argsort(violation[infeasible], kind="stable")]
        survivors.extend(infeasible[: max(n_survive - len(survivors), 0)].tolist())
        return pop[survivors]


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


# Each algorithm's own parent tournament (what its constructor uses by default).
MATING_COMPARISON: dict[str, Callable[..., Any]] = {
    "ga": comp_by_cv_and_fitness,
    "nsga2": binary_tournament,
    "agemoea": binary_tournament,
    "unsga3": comp_by_rank_and_ref_line_dist,
}


def make_algorithm(
    name: str,
    n_obj: int,
    pop_size: int,
    encoding: SpaceEncoding,
    sampling: Sampling,
    known: Collection[bytes] = frozenset(),
    seed: int = 0,
    mating_rounds: int = 100,
    n_offsprings: int | None = None,
) -> Algorithm:
    """GA / NSGA-II / AGE-MOEA / U-NSGA-III with integer SBX + PM (rounding repair).

    Mating retries selection, crossover and mutation up to `mating_rounds` times while its
    offspring are all known; `n_offsprings` defaults to `pop_size`."""
    if name not in MATING_COMPARISON:
        raise ValueError(f"unknown algorithm {name!r}; use ga, nsga2, agemoea or unsga3")
    repair = CanonicalRepair(encoding)
    elimination = KnownNetworkElimination(encoding, known)
    mating = Mating(
        TournamentSelection(func_comp=MATING_COMPARISON[name]),
        SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        repair=repair,
        eliminate_duplicates=elimination,
        n_max_iterations=mating_rounds,
    )
    operators: dict[str, Any] = {
        "sampling": sampling,
        "mating": mating,
        "repair": repair,
        "eliminate_duplicates": elimination,
        "n_offsprings": n_offsprings,
        "seed": seed,
    }
    if name == "ga":
        return GA(pop_size=pop_size, **operators)
    if name == "nsga2":
        return NSGA2(pop_size=pop_size, survival=StableRankAndCrowding(), **operators)
    if name == "agemoea":
        check_algorithm_available(name)
        from pymoo.algorithms.moo.age import AGEMOEA

        return AGEMOEA(pop_size=pop_size, **operators)
    ref_dirs = reference_directions(n_obj, pop_size)
    size = max(pop_size, len(ref_dirs))
    return UNSGA3(ref_dirs=ref_dirs, pop_size=size, **operators)
