"""What workers read and write per job: stored evaluations, the shared cache, batch writes.

Never commits. The worker stores validations as they finish (`store_validations`: candidates,
metrics, cache rows, latency, progress; one transaction each), and each ask/tell round's summary
once told (`store_round`: iteration, predictor fits, front roles); `store_batch` is both at once.
A crash loses at most the validations still running, never a finished one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.db.dialect import is_postgres
from service.db.models import (
    Candidate,
    EvaluationCacheEntry,
    JobIteration,
    LatencyMeasurement,
    MetricValue,
    PredictorFit,
)
from service.jobs import queue
from service.search.metrics import MetricName
from service.search.records import WARM_START, Evaluation, FrontResult, IterationRecord


@dataclass(frozen=True)
class CacheKey:
    supernet_id: int
    dataset: str


@dataclass(frozen=True)
class MeasuredLatency:
    """One latency measurement of one config on one device, with its stats and runtime."""

    config_hash: str
    device_name: str
    median_ms: float
    stats: dict[str, Any]
    runtime: dict[str, Any]
    source: str = "measured"  # "agent" when a device agent measured it
    predicted_ms: float | None = None  # the device's LUT estimate, when it has a table
    predicted_by: str | None = None  # e.g. "lut-calibrated:3" (method and table id)


@dataclass(frozen=True)
class Validated:
    """Validations finished since the last store, ready to store at once."""

    evaluations: Sequence[Evaluation]
    validated_hashes: Collection[str]  # measured here (the rest came from the cache)
    validations_used: int
    latencies: Sequence[MeasuredLatency] = field(default_factory=tuple)
    predicted_metrics: Collection[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Batch:
    """Everything one ask/tell round produced, ready to store at once."""

    evaluations: Sequence[Evaluation]
    validated_hashes: Collection[str]
    record: IterationRecord
    front: FrontResult
    validations_used: int
    latencies: Sequence[MeasuredLatency] = field(default_factory=tuple)
    # Metrics estimated rather than measured (latency from a device's LUT): stored as
    # `predicted` and kept out of the shared cache, which holds validations only.
    predicted_metrics: Collection[str] = field(default_factory=tuple)


def stored_evaluations(session: Session, job_id: int) -> list[Evaluation]:
    """The job's stored candidates as evaluations, oldest first (warm-start ones included)."""
    candidates = list(
        session.scalars(select(Candidate).where(Candidate.job_id == job_id).order_by(Candidate.id))
    )
    values: dict[int, dict[str, float]] = defaultdict(dict)
    rows = session.execute(
        select(MetricValue.candidate_id, MetricValue.metric, MetricValue.value)
        .join(Candidate, Candidate.id == MetricValue.candidate_id)
        .where(Candidate.job_id == job_id)
    )
    for candidate_id, metric, value in rows:
        values[candidate_id][metric] = value
    return [
        Evaluation(c.config, c.config_hash, values[c.id], c.iteration, c.origin) for c in candidates
    ]


def cached_metrics(
    session: Session,
    key: CacheKey,
    metrics: Collection[str],
    config_hashes: Collection[str] | None = None,
) -> dict[str, tuple[dict[str, Any], dict[str, float]]]:
    """Cached (config, metrics) by hash, for configs whose every metric in `metrics` is cached."""
    query = select(
        EvaluationCacheEntry.config_hash,
        EvaluationCacheEntry.config,
        EvaluationCacheEntry.metric,
        EvaluationCacheEntry.value,
    ).where(
        EvaluationCacheEntry.supernet_id == key.supernet_id,
        EvaluationCacheEntry.dataset == key.dataset,
    )
    if config_hashes is not None:
        if not config_hashes:
            return {}
        query = query.where(EvaluationCacheEntry.config_hash.in_(list(config_hashes)))
    found: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
    for config_hash, config, metric, value in session.execute(query):
        found.setdefault(config_hash, (config, {}))[1][metric] = value
    return {h: entry for h, entry in found.items() if set(metrics) <= set(entry[1])}


def warm_start_evaluations(
    session: Session, key: CacheKey, metrics: Collection[str], exclude: Collection[str]
) -> list[Evaluation]:
    """Cached validations usable by a new job: every needed metric known, not in `exclude`."""
    cached = cached_metrics(session, key, metrics)
    return [
        Evaluation(config, config_hash, values, 0, WARM_START)
        for config_hash, (config, values) in sorted(cached.items())
        if config_hash not in exclude
    ]


def store_batch(
    session: Session,
    job_id: int,
    worker_id: str,
    key: CacheKey,
    device_ids: Mapping[str, int],
    batch: Batch,
) -> None:
    """Store one round; raises `LostLeaseError` (nothing written) if the job is no longer ours."""
    validated = Validated(
        batch.evaluations,
        batch.validated_hashes,
        batch.validations_used,
        batch.latencies,
        batch.predicted_metrics,
    )
    store_validations(session, job_id, worker_id, key, device_ids, validated)
    store_round(session, job_id, worker_id, batch.record, batch.front, batch.validations_used)


def store_validations(
    session: Session,
    job_id: int,
    worker_id: str,
    key: CacheKey,
    device_ids: Mapping[str, int],
    validated: Validated,
) -> None:
    """Store finished validations before the engine is told; `LostLeaseError` if not ours."""
    queue.record_progress(session, job_id, worker_id, validated.validations_used)
    _store_candidates(session, job_id, key, device_ids, validated)
    _store_latencies(session, key, device_ids, validated.latencies)
    session.flush()


