"""One job's validations through an executor, with no global barrier.

Each validation is stored the moment it finishes (candidate, metrics, cache rows, latency), so a
worker killed mid-batch loses none and the next one, resuming from what is stored, redoes none.
The engine is told once `batch_return_fraction` of what is outstanding is back, and proposes
more while the rest is still running (they stay pending, so nothing is proposed twice; LINAS
proposes as many as came back, so one batch stays outstanding); a told round stores its
iteration, predictor fits and front. With fraction 1.0 (or the local executor,
which returns a batch at once) the rounds are the synchronous batches of before, told in the
order they were asked.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import in_transaction
from service.db.models import JobStatus
from service.errors import LostLeaseError
from service.evaluation.executor import Executor, Finished
from service.evaluation.validation import exact_metrics
from service.jobs.evaluations import (
    MeasuredLatency,
    Validated,
    cached_metrics,
    store_round,
    store_validations,
)
from service.search.engine import SearchEngine
from service.search.records import Evaluation
from service.supernets.protocol import Supernet
from service.supernets.space import Config
from service.worker.latency import lut_values, with_lut_predictions
from service.worker.plan import Heartbeat, JobPlan

log = logging.getLogger("hwnas.worker")
Outcome = JobStatus | Literal["released"]


@dataclass
class _Back:
    """A stored validation waiting to be told, with its place in the order it was asked."""

    order: int
    config: Config
    metrics: dict[str, float]


@dataclass
class AsyncBatches:
    """Ask → submit → store each as it finishes → tell when enough is back → ask again."""

    factory: sessionmaker[Session]
    worker_id: str
    plan: JobPlan
    supernet: Supernet
    engine: SearchEngine
    executor: Executor
    heartbeat: Heartbeat
    stop: threading.Event
    return_fraction: float
    wait_s: float
    # warm-start points not stored for this job yet: stored with its first validations
    warm_start: list[Evaluation] = field(default_factory=list)
    _in_flight: dict[str, Config] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)
    _back: list[_Back] = field(default_factory=list)
    _outstanding: int = 0  # in flight or waiting to be told, right after the last proposal
    _used: int = 0

    def run(self) -> Outcome:
        self._used = self.engine.validations_used
        try:
            return self._loop()
        finally:
            for key in self._in_flight:
                self.executor.cancel(key)

    def _loop(self) -> Outcome:
        while True:
            if self.stop.is_set():
                return "released"
            if self.heartbeat.state == "lost":
                raise LostLeaseError(f"job {self.plan.job_id} is no longer held")
            if self.heartbeat.state == "cancel_requested":
                return JobStatus.CANCELLED
            if self._enough_back():
                self._tell()
                if self.heartbeat.beat() == "cancel_requested":
                    return JobStatus.CANCELLED
                self._propose()
                if not self._in_flight and not self._back:
                    return JobStatus.SUCCEEDED
            self._store(self.executor.wait_any(self.wait_s))

    def _enough_back(self) -> bool:
        needed = max(1, math.ceil(self.return_fraction * self._outstanding))
        return not self._in_flight or len(self._back) >= needed

    def _tell(self) -> None:
        if not self._back:
            return
        back = sorted(self._back, key=lambda b: b.order)
        self._back = []
        record = self.engine.tell([b.config for b in back], [b.metrics for b in back])
        front, used = self.engine.front(), self._used
        in_transaction(
            self.factory,
            lambda session: store_round(
                session, self.plan.job_id, self.worker_id, record, front, used
            ),
        )
        log.info(
            "job %s: iteration %d, %d validations, hv %.4f, %d in flight",
            self.plan.job_id,
            record.iteration,
            record.validations_used,
            record.hypervolume,
            len(self._in_flight),
        )

    def _propose(self) -> None:
        """Ask for more; cache hits (and exact-only metrics) are back at once, the rest go to
        the executor."""
        configs = self.engine.ask_more()
        if not configs:
            return
        space, plan = self.plan.space, self.plan
        hashes = [space.config_hash(c) for c in configs]
        for config_hash in hashes:
            self._order[config_hash] = len(self._order)
        hits = in_transaction(
            self.factory,
            lambda session: cached_metrics(session, plan.key, plan.validated_metrics, hashes),
        )
        ready: list[tuple[Config, dict[str, float], bool]] = []
        for config_hash, config in zip(hashes, configs, strict=True):
            if config_hash in hits:
                ready.append((config, dict(hits[config_hash][1]), False))
            elif not plan.needs_validation:  # exact metrics only: computed here
                ready.append((config, exact_metrics(self.supernet, config), True))
            else:
                self._in_flight[config_hash] = config
                self.executor.submit(config_hash, config)
        if ready:
            self._keep(ready, [])
        self._outstanding = len(self._in_flight) + len(self._back)  # LINAS keeps it to a batch

    def _store(self, finished: list[Finished]) -> None:
        ready: list[tuple[Config, dict[str, float], bool]] = []
        latencies: list[MeasuredLatency] = []
        # what one wait returns is stored in the order it was asked: the local executor returns
        # a whole batch, so its stored order (what a resumed engine reads) is the asked order
        for done in sorted(finished, key=lambda d: self._order.get(d.submitted.key, 0)):
            config = self._in_flight.pop(done.submitted.key, None)
            if config is None:
                continue
            if done.validation is None:
                log.warning(
                    "job %s: %s not validated: %s", self.plan.job_id, done.submitted.key, done.error
                )
                self.engine.release([config])
                continue
            ready.append((config, dict(done.validation.metrics), True))
            for device_name, stats in done.validation.latency.items():
                profile = next(d for d in self.plan.devices if d.name == device_name)
                latencies.append(
                    MeasuredLatency(
                        config_hash=done.submitted.key,
                        device_name=device_name,
                        median_ms=stats.median_ms,
                        stats=stats.to_json(),
                        runtime=profile.descriptor(),
                    )
                )
        if ready:
            self._keep(ready, latencies)

    def _keep(
        self, ready: list[tuple[Config, dict[str, float], bool]], latencies: list[MeasuredLatency]
    ) -> None:
        """Store finished networks now (LUT latencies added), then queue them to be told."""
        plan = self.plan
        configs = [config for config, _, _ in ready]
        for (_, metrics, _), estimated in zip(
            ready, lut_values(plan.latency, self.supernet, configs), strict=True
        ):
            metrics.update(estimated)
        evaluations = [self.engine.preview(config, metrics) for config, metrics, _ in ready]
        pairs = zip(evaluations, ready, strict=True)
        validated = {e.config_hash for e, (_, _, measured) in pairs if measured}
        self._used += sum(e.counts_against_budget for e in evaluations)
        by_hash = {e.config_hash: e.config for e in evaluations}
        validations = Validated(
            self.warm_start + evaluations,
            validated,
            self._used,
            with_lut_predictions(plan.latency, self.supernet, by_hash, latencies),
            plan.latency.lut_metrics,
        )
        in_transaction(
            self.factory,
            lambda session: store_validations(
                session, plan.job_id, self.worker_id, plan.key, plan.device_ids, validations
            ),
        )
        self.warm_start = []
        self._back.extend(
            _Back(self._order[e.config_hash], config, metrics)
            for e, (config, metrics, _) in zip(evaluations, ready, strict=True)
        )
