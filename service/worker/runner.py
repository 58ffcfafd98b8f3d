"""The worker: claim a job, run its search, store each validation as it finishes, finish.

A heartbeat thread keeps the claim alive on the database clock. If the worker dies, the reaper of
any other worker re-queues the job and the next claimant rebuilds the search from what is stored
(`history`), so no completed validation is lost or repeated. Validations run on the worker's
executor (`HWNAS_EXECUTOR`: local or Ray actors) through `flow.AsyncBatches`, with no global
barrier; jobs with device agents keep synchronous batches (the agents measure a batch at a time).
Validations go to the shared evaluation cache, so later jobs on the same supernet and dataset
start from them for free.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from service.catalog import supernets as supernet_catalog
from service.config import Settings
from service.db.engine import in_transaction
from service.db.models import JobStatus
from service.errors import LostLeaseError
from service.evaluation.executor import Executor
from service.evaluation.validation import exact_metrics, input_shape, validate_subnets_detailed
from service.jobs import queue
from service.jobs.evaluations import (
    Batch,
    MeasuredLatency,
    cached_metrics,
    store_batch,
    store_missing_iterations,
    stored_evaluations,
    warm_start_evaluations,
)
from service.search.engine import SearchEngine
from service.search.records import WARM_START, Evaluation
from service.supernets.protocol import Supernet
from service.supernets.space import Config
from service.worker.executors import executor_key, make_executor
from service.worker.flow import AsyncBatches
from service.worker.latency import (
    JobInterrupted,
    lut_values,
    measure_on_agents,
    with_lut_predictions,
    with_lut_values,
)
from service.worker.plan import Heartbeat, JobPlan, load_plan

log = logging.getLogger("hwnas.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    """Runs one claimed job to a final state (or gives it back when the worker is stopping)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        worker_id: str,
        stop: threading.Event,
    ) -> None:
        self.factory, self.settings, self.worker_id, self.stop = factory, settings, worker_id, stop
        self.executors: dict[str, Executor] = {}  # one per supernet + host devices, kept

    def close(self) -> None:
        for executor in self.executors.values():
            executor.close()
        self.executors.clear()

    def executor(self, plan: JobPlan, supernet: Supernet) -> Executor:
        key = executor_key(plan)
        if key not in self.executors:
            self.executors[key] = make_executor(self.settings, plan, supernet)
        return self.executors[key]

    def run(self, job_id: int) -> str:
        """Run the job; returns its final status, or 'released' / 'lost'."""
        try:
            plan = in_transaction(self.factory, lambda session: load_plan(session, job_id))
            with Heartbeat(
                self.factory, job_id, self.worker_id, self.settings.heartbeat_interval_s
            ) as heartbeat:
                status = self._search(plan, heartbeat)
        except LostLeaseError:
            log.warning("job %s: lease lost; another worker owns it now", job_id)
            return "lost"
        except Exception as exc:
            log.exception("job %s failed", job_id)
            detail = "".join(traceback.format_exception_only(exc)).strip()
            return self._finish(job_id, JobStatus.FAILED, detail[-2000:])
        if status == "released":
            in_transaction(
                self.factory, lambda session: queue.release_job(session, job_id, self.worker_id)
            )
            return status
        return self._finish(job_id, status)

    def _finish(self, job_id: int, status: JobStatus, error: str | None = None) -> str:
        try:
            in_transaction(
                self.factory,
                lambda session: queue.finish_job(session, job_id, self.worker_id, status, error),
            )
        except LostLeaseError:
            return "lost"
        return str(status)

    def _search(self, plan: JobPlan, heartbeat: Heartbeat) -> JobStatus | Literal["released"]:
        supernet = supernet_catalog.loaded_supernet(plan.family, plan.checkpoint, plan.data_options)
        engine, stored_hashes = self._resume(plan, supernet)
        if plan.latency.agents:
            return self._search_with_agents(plan, supernet, engine, stored_hashes, heartbeat)
        return AsyncBatches(
            self.factory,
            self.worker_id,
            plan,
            supernet,
            engine,
            self.executor(plan, supernet),
            heartbeat,
            self.stop,
            return_fraction=self.settings.batch_return_fraction,
            wait_s=self.settings.heartbeat_interval_s,
            warm_start=[e for e in engine.evaluations if e.config_hash not in stored_hashes],
        ).run()

    def _search_with_agents(
        self,
        plan: JobPlan,
        supernet: Supernet,
        engine: SearchEngine,
        stored_hashes: set[str],
        heartbeat: Heartbeat,
    ) -> JobStatus | Literal["released"]:
        """Synchronous batches: each batch's agent measurements are awaited together."""
        while not engine.done:
            if self.stop.is_set():
                return "released"
            lease = heartbeat.beat()
            if lease == "lost":
                raise LostLeaseError(f"job {plan.job_id} is no longer held")
            if lease == "cancel_requested":
                return JobStatus.CANCELLED
            configs = engine.ask()
            if not configs:
                break
            try:
                metrics, validated, latencies = self._measure(plan, supernet, configs, heartbeat)
            except JobInterrupted as interrupted:
                return interrupted.status
            record = engine.tell(configs, metrics)
            new = [e for e in engine.evaluations if e.config_hash not in stored_hashes]
            batch = Batch(
                evaluations=new,
                validated_hashes=validated,
                record=record,
                front=engine.front(),
                validations_used=sum(1 for e in engine.evaluations if e.origin != WARM_START),
                latencies=latencies,
                predicted_metrics=plan.latency.lut_metrics,
            )
            store = partial(
                store_batch,
                job_id=plan.job_id,
                worker_id=self.worker_id,
                key=plan.key,
                device_ids=plan.device_ids,
                batch=batch,
            )
            in_transaction(self.factory, store)
            stored_hashes.update(e.config_hash for e in new)
            log.info(
                "job %s: iteration %d, %d validations, hv %.4f",
                plan.job_id,
                record.iteration,
                record.validations_used,
                record.hypervolume,
            )
        return JobStatus.SUCCEEDED

    def _resume(self, plan: JobPlan, supernet: Supernet) -> tuple[SearchEngine, set[str]]:
        """The engine rebuilt from what the job stored, warm-started from the shared cache; with
        the config hashes already stored."""

        def read(session: Session) -> tuple[list[Evaluation], list[Evaluation]]:
            stored = stored_evaluations(session, plan.job_id)
            exclude = {e.config_hash for e in stored if e.origin != WARM_START}
            warm = warm_start_evaluations(session, plan.key, plan.validated_metrics, exclude)
            return stored, warm

        stored, warm_start = in_transaction(self.factory, read)
        history = [e for e in stored if e.origin != WARM_START]
        warm_start = with_lut_values(plan.latency, supernet, warm_start)
        engine = SearchEngine(
            plan.space,
            plan.spec,
            exact_metrics=lambda config: exact_metrics(supernet, config),
            history=history,
            warm_start=warm_start,
        )
        recovered = in_transaction(
            self.factory,
            lambda session: store_missing_iterations(
                session, plan.job_id, self.worker_id, engine.iterations, engine.validations_used
            ),
        )
        log.info(
            "job %s: %d validations stored, %d warm-start points, %d iteration rows recovered",
            plan.job_id,
            len(history),
            len(warm_start),
            recovered,
        )
        return engine, {e.config_hash for e in stored}

    def _measure(
        self, plan: JobPlan, supernet: Supernet, configs: Sequence[Config], heartbeat: Heartbeat
    ) -> tuple[list[dict[str, float]], set[str], list[MeasuredLatency]]:
        """Metrics per config: cache hits first, the rest validated for real (on this host and
        by device agents); LUT latencies estimated for all."""
        hashes = [plan.space.config_hash(c) for c in configs]
        hits = in_transaction(
            self.factory,
            lambda session: cached_metrics(session, plan.key, plan.validated_metrics, hashes),
        )
        misses = [i for i, h in enumerate(hashes) if h not in hits]
        metrics: list[dict[str, float]] = [dict(hits[h][1]) if h in hits else {} for h in hashes]
        latencies: list[MeasuredLatency] = []
        if not plan.needs_validation:
            for index in misses:  # no accuracy, no host latency: only exact metrics here
                metrics[index] = exact_metrics(supernet, configs[index])
        else:
            self._validate(plan, supernet, configs, misses, metrics, latencies)
        if plan.latency.agents and misses:
            to_measure = {hashes[i]: supernet.canonical(configs[i]) for i in misses}
            agent_metrics, agent_latencies = measure_on_agents(
                self.factory,
                plan.latency,
                plan.job_id,
                plan.key.supernet_id,
                {h: input_shape(supernet, c) for h, c in to_measure.items()},
                to_measure,
                lambda: "released" if self.stop.is_set() else heartbeat.state,
                self.settings.poll_interval_s,
                self.settings.agent_wait_timeout_s,
            )
            for index in misses:
                metrics[index].update(agent_metrics[hashes[index]])
            latencies.extend(agent_latencies)
        for row, estimated in zip(
            metrics, lut_values(plan.latency, supernet, configs), strict=True
        ):
            row.update(estimated)
        by_hash = dict(zip(hashes, configs, strict=True))
        latencies = with_lut_predictions(plan.latency, supernet, by_hash, latencies)
        return metrics, {hashes[i] for i in misses}, latencies

    def _validate(
        self,
        plan: JobPlan,
        supernet: Supernet,
        configs: Sequence[Config],
        misses: list[int],
        metrics: list[dict[str, float]],
        latencies: list[MeasuredLatency],
    ) -> None:
        """Accuracy, exact metrics and host latencies of the configs at `misses`, in place."""
        validations = validate_subnets_detailed(
            supernet, [configs[i] for i in misses], plan.devices
        )
        for index, validation in zip(misses, validations, strict=True):
            metrics[index] = validation.metrics
            for device_name, stats in validation.latency.items():
                profile = next(d for d in plan.devices if d.name == device_name)
                latencies.append(
                    MeasuredLatency(
                        config_hash=plan.space.config_hash(configs[index]),
                        device_name=device_name,
                        median_ms=stats.median_ms,
                        stats=stats.to_json(),
                        runtime=profile.descriptor(),
                    )
                )


