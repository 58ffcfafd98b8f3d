"""The device agents' queue: enqueue, claim with a lease, store a result once. Never commits.

queued → leased → done; a leased task whose lease ran out is claimable again (attempts counted)
and fails after `max_attempts` leases, or at once when the agent holding its lease reports that it
cannot measure it. A task is what is measured (device, supernet, config,
batch size), so jobs asking for the same network on the same device share one measurement. Lease
times use the database clock, like job heartbeats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.db.dialect import db_now, db_now_plus, is_postgres
from service.db.models import MeasurementTask, TaskStatus
from service.errors import ConflictError, InvalidInputError, NotFoundError

# Latency figures an agent may report: positive, finite, and at most a minute per batch.
MAX_LATENCY_MS = 60_000.0
LATENCY_FIELDS = ("median_ms", "p90_ms", "mean_ms", "std_ms", "cv")


class UnknownTaskError(NotFoundError):
    code = "unknown_task"


class TaskAlreadyDoneError(ConflictError):
    code = "task_already_done"


class TaskNotLeasedError(ConflictError):
    code = "task_not_leased"


class InvalidResultError(InvalidInputError):
    code = "invalid_result"


@dataclass(frozen=True)
class TaskOutcome:
    """What the worker reads back about one task."""

    task_id: int
    status: TaskStatus
    stats: dict[str, Any] | None
    runtime: dict[str, Any] | None
    agent_id: str | None
    attempts: int
    error: str | None


def enqueue(
    session: Session,
    device_id: int,
    supernet_id: int,
    job_id: int | None,
    configs: Mapping[str, Mapping[str, Any]],
    input_shapes: Mapping[str, Sequence[int]],
    batch_size: int,
) -> dict[str, int]:
    """One task per config hash, with the input shape of that network (reusing an existing
    task; a failed one is queued afresh)."""
    existing = {
        t.config_hash: t
        for t in session.scalars(
            select(MeasurementTask).where(
                MeasurementTask.device_id == device_id,
                MeasurementTask.supernet_id == supernet_id,
                MeasurementTask.batch_size == batch_size,
                MeasurementTask.config_hash.in_(list(configs)),
            )
        )
    }
    for config_hash, config in configs.items():
        task = existing.get(config_hash)
        if task is None:
            task = MeasurementTask(
                device_id=device_id,
                supernet_id=supernet_id,
                job_id=job_id,
                config_hash=config_hash,
                config=dict(config),
                input_shape=list(input_shapes[config_hash]),
                batch_size=batch_size,
                status=TaskStatus.QUEUED,
                attempts=0,
            )
            session.add(task)
            existing[config_hash] = task
        elif task.status == TaskStatus.FAILED:
            task.status, task.attempts, task.error, task.job_id = TaskStatus.QUEUED, 0, None, job_id
    session.flush()
    return {h: existing[h].id for h in configs}


def claim(
    session: Session,
    device_id: int,
    agent_id: str,
    limit: int,
    lease_s: float,
    max_attempts: int,
) -> list[MeasurementTask]:
    """Lease up to `limit` queued (or lease-expired) tasks of the device to `agent_id`."""
    now = db_now(session)
    expired = and_(
        MeasurementTask.status == TaskStatus.LEASED, MeasurementTask.lease_expires_at < now
    )
    session.execute(
        update(MeasurementTask)
        .where(MeasurementTask.device_id == device_id, expired)
        .where(MeasurementTask.attempts >= max_attempts)
        .values(
            status=TaskStatus.FAILED,
            finished_at=func.now(),
            error=f"no agent posted a result in {max_attempts} leases",
        )
        .execution_options(synchronize_session=False)
    )
    claimable = (
        select(MeasurementTask.id)
        .where(
            MeasurementTask.device_id == device_id,
            or_(MeasurementTask.status == TaskStatus.QUEUED, expired),
        )
        .order_by(MeasurementTask.id)
        .limit(limit)
    )
    if is_postgres(session):
        claimable = claimable.with_for_update(skip_locked=True)
    ids = list(session.scalars(claimable))
    if not ids:
        return []
    session.execute(
        update(MeasurementTask)
        .where(
            MeasurementTask.id.in_(ids), or_(MeasurementTask.status == TaskStatus.QUEUED, expired)
        )
        .values(
            status=TaskStatus.LEASED,
            agent_id=agent_id,
            attempts=MeasurementTask.attempts + 1,
            lease_expires_at=db_now_plus(session, lease_s),
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.scalars(
        select(MeasurementTask)
        .where(MeasurementTask.id.in_(ids), MeasurementTask.agent_id == agent_id)
        .order_by(MeasurementTask.id)
        .execution_options(populate_existing=True)
    )
    return [row for row in rows if row.status == TaskStatus.LEASED]


def get_task(session: Session, task_id: int) -> MeasurementTask:
    task = session.get(MeasurementTask, task_id)
    if task is None:
        raise UnknownTaskError(f"measurement task {task_id} does not exist")
    return task


class AgentLatencyStats(BaseModel):
    """What an agent reports for one task: finite, plausible figures in ms, whole run counts."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    median_ms: float = Field(gt=0, le=MAX_LATENCY_MS)
    p90_ms: float = Field(gt=0, le=MAX_LATENCY_MS)
    mean_ms: float = Field(gt=0, le=MAX_LATENCY_MS)
    std_ms: float = Field(ge=0, le=MAX_LATENCY_MS)
    cv: float = Field(ge=0, le=1000)
    runs: int = Field(ge=1, le=10**9)
    attempts: int = Field(default=1, ge=1, le=10**6)

    @model_validator(mode="after")
    def _median_within_p90(self) -> AgentLatencyStats:
        if not self.median_ms <= self.p90_ms * (1 + 1e-9):
            raise ValueError("median_ms must not exceed p90_ms")
        return self


