"""Test rows in one place: a supernet, device, job, candidate or measurement-task row that the
service would accept, with only what a test cares about given; and the database clock, so tests
move time on the database instead of sleeping against it.

Every function takes an open session and flushes (so ids are set) but never commits; wrap calls in
`transaction(factory)` as the service does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_session_factory
from service.db.models import Candidate, Device, Job, MetricValue, Supernet
from service.jobs import queue
from service.latency import tasks as task_queue

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other row of this test run has (names are unique columns)."""
    return f"{prefix}-{next(_serial)}"


@contextmanager
def session_factory(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on `url` (already migrated); the engine is disposed when the block ends."""
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def supernet(session: Session, name: str | None = None, **fields: Any) -> Supernet:
    """A supernet row without weights: enough for queue, task and store tests."""
    row = Supernet(
        name=name or unique("supernet"),
        **{"family": "f", "dataset": "d", "search_space": [], "exact_ranges": {}, **fields},
    )
    session.add(row)
    session.flush()
    return row


def device(
    session: Session,
    name: str | None = None,
    kind: str = "agent",
    descriptor: Mapping[str, Any] | None = None,
) -> Device:
    row = Device(name=name or unique(kind), kind=kind, descriptor=dict(descriptor or {}))
    session.add(row)
    session.flush()
    return row


def job(
    session: Session,
    supernet_id: int | None = None,
    budget: int = 4,
    spec: Mapping[str, Any] | None = None,
) -> Job:
    """A queued job, created the way the API creates one (`queue.create_job`)."""
    if supernet_id is None:
        supernet_id = supernet(session).id
    return queue.create_job(session, supernet_id, dict(spec or {"budget": budget}), budget=budget)


def candidate(
    session: Session,
    job_id: int,
    metrics: Mapping[str, float] | None = None,
    predicted: Sequence[str] = (),
    pareto_role: str | None = None,
    iteration: int = 0,
    origin: str = "search",
) -> Candidate:
    """A stored candidate of `job_id` with its `metrics` (full names, e.g. `latency@host`), all
    measured but those named in `predicted` (LUT estimates)."""
    serial = next(_serial)
    row = Candidate(
        job_id=job_id,
        config={"serial": serial},
        config_hash=f"{serial:064x}",
        iteration=iteration,
        origin=origin,
        pareto_role=pareto_role,
    )
    session.add(row)
    session.flush()
    for metric, value in (metrics or {}).items():
        source = "predicted" if metric in predicted else "measured"
        session.add(MetricValue(candidate_id=row.id, metric=metric, value=value, source=source))
    session.flush()
    return row


def tasks(
    session: Session,
    device_id: int,
    supernet_id: int,
    configs: Mapping[str, Mapping[str, Any]],
    batch_size: int = 8,
    job_id: int | None = None,
    input_shape: Sequence[int] = (1, 32, 32),
) -> dict[str, int]:
    """Measurement tasks queued the way the worker queues them; config hash → task id."""
    return task_queue.enqueue(
        session,
        device_id,
        supernet_id,
        job_id,
        configs,
        {config_hash: list(input_shape) for config_hash in configs},
        batch_size,
    )


def db_clock(session: Session, offset_s: float = 0.0) -> ColumnElement[Any]:
    """The database's clock plus `offset_s` (negative: the past), in the form the dialect stores
    timestamps in, as the service writes leases and heartbeats."""
    if session.get_bind().dialect.name == "postgresql":
        return func.now() + literal(timedelta(seconds=offset_s))
    return func.datetime("now", f"{offset_s:+.3f} seconds")
