"""The job state machine: create, claim, heartbeat, reap, cancel, finish. Never commits.

queued → running → succeeded | failed | cancelled; a running job whose worker stopped beating is
re-queued (attempts counted) or failed after `max_attempts`. Finished jobs are immutable. Every
time comparison uses the database clock, so workers on different machines agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.dialect import db_now_minus, is_postgres
from service.db.models import FINISHED_STATUSES, Job, JobStatus
from service.errors import ConflictError, LostLeaseError, NotFoundError

LeaseState = Literal["held", "cancel_requested", "lost"]


@dataclass(frozen=True)
class ReapedJob:
    job_id: int
    worker_id: str | None
    requeued: bool


def create_job(session: Session, supernet_id: int, spec: dict[str, Any], budget: int) -> Job:
    job = Job(
        supernet_id=supernet_id,
        spec=spec,
        budget=budget,
        status=JobStatus.QUEUED,
        attempts=0,
        cancel_requested=False,
        validations_used=0,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist; list jobs with GET /v1/jobs")
    return job


def claim_next_job(session: Session, worker_id: str) -> int | None:
    """Take the oldest queued job for `worker_id`; None when nothing is queued."""
    if is_postgres(session):
        candidate = (
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED)
            .order_by(Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    else:  # SQLite serialises writers: one atomic UPDATE … WHERE status='queued' is the claim.
        candidate = (
            select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.id).limit(1)
        ).scalar_subquery()
    claimed = session.execute(
        update(Job)
        .where(Job.id == candidate, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            heartbeat_at=func.now(),
            started_at=func.coalesce(Job.started_at, func.now()),
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return claimed


def heartbeat(session: Session, job_id: int, worker_id: str) -> LeaseState:
    """Refresh the job's heartbeat if `worker_id` still holds it; report cancel requests."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING)
        .values(heartbeat_at=func.now())
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return "lost"
    return "cancel_requested" if row[0] else "held"


def record_progress(session: Session, job_id: int, worker_id: str, validations_used: int) -> None:
    """Guard a batch write: raise `LostLeaseError` unless `worker_id` still holds the job."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING)
        .values(validations_used=validations_used, heartbeat_at=func.now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LostLeaseError(f"worker {worker_id} no longer holds job {job_id}")


def reap_stale_jobs(session: Session, grace_s: float, max_attempts: int) -> list[ReapedJob]:
    """Re-queue running jobs whose heartbeat is older than `grace_s`; fail those out of attempts."""
    stale_query = select(Job).where(
        Job.status == JobStatus.RUNNING, Job.heartbeat_at < db_now_minus(session, grace_s)
    )
    if is_postgres(session):
        stale_query = stale_query.with_for_update(skip_locked=True)
    reaped = []
    for job in session.scalars(stale_query).all():
        requeued = job.attempts < max_attempts
        reaped.append(ReapedJob(job.id, job.worker_id, requeued))
        if requeued:
            job.status = JobStatus.QUEUED
            job.error = f"re-queued after worker {job.worker_id} stopped beating"
        else:
            job.status = JobStatus.FAILED
            job.error = (
                f"worker {job.worker_id} stopped beating on attempt {job.attempts} of "
                f"{max_attempts}; giving up"
            )
            job.finished_at = func.now()
        job.worker_id = None
    session.flush()
    return reaped


def request_cancel(session: Session, job_id: int) -> Job:
    """Cancel a queued job now, or ask its worker to stop at the next batch."""
    job = get_job(session, job_id)
    if job.status in FINISHED_STATUSES:
        raise ConflictError(f"job {job_id} already {job.status}; finished jobs cannot change")
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = func.now()
    job.cancel_requested = True
    session.flush()
    session.refresh(job)
    return job


def finish_job(
    session: Session,
    job_id: int,
    worker_id: str,
    status: JobStatus,
    error: str | None = None,
) -> None:
    """Move a job its worker holds to a final state; raise `LostLeaseError` if it is not held."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING)
        .values(status=status, error=error, finished_at=func.now(), heartbeat_at=func.now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LostLeaseError(f"worker {worker_id} no longer holds job {job_id}")


def release_job(session: Session, job_id: int, worker_id: str) -> bool:
    """Give a held job back to the queue (worker shutting down); False if it was not held."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING)
        .values(status=JobStatus.QUEUED, worker_id=None, error=f"released by worker {worker_id}")
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
