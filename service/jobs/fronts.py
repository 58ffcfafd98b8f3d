"""The front as served: built once per job version, kept as JSON bytes, named by an ETag.

A job's front changes only when the worker stores validations (`evaluations.store_batch` or
`store_validations`: new candidates, progress), when it ends a round (`store_batch` or
`store_round`: `pareto_role` rewritten beside a new iteration row) or when its status changes.
So (status, validations used, newest candidate id, newest iteration id) — one primary-key lookup
and two index probes — names a version of the front; a request for a version
already built reads the cached bytes, and a client that sends that version's ETag in
`If-None-Match` gets a 304 without a body.

Even that lookup costs a trip to the thread pool, which under load costs more than the query
(docs/benchmarks.md, issue 20). So a version compared with the database less than
`HWNAS_FRONT_MAX_AGE_S` ago (0.5 s by default) is served from memory; a request with
`Cache-Control: no-cache` always compares, and reading the job (`GET /v1/jobs/{id}`) marks a kept
front of another status or count for comparison.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from service.db.models import Candidate, Job, JobIteration
from service.errors import NotFoundError
from service.jobs.results import pareto_out

# Jobs whose front is kept in memory; each entry is the front's JSON (tens of kB at most).
CACHED_JOBS = 256


FrontVersion = tuple[str, int, int, int]

# While one request compares a stale front with the database, the others are served the kept
# one, but never one whose last comparison is older than this.
STALE_LIMIT_S = 5.0


@dataclass(frozen=True)
class ServedFront:
    etag: str
    body: bytes
    version: FrontVersion


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


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (or `*`)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@dataclass
class _Kept:
    front: ServedFront
    checked_at: float  # time.monotonic() when its version was last compared with the database
    refreshing: bool = False


class FrontCache:
    """The latest served front of up to `CACHED_JOBS` jobs, shared by a process's threads.

    A front whose version was compared with the database less than `max_age_s` ago is served
    from memory (no thread, no query); past that, one request compares it again while the others
    keep getting the kept front (for at most `STALE_LIMIT_S`). `max_age_s = 0` compares on every
    request.
    """

    def __init__(self, capacity: int = CACHED_JOBS, max_age_s: float = 0.0) -> None:
        self._capacity = capacity
        self._max_age_s = max_age_s
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def from_memory(self, job_id: int, *, claim_refresh: bool = True) -> ServedFront | None:
        """The kept front when it may be served without the database; None when the caller must
        call `current` (and, if this returned None for a stale front, is the one refreshing it).
        `claim_refresh=False` only looks: a caller that will not refresh leaves it to the next."""
        if self._max_age_s <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(job_id)
            if kept is None:
                return None
            age = now - kept.checked_at
            if age < self._max_age_s or (kept.refreshing and age < STALE_LIMIT_S):
                return kept.front
            if claim_refresh:
                kept.refreshing = True
            return None

    def seen(self, job_id: int, status: str, validations_used: int) -> None:
        """A job row read by another route: a kept front of an older status or count is
        compared again on its next request (so a client that saw the job finish then reads its
        final front)."""
        with self._lock:
            kept = self._kept.get(job_id)
            if kept is not None and kept.front.version[:2] != (status, validations_used):
                kept.checked_at = -math.inf

    def current(self, session: Session, job_id: int) -> ServedFront:
        """The front at the job's version in the database: kept bytes when that version was
        built already; 404 if there is no such job."""
        try:
            version = front_version(session, job_id)
        except BaseException:
            with self._lock:
                self._kept.pop(job_id, None)
            raise
        etag = etag_of(job_id, version)
        front = self._kept_front(job_id, etag)
        if front is None:
            front = self._build(session, job_id, etag, version)
        with self._lock:
            self._kept[job_id] = _Kept(front, time.monotonic())
            self._kept.move_to_end(job_id)
            while len(self._kept) > self._capacity:
                self._kept.popitem(last=False)
        return front

    def _build(
        self, session: Session, job_id: int, etag: str, version: FrontVersion
    ) -> ServedFront:
        # One build at a time: the requests that arrive while a new version is built wait for
        # it rather than each building the same front (and fighting over the GIL to do so).
        with self._building:
            front = self._kept_front(job_id, etag)
            if front is not None:
                return front
            # Under READ COMMITTED the front may be a batch newer than `etag`: the next request
            # then sees a newer version and rebuilds; a front is never older than its tag.
            body = pareto_out(session, job_id).model_dump_json().encode()
            return ServedFront(etag, body, version)

    def _kept_front(self, job_id: int, etag: str) -> ServedFront | None:
        with self._lock:
            kept = self._kept.get(job_id)
            return kept.front if kept is not None and kept.front.etag == etag else None
