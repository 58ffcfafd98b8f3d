"""What every tactic sees (`SearchContext`), what it returns (`Proposal`), and the two simple
tactics: `random` (space-filling baseline) and `evolutionary` (the algorithm on validations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pymoo.core.population import Population

from service.search.algorithms import FixedSampling, RowProblem, make_algorithm
from service.search.encoding import SpaceEncoding, row_keys
from service.search.exact import ExactMetrics
from service.search.pareto import HypervolumeScale
from service.search.records import Evaluation
from service.search.spec import SearchSpec


@dataclass
class SearchContext:
    """The archive (every known network: history, warm start, validated) and the budget left."""

    spec: SearchSpec
    encoding: SpaceEncoding
    exact: ExactMetrics
    evaluations: list[Evaluation]
    rows: np.ndarray  # canonical index rows of `evaluations`, same order
    F: np.ndarray  # measured objectives, minimisation form
    G: np.ndarray  # measured relative constraint violations
    known: set[bytes]  # row keys of every known network
    remaining: int  # validations left in the budget
    iteration: int
    scale: HypervolumeScale | None
    rng: np.random.Generator
    in_flight: int = 0  # networks proposed earlier and not back yet (asynchronous batches)

    @property
    def progress(self) -> float:
        """Fraction of the budget already spent."""
        return 1.0 - self.remaining / self.spec.budget


@dataclass
class Proposal:
    """Rows to validate next, what proposed them, and the predictor scores behind it."""

    rows: np.ndarray
    origin: str
    predictor_scores: dict[str, dict[str, float | str]] = field(default_factory=dict)
    row_origins: tuple[str, ...] = ()  # per row where rows came from several sources; else origin

    def origin_of(self, i: int) -> str:
        return self.row_origins[i] if i < len(self.row_origins) else self.origin


class Tactic(Protocol):
    name: str

    def propose(self, ctx: SearchContext) -> Proposal: ...


def space_filling(ctx: SearchContext, n: int, origin: str) -> Proposal:
    """n unknown networks from a maximin Latin hypercube over gene indices."""
    return Proposal(ctx.encoding.fresh_rows(min(n, ctx.remaining), ctx.rng, ctx.known), origin)


def pad(ctx: SearchContext, proposal: Proposal, n: int) -> Proposal:
    """Fill a short proposal up to n with space-filling unknown networks."""
    missing = min(n, ctx.remaining) - len(proposal.rows)
    if missing <= 0:
        return proposal
    exclude = ctx.known | set(row_keys(proposal.rows))
    extra = ctx.encoding.fresh_rows(missing, ctx.rng, exclude)
    rows = np.concatenate([proposal.rows.reshape(-1, extra.shape[1]), extra])
    return Proposal(rows, proposal.origin, proposal.predictor_scores, proposal.row_origins)


def default_batch(spec: SearchSpec) -> int:
    return spec.batch_size or int(np.clip(spec.budget // 10, 10, 50))


class RandomTactic:
    """Baseline: every batch is a fresh maximin Latin hypercube sample of unknown networks."""

    name = "random"

    def propose(self, ctx: SearchContext) -> Proposal:
        return space_filling(ctx, default_batch(ctx.spec), "random")


class EvolutionaryTactic:
    """The spec's algorithm (NSGA-II by default) directly on validations, one generation per batch.

    Survival runs over the whole archive ((mu + lambda) elitism, so resuming from stored
    evaluations rebuilds the same parents); mating uses the algorithm's own selection, integer
    SBX and PM, and drops every offspring that is already known. Driven by pymoo's ask/tell:
    the archive is told to the algorithm, one ask gives the offspring.
    """

    name = "evolutionary"

    def population_size(self, spec: SearchSpec) -> int:
        return spec.population_size or int(np.clip(spec.budget // 10, 10, 40))

    def propose(self, ctx: SearchContext) -> Proposal:
        pop_size = self.population_size(ctx.spec)
        if len(ctx.evaluations) < pop_size:
            return space_filling(ctx, pop_size - len(ctx.evaluations) - ctx.in_flight, "initial")
        table = {key: i for i, key in enumerate(row_keys(ctx.rows))}

        def measured(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            index = [table[k] for k in row_keys(rows)]
            return ctx.F[index], ctx.G[index]

        problem = RowProblem(ctx.encoding, ctx.F.shape[1], ctx.G.shape[1], measured)
        n_offspring = min(pop_size, ctx.remaining)
        algorithm = make_algorithm(
            ctx.spec.algorithm_name,
            ctx.F.shape[1],
            pop_size,
            ctx.encoding,
            FixedSampling(ctx.rows),
            known=ctx.known,
            seed=int(ctx.rng.integers(2**31)),
            n_offsprings=n_offspring,
        )
        # ask/tell: the first ask is the archive's first networks (as many as the algorithm's
        # population); telling them and then the rest of the archive runs the algorithm's
        # survival over all of it; the next ask mates the survivors.
        algorithm.setup(problem, verbose=False)
        initial = algorithm.ask()
        algorithm.evaluator.eval(problem, initial)
        algorithm.tell(infills=initial)
        if len(ctx.rows) > len(initial):
            rest = Population.new(X=ctx.rows[len(initial) :].astype(float))
            algorithm.evaluator.eval(problem, rest)
            algorithm.tell(infills=rest)
        offspring = algorithm.ask()
        if offspring is None or len(offspring) == 0:
            rows = ctx.rows[:0]
        else:
            rows = ctx.encoding.canonical_rows(offspring.get("X"))
        return pad(ctx, Proposal(rows, "evolutionary"), n_offspring)
