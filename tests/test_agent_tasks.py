"""The agents' queue on each database: leases expire and are re-leased, results are stored once,
implausible results are refused and change nothing, tasks fail after too many leases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_session_factory, transaction
from service.db.models import Device, MeasurementTask, Supernet
from service.latency import tasks

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
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def queued(factory: sessionmaker[Session]) -> dict[str, Any]:
    """An agent device with two queued tasks."""
    with transaction(factory) as session:
        device = Device(name="edge", kind="agent", descriptor={"batch_size": 8})
        supernet = Supernet(name="s", family="f", dataset="d", search_space=[], exact_ranges={})
        session.add_all([device, supernet])
        session.flush()
        ids = tasks.enqueue(
            session, device.id, supernet.id, None, {"a": {"x": 1}, "b": {"x": 2}}, [1, 32, 32], 8
        )
        return {"device_id": device.id, "supernet_id": supernet.id, "task_ids": ids}


def _claim(factory: sessionmaker[Session], device_id: int, agent: str, **kw: Any) -> list[int]:
    options = {"limit": 10, "lease_s": 1.0, "max_attempts": 3} | kw
    with transaction(factory) as session:
        return [t.id for t in tasks.claim(session, device_id, agent, **options)]


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
            [1, 32, 32],
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
    time.sleep(2.2)  # SQLite's clock has one-second resolution
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
    time.sleep(2.2)
    assert _claim(factory, device_id, "agent-2", max_attempts=1) == []
    failed = _task(factory, task_a)
    assert failed.status == "failed" and "1 leases" in (failed.error or "")
    with transaction(factory) as session:
        outcome = tasks.outcomes(session, [task_a])[task_a]
        assert outcome.status == "failed"
        tasks.enqueue(
            session, device_id, queued["supernet_id"], None, {"a": {"x": 1}}, [1, 32, 32], 8
        )
    requeued = _task(factory, task_a)
    assert (requeued.status, requeued.attempts, requeued.error) == ("queued", 0, None)
