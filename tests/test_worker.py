"""Workers as real processes on PostgreSQL: crash recovery and exactly-once claiming; the cache.

What happened is read from the database (attempts count claims, `worker_id` names the process that
holds or finished a job), never from the workers' logs. Heartbeats go stale only when a test ages
them on the database clock: the grace is far longer than any test, so a worker slowed down by a
busy machine is never reaped by mistake."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import factories
import pytest
from service_processes import hwnas, service_env, wait_for
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.schemas.jobs import JobIn
from service.catalog import supernets as supernet_catalog
from service.config import Settings
from service.db.engine import make_engine, make_session_factory, transaction
from service.db.models import Candidate, EvaluationCacheEntry, Job, JobIteration
from service.errors import LostLeaseError
from service.jobs import queue
from service.jobs.evaluations import store_missing_iterations
from service.jobs.specs import check_job_request
from service.search.records import WARM_START, IterationRecord
from service.worker.runner import run_worker

FAST_BEATS = {"heartbeat_interval_s": "0.5", "heartbeat_grace_s": "600", "poll_interval_s": "0.3"}


def _setup(url: str, checkpoint: str) -> sessionmaker[Session]:
    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        supernet_catalog.register_supernet(session, "digits", "mbv3-digits", checkpoint)
    return factory


def _submit(factory: sessionmaker[Session], **fields: Any) -> int:
    with transaction(factory) as session:
        checked = check_job_request(session, JobIn(supernet="digits", **fields))
        return queue.create_job(
            session, checked.supernet.id, checked.spec.to_json(), checked.spec.budget
        ).id


def _job(factory: sessionmaker[Session], job_id: int) -> Job:
    with transaction(factory) as session:
        return queue.get_job(session, job_id)


def _pid(worker_id: str | None) -> int | None:
    """The process id in a worker id (`host:pid:suffix`)."""
    return None if worker_id is None else int(worker_id.rsplit(":", 2)[1])


def _age_heartbeat(factory: sessionmaker[Session], job_id: int) -> None:
    """The job's worker last beat an hour ago, by the database clock."""
    with transaction(factory) as session:
        stale = factories.db_clock(session, -3600)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=stale))


