"""Read side of jobs: status with iterations, the Pareto front, candidate pages and exports."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import (
    Candidate,
    Device,
    Job,
    JobIteration,
    MetricValue,
    PredictorFit,
    Supernet,
)
from service.errors import NotFoundError
from service.jobs.queue import get_job
from service.jobs.views import (
    CandidateOut,
    CandidatePageOut,
    IterationOut,
    JobOut,
    MetricOut,
    ParetoOut,
)
from service.search.metrics import MetricName
from service.supernets.config_forms import has_ofa_form, ofa_form
from service.supernets.space import SearchSpace

EXPORT_BATCH = 2000


def job_out(session: Session, job: Job, with_iterations: bool = True) -> JobOut:
    iterations: list[IterationOut] = []
    if with_iterations:
        scores: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for fit in session.scalars(select(PredictorFit).where(PredictorFit.job_id == job.id)):
            scores[fit.iteration][fit.metric] = {
                **fit.scores,
                "model": fit.model,
                "n_train": fit.n_train,
            }
        rows = session.scalars(
            select(JobIteration)
            .where(JobIteration.job_id == job.id)
            .order_by(JobIteration.iteration)
        )
        iterations = [
            IterationOut.model_validate(r).model_copy(
                update={"predictor_scores": scores.get(r.iteration, {})}
            )
            for r in rows
        ]
    return JobOut.model_validate(job).model_copy(update={"iterations": iterations})


def list_jobs(session: Session, limit: int = 100) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def candidates_out(session: Session, candidates: Sequence[Candidate]) -> list[CandidateOut]:
    """Candidates with their metrics, fetched in one query."""
    metrics: dict[int, dict[str, MetricOut]] = defaultdict(dict)
    ids = [c.id for c in candidates]
    if ids:
        rows = session.execute(
            select(
                MetricValue.candidate_id, MetricValue.metric, MetricValue.value, MetricValue.source
            ).where(MetricValue.candidate_id.in_(ids))
        )
        kinds: dict[str, str] = dict(session.execute(select(Device.name, Device.kind)).all())
        # A page holds a few distinct (metric, source) pairs: each is parsed once, not per row.
        described: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        for candidate_id, metric, value, source in rows:
            if (metric, source) not in described:
                described[metric, source] = (
                    MetricName.parse(metric).device,
                    latency_method(metric, source, kinds),
                )
            device, method = described[metric, source]
            metrics[candidate_id][metric] = MetricOut.model_validate(
                {"value": value, "device": device, "source": source, "method": method}
            )
    return [
        CandidateOut.model_validate(c).model_copy(update={"metrics": metrics.get(c.id, {})})
        for c in candidates
    ]


def latency_method(metric: str, source: str, device_kinds: dict[str, str]) -> str | None:
    """How a latency value was obtained: on the service host, by an agent, or from a LUT."""
    name = MetricName.parse(metric)
    if not name.is_latency or name.device is None:
        return None
    if source == "predicted":
        return "lut"
    kind = device_kinds.get(name.device)
    return kind if kind in ("host", "agent") else None


def pareto_out(session: Session, job_id: int) -> ParetoOut:
    """The feasible validated front, or the closest points while nothing is feasible."""
    job = get_job(session, job_id)
    # No ORDER BY: it would make SQLite walk the (job_id, id) index over every candidate.
    rows = sorted(
        session.scalars(
            select(Candidate).where(
                Candidate.job_id == job_id, Candidate.pareto_role.in_(("front", "closest"))
            )
        ),
        key=lambda c: c.id,
    )
    out = candidates_out(session, rows)
    points = [c for c in out if c.pareto_role == "front"]
    objectives = list(job.spec.get("objectives", []))
    if points and objectives:
        first = objectives[0]
        metric, _, direction = first.rpartition(":")
        points.sort(key=lambda c: _sort_value(c, metric, direction))
    return ParetoOut(
        job_id=job.id,
        status=job.status,
        objectives=objectives,
        constraints=list(job.spec.get("constraints", [])),
        feasible=bool(points) or not out,
        points=points,
        closest=[c for c in out if c.pareto_role == "closest"],
    )


def _sort_value(candidate: CandidateOut, metric: str, direction: str) -> float:
    value = candidate.metrics[metric].value if metric in candidate.metrics else float("inf")
    return -value if direction == "max" else value


def candidate_page(session: Session, job_id: int, after: int, limit: int) -> CandidatePageOut:
    get_job(session, job_id)
    rows = list(
        session.scalars(
            select(Candidate)
            .where(Candidate.job_id == job_id, Candidate.id > after)
            .order_by(Candidate.id)
            .limit(limit + 1)
        )
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    return CandidatePageOut(
        items=candidates_out(session, rows), next_after=rows[-1].id if has_more else None
    )


def get_candidate(session: Session, job_id: int, candidate_id: int) -> Candidate:
    candidate = session.get(Candidate, candidate_id)
    if candidate is None or candidate.job_id != job_id:
        raise NotFoundError(
            f"job {job_id} has no candidate {candidate_id}; page through "
            f"GET /v1/jobs/{job_id}/candidates"
        )
    return candidate


def _ofa_form_of(session: Session, job: Job) -> Callable[[dict[str, Any]], Any] | None:
    """The converter to OFA's dict form of the job's supernet, if its family has one."""
    supernet = session.get(Supernet, job.supernet_id)
    if supernet is None or not has_ofa_form(supernet.family):
        return None
    family, space = supernet.family, SearchSpace.from_json(supernet.search_space)
    return lambda config: ofa_form(family, config, space)


def export_json_chunks(factory: sessionmaker[Session], job_id: int) -> Iterator[bytes]:
    """`{"job": …, "candidates": […]}` in pieces, a page of candidates at a time, on a session
    of its own (the request's is closed once the response starts). An OFA family's candidates
    carry `ofa_config` beside `config` (OFA/DyNAS-T's dict form of the same network)."""
    with factory() as session:
        row = get_job(session, job_id)
        to_ofa = _ofa_form_of(session, row)
        yield b'{"job":' + job_out(session, row).model_dump_json().encode() + b',"candidates":['
        separator = b""
        for page in _pages(session, job_id):
            if to_ofa is None:
                items = [c.model_dump_json().encode() for c in page]
            else:
                items = [
                    json.dumps({**c.model_dump(), "ofa_config": to_ofa(c.config)}).encode()
                    for c in page
                ]
            yield separator + b",".join(items)
            separator = b","
        yield b"]}"


def export_csv_chunks(factory: sessionmaker[Session], job_id: int) -> Iterator[bytes]:
    """One row per candidate: ids, provenance, every metric (with its source), the config (and,
    for an OFA family, its OFA form in `ofa_config`); a page at a time, on a session of its own."""
    with factory() as session:
        to_ofa = _ofa_form_of(session, get_job(session, job_id))
        metric_names = sorted(
            session.scalars(
                select(MetricValue.metric)
                .join(Candidate, Candidate.id == MetricValue.candidate_id)
                .where(Candidate.job_id == job_id)
                .distinct()
            )
        )
        header = ["candidate_id", "iteration", "origin", "pareto_role", "config_hash"]
        header += metric_names + [f"{m}_source" for m in metric_names] + ["config"]
        header += ["ofa_config"] if to_ofa is not None else []
        yield _csv_rows([header])
        after: int | None = 0
        while after is not None:
            rows, after = _csv_page(session, job_id, after, metric_names, to_ofa)
            yield _csv_rows(rows)


def _pages(session: Session, job_id: int) -> Iterator[list[CandidateOut]]:
    after = 0
    while True:
        page = candidate_page(session, job_id, after, EXPORT_BATCH)
        if page.items:
            yield page.items
        if page.next_after is None:
            return
        after = page.next_after


def _csv_page(
    session: Session,
    job_id: int,
    after: int,
    metric_names: list[str],
    to_ofa: Callable[[dict[str, Any]], Any] | None,
) -> tuple[list[list[Any]], int | None]:
    """The CSV rows of one keyset page, read as plain rows (no views: the export is the one
    read that touches every candidate) and the `after` of the next page (None at the end)."""
    candidates = session.execute(
        select(
            Candidate.id,
            Candidate.iteration,
            Candidate.origin,
            Candidate.pareto_role,
            Candidate.config_hash,
            Candidate.config,
        )
        .where(Candidate.job_id == job_id, Candidate.id > after)
        .order_by(Candidate.id)
        .limit(EXPORT_BATCH)
    ).all()
    values: dict[int, dict[str, tuple[float, str]]] = defaultdict(dict)
    if candidates:
        metric_rows = session.execute(
            select(
                MetricValue.candidate_id, MetricValue.metric, MetricValue.value, MetricValue.source
            ).where(MetricValue.candidate_id.in_([c.id for c in candidates]))
        )
        for candidate_id, metric, value, source in metric_rows:
            values[candidate_id][metric] = (value, source)
    rows = []
    for c in candidates:
        known = values[c.id]
        rows.append(
            [
                c.id,
                c.iteration,
                c.origin,
                c.pareto_role or "",
                c.config_hash,
                *(known[m][0] if m in known else "" for m in metric_names),
                *(known[m][1] if m in known else "" for m in metric_names),
                json.dumps(c.config, sort_keys=True),
                *([json.dumps(to_ofa(c.config))] if to_ofa is not None else []),
            ]
        )
    return rows, candidates[-1].id if len(candidates) == EXPORT_BATCH else None


def _csv_rows(rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()
