"""Where a running job gets latency for each device: the host (the worker measures), a device
agent (the worker queues measurement tasks and waits for them) or the device's LUT (estimated).

The worker reads a `JobLatencyPlan` once per claim; `measure_on_agents` and `lut_values` fill in
the `latency@<device>` metrics of a batch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from latency_tables import LatencyTableError
from service.catalog import devices as device_catalog
from service.db.engine import transaction
from service.db.models import Device, JobStatus, Supernet, TaskStatus
from service.errors import LostLeaseError
from service.evaluation.profile import DeviceProfile
from service.jobs.evaluations import MeasuredLatency
from service.latency import sources as latency_sources
from service.latency import tasks
from service.search.metrics import MetricName
from service.search.records import Evaluation
from service.supernets.protocol import Supernet as SupernetModel

log = logging.getLogger(__name__)


class JobInterrupted(Exception):
    """The job must stop while waiting for agents: cancelled, or the worker is shutting down."""

    def __init__(self, status: Literal[JobStatus.CANCELLED, "released"]) -> None:
        super().__init__(status)
        self.status = status


class AgentMeasurementError(RuntimeError):
    """An agent device's tasks failed or timed out; the job fails with this message."""


@dataclass(frozen=True)
class AgentDevice:
    device_id: int
    name: str
    batch_size: int


@dataclass(frozen=True)
class JobLatencyPlan:
    """Host profiles to measure with, agent devices to queue tasks for, LUTs to estimate from."""

    hosts: list[DeviceProfile] = field(default_factory=list)
    agents: list[AgentDevice] = field(default_factory=list)
    luts: list[latency_sources.LutLatency] = field(default_factory=list)
    # tables of measured devices: their estimate is stored beside each measurement
    companion_luts: list[latency_sources.LutLatency] = field(default_factory=list)

    @property
    def lut_metrics(self) -> set[str]:
        return {str(MetricName.latency(lut.device_name)) for lut in self.luts}


def plan_job_latency(
    session: Session,
    supernet: Supernet,
    devices: Sequence[Device],
    sources: Mapping[str, latency_sources.LatencySource],
) -> JobLatencyPlan:
    """The plan for a job's latency devices; `sources` as stored with the job (defaults by kind)."""
    plan = JobLatencyPlan()
    for device in devices:
        source = sources.get(device.name, latency_sources.DEFAULT_LATENCY_SOURCE[device.kind])
        if source == "lut":
            plan.luts.append(latency_sources.lut_latency(session, device, supernet.family))
            continue
        companion = latency_sources.lut_latency_if_any(session, device, supernet.family)
        if companion is not None:
            plan.companion_luts.append(companion)
        if device.kind == "agent":
            batch_size = int(device.descriptor.get("batch_size", DeviceProfile.batch_size))
            plan.agents.append(AgentDevice(device.id, device.name, batch_size))
        else:
            plan.hosts.append(device_catalog.host_profile_from(device.name, device.descriptor))
    return plan


def lut_values(
    plan: JobLatencyPlan, supernet: SupernetModel, configs: Sequence[Mapping[str, Any]]
) -> list[dict[str, float]]:
    """`latency@<device>` per config for every LUT device of the plan."""
    values: list[dict[str, float]] = [{} for _ in configs]
    if not plan.luts or not configs:
        return values
    keys = [supernet.layer_keys(supernet.canonical(c)) for c in configs]
    for lut in plan.luts:
        for row, estimate in zip(values, lut.estimate_ms(keys), strict=True):
            row[str(MetricName.latency(lut.device_name))] = float(estimate)
    return values


def with_lut_predictions(
    plan: JobLatencyPlan,
    supernet: SupernetModel,
    configs: Mapping[str, Mapping[str, Any]],
    latencies: Sequence[MeasuredLatency],
) -> list[MeasuredLatency]:
    """Measurements completed with their device's LUT estimate, where the device has a table;
    `configs` by config hash."""
    companions = {lut.device_name: lut for lut in plan.companion_luts}
    wanted = [m for m in latencies if m.device_name in companions]
    if not wanted:
        return list(latencies)
    predicted: dict[tuple[str, str], tuple[float, str]] = {}
    for name, lut in companions.items():
        hashes = sorted({m.config_hash for m in wanted if m.device_name == name})
        keys = [supernet.layer_keys(supernet.canonical(configs[h])) for h in hashes]
        try:
            estimates = lut.estimate_ms(keys)
        except LatencyTableError as error:  # a table that misses ops: measure, just don't compare
            log.warning("device %s: no LUT estimate stored beside measurements: %s", name, error)
            continue
        for config_hash, estimate in zip(hashes, estimates, strict=True):
            predicted[(name, config_hash)] = (float(estimate), f"{lut.method}:{lut.table_id}")
    completed = []
    for measurement in latencies:
        found = predicted.get((measurement.device_name, measurement.config_hash))
        if found is not None:
            measurement = dataclasses.replace(
                measurement, predicted_ms=found[0], predicted_by=found[1]
            )
        completed.append(measurement)
    return completed


