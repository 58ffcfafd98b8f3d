"""Upgrading a database that holds data: for every revision older than head, a database is created
at that revision, filled with representative rows by plain SQL (the code of that time wrote them,
not today's models), upgraded to head; the rows must read back unchanged through today's models,
the schema must match the models, and today's code must be able to write next to them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import factories
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, func, inspect, select, text
from sqlalchemy.engine import Connection

import service.db.models  # noqa: F401  (registers every table on Base.metadata)
from service.db.engine import (
    Base,
    alembic_config,
    check_schema_current,
    make_engine,
    make_session_factory,
    upgrade_database,
)
from service.db.engine import transaction as in_transaction
from service.db.models import LatencyMeasurement, MeasurementTask
from service.latency import tasks as task_queue

# base → head, e.g. ["0001", "0002", "0003"]
REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(alembic_config("")).walk_revisions()))
]
OLDER_REVISIONS = REVISIONS[:-1]
WHEN = "2026-11-20 10:00:00"


@dataclass(frozen=True)
class Ref:
    """The id of the row named `key`, known once it is inserted."""

    key: str


@dataclass(frozen=True)
class Row:
    """One row as the code at revision `since` wrote it. `replaced_in`: the revision whose
    migration drops the table this row lives in (its rows are not kept, by design)."""

    key: str
    table: str
    values: Mapping[str, Any]
    since: str = "0001"
    replaced_in: str | None = None
    survives: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "survives", self.replaced_in is None)

    def exists_at(self, revision: str) -> bool:
        at = REVISIONS.index(revision)
        if REVISIONS.index(self.since) > at:
            return False
        return self.replaced_in is None or REVISIONS.index(self.replaced_in) > at


STATS = {"median_ms": 2.0, "p90_ms": 2.5, "mean_ms": 2.1, "std_ms": 0.2, "cv": 0.1, "runs": 10}
ROWS = [
    Row("supernet", "supernets", {
        "name": "digits", "family": "mbv3-digits", "checkpoint_uri": "/ckpt/digits.pt",
        "checkpoint_sha256": "ab" * 32, "dataset": "digits",
        "search_space": [{"name": "d0", "choices": [2, 3, 4]}],
        "exact_ranges": {"macs": [1.5e5, 3.2e6]}}),
    Row("host", "devices", {"name": "host", "kind": "host", "descriptor": {"threads": 1}}),
    Row("edge", "devices", {"name": "edge", "kind": "agent", "descriptor": {"os": "linux"}}),
    Row("job", "jobs", {
        "supernet_id": Ref("supernet"), "spec": {"objectives": ["accuracy:max"], "budget": 8},
        "status": "running", "attempts": 2, "worker_id": "box:41:abc123", "heartbeat_at": WHEN,
        "cancel_requested": False, "validations_used": 4, "budget": 8, "error": None,
        "started_at": WHEN, "finished_at": None}),
    Row("done_job", "jobs", {
        "supernet_id": Ref("supernet"), "spec": {"budget": 2}, "status": "failed",
        "attempts": 1, "worker_id": None, "heartbeat_at": WHEN, "cancel_requested": True,
        "validations_used": 2, "budget": 2, "error": "worker stopped beating",
        "started_at": WHEN, "finished_at": WHEN}),
    Row("candidate", "candidates", {
        "job_id": Ref("job"), "config": {"d0": 3}, "config_hash": "c" * 64, "iteration": 1,
        "origin": "search", "pareto_role": "front"}),
    Row("accuracy", "metric_values", {
        "candidate_id": Ref("candidate"), "metric": "accuracy", "device_id": None,
        "value": 97.25, "source": "measured"}),
    Row("latency", "metric_values", {
        "candidate_id": Ref("candidate"), "metric": "latency@host", "device_id": Ref("host"),
        "value": 1.75, "source": "measured"}),
    Row("cached", "evaluation_cache", {
        "supernet_id": Ref("supernet"), "dataset": "digits", "config_hash": "c" * 64,
        "config": {"d0": 3}, "metric": "accuracy", "device_id": None, "value": 97.25,
        "job_id": Ref("job")}),
    Row("iteration", "job_iterations", {
        "job_id": Ref("job"), "iteration": 1, "hypervolume": 0.42, "front_size": 3,
        "validations_used": 4, "seconds": 12.5}),
    Row("fit", "predictor_fits", {
        "job_id": Ref("job"), "iteration": 1, "metric": "accuracy", "model": "ridge",
        "n_train": 4, "scores": {"ridge": {"kendall_tau": 0.6}}}),
    Row("measurement", "latency_measurements", {
        "device_id": Ref("host"), "supernet_id": Ref("supernet"), "config_hash": "c" * 64,
        "mean_ms": 1.8, "stats": STATS, "runtime": {"threads": 1}, "source": "host"}),
    # 0001's queue (one task per candidate) was never written to; 0002 replaces the table.
    Row("old_task", "measurement_tasks", {
        "device_id": Ref("edge"), "candidate_id": Ref("candidate"), "status": "queued",
        "lease_expires_at": None, "attempts": 0, "agent_id": None}, replaced_in="0002"),
    Row("lut", "latency_tables", {
        "device_id": Ref("edge"), "family": "mbv3-digits", "format": "ofa-yaml",
        "source_name": "note10.yaml", "descriptor": {"hardware": "npu"},
        "measurement": {"runs": 20}, "unmapped_keys": ["Foreign-op"],
        "renamed_keys": {"old": "new"}, "entries_count": 1, "fingerprint": "f" * 64,
        "calibration": None}, since="0002"),
    Row("lut_entry", "latency_table_entries", {
        "table_id": Ref("lut"), "op_key": "Conv-input:32x32x1-output:16x16x16", "mean_ms": 0.12,
        "std_ms": 0.01, "count": 20, "median_ms": 0.11, "p90_ms": 0.14, "cv": 0.08},
        since="0002"),
    Row("task", "measurement_tasks", {
        "device_id": Ref("edge"), "supernet_id": Ref("supernet"), "job_id": Ref("job"),
        "config_hash": "c" * 64, "config": {"d0": 3}, "input_shape": [1, 32, 32],
        "batch_size": 8, "status": "leased", "lease_expires_at": WHEN, "attempts": 1,
        "agent_id": "agent-a", "stats": None, "runtime": None, "error": None,
        "finished_at": None}, since="0002"),
    Row("done_task", "measurement_tasks", {
        "device_id": Ref("edge"), "supernet_id": Ref("supernet"), "job_id": None,
        "config_hash": "d" * 64, "config": {"d0": 2}, "input_shape": [1, 32, 32],
        "batch_size": 8, "status": "done", "lease_expires_at": None, "attempts": 1,
        "agent_id": "agent-b", "stats": {**STATS, "attempts": 1},
        "runtime": {"runtime": "onnxruntime"}, "error": None, "finished_at": WHEN},
        since="0002"),
]  # fmt: skip


def _tables_at(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _insert(connection: Connection, row: Row, ids: dict[str, int]) -> dict[str, Any]:
    """INSERT the row by plain SQL; the values as written, with references resolved."""
    values = {k: ids[v.key] if isinstance(v, Ref) else v for k, v in row.values.items()}
    columns = Base.metadata.tables[row.table].c
    bound = {  # JSON goes in as its text, as any client of that time would have sent it
        k: json.dumps(v) if k in columns and isinstance(columns[k].type, JSON) else v
        for k, v in values.items()
    }
    names = ", ".join(bound)
    placeholders = ", ".join(f":{k}" for k in bound)
    ids[row.key] = connection.execute(
        text(f"INSERT INTO {row.table} ({names}) VALUES ({placeholders}) RETURNING id"), bound
    ).scalar_one()
    return values


def _comparable(value: Any) -> Any:
    """Timestamps as the wall-clock text they were written as (both databases, any zone)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else value


