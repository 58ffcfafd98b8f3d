"""The database goes away under a running job (issue 19.5), on PostgreSQL, with a real worker
process: `pg_terminate_backend` on every connection of the worker, one of them in the middle of
storing a batch. The worker runs the lost transaction again and goes on with the same claim: the
job finishes with every validation stored exactly once.

To catch the worker inside a transaction rather than between two, the test holds a lock on
`candidates` until the worker's batch write is waiting for it (pg_stat_activity says so), then
terminates that backend and lets the lock go."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from service_processes import hwnas, service_env, wait_for
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.api.schemas.jobs import JobIn
from service.catalog import supernets as supernet_catalog
from service.db.engine import make_engine, make_session_factory, transaction
from service.db.models import Candidate, EvaluationCacheEntry, Job, JobIteration
from service.jobs import queue
from service.jobs.specs import check_job_request

BUDGET = 10  # five batches of two: the faults fall on the second
# The grace is far longer than the test: the job is never reaped, so only a worker that
# survives its lost connections can finish it, with its one claim.
FAST_BEATS = {"heartbeat_interval_s": "0.5", "heartbeat_grace_s": "600", "poll_interval_s": "0.3"}
WORKER_BACKENDS = """
    SELECT pid, state, wait_event_type FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'hwnas-worker'
"""


def _submit(factory: sessionmaker[Session], checkpoint: str) -> int:
    with transaction(factory) as session:
        supernet_catalog.register_supernet(session, "digits", "mbv3-digits", checkpoint)
        request = JobIn(
            supernet="digits",
            objectives=["accuracy:max", "macs:min"],
            budget=BUDGET,
            tactic="random",
            initial_size=2,
            batch_size=2,
        )
        checked = check_job_request(session, request)
        return queue.create_job(
            session, checked.supernet.id, checked.spec.to_json(), checked.spec.budget
        ).id


def _job(factory: sessionmaker[Session], job_id: int) -> Job:
    with transaction(factory) as session:
        return queue.get_job(session, job_id)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.postgres
def test_terminated_connections_mid_job_lose_and_repeat_no_validation(
    migrated_postgres_url: str, random_checkpoint: str, tmp_path: Path
) -> None:
    factory = make_session_factory(make_engine(migrated_postgres_url))
    job_id = _submit(factory, random_checkpoint)
    log_path = tmp_path / "worker.log"
    worker = hwnas(["worker"], service_env(tmp_path, migrated_postgres_url, **FAST_BEATS), log_path)
    terminated = 0
    try:
        wait_for(lambda: _job(factory, job_id).validations_used >= 2, 240, "the first batch stored")
        with (
            psycopg.connect(_libpq(migrated_postgres_url), autocommit=True) as admin,
            psycopg.connect(_libpq(migrated_postgres_url)) as locker,
        ):
            locker.execute("LOCK TABLE candidates IN EXCLUSIVE MODE")  # reads still pass

            def blocked_writer() -> int | None:
                rows = admin.execute(WORKER_BACKENDS).fetchall()
                return next((pid for pid, _, wait in rows if wait == "Lock"), None)

            writer = wait_for(blocked_writer, 240, "the worker's batch write to wait")
            for pid, _, _ in admin.execute(WORKER_BACKENDS).fetchall():
                # the blocked write, the heartbeat's and the pool's idle connections
                killed = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
                terminated += bool(killed and killed[0])
            locker.rollback()  # the lock goes; the worker's retry can write
        wait_for(
            lambda: _job(factory, job_id).status in ("succeeded", "failed", "cancelled"),
            300,
            "the job to finish",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    log = log_path.read_text()
    assert writer and terminated >= 1, "no worker connection was terminated"
    assert "running the transaction again" in log, log[-3000:]
    job = _job(factory, job_id)
    # one claim: the worker that lost its connections finished the job itself
    assert (job.status, job.attempts, job.validations_used) == ("succeeded", 1, BUDGET), job.error
    with transaction(factory) as session:
        hashes = session.scalars(
            select(Candidate.config_hash).where(Candidate.job_id == job_id)
        ).all()
        cached = session.scalar(
            select(func.count()).where(
                EvaluationCacheEntry.job_id == job_id, EvaluationCacheEntry.metric == "accuracy"
            )
        )
        iterations = session.scalars(
            select(JobIteration.iteration)
            .where(JobIteration.job_id == job_id)
            .order_by(JobIteration.iteration)
        ).all()
    assert len(hashes) == len(set(hashes)) == BUDGET, "a validation was lost or stored twice"
    assert cached == BUDGET
    assert list(iterations) == list(range(len(iterations)))
