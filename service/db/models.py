"""ORM tables. Rows never leave the service layer; responses are built from `schemas`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.engine import Base


class JobStatus(StrEnum):
    """A job's state: queued → running → succeeded | failed | cancelled (see `jobs.queue`)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    """A measurement task's state: queued → leased → done | failed (see `latency.tasks`)."""

    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


JOB_STATUSES = tuple(JobStatus)
FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
DEVICE_KINDS = ("host", "agent", "lut-only")
METRIC_SOURCES = ("measured", "predicted")


def _status_column(enum: type[StrEnum]) -> Any:
    """A VARCHAR(20) holding the member's value (the same strings as before the enums)."""
    return mapped_column(
        Enum(
            enum,
            native_enum=False,
            create_constraint=False,
            length=20,
            values_callable=lambda members: [m.value for m in members],
        ),
        default=enum("queued"),
    )


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Supernet(Base):
    __tablename__ = "supernets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    family: Mapped[str] = mapped_column(String(200))
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(200))
    search_space: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # Exact metric ranges over the space, e.g. {"macs": [smallest, largest]}, to pick constraints.
    exact_ranges: Mapped[dict[str, list[float]]] = mapped_column(JSON)
    # What the family was registered with beside its checkpoint (image folder, splits,
    # resolutions; `service.supernets.data_options`); None for families with their own data.
    data_options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _now()


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    descriptor: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = _now()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[JobStatus] = _status_column(JobStatus)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    validations_used: Mapped[int] = mapped_column(Integer, default=0)
    budget: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    supernet: Mapped[Supernet] = relationship(lazy="raise")


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("job_id", "config_hash"),
        Index("ix_candidates_job_id_id", "job_id", "id"),
        Index("ix_candidates_job_id_pareto_role", "job_id", "pareto_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    iteration: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(40))
    # "front" (feasible, non-dominated), "closest" (least violating while none is feasible) or None;
    # the worker rewrites it after every batch so reading the front is one indexed query.
    pareto_role: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = _now()

    metric_values: Mapped[list[MetricValue]] = relationship(lazy="raise")


class MetricValue(Base):
    """One metric of one candidate; `metric` is the full name, e.g. `latency@host`."""

    __tablename__ = "metric_values"
    __table_args__ = (UniqueConstraint("candidate_id", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))


class EvaluationCacheEntry(Base):
    """A validated metric shared across jobs, keyed by (supernet, dataset, config hash, metric)."""

    __tablename__ = "evaluation_cache"
    __table_args__ = (UniqueConstraint("supernet_id", "dataset", "config_hash", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id", ondelete="CASCADE"))
    dataset: Mapped[str] = mapped_column(String(200))
    config_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    value: Mapped[float] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class JobIteration(Base):
    __tablename__ = "job_iterations"
    __table_args__ = (UniqueConstraint("job_id", "iteration"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    hypervolume: Mapped[float | None] = mapped_column(Float)
    front_size: Mapped[int] = mapped_column(Integer)
    validations_used: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = _now()


class PredictorFit(Base):
    __tablename__ = "predictor_fits"
    __table_args__ = (UniqueConstraint("job_id", "iteration", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200))
    n_train: Mapped[int | None] = mapped_column(Integer)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)


class LatencyMeasurement(Base):
    __tablename__ = "latency_measurements"
    __table_args__ = (
        Index("ix_latency_measurements_lookup", "device_id", "supernet_id", "config_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id", ondelete="CASCADE"))
    config_hash: Mapped[str] = mapped_column(String(64))
    mean_ms: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    runtime: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(20))
    predicted_ms: Mapped[float | None] = mapped_column(Float)  # the device's LUT estimate
    predicted_by: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = _now()


class MeasurementTask(Base):
    """One sub-network waiting to be measured by a device agent (the agents' queue).

    Keyed by what is measured (device, supernet, config, batch size), not by job: a network is
    measured once per device however many jobs ask. The result lives on the row, so a second
    result for the same task is refused and nothing is duplicated.
    """

    __tablename__ = "measurement_tasks"
    __table_args__ = (
        UniqueConstraint("device_id", "supernet_id", "config_hash", "batch_size"),
        Index("ix_measurement_tasks_device_status", "device_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    supernet_id: Mapped[int] = mapped_column(ForeignKey("supernets.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    config_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    batch_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[TaskStatus] = _status_column(TaskStatus)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    agent_id: Mapped[str | None] = mapped_column(String(200))
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    runtime: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeviceLatencyTable(Base):
    """An uploaded latency lookup table of one device for one supernet family."""

    __tablename__ = "latency_tables"
    __table_args__ = (Index("ix_latency_tables_device_family", "device_id", "family"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    family: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    source_name: Mapped[str | None] = mapped_column(String(300))
    descriptor: Mapped[dict[str, Any]] = mapped_column(JSON)
    measurement: Mapped[dict[str, Any]] = mapped_column(JSON)
    unmapped_keys: Mapped[list[str]] = mapped_column(JSON)
    renamed_keys: Mapped[dict[str, str]] = mapped_column(JSON)
    entries_count: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _now()


class LatencyTableEntry(Base):
    """One op key of an uploaded table with its latency statistics in ms."""

    __tablename__ = "latency_table_entries"
    __table_args__ = (UniqueConstraint("table_id", "op_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("latency_tables.id", ondelete="CASCADE"))
    op_key: Mapped[str] = mapped_column(String(500))
    mean_ms: Mapped[float] = mapped_column(Float)
    std_ms: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float | None] = mapped_column(Float)
    p90_ms: Mapped[float | None] = mapped_column(Float)
    cv: Mapped[float | None] = mapped_column(Float)
