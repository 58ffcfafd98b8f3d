"""How a worker waits for agent measurements: results become `latency@<device>` and agent
measurements; cancellation, a lost lease, a failed task and a timeout each stop the wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import factories
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import transaction
from service.db.models import MeasurementTask
from service.errors import LostLeaseError
from service.latency import tasks
from service.worker.latency import (
    AgentDevice,
    AgentMeasurementError,
    JobInterrupted,
    JobLatencyPlan,
    measure_on_agents,
)

STATS = {"median_ms": 3.0, "p90_ms": 3.5, "mean_ms": 3.1, "std_ms": 0.2, "cv": 0.06, "runs": 20}
CONFIGS = {"hash-a": {"x": 1}, "hash-b": {"x": 2}}
SHAPES = {"hash-a": [1, 8, 8], "hash-b": [1, 8, 8]}


@pytest.fixture
def setup(migrated_sqlite_url: str) -> Iterator[tuple[sessionmaker[Session], JobLatencyPlan]]:
    with factories.session_factory(migrated_sqlite_url) as factory:
        with transaction(factory) as session:
            device = factories.device(session, "edge", descriptor={"batch_size": 4})
            factories.supernet(session)
            plan = JobLatencyPlan(agents=[AgentDevice(device.id, "edge", 4)])
        yield factory, plan


def _wait(
    factory: sessionmaker[Session], plan: JobLatencyPlan, state: str = "held", **kw: Any
) -> Any:
    options: dict[str, Any] = {"poll_s": 0.05, "timeout_s": 30.0} | kw
    return measure_on_agents(factory, plan, None, 1, SHAPES, CONFIGS, lambda: state, **options)


def _agent_answers(factory: sessionmaker[Session], stop: threading.Event) -> None:
    """A stand-in agent: claims whatever is queued and posts a result for it."""
    while not stop.wait(0.05):
        with transaction(factory) as session:
            claimed = tasks.claim(session, 1, "stand-in", 10, 30.0, 3)
            for task in claimed:
                stats = {**STATS, "median_ms": 3.0 + task.id, "p90_ms": 9.0 + task.id}
                tasks.store_result(session, task.id, "stand-in", stats, {"threads": 1})


def test_results_become_metrics_and_measurements(
    setup: tuple[sessionmaker[Session], JobLatencyPlan],
) -> None:
    factory, plan = setup
    stop = threading.Event()
    agent = threading.Thread(target=_agent_answers, args=(factory, stop))
    agent.start()
    try:
        metrics, latencies = _wait(factory, plan)
    finally:
        stop.set()
        agent.join()
    with transaction(factory) as session:
        ids = dict(session.execute(select(MeasurementTask.config_hash, MeasurementTask.id)).all())
    assert metrics == {h: {"latency@edge": 3.0 + ids[h]} for h in CONFIGS}
    assert {(m.config_hash, m.source, m.median_ms) for m in latencies} == {
        (h, "agent", 3.0 + ids[h]) for h in CONFIGS
    }
    assert all(
        m.runtime["batch_size"] == 4 and m.runtime["agent_id"] == "stand-in" for m in latencies
    )


@pytest.mark.parametrize(
    ("state", "raised", "status"),
    [("cancel_requested", JobInterrupted, "cancelled"), ("released", JobInterrupted, "released"),
     ("lost", LostLeaseError, None)],
)  # fmt: skip
def test_wait_stops_when_the_job_must(
    setup: tuple[sessionmaker[Session], JobLatencyPlan],
    state: str,
    raised: type[Exception],
    status: str | None,
) -> None:
    factory, plan = setup
    with pytest.raises(raised) as caught:
        _wait(factory, plan, state)
    if status is not None:
        assert caught.value.status == status
    with transaction(factory) as session:  # the queued tasks stay for an agent to measure
        assert len(list(session.scalars(select(MeasurementTask)))) == 2


def test_failed_task_and_timeout_fail_the_wait_with_advice(
    setup: tuple[sessionmaker[Session], JobLatencyPlan],
) -> None:
    factory, plan = setup
    with pytest.raises(AgentMeasurementError, match="hwnas agent"):
        _wait(factory, plan, timeout_s=0.2)

    def crash_agents() -> str:  # called while waiting: the tasks fail under the worker's eyes
        with transaction(factory) as session:
            session.execute(update(MeasurementTask).values(status="failed", error="agent crashed"))
        return "held"

    with pytest.raises(AgentMeasurementError, match="agent crashed"):
        measure_on_agents(factory, plan, None, 1, SHAPES, CONFIGS, crash_agents, 0.05, 30.0)
