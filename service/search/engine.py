"""The search engine: ask for networks to validate, tell their measured metrics, read the front.

The engine owns the archive of every known network (stored history, free warm-start results and
this run's validations), keyed by canonical index row (equivalent to the canonical hash), so no
network is ever proposed twice. Each iteration draws its randomness from (seed, iteration), which
makes seeded runs reproducible and lets a resumed job continue where the stored one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from service.search.algorithms import check_algorithm_available
from service.search.encoding import SpaceEncoding, row_key
from service.search.exact import ExactMetrics, ExactMetricsFn
from service.search.linas import LinasTactic
from service.search.pareto import (
    HypervolumeScale,
    columns_of,
    constraint_matrix,
    objective_matrix,
    pareto_indices,
    total_violation,
)
from service.search.records import WARM_START, Evaluation, FrontResult, IterationRecord
from service.search.spec import SearchSpec
from service.search.surrogate import ExactFeatures, MetricModels
from service.search.tactics import EvolutionaryTactic, RandomTactic, SearchContext, Tactic
from service.supernets.space import Config, SearchSpace

CLOSEST_POINTS = 5
Validate = Callable[[list[Config]], list[dict[str, float]]]
Progress = Callable[[IterationRecord], None]


class SearchEngine:
    """Ask/tell search over `space` for `spec`; see docs/library.md."""

    def __init__(
        self,
        space: SearchSpace,
        spec: SearchSpec,
        exact_metrics: ExactMetricsFn | None = None,
        history: Sequence[Evaluation] = (),
        warm_start: Sequence[Evaluation] = (),
        canonical: Callable[[Mapping[str, object]], Config] | None = None,
    ) -> None:
        """`canonical`: the family's own (e.g. an OFA supernet's, which also reads OFA-form
        configs), used on every config `tell` is given; the space's by default."""
        self.space = space
        self._canonical = canonical or space.canonical
        self.spec = spec
        self.encoding = SpaceEncoding(space)
        check_algorithm_available(spec.algorithm_name)
        self.exact = ExactMetrics(self.encoding, exact_metrics)
        self._evaluations: list[Evaluation] = []
        self._rows: list[np.ndarray] = []
        self._known: set[bytes] = set()
        for stored in history:
            self._restore(stored, stored.origin, stored.iteration)
        for free in warm_start:
            self._restore(free, WARM_START, 0)
        stored_iterations = sorted({e.iteration for e in history})
        self._iteration = stored_iterations[-1] + 1 if stored_iterations else 0
        self._scale: HypervolumeScale | None = None
        self._tactic = self._make_tactic()
        self._pending: dict[bytes, str] = {}  # proposed, not told yet (in flight): origin
        self._pending_scores: dict[str, dict[str, float | str]] = {}
        self._ask_seconds = self._ask_cpu_seconds = 0.0
        self._exhausted = False
        self._iterations = [self._replayed_record(i) for i in stored_iterations]

    # -- public interface ------------------------------------------------------------------------

    @property
    def evaluations(self) -> list[Evaluation]:
        return list(self._evaluations)

    @property
    def iterations(self) -> list[IterationRecord]:
        return list(self._iterations)

    @property
    def validations_used(self) -> int:
        return sum(e.counts_against_budget for e in self._evaluations)

    @property
    def done(self) -> bool:
        return self._exhausted or self.validations_used >= self.spec.budget

    @property
    def scale(self) -> HypervolumeScale | None:
        """The fixed hypervolume normalisation (None until iteration 0 has been told)."""
        return self._fixed_scale()

    @property
    def iteration(self) -> int:
        """The iteration the next `tell` records (what a result stored before it belongs to)."""
        return self._iteration

    @property
    def in_flight(self) -> int:
        """Networks proposed and not told yet."""
        return len(self._pending)

    def ask(self) -> list[Config]:
        """The next batch of canonical configs never validated before; [] when done. While a
        batch is pending (asked, not told), the same batch again."""
        if self._pending:
            return [self._config_of_key(k) for k in self._pending]
        if self.done:
            return []
        keys = self._propose()
        if not keys:
            self._exhausted = True
        return [self._config_of_key(k) for k in keys]

    def ask_more(self) -> list[Config]:
        """Asynchronous batches: new networks while others are still in flight, never one of
        them; [] when the budget is spoken for or the tactic waits for in-flight results."""
        if self.done or self.validations_used + len(self._pending) >= self.spec.budget:
            return []
        keys = self._propose()
        if not keys and not self._pending:
            self._exhausted = True
        return [self._config_of_key(k) for k in keys]

    def release(self, configs: Sequence[Mapping[str, object]]) -> None:
        """Forget in-flight networks that will never be told (their validation was lost)."""
        for config in configs:
            self._pending.pop(row_key(self.encoding.row_of(self._canonical(config))), None)

    def preview(self, config: Mapping[str, object], measured: Mapping[str, float]) -> Evaluation:
        """The evaluation `tell` will record for this in-flight network (to store it first)."""
        canonical = self._canonical(config)
        key = row_key(self.encoding.row_of(canonical))
        origin = self._pending.get(key, "external")
        return Evaluation(
            canonical,
            self.space.config_hash(canonical),
            self._merge(canonical, measured),
            self._iteration,
            origin,
        )

    def tell(
        self, configs: Sequence[Mapping[str, object]], metrics: Sequence[Mapping[str, float]]
    ) -> IterationRecord:
        """Record measured metrics per config (exact metrics merged in); one iteration record."""
        started, started_cpu = time.perf_counter(), time.process_time()
        if len(configs) != len(metrics):
            raise ValueError(f"got {len(configs)} configs but {len(metrics)} metric dicts")
        told: set[bytes] = set()
        for config, measured in zip(configs, metrics, strict=True):
            canonical = self._canonical(config)
            key = row_key(self.encoding.row_of(canonical))
            if key in self._known or key in told:
                raise ValueError(
                    f"network {self.space.config_hash(canonical)} was already validated; "
                    "tell each network once"
                )
            told.add(key)
            origin = self._pending.pop(key, "external")
            self._add(canonical, self._merge(canonical, measured), self._iteration, origin)
        seconds = self._ask_seconds + time.perf_counter() - started
        cpu_seconds = self._ask_cpu_seconds + time.process_time() - started_cpu
        self._ask_seconds = self._ask_cpu_seconds = 0.0
        record = self._record(self._iteration, self._pending_scores, seconds, len(told))
        record = replace(record, cpu_seconds=cpu_seconds)
        self._iterations.append(record)
        self._iteration += 1
        return record

    def front(self) -> FrontResult:
        """Validated feasible non-dominated points, or feasible=False with the closest points."""
        F, G = self._matrices(self._evaluations)
        front = pareto_indices(F, G)
        scale = self._fixed_scale()
        hv = scale.hypervolume(F[front]) if scale is not None else 0.0
        if len(front):
            return FrontResult([self._evaluations[i] for i in front], True, [], hv)
        violation = total_violation(G)
        closest = np.argsort(violation, kind="stable")[:CLOSEST_POINTS]
        return FrontResult([], False, [self._evaluations[i] for i in closest], 0.0)

    def hypervolume_after(self, n_validations: int) -> float:
        """HV of the feasible front of the warm start plus the first n validations (benchmarks)."""
        scale = self._fixed_scale()
        if scale is None:
            return 0.0
        chosen, used = [], 0
        for e in self._evaluations:
            if e.counts_against_budget:
                if used >= n_validations:
                    continue
                used += 1
            chosen.append(e)
        F, G = self._matrices(chosen)
        return scale.hypervolume(F[pareto_indices(F, G)])

    # -- internals -------------------------------------------------------------------------------

    def _propose(self) -> list[bytes]:
        """Ask the tactic for new networks (none known or in flight); they become pending."""
        started, started_cpu = time.perf_counter(), time.process_time()
        remaining = self.spec.budget - self.validations_used - len(self._pending)
        proposal = self._tactic.propose(self._context(remaining))
        keys: list[bytes] = []
        origins: list[str] = []
        rows = self.encoding.canonical_rows(proposal.rows.reshape(-1, len(self.space.genes)))
        for i, row in enumerate(rows):
            key = row_key(row)
            if key not in self._known and key not in self._pending and key not in keys:
                keys.append(key)
                origins.append(proposal.origin_of(i))
        keys, origins = keys[:remaining], origins[:remaining]
        self._pending.update(zip(keys, origins, strict=True))
        if keys:
            self._pending_scores = proposal.predictor_scores
        self._ask_seconds += time.perf_counter() - started
        self._ask_cpu_seconds += time.process_time() - started_cpu
        return keys

    def _make_tactic(self) -> Tactic:
        if self.spec.tactic == "random":
            return RandomTactic()
        if self.spec.tactic == "evolutionary":
            return EvolutionaryTactic()
        predicted = [m for m in self.spec.metrics if m not in self.exact.names]
        models = MetricModels(
            self.encoding,
            predicted,
            self.spec.seed,
            candidates=self.spec.predictors,
            exact_features=(
                ExactFeatures(self.exact) if self.spec.exact_features and self.exact.names else None
            ),
        )
        return LinasTactic(models)

    def _restore(self, stored: Evaluation, origin: str, iteration: int) -> None:
        canonical = self.space.canonical(stored.config)
        expected = self.space.config_hash(canonical)
        if stored.config_hash != expected:
            raise ValueError(
                f"stored evaluation hash {stored.config_hash} does not match its config "
                f"(hash {expected} in this space); was it stored for another search space?"
            )
        if row_key(self.encoding.row_of(canonical)) in self._known:
            return
        self._add(canonical, self._merge(canonical, stored.metrics), iteration, origin)

    def _merge(self, config: Config, measured: Mapping[str, float]) -> dict[str, float]:
        metrics = {str(k): float(v) for k, v in measured.items()}
        metrics.update(self.exact.of_config(config))
        missing = [m for m in self.spec.metrics if m not in metrics]
        if missing:
            raise ValueError(
                f"metrics for network {self.space.config_hash(config)} lack {missing} "
                f"(got {sorted(metrics)}); the validation must return every objective and "
                "constraint metric that exact_metrics does not compute"
            )
        return metrics

    def _add(self, config: Config, metrics: dict[str, float], iteration: int, origin: str) -> None:
        row = self.encoding.row_of(config)
        self._evaluations.append(
            Evaluation(config, self.space.config_hash(config), metrics, iteration, origin)
        )
        self._rows.append(row)
        self._known.add(row_key(row))

    def _matrices(self, evaluations: Sequence[Evaluation]) -> tuple[np.ndarray, np.ndarray]:
        columns = columns_of(evaluations, self.spec.metrics)
        return (
            objective_matrix(self.spec, columns),
            constraint_matrix(self.spec, columns, len(evaluations)),
        )

    def _fixed_scale(self) -> HypervolumeScale | None:
        """From `spec.hv_bounds`, else iteration 0's range; fixed once iteration 0 is told."""
        if self._scale is not None:
            return self._scale
        first = [e for e in self._evaluations if e.iteration == 0]
        if not first:
            return None
        F, _ = self._matrices(first)
        scale = HypervolumeScale.from_spec(self.spec, F)
        if self._iteration > 0:
            self._scale = scale
        return scale

    def _context(self, remaining: int) -> SearchContext:
        F, G = self._matrices(self._evaluations)
        rows = np.stack(self._rows) if self._rows else np.zeros((0, len(self.space.genes)), int)
        return SearchContext(
            spec=self.spec,
            encoding=self.encoding,
            exact=self.exact,
            evaluations=list(self._evaluations),
            rows=rows,
            F=F,
            G=G,
            known=self._known | set(self._pending),
            remaining=remaining,
            iteration=self._iteration,
            scale=self._fixed_scale(),
            rng=np.random.default_rng([self.spec.seed, self._iteration]),
            in_flight=len(self._pending),
        )

    def _config_of_key(self, key: bytes) -> Config:
        return self.encoding.config_of(np.frombuffer(key, dtype=np.int64))

    def _record(
        self, iteration: int, scores: dict[str, dict[str, float | str]], seconds: float, batch: int
    ) -> IterationRecord:
        upto = [e for e in self._evaluations if e.iteration <= iteration]
        F, G = self._matrices(upto)
        front = pareto_indices(F, G)
        scale = self._fixed_scale()
        return IterationRecord(
            iteration=iteration,
            hypervolume=scale.hypervolume(F[front]) if scale is not None else 0.0,
            front_size=len(front),
            validations_used=sum(e.counts_against_budget for e in upto),
            predictor_scores=scores,
            seconds=seconds,
            batch_size=batch,
        )

    def _replayed_record(self, iteration: int) -> IterationRecord:
        batch = sum(e.iteration == iteration and e.counts_against_budget for e in self._evaluations)
        return self._record(iteration, {}, 0.0, batch)


def run_search(
    space: SearchSpace,
    spec: SearchSpec,
    validate: Validate,
    exact_metrics: ExactMetricsFn | None = None,
    progress: Progress | None = None,
    history: Sequence[Evaluation] = (),
    warm_start: Sequence[Evaluation] = (),
) -> SearchEngine:
    """Ask, validate, tell until the budget is spent; `progress(record)` after each iteration."""
    engine = SearchEngine(space, spec, exact_metrics, history=history, warm_start=warm_start)
    while batch := engine.ask():
        metrics = validate(batch)
        if len(metrics) != len(batch):
            raise ValueError(f"validate returned {len(metrics)} results for {len(batch)} configs")
        record = engine.tell(batch, metrics)
        if progress is not None:
            progress(record)
    return engine
