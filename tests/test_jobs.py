"""The job state machine on SQLite and PostgreSQL: claim, heartbeat, reap, cancel, finish."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.db.dialect import db_now_minus
from service.db.engine import make_engine, make_session_factory, transaction
from service.db.models import Job, Supernet
from service.errors import ConflictError, LostLeaseError
from service.jobs import queue


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _new_job(factory: sessionmaker[Session]) -> int:
    with transaction(factory) as session:
        supernet = Supernet(
            name=f"s{time.monotonic_ns()}",
            family="f",
            dataset="d",
            search_space=[],
            exact_ranges={},
        )
        session.add(supernet)
        session.flush()
        return queue.create_job(session, supernet.id, {"budget": 4}, budget=4).id


def _status(factory: sessionmaker[Session], job_id: int) -> Job:
    with transaction(factory) as session:
        return queue.get_job(session, job_id)


def test_claim_takes_oldest_queued_job_once(factory: sessionmaker[Session]) -> None:
    first, second = _new_job(factory), _new_job(factory)
    with transaction(factory) as session:
        assert queue.claim_next_job(session, "w1") == first
    with transaction(factory) as session:
        assert queue.claim_next_job(session, "w2") == second
    with transaction(factory) as session:
        assert queue.claim_next_job(session, "w3") is None
    job = _status(factory, first)
    assert (job.status, job.worker_id, job.attempts) == ("running", "w1", 1)


def test_heartbeat_reports_lease_and_cancel(factory: sessionmaker[Session]) -> None:
    job_id = _new_job(factory)
    with transaction(factory) as session:
        queue.claim_next_job(session, "w1")
    with transaction(factory) as session:
        assert queue.heartbeat(session, job_id, "w1") == "held"
        assert queue.heartbeat(session, job_id, "other") == "lost"
    with transaction(factory) as session:
        assert queue.request_cancel(session, job_id).status == "running"
    with transaction(factory) as session:
        assert queue.heartbeat(session, job_id, "w1") == "cancel_requested"
        queue.finish_job(session, job_id, "w1", "cancelled")
    assert _status(factory, job_id).status == "cancelled"


def test_cancel_of_queued_job_is_immediate_and_final(factory: sessionmaker[Session]) -> None:
    job_id = _new_job(factory)
    with transaction(factory) as session:
        assert queue.request_cancel(session, job_id).status == "cancelled"
    with transaction(factory) as session:
        assert queue.claim_next_job(session, "w1") is None
    with pytest.raises(ConflictError, match="already cancelled"), transaction(factory) as session:
        queue.request_cancel(session, job_id)


def test_finished_job_is_immutable(factory: sessionmaker[Session]) -> None:
    job_id = _new_job(factory)
    with transaction(factory) as session:
        queue.claim_next_job(session, "w1")
    with transaction(factory) as session:
        queue.finish_job(session, job_id, "w1", "succeeded")
    with pytest.raises(LostLeaseError), transaction(factory) as session:
        queue.finish_job(session, job_id, "w1", "failed")
    with pytest.raises(LostLeaseError), transaction(factory) as session:
        queue.record_progress(session, job_id, "w1", 3)
    assert _status(factory, job_id).status == "succeeded"


def _age_heartbeat(factory: sessionmaker[Session], job_id: int) -> None:
    with transaction(factory) as session:
        stale = db_now_minus(session, 3600)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=stale))


def test_reaper_requeues_stale_job_then_fails_it_after_max_attempts(
    factory: sessionmaker[Session],
) -> None:
    job_id = _new_job(factory)
    with transaction(factory) as session:
        queue.claim_next_job(session, "w1")
    with transaction(factory) as session:
        assert queue.reap_stale_jobs(session, grace_s=60, max_attempts=2) == []
    _age_heartbeat(factory, job_id)
    with transaction(factory) as session:
        assert queue.reap_stale_jobs(session, grace_s=60, max_attempts=2) == [
            queue.ReapedJob(job_id, "w1", True)
        ]
    with transaction(factory) as session:
        assert queue.heartbeat(session, job_id, "w1") == "lost"
        assert queue.claim_next_job(session, "w2") == job_id
    _age_heartbeat(factory, job_id)
    with transaction(factory) as session:
        assert queue.reap_stale_jobs(session, grace_s=60, max_attempts=2)[0].requeued is False
    job = _status(factory, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert "stopped beating" in (job.error or "")