@pytest.mark.parametrize("revision", OLDER_REVISIONS)
def test_upgrade_to_head_keeps_the_rows_of_an_older_revision(empty_url: str, revision: str) -> None:
    upgrade_database(empty_url, revision)
    engine = make_engine(empty_url)
    written: dict[str, tuple[Row, dict[str, Any]]] = {}
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        present = _tables_at(connection)
        rows = [row for row in ROWS if row.exists_at(revision)]
        assert {row.table for row in rows} == present, "ROWS must fill every table"
        for row in rows:
            written[row.key] = (row, _insert(connection, row, ids))
    engine.dispose()

    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    check_schema_current(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    models = {mapper.local_table.name: mapper.class_ for mapper in Base.registry.mappers}
    factory = make_session_factory(engine)
    with in_transaction(factory) as session:
        for key, (row, values) in written.items():
            if not row.survives:  # its table was replaced: it keeps only rows written since
                kept = sum(r.table == row.table and r.survives for r, _ in written.values())
                count = session.scalar(select(func.count()).select_from(models[row.table]))
                assert count == kept, f"{key}: {row.table} was replaced after {revision}"
                continue
            stored = session.get(models[row.table], ids[key])
            assert stored is not None, f"{key} ({row.table}) was lost"
            assert {k: _comparable(getattr(stored, k)) for k in values} == values, key
            for column in Base.metadata.tables[row.table].c:
                if column.name == "created_at":
                    assert stored.created_at is not None  # type: ignore[attr-defined]
                elif column.name not in values and column.name != "id":  # added since
                    assert getattr(stored, column.name) is None, f"{key}.{column.name}"

    # today's code writes beside the old rows (sequences, defaults and constraints intact)
    with in_transaction(factory) as session:
        job = factories.job(session, supernet_id=ids["supernet"])
        measurement = LatencyMeasurement(
            device_id=ids["host"], supernet_id=ids["supernet"], config_hash="e" * 64,
            mean_ms=1.0, stats=STATS, runtime={}, source="host", predicted_ms=0.9,
            predicted_by="lut-sum:1",
        )  # fmt: skip
        session.add(measurement)
        new_tasks = factories.tasks(
            session, ids["edge"], ids["supernet"], {"e" * 64: {"d0": 4}}, job_id=job.id
        )
        claimed = task_queue.claim(session, ids["edge"], "agent-new", 10, 60.0, 3)
        session.flush()
        assert job.id not in (ids["job"], ids["done_job"]) and measurement.id != ids["measurement"]
        assert set(new_tasks.values()) <= {t.id for t in claimed}
        assert session.get(MeasurementTask, new_tasks["e" * 64]) is not None
    engine.dispose()