def with_lut_values(
    plan: JobLatencyPlan, supernet: SupernetModel, evaluations: Sequence[Evaluation]
) -> list[Evaluation]:
    """Evaluations (e.g. warm-start ones from the cache) completed with their LUT latencies."""
    if not plan.luts:
        return list(evaluations)
    extra = lut_values(plan, supernet, [e.config for e in evaluations])
    return [
        dataclasses.replace(e, metrics={**e.metrics, **values})
        for e, values in zip(evaluations, extra, strict=True)
    ]


def measure_on_agents(
    factory: sessionmaker[Session],
    plan: JobLatencyPlan,
    job_id: int | None,
    supernet_id: int,
    input_shapes: Mapping[str, Sequence[int]],
    configs: Mapping[str, Mapping[str, Any]],
    lease_state: Callable[[], str],
    poll_s: float,
    timeout_s: float,
) -> tuple[dict[str, dict[str, float]], list[MeasuredLatency]]:
    """Queue one task per config (with its input shape, keyed like `configs` by config hash) and
    agent device, wait for every result, and return the
    `latency@<device>` (median ms) per config hash with the measurements to store.

    `lease_state()` is polled while waiting: "lost" raises `LostLeaseError`, "cancel_requested"
    and "released" raise `JobInterrupted`.
    """
    if not plan.agents or not configs:
        return {h: {} for h in configs}, []
    with transaction(factory) as session:
        task_ids = {
            agent: tasks.enqueue(
                session,
                agent.device_id,
                supernet_id,
                job_id,
                configs,
                input_shapes,
                agent.batch_size,
            )
            for agent in plan.agents
        }
    done = _wait_for_tasks(factory, task_ids, job_id, lease_state, poll_s, timeout_s)
    return _agent_results(configs, task_ids, done)


def _wait_for_tasks(
    factory: sessionmaker[Session],
    task_ids: Mapping[AgentDevice, Mapping[str, int]],
    job_id: int | None,
    lease_state: Callable[[], str],
    poll_s: float,
    timeout_s: float,
) -> dict[int, tasks.TaskOutcome]:
    """Poll until every task is done; raise when one fails, the wait times out or the job must
    stop (see `measure_on_agents`)."""
    deadline = time.monotonic() + timeout_s
    pending = {tid for ids in task_ids.values() for tid in ids.values()}
    done: dict[int, tasks.TaskOutcome] = {}
    while pending:
        with transaction(factory) as session:
            found = tasks.outcomes(session, sorted(pending))
        for task_id, outcome in found.items():
            if outcome.status == TaskStatus.FAILED:
                raise AgentMeasurementError(
                    f"measurement task {task_id} failed: {outcome.error}; is `hwnas agent` "
                    "running for its device and able to measure?"
                )
            if outcome.status == TaskStatus.DONE:
                done[task_id] = outcome
                pending.discard(task_id)
        if not pending:
            break
        state = lease_state()
        if state == "lost":
            raise LostLeaseError(f"job {job_id} is no longer held")
        if state in ("cancel_requested", "released"):
            raise JobInterrupted(JobStatus.CANCELLED if state == "cancel_requested" else "released")
        if time.monotonic() > deadline:
            names = sorted({a.name for a, ids in task_ids.items() if pending & set(ids.values())})
            raise AgentMeasurementError(
                f"{len(pending)} measurement task(s) on device(s) {names} got no result within "
                f"{timeout_s:g} s; start `hwnas agent --server URL --device NAME --token TOKEN` "
                "on each device (or raise HWNAS_AGENT_WAIT_TIMEOUT_S)"
            )
        time.sleep(poll_s)
    return done


def _agent_results(
    configs: Mapping[str, Mapping[str, Any]],
    task_ids: Mapping[AgentDevice, Mapping[str, int]],
    done: Mapping[int, tasks.TaskOutcome],
) -> tuple[dict[str, dict[str, float]], list[MeasuredLatency]]:
    """`latency@<device>` per config hash, and the measurements to store, from finished tasks."""
    metrics: dict[str, dict[str, float]] = {h: {} for h in configs}
    latencies: list[MeasuredLatency] = []
    for agent, ids in task_ids.items():
        for config_hash, task_id in ids.items():
            outcome = done[task_id]
            assert outcome.stats is not None
            median_ms = float(outcome.stats["median_ms"])
            metrics[config_hash][str(MetricName.latency(agent.name))] = median_ms
            latencies.append(
                MeasuredLatency(
                    config_hash=config_hash,
                    device_name=agent.name,
                    median_ms=median_ms,
                    stats=dict(outcome.stats),
                    runtime={
                        **(outcome.runtime or {}),
                        "batch_size": agent.batch_size,
                        "agent_id": outcome.agent_id,
                        "task_id": task_id,
                    },
                    source="agent",
                )
            )
    return metrics, latencies
