"""LINAS: validate a space-filling sample, then repeat: fit predictors on every validated network,
run the spec's algorithm on the predictors (seeded with the best known networks, constraints as
G <= 0 on predicted or exact values), and validate a batch chosen from its predicted front for
hypervolume gain and spread. Never proposes a known network. Where the predictors rank poorly
(cross-validated Kendall tau below `FULL_TRUST_TAU`), part or all of the batch is the evolutionary
tactic's offspring instead (`predictor_trust`).

Every choice is made on values that do not depend on the machine's last bits (docs/benchmarks.md,
"Reproducible on any machine"): one BLAS thread for the whole proposal, predictions rounded to a
fixed number of significant bits (`predictors.selection.round_significant`), the candidate pool in
the order of its canonical row keys, and ties in it broken by that order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from predictors.selection import BLAS_THREADS
from service.search.algorithms import FixedSampling, RowProblem, make_algorithm
from service.search.encoding import row_keys
from service.search.pareto import (
    HypervolumeScale,
    columns_of,
    constrained_order,
    constraint_matrix,
    objective_matrix,
    pareto_indices,
    total_violation,
)
from service.search.surrogate import MetricModels
from service.search.tactics import (
    EvolutionaryTactic,
    Proposal,
    SearchContext,
    pad,
    space_filling,
)

INNER_POPULATION = 40
GAIN_DECIMALS = 12  # hypervolume gains in the unit box
MIN_TRAINING = 5  # validated values a predictor needs (predictors.selection.MIN_TRAIN_SAMPLES)
FULL_TRUST_TAU = 0.25  # cross-validated Kendall tau from which the whole batch is LINAS's
NO_TRUST_TAU = 0.05  # ... and at or below which it is all the evolutionary tactic's


def initial_size(budget: int) -> int:
    """Space-filling networks validated before the first predictor fit."""
    return int(np.clip(budget // 10, 8, 30))


def batch_size(remaining: int) -> int:
    """Larger batches while much budget is left (exploration), small ones to refine the front."""
    return int(np.clip(np.ceil(remaining / 10), 4, 16))


def inner_generations(progress: float) -> int:
    """More inner generations as the predictors improve with the spent budget."""
    return 8 + round(12 * progress)


class PredictedScorer:
    """(F, G) of canonical rows from predicted and exact metrics; remembers every row it scored."""

    def __init__(self, ctx: SearchContext, models: MetricModels) -> None:
        self.ctx = ctx
        self.models = models
        self.table: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = row_keys(rows)
        missing = {k: r for k, r in zip(keys, rows, strict=True) if k not in self.table}
        if missing:
            new_rows = np.stack(list(missing.values()))
            means, _ = self.models.predict_rows(new_rows)
            columns = {**means, **self.ctx.exact.columns(new_rows, self.ctx.spec.metrics)}
            F = objective_matrix(self.ctx.spec, columns)
            G = constraint_matrix(self.ctx.spec, columns, len(new_rows))
            for i, key in enumerate(missing):
                self.table[key] = (F[i], G[i])
        return (
            np.stack([self.table[k][0] for k in keys]),
            np.stack([self.table[k][1] for k in keys]),
        )


class LinasTactic:
    name = "linas"

    def __init__(self, models: MetricModels) -> None:
        self.models = models

    def propose(self, ctx: SearchContext) -> Proposal:
        with threadpool_limits(BLAS_THREADS):
            return self._propose(ctx)

    def _propose(self, ctx: SearchContext) -> Proposal:
        spec = ctx.spec
        n_initial = spec.initial_size or initial_size(spec.budget)
        if len(ctx.evaluations) < n_initial:  # the rest of the initial sample may be in flight
            return space_filling(ctx, n_initial - len(ctx.evaluations) - ctx.in_flight, "initial")
        # Asynchronous batches refill what came back: with networks in flight, only as many as
        # keep the batch of a synchronous round outstanding (a queue that grew with every round
        # would validate networks chosen on ever older fits).
        unspent = ctx.remaining + ctx.in_flight
        n_batch = min(spec.batch_size or batch_size(unspent), unspent) - ctx.in_flight
        if n_batch <= 0:
            return Proposal(ctx.rows[:0], "linas")
        columns = columns_of(ctx.evaluations, self.models.metrics)
        if any(np.isfinite(column).sum() < MIN_TRAINING for column in columns.values()):
            return space_filling(ctx, n_batch, "initial")  # too few measured values to fit
        configs = [e.config for e in ctx.evaluations]
        self.models.refit(configs, columns)
        scores = self.models.scores()
        n_evolutionary = round(n_batch * (1.0 - predictor_trust(scores)))
        n_predicted = n_batch - n_evolutionary
        rows = ctx.rows[:0]
        if n_predicted:
            scorer = PredictedScorer(ctx, self.models)
            self._inner_search(ctx, scorer)
            pool_keys = sorted(k for k in scorer.table if k not in ctx.known)
            if pool_keys:
                pool_rows = np.stack([np.frombuffer(k, dtype=np.int64) for k in pool_keys])
                pool_F = np.stack([scorer.table[k][0] for k in pool_keys])
                pool_G = np.stack([scorer.table[k][1] for k in pool_keys])
                chosen = choose_batch(pool_F, pool_G, ctx.F, ctx.G, ctx.scale, n_predicted)
                rows = pool_rows[chosen]
        origins = ("linas",) * len(rows)
        if n_evolutionary:
            fallback = self._evolutionary(ctx, rows, n_evolutionary)
            rows = np.concatenate([rows, fallback.rows])
            origins += (fallback.origin,) * len(fallback.rows)
        return pad(ctx, Proposal(rows, "linas", scores, origins), n_batch)

    @staticmethod
    def _evolutionary(ctx: SearchContext, taken: np.ndarray, n: int) -> Proposal:
        """n of the evolutionary tactic's offspring of the validated networks, none in `taken`."""
        offspring = EvolutionaryTactic().propose(ctx)
        taken_keys = set(row_keys(taken))
        fresh = [i for i, k in enumerate(row_keys(offspring.rows)) if k not in taken_keys]
        return Proposal(offspring.rows[fresh[:n]], offspring.origin)

    def _inner_search(self, ctx: SearchContext, scorer: PredictedScorer) -> None:
        """Run the algorithm on the predictors, seeded with the best known networks."""
        best = ctx.rows[constrained_order(ctx.F, ctx.G)[: INNER_POPULATION // 2]]
        fill = ctx.encoding.latin_hypercube(INNER_POPULATION - len(best), ctx.rng)
        problem = RowProblem(ctx.encoding, ctx.F.shape[1], ctx.G.shape[1], scorer)
        algorithm = make_algorithm(
            ctx.spec.algorithm_name,
            ctx.F.shape[1],
            INNER_POPULATION,
            ctx.encoding,
            FixedSampling(np.concatenate([best, fill])),
            known=ctx.known,
            seed=int(ctx.rng.integers(2**31)),
            mating_rounds=10,
        )
        algorithm.setup(
            problem, termination=("n_gen", inner_generations(ctx.progress)), verbose=False
        )
        while algorithm.has_next():
            population = algorithm.ask()
            if population is None or len(population) == 0:
                break  # no unknown offspring left to make: the space is nearly exhausted
            algorithm.evaluator.eval(problem, population)
            algorithm.tell(infills=population)


def predictor_trust(scores: Mapping[str, Mapping[str, float | str]]) -> float:
    """Share of the batch chosen on the predictors, from their worst cross-validated Kendall tau:
    1 at `FULL_TRUST_TAU` or above, 0 at `NO_TRUST_TAU` or below, linear between; the rest of
    the batch comes from the evolutionary tactic (docs/benchmarks.md, "When the predictors rank
    poorly")."""
    taus = [float(s["kendall_tau"]) for s in scores.values() if "kendall_tau" in s]
    if not taus:
        return 1.0
    worst = round(min(taus), 6)  # no decision on the last bits of a tau
    return float(np.clip((worst - NO_TRUST_TAU) / (FULL_TRUST_TAU - NO_TRUST_TAU), 0.0, 1.0))


def choose_batch(
    pool_F: np.ndarray,
    pool_G: np.ndarray,
    known_F: np.ndarray,
    known_G: np.ndarray,
    scale: HypervolumeScale | None,
    n: int,
) -> np.ndarray:
    """Indices of n pool rows: greedy predicted hypervolume gain over the validated front, then
    the farthest from everything chosen (spread); one objective: best predicted values first."""
    order = constrained_order(pool_F, pool_G)
    if pool_F.shape[1] == 1 or scale is None:
        return order[:n]
    feasible = order[total_violation(pool_G[order]) <= 0]
    if len(feasible) < n:
        return order[:n]
    shortlist = feasible[: max(4 * n, 40)]
    front = known_F[pareto_indices(known_F, known_G)]
    points = scale.normalise(pool_F[shortlist])
    unit = HypervolumeScale(np.zeros(points.shape[1]), np.ones(points.shape[1]))
    chosen: list[int] = []
    current = scale.normalise(front)
    base = unit.hypervolume(current)
    for _ in range(n):
        gains = np.full(len(shortlist), -np.inf)
        for i in range(len(shortlist)):
            if i not in chosen:
                gains[i] = unit.hypervolume(np.vstack([current, points[i]])) - base
        gains = np.round(gains, GAIN_DECIMALS)  # a difference below this is no decision
        best = int(np.argmax(gains))  # ties: the earliest in the shortlist
        if gains[best] <= 0:
            best = _farthest(points, current, chosen)
        chosen.append(best)
        current = np.vstack([current, points[best]])
        base = unit.hypervolume(current)
    return shortlist[chosen]


def _farthest(points: np.ndarray, current: np.ndarray, chosen: list[int]) -> int:
    if len(current) == 0:
        distance = np.zeros(len(points))
    else:
        distance = np.min(np.linalg.norm(points[:, None, :] - current[None, :, :], axis=2), axis=1)
    distance[chosen] = -np.inf
    return int(np.argmax(distance))
