"""The front as served: built once per job version, kept as JSON bytes, named by an ETag.

A job's front changes only when the worker stores validations (`evaluations.store_batch` or
`store_validations`: new candidates, progress), when it ends a round (`store_batch` or
`store_round`: `pareto_role` rewritten beside a new iteration row) or when its status changes.
So (status, validations used, newest candidate id, newest iteration id) — one primary-key lookup
and two index probes — names a version of the front; a request for a version
already built reads the cached bytes, and a client that sends that version's ETag in
`If-None-Match` gets a 304 without a body.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from service.db.models import Candidate, Job, JobIteration
from service.errors import NotFoundError
from service.jobs.results import pareto_out

# Jobs whose front is kept in memory; each entry is the front's JSON (tens of kB at most).
CACHED_JOBS = 256


@dataclass(frozen=True)
class ServedFront:
    etag: str
    body: bytes


# Built once (statement construction costs more than the indexed lookups it runs), executed
# on the session's connection without the ORM layer.
_VERSION = select(
    Job.status,
    Job.validations_used,
    select(func.max(Candidate.id)).where(Candidate.job_id == bindparam("job_id")).scalar_subquery(),
    select(func.max(JobIteration.id))
    .where(JobIteration.job_id == bindparam("job_id"))
    .scalar_subquery(),
).where(Job.id == bindparam("job_id"))

FrontVersion = tuple[str, int, int, int]


def front_version(session: Session, job_id: int) -> FrontVersion:
    """(status, validations used, newest candidate id, newest iteration id) of the job; 404 if
    there is none."""
    row = session.connection().execute(_VERSION, {"job_id": job_id}).one_or_none()
    if row is None:
        raise NotFoundError(f"job {job_id} not found")
    status, validations_used, newest_id, newest_iteration = row
    return str(status), int(validations_used), int(newest_id or 0), int(newest_iteration or 0)


def etag_of(job_id: int, version: FrontVersion) -> str:
    digest = hashlib.blake2s(repr((job_id, version)).encode(), digest_size=8).hexdigest()
    return f'"front-{digest}"'


class FrontCache:
    """The latest served front of up to `CACHED_JOBS` jobs, shared by a process's threads."""

    def __init__(self, capacity: int = CACHED_JOBS) -> None:
        self._capacity = capacity
        self._fronts: OrderedDict[int, ServedFront] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def etag(self, session: Session, job_id: int) -> str:
        return etag_of(job_id, front_version(session, job_id))

    def front(self, session: Session, job_id: int, etag: str | None = None) -> ServedFront:
        """The front named `etag` (the job's current version when not given)."""
        etag = etag or self.etag(session, job_id)
        cached = self._cached(job_id, etag)
        if cached is not None:
            return cached
        # One build at a time: the requests that arrive while a new version is built wait for
        # it rather than each building the same front (and fighting over the GIL to do so).
        with self._building:
            cached = self._cached(job_id, etag)
            if cached is not None:
                return cached
            # Under READ COMMITTED the front may be a batch newer than `etag`: the next request
            # then sees a newer version and rebuilds; a front is never older than its tag.
            built = ServedFront(etag, pareto_out(session, job_id).model_dump_json().encode())
            with self._lock:
                self._fronts[job_id] = built
                self._fronts.move_to_end(job_id)
                while len(self._fronts) > self._capacity:
                    self._fronts.popitem(last=False)
        return built

    def _cached(self, job_id: int, etag: str) -> ServedFront | None:
        with self._lock:
            cached = self._fronts.get(job_id)
            if cached is None or cached.etag != etag:
                return None
            self._fronts.move_to_end(job_id)
            return cached