def check_stats(stats: Mapping[str, Any]) -> dict[str, float | int]:
    """The agent's statistics, every figure finite and sane; 422 naming each bad field."""
    try:
        checked = AgentLatencyStats.model_validate(dict(stats))
    except ValidationError as error:
        problems = "; ".join(
            ".".join(["stats", *map(str, e["loc"])])
            + (" is missing" if e["type"] == "missing" else f": {e['msg']}")
            for e in error.errors()
        )
        raise InvalidResultError(
            f"implausible agent result: {problems} (send {list(LATENCY_FIELDS)} and runs; "
            f"latencies in 0..{MAX_LATENCY_MS:g} ms)"
        ) from error
    return checked.model_dump()


def store_result(
    session: Session,
    task_id: int,
    agent_id: str,
    stats: Mapping[str, Any],
    runtime: Mapping[str, Any],
) -> MeasurementTask:
    """Store the first result of a task; a second one is refused (409) and changes nothing."""
    checked = check_stats(stats)
    task = get_task(session, task_id)
    if task.status == TaskStatus.DONE:
        raise TaskAlreadyDoneError(
            f"task {task_id} already has a result (from agent {task.agent_id}); "
            "this one was not stored"
        )
    if task.status != TaskStatus.LEASED:
        raise TaskNotLeasedError(
            f"task {task_id} is {task.status}, not leased; claim it with "
            f"POST /v1/devices/{task.device_id}/tasks/claim before posting a result"
        )
    if task.agent_id != agent_id:
        raise TaskNotLeasedError(
            f"task {task_id} is leased to agent {task.agent_id}, not to agent {agent_id!r}; "
            "only the agent holding the lease may post its result"
        )
    stored = _finish_if_held(
        session,
        task_id,
        agent_id,
        status=TaskStatus.DONE,
        stats=checked,
        runtime=dict(runtime),
    )
    if not stored:
        raise TaskAlreadyDoneError(
            f"task {task_id} got a result or changed hands just now; this one was not stored"
        )
    session.refresh(task)
    return task


def _finish_if_held(session: Session, task_id: int, agent_id: str, **values: Any) -> bool:
    """End the task with `values` in one UPDATE guarded by "still leased to `agent_id`", so a
    lease that changed hands meanwhile is never overwritten; False when it had."""
    finished = session.execute(
        update(MeasurementTask)
        .where(
            MeasurementTask.id == task_id,
            MeasurementTask.status == TaskStatus.LEASED,
            MeasurementTask.agent_id == agent_id,
        )
        .values(**values, finished_at=func.now(), lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(finished.rowcount == 1)  # type: ignore[attr-defined]


def store_failure(session: Session, task_id: int, agent_id: str, error: str) -> MeasurementTask:
    """Fail a task its lease holder cannot measure; anyone else's report changes nothing (409)."""
    task = get_task(session, task_id)
    if task.status == TaskStatus.DONE:
        raise TaskAlreadyDoneError(
            f"task {task_id} already has a result; the failure was not stored"
        )
    if task.status != TaskStatus.LEASED or task.agent_id != agent_id:
        holder = (
            f"leased to agent {task.agent_id}" if task.status == TaskStatus.LEASED else task.status
        )
        raise TaskNotLeasedError(
            f"task {task_id} is {holder}, not leased to agent {agent_id!r}; only the agent "
            "holding the lease may report a failure"
        )
    failed = _finish_if_held(
        session,
        task_id,
        agent_id,
        status=TaskStatus.FAILED,
        error=f"agent {agent_id} could not measure it: {error}",
    )
    if not failed:
        raise TaskNotLeasedError(
            f"task {task_id} changed hands just now; the failure was not stored"
        )
    session.refresh(task)
    return task


def outcomes(session: Session, task_ids: Sequence[int]) -> dict[int, TaskOutcome]:
    rows = session.scalars(
        select(MeasurementTask)
        .where(MeasurementTask.id.in_(list(task_ids)))
        .execution_options(populate_existing=True)
    )
    return {
        t.id: TaskOutcome(t.id, t.status, t.stats, t.runtime, t.agent_id, t.attempts, t.error)
        for t in rows
    }