def _candidates(factory: sessionmaker[Session], job_id: int) -> list[tuple[int, str, str]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Candidate.id, Candidate.config_hash, Candidate.origin)
            .where(Candidate.job_id == job_id)
            .order_by(Candidate.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _random_job_with_a_worker(
    url: str, checkpoint: str, tmp_path: Path, budget: int
) -> tuple[sessionmaker[Session], int, dict[str, str], subprocess.Popen[bytes]]:
    """A random-tactic job (2 validations a batch) and a worker process that has stored the
    first batch."""
    factory = _setup(url, checkpoint)
    job_id = _submit(
        factory,
        objectives=["accuracy:max", "macs:min"],
        budget=budget,
        tactic="random",
        initial_size=2,
        batch_size=2,
    )
    env = service_env(tmp_path, url, **FAST_BEATS)
    worker = hwnas(["worker"], env, tmp_path / "first.log")
    try:
        wait_for(
            lambda: _job(factory, job_id).validations_used >= 2,
            240,
            "the first worker to store its first batch",
        )
    except BaseException:
        worker.kill()
        raise
    return factory, job_id, env, worker


# 2 validations a batch: the first worker is stopped long before it could spend all of these
BUDGET_LEFT_UNFINISHED = 30
LEFT_FOR_THE_SECOND = 4  # two batches: once handed back, the budget is cut to this much more


def _cut_budget(factory: sessionmaker[Session], job_id: int, budget: int) -> None:
    """Give the job of a stopped worker a smaller budget (row and spec), so the next worker's
    share of the work does not depend on how far the stopped one got."""
    with transaction(factory) as session:
        job = queue.get_job(session, job_id)
        job.budget, job.spec = budget, {**job.spec, "budget": budget}


@pytest.mark.postgres
def test_sigkilled_worker_is_replaced_without_losing_or_repeating_validations(
    migrated_postgres_url: str, random_checkpoint: str, tmp_path: Path
) -> None:
    factory, job_id, env, first = _random_job_with_a_worker(
        migrated_postgres_url, random_checkpoint, tmp_path, budget=BUDGET_LEFT_UNFINISHED
    )
    try:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    before = _candidates(factory, job_id)
    held = _job(factory, job_id)
    assert before and (held.status, _pid(held.worker_id)) == ("running", first.pid)
    assert BUDGET_LEFT_UNFINISHED > len(before) == held.validations_used >= 2
    budget = held.validations_used + LEFT_FOR_THE_SECOND
    _cut_budget(factory, job_id, budget)
    _age_heartbeat(factory, job_id)  # the dead worker's heartbeat is stale: reapable now
    second = hwnas(["worker"], env, tmp_path / "second.log")
    try:
        done = wait_for(
            lambda: (
                _job(factory, job_id).status != "running"
                and _job(factory, job_id).status != "queued"
            ),
            300,
            "the job to finish",
        )
        assert done
    finally:
        second.terminate()
        second.wait(timeout=30)
    job = _job(factory, job_id)
    # claimed twice: by the killed worker, then, once reaped, by the second one
    assert (job.status, job.attempts, job.validations_used) == ("succeeded", 2, budget)
    assert _pid(job.worker_id) == second.pid
    after = _candidates(factory, job_id)
    assert after[: len(before)] == before, "candidates stored before the crash must survive"
    hashes = [h for _, h, _ in after]
    assert len(hashes) == len(set(hashes)) == budget
    with transaction(factory) as session:
        cached = session.scalars(
            select(EvaluationCacheEntry.config_hash).where(
                EvaluationCacheEntry.job_id == job_id, EvaluationCacheEntry.metric == "accuracy"
            )
        ).all()
        iterations = session.scalars(
            select(JobIteration.iteration)
            .where(JobIteration.job_id == job_id)
            .order_by(JobIteration.iteration)
        ).all()
    assert sorted(cached) == sorted(hashes)
    assert list(iterations) == list(range(len(iterations)))


@pytest.mark.postgres
def test_sigtermed_worker_hands_its_job_back_and_another_finishes_it(
    migrated_postgres_url: str, random_checkpoint: str, tmp_path: Path
) -> None:
    factory, job_id, env, first = _random_job_with_a_worker(
        migrated_postgres_url, random_checkpoint, tmp_path, budget=BUDGET_LEFT_UNFINISHED
    )
    try:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 0, "a SIGTERMed worker exits cleanly"
    finally:
        first.kill()
    handed_back = _job(factory, job_id)
    assert (handed_back.status, handed_back.worker_id) == ("queued", None)
    assert handed_back.error and "released by worker" in handed_back.error
    before = _candidates(factory, job_id)
    assert BUDGET_LEFT_UNFINISHED > len(before) == handed_back.validations_used >= 2
    budget = handed_back.validations_used + LEFT_FOR_THE_SECOND
    _cut_budget(factory, job_id, budget)
    second = hwnas(["worker"], env, tmp_path / "second.log")
    try:
        wait_for(
            lambda: _job(factory, job_id).status in ("succeeded", "failed", "cancelled"),
            300,
            "the job to finish",
        )
    finally:
        second.terminate()
        second.wait(timeout=30)
    job = _job(factory, job_id)
    assert (job.status, job.validations_used) == ("succeeded", budget)
    # two claims, the second worker's the last: handed over, never reaped and re-claimed
    assert (job.attempts, _pid(job.worker_id)) == (2, second.pid)
    after = _candidates(factory, job_id)
    assert after[: len(before)] == before, "candidates stored before the hand-back must survive"
    assert len({h for _, h, _ in after}) == len(after) == budget


@pytest.mark.postgres
def test_four_workers_run_each_of_twelve_jobs_exactly_once_and_none_starves(
    migrated_postgres_url: str, random_checkpoint: str, tmp_path: Path
) -> None:
    factory = _setup(migrated_postgres_url, random_checkpoint)
    job_ids = [
        _submit(factory, objectives=["macs:min", "params:max"], budget=3, tactic="random", seed=i)
        for i in range(12)
    ]
    env = service_env(tmp_path, migrated_postgres_url, **FAST_BEATS)
    workers = [hwnas(["worker"], env, tmp_path / f"worker{i}.log") for i in range(4)]
    try:
        wait_for(
            lambda: all(_job(factory, j).status == "succeeded" for j in job_ids),
            300,
            "all twelve jobs to succeed",
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    pids = {worker.pid for worker in workers}
    jobs = [_job(factory, job_id) for job_id in job_ids]
    for job in jobs:
        # one claim (attempts counts them), finished by the worker that claimed it
        assert (job.attempts, job.validations_used, job.error) == (1, 3, None)
        assert _pid(job.worker_id) in pids
        rows = _candidates(factory, job.id)
        assert len({h for _, h, _ in rows}) == len(rows)
        assert sum(origin != WARM_START for _, _, origin in rows) == 3  # later jobs warm-start
    # none starves: claims go oldest first, so no job started after a younger one finished
    for older in jobs:
        for younger in (j for j in jobs if j.id > older.id):
            assert older.started_at is not None and younger.finished_at is not None
            assert older.started_at <= younger.finished_at, f"job {older.id} waited"


def test_second_job_on_the_same_supernet_reuses_cached_validations(
    migrated_sqlite_url: str, random_checkpoint: str
) -> None:
    factory = _setup(migrated_sqlite_url, random_checkpoint)
    spec = {"objectives": ["accuracy:max", "macs:min"], "budget": 3, "tactic": "random"}
    first = _submit(factory, **spec, seed=0)
    settings = Settings(database_url=migrated_sqlite_url, poll_interval_s=0.1)
    stop = threading.Event()
    run_worker(factory, settings, stop, on_idle=stop.set)
    second = _submit(factory, **spec, seed=1)
    stop.clear()
    run_worker(factory, settings, stop, on_idle=stop.set)

    first_hashes = {h for _, h, _ in _candidates(factory, first)}
    second_rows = _candidates(factory, second)
    warm = {h for _, h, origin in second_rows if origin == WARM_START}
    validated = {h for _, h, origin in second_rows if origin != WARM_START}
    assert warm == first_hashes, "the first job's validations are the second job's warm start"
    assert len(validated) == 3 and not validated & first_hashes
    assert _job(factory, second).validations_used == 3
    with transaction(factory) as session:
        by_job = dict(
            session.execute(
                select(
                    EvaluationCacheEntry.job_id,
                    func.count(EvaluationCacheEntry.config_hash.distinct()),
                ).group_by(EvaluationCacheEntry.job_id)
            ).all()
        )
    assert by_job == {first: 3, second: 3}


def test_a_resumed_job_gets_the_iteration_rows_its_killed_worker_did_not_write(
    migrated_sqlite_url: str, random_checkpoint: str
) -> None:
    """A worker killed after storing a round's validations but before the round itself leaves
    candidates of an iteration without its row (what the SIGKILL test above hits when the kill
    lands there). The worker that resumes the job writes the row from the stored candidates."""
    factory = _setup(migrated_sqlite_url, random_checkpoint)
    spec = {"objectives": ["macs:min", "params:max"], "tactic": "random", "seed": 0}
    job_id = _submit(factory, **spec, budget=3)
    settings = Settings(database_url=migrated_sqlite_url, poll_interval_s=0.1)
    stop = threading.Event()
    run_worker(factory, settings, stop, on_idle=stop.set)

    def iteration_rows() -> dict[int, int]:
        with transaction(factory) as session:
            rows = session.execute(
                select(JobIteration.iteration, JobIteration.validations_used).where(
                    JobIteration.job_id == job_id
                )
            ).all()
            return {iteration: used for iteration, used in rows}

    finished = iteration_rows()
    last = max(finished)
    with transaction(factory) as session:  # the state such a kill leaves, requeued with more budget
        session.execute(
            JobIteration.__table__.delete().where(
                JobIteration.job_id == job_id, JobIteration.iteration == last
            )
        )
        job = queue.get_job(session, job_id)
        job.status, job.worker_id, job.finished_at = "queued", None, None
        job.budget, job.spec = 5, {**job.spec, "budget": 5}
    stop.clear()
    run_worker(factory, settings, stop, on_idle=stop.set)
    assert _job(factory, job_id).status == "succeeded"
    resumed = iteration_rows()
    assert sorted(resumed) == list(range(len(resumed))) and len(resumed) > len(finished)
    assert resumed[last] == finished[last]  # rebuilt from the same stored candidates

    with transaction(factory) as session:  # a worker that no longer holds the job writes nothing
        session.execute(
            JobIteration.__table__.delete().where(
                JobIteration.job_id == job_id, JobIteration.iteration == last
            )
        )
        job = queue.get_job(session, job_id)
        job.status, job.worker_id = "running", "the-new-holder"
    records = [IterationRecord(last, 0.5, 1, finished[last], {}, 0.0, 1)]
    with pytest.raises(LostLeaseError), transaction(factory) as session:
        store_missing_iterations(session, job_id, "the-old-holder", records, finished[last])
    assert last not in iteration_rows()
