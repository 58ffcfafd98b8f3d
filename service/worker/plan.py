"""What a claimed job needs (`JobPlan`, read once) and its lease (`Heartbeat`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from service.catalog import supernets as supernet_catalog
from service.db.engine import in_transaction
from service.evaluation.profile import DeviceProfile
from service.jobs import queue
from service.jobs.evaluations import CacheKey
from service.jobs.specs import JobSpec
from service.latency.sources import latency_devices
from service.search.spec import SearchSpec
from service.supernets.data_options import DataOptions
from service.supernets.space import SearchSpace
from service.worker.latency import JobLatencyPlan, plan_job_latency

log = logging.getLogger("hwnas.worker")


@dataclass(frozen=True)
class JobPlan:
    """What a claimed job needs, read once from the database."""

    job_id: int
    key: CacheKey
    family: str
    checkpoint: str | None
    data_options: DataOptions | None
    space: SearchSpace
    spec: SearchSpec
    devices: list[DeviceProfile]  # host devices this worker measures on
    device_ids: dict[str, int]
    latency: JobLatencyPlan

    @property
    def validated_metrics(self) -> list[str]:
        """The metrics validation provides (and the cache holds): all but LUT estimates."""
        return [m for m in self.spec.metrics if m not in self.latency.lut_metrics]

    @property
    def needs_validation(self) -> bool:
        """Whether networks are measured (accuracy, host latency), not only computed."""
        return "accuracy" in self.spec.metrics or bool(self.devices)


def load_plan(session: Session, job_id: int) -> JobPlan:
    job = queue.get_job(session, job_id)
    supernet = supernet_catalog.get_supernet(session, job.supernet_id)
    job_spec = JobSpec.from_json(job.spec)
    spec = job_spec.search
    devices = latency_devices(session, spec)
    latency = plan_job_latency(session, supernet, devices, job_spec.latency_sources)
    return JobPlan(
        job_id=job.id,
        key=CacheKey(supernet.id, supernet.dataset),
        family=supernet.family,
        checkpoint=supernet.checkpoint_uri,
        data_options=DataOptions.from_json(supernet.data_options),
        space=SearchSpace.from_json(supernet.search_space),
        spec=spec,
        devices=latency.hosts,
        device_ids={d.name: d.id for d in devices},
        latency=latency,
    )


class Heartbeat:
    """Beats for one job in a background thread; records a lost lease or a cancel request."""

    def __init__(
        self, factory: sessionmaker[Session], job_id: int, worker_id: str, interval_s: float
    ) -> None:
        self._factory, self._job_id, self._worker_id = factory, job_id, worker_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.state: queue.LeaseState = "held"
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def beat(self) -> queue.LeaseState:
        self.state = in_transaction(
            self._factory, lambda session: queue.heartbeat(session, self._job_id, self._worker_id)
        )
        return self.state

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                if self.beat() == "lost":
                    return
            except Exception:  # a missed beat is retried; the grace period covers a few
                log.exception("heartbeat for job %s failed", self._job_id)