def run_worker(
    factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    worker_id: str | None = None,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """Reap, claim, run, repeat until `stop` is set."""
    worker_id = worker_id or new_worker_id()
    runner = JobRunner(factory, settings, worker_id, stop)
    log.info("worker %s started", worker_id)
    while not stop.is_set():
        try:
            reaped_jobs = in_transaction(
                factory,
                lambda session: queue.reap_stale_jobs(
                    session, settings.heartbeat_grace_s, settings.max_attempts
                ),
            )
            for reaped in reaped_jobs:
                log.warning("reaped job %s from worker %s", reaped.job_id, reaped.worker_id)
            job_id = in_transaction(
                factory, lambda session: queue.claim_next_job(session, worker_id)
            )
        except Exception:
            log.exception("worker %s could not reach the database; retrying", worker_id)
            stop.wait(settings.poll_interval_s)
            continue
        if job_id is None:
            if on_idle is not None:
                on_idle()
            stop.wait(settings.poll_interval_s)
            continue
        log.info("worker %s claimed job %s", worker_id, job_id)
        started = time.monotonic()
        status = runner.run(job_id)
        log.info("job %s: %s after %.1f s", job_id, status, time.monotonic() - started)
    runner.close()
    log.info("worker %s stopped", worker_id)


def start_worker_thread(
    factory: sessionmaker[Session], settings: Settings, stop: threading.Event
) -> threading.Thread:
    """The embedded worker of `hwnas serve`, as a daemon thread."""
    thread = threading.Thread(
        target=run_worker, args=(factory, settings, stop), name="hwnas-worker", daemon=True
    )
    thread.start()
    return thread