def store_round(
    session: Session,
    job_id: int,
    worker_id: str,
    record: IterationRecord,
    front: FrontResult,
    validations_used: int,
) -> None:
    """Store a told round: its iteration, predictor fits and the front; `LostLeaseError`."""
    queue.record_progress(session, job_id, worker_id, validations_used)
    _store_iteration(session, job_id, record)
    _mark_front(session, job_id, front)
    session.flush()


def _store_candidates(
    session: Session,
    job_id: int,
    key: CacheKey,
    device_ids: Mapping[str, int],
    batch: Validated,
) -> None:
    """The batch's new candidates with their metrics; validated ones also go to the cache."""
    for evaluation in batch.evaluations:
        candidate = Candidate(
            job_id=job_id,
            config=dict(evaluation.config),
            config_hash=evaluation.config_hash,
            iteration=evaluation.iteration,
            origin=evaluation.origin,
        )
        session.add(candidate)
        session.flush()
        session.add_all(
            MetricValue(
                candidate_id=candidate.id,
                metric=metric,
                device_id=_device_id(device_ids, metric),
                value=value,
                source="predicted" if metric in batch.predicted_metrics else "measured",
            )
            for metric, value in evaluation.metrics.items()
        )
        if evaluation.config_hash in batch.validated_hashes:
            _cache(session, key, job_id, device_ids, evaluation, batch.predicted_metrics)


def _store_latencies(
    session: Session,
    key: CacheKey,
    device_ids: Mapping[str, int],
    latencies: Sequence[MeasuredLatency],
) -> None:
    for latency in latencies:
        session.add(
            LatencyMeasurement(
                device_id=device_ids[latency.device_name],
                supernet_id=key.supernet_id,
                config_hash=latency.config_hash,
                mean_ms=latency.stats.get("mean_ms", latency.median_ms),
                stats=latency.stats,
                runtime=latency.runtime,
                source=latency.source,
                predicted_ms=latency.predicted_ms,
                predicted_by=latency.predicted_by,
            )
        )


def store_missing_iterations(
    session: Session,
    job_id: int,
    worker_id: str,
    records: Sequence[IterationRecord],
    validations_used: int,
) -> int:
    """Rows for the iterations whose validations were stored but whose round was not (a worker
    killed between the two): `records` are the resumed engine's replay of the stored candidates
    (no predictor fits, 0 s), so every iteration with candidates has its row. Rows added;
    `LostLeaseError` (nothing written) unless `worker_id` still holds the job."""
    queue.record_progress(session, job_id, worker_id, validations_used)
    stored = set(
        session.scalars(select(JobIteration.iteration).where(JobIteration.job_id == job_id))
    )
    missing = [record for record in records if record.iteration not in stored]
    for record in missing:
        _store_iteration(session, job_id, record)
    session.flush()
    return len(missing)


def _store_iteration(session: Session, job_id: int, record: IterationRecord) -> None:
    """The iteration's summary row and the predictor fits of that iteration."""
    session.add(
        JobIteration(
            job_id=job_id,
            iteration=record.iteration,
            hypervolume=record.hypervolume,
            front_size=record.front_size,
            validations_used=record.validations_used,
            seconds=record.seconds,
        )
    )
    for metric, scores in record.predictor_scores.items():
        n_train = scores.get("n_train")
        session.add(
            PredictorFit(
                job_id=job_id,
                iteration=record.iteration,
                metric=metric,
                model=str(scores["model"]) if "model" in scores else None,
                n_train=int(n_train) if n_train is not None else None,
                scores={k: v for k, v in scores.items() if k not in ("model", "n_train")},
            )
        )


def _cache(
    session: Session,
    key: CacheKey,
    job_id: int,
    device_ids: Mapping[str, int],
    evaluation: Evaluation,
    predicted_metrics: Collection[str] = (),
) -> None:
    """Add the validated metrics to the shared cache; a row another job wrote first is kept."""
    rows = [
        {
            "supernet_id": key.supernet_id,
            "dataset": key.dataset,
            "config_hash": evaluation.config_hash,
            "config": dict(evaluation.config),
            "metric": metric,
            "device_id": _device_id(device_ids, metric),
            "value": value,
            "job_id": job_id,
        }
        for metric, value in evaluation.metrics.items()
        if metric not in predicted_metrics
    ]
    if not rows:
        return
    insert = pg_insert if is_postgres(session) else sqlite_insert
    statement = insert(EvaluationCacheEntry).values(rows)
    session.execute(
        statement.on_conflict_do_nothing(
            index_elements=["supernet_id", "dataset", "config_hash", "metric"]
        )
    )


def _device_id(device_ids: Mapping[str, int], metric: str) -> int | None:
    """The id of the device a metric is measured on; None for device-free metrics."""
    device = MetricName.parse(metric).device
    return device_ids.get(device) if device is not None else None


def _mark_front(session: Session, job_id: int, front: FrontResult) -> None:
    session.execute(
        update(Candidate)
        .where(Candidate.job_id == job_id, Candidate.pareto_role.is_not(None))
        .values(pareto_role=None)
        .execution_options(synchronize_session=False)
    )
    for role, points in (("front", front.points), ("closest", front.closest)):
        hashes = [p.config_hash for p in points]
        if hashes:
            session.execute(
                update(Candidate)
                .where(Candidate.job_id == job_id, Candidate.config_hash.in_(hashes))
                .values(pareto_role=role)
                .execution_options(synchronize_session=False)
            )
