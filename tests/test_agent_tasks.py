"""The agents' queue on each database: leases expire and are re-leased, results are stored once,
implausible results are refused and change nothing, tasks fail after too many leases.

Leases are long (an hour) and run out only when a test moves their expiry into the past on the
database clock, so no test depends on how fast it runs."""

from __future__ import annotations

from typing import Any

import factories
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import transaction
from service.db.models import MeasurementTask
from service.latency import tasks

LEASE_S = 3600.0

GOOD_STATS = {
    "median_ms": 1.5,
    "p90_ms": 1.8,
    "mean_ms": 1.6,
    "std_ms": 0.1,
    "cv": 0.06,
    "runs": 50,
    "attempts": 1,
}


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    return session_factory


@pytest.fixture
def queued(factory: sessionmaker[Session]) -> dict[str, Any]:
    """An agent device with two queued tasks."""
    with transaction(factory) as session:
        device = factories.device(session, descriptor={"batch_size": 8})
        supernet = factories.supernet(session)
        ids = factories.tasks(session, device.id, supernet.id, {"a": {"x": 1}, "b": {"x": 2}})
        return {"device_id": device.id, "supernet_id": supernet.id, "task_ids": ids}


def _claim(factory: sessionmaker[Session], device_id: int, agent: str, **kw: Any) -> list[int]:
    options = {"limit": 10, "lease_s": LEASE_S, "max_attempts": 3} | kw
    with transaction(factory) as session:
        return [t.id for t in tasks.claim(session, device_id, agent, **options)]


def _expire_leases(factory: sessionmaker[Session], *task_ids: int) -> None:
    """The leases of `task_ids` ran out a minute ago, by the database's clock."""
    with transaction(factory) as session:
        session.execute(
            update(MeasurementTask)
            .where(MeasurementTask.id.in_(task_ids))
            .values(lease_expires_at=factories.db_clock(session, -60))
        )


def _lease_ends_within(
    factory: sessionmaker[Session], task_id: int, low_s: float, high_s: float
) -> bool:
    """Whether the task's lease ends between `low_s` and `high_s` from now on the database clock."""
    with transaction(factory) as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(MeasurementTask)
                .where(
                    MeasurementTask.id == task_id,
                    MeasurementTask.lease_expires_at > factories.db_clock(session, low_s),
                    MeasurementTask.lease_expires_at < factories.db_clock(session, high_s),
                )
            )
        )


def _task(factory: sessionmaker[Session], task_id: int) -> MeasurementTask:
    with transaction(factory) as session:
        return tasks.get_task(session, task_id)


def test_enqueue_is_idempotent_per_network(
    factory: sessionmaker[Session], queued: dict[str, Any]
) -> None:
    with transaction(factory) as session:
        again = tasks.enqueue(
            session,
            queued["device_id"],
            queued["supernet_id"],
            None,
            {"a": {"x": 1}, "c": {"x": 3}},
            {"a": [1, 32, 32], "c": [1, 32, 32]},
            8,
        )
        assert again["a"] == queued["task_ids"]["a"]
        count = session.scalar(select(func.count()).select_from(MeasurementTask))
    assert count == 3


def test_expired_lease_is_re_leased_and_result_stored_once(
    factory: sessionmaker[Session], queued: dict[str, Any]
) -> None:
    device_id, task_a = queued["device_id"], queued["task_ids"]["a"]
    assert _claim(factory, device_id, "agent-1", limit=1) == [task_a]
    assert _claim(factory, device_id, "agent-2", limit=1) == [queued["task_ids"]["b"]]
    assert _claim(factory, device_id, "agent-2") == []  # both leased, none expired
    assert _lease_ends_within(factory, task_a, LEASE_S - 600, LEASE_S + 1)
    _expire_leases(factory, *queued["task_ids"].values())
    assert _claim(factory, device_id, "agent-2") == sorted(queued["task_ids"].values())
    leased = _task(factory, task_a)
    assert (leased.status, leased.agent_id, leased.attempts) == ("leased", "agent-2", 2)

    with transaction(factory) as session:
        tasks.store_result(session, task_a, "agent-2", GOOD_STATS, {"runtime": "onnxruntime"})
    with (
        pytest.raises(tasks.TaskAlreadyDoneError, match="already has a result"),
        transaction(factory) as session,
    ):
        tasks.store_result(session, task_a, "agent-1", {**GOOD_STATS, "median_ms": 1.7}, {})
    done = _task(factory, task_a)
    assert (done.status, done.agent_id, done.stats["median_ms"]) == ("done", "agent-2", 1.5)
    assert done.lease_expires_at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"median_ms": float("nan")}, "finite"),
        ({"median_ms": -1.0}, "plausible"),
        ({"median_ms": 0.0}, "plausible"),
        ({"median_ms": 61_000.0, "p90_ms": 62_000.0}, "plausible"),
        ({"p90_ms": None}, "missing"),
        ({"cv": "low"}, "number"),
        ({"runs": 0}, "runs"),
        ({"median_ms": 3.0}, "median_ms must not exceed"),
    ],
)
def test_implausible_results_are_refused_and_change_nothing(
    factory: sessionmaker[Session], queued: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    task_a = queued["task_ids"]["a"]
    _claim(factory, queued["device_id"], "agent-1", limit=1)
    stats = {k: v for k, v in {**GOOD_STATS, **change}.items() if v is not None}
    with pytest.raises(tasks.InvalidResultError, match=message), transaction(factory) as session:
        tasks.store_result(session, task_a, "agent-1", stats, {})
    task = _task(factory, task_a)
    assert (task.status, task.stats) == ("leased", None)


def test_result_for_unclaimed_task_is_refused(
    factory: sessionmaker[Session], queued: dict[str, Any]
) -> None:
    with pytest.raises(tasks.TaskNotLeasedError, match="claim it"), transaction(factory) as session:
        tasks.store_result(session, queued["task_ids"]["a"], "agent-1", GOOD_STATS, {})
    with pytest.raises(tasks.UnknownTaskError), transaction(factory) as session:
        tasks.store_result(session, 10_000, "agent-1", GOOD_STATS, {})


def test_task_fails_after_max_leases_and_requeues_on_demand(
    factory: sessionmaker[Session], queued: dict[str, Any]
) -> None:
    device_id, task_a = queued["device_id"], queued["task_ids"]["a"]
    assert task_a in _claim(factory, device_id, "agent-1", max_attempts=1)
    assert _claim(factory, device_id, "agent-2", max_attempts=1) == []  # leased, not expired
    assert _task(factory, task_a).status == "leased"
    _expire_leases(factory, task_a)
    assert _claim(factory, device_id, "agent-2", max_attempts=1) == []
    failed = _task(factory, task_a)
    assert failed.status == "failed" and "1 leases" in (failed.error or "")
    with transaction(factory) as session:
        outcome = tasks.outcomes(session, [task_a])[task_a]
        assert outcome.status == "failed"
        factories.tasks(session, device_id, queued["supernet_id"], {"a": {"x": 1}})
    requeued = _task(factory, task_a)
    assert (requeued.status, requeued.attempts, requeued.error) == ("queued", 0, None)
