"""Read side of jobs: status with iterations, the Pareto front, candidate pages and exports."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
        for candidate_id, metric, value, source in rows:
            metrics[candidate_id][metric] = MetricOut.model_validate(
                {
                    "value": value,
                    "device": MetricName.parse(metric).device,
                    "source": source,
                    "method": latency_method(metric, source, kinds),
                }
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


def iter_all_candidates(session: Session, job_id: int) -> Iterator[CandidateOut]:
    get_job(session, job_id)
    after = 0
    while True:
        page = candidate_page(session, job_id, after, EXPORT_BATCH)
        yield from page.items
        if page.next_after is None:
            return
        after = page.next_after


def _ofa_form_of(session: Session, job: Job) -> Callable[[dict[str, Any]], Any] | None:
    """The converter to OFA's dict form of the job's supernet, if its family has one."""
    supernet = session.get(Supernet, job.supernet_id)
    if supernet is None or not has_ofa_form(supernet.family):
        return None
    family, space = supernet.family, SearchSpace.from_json(supernet.search_space)
    return lambda config: ofa_form(family, config, space)


def export_json(session: Session, job_id: int) -> str:
    """The job and every candidate; an OFA family's candidates carry `ofa_config` beside
    `config` (OFA/DyNAS-T's dict form of the same network)."""
    row = get_job(session, job_id)
    job = job_out(session, row)
    to_ofa = _ofa_form_of(session, row)
    items = [c.model_dump() for c in iter_all_candidates(session, job_id)]
    if to_ofa is not None:
        items = [{**item, "ofa_config": to_ofa(item["config"])} for item in items]
    return json.dumps({"job": job.model_dump(mode="json"), "candidates": items})


def export_csv(session: Session, job_id: int) -> str:
    """One row per candidate: ids, provenance, every metric (with its source) and the config
    (and, for an OFA family, its OFA form in `ofa_config`)."""
    to_ofa = _ofa_form_of(session, get_job(session, job_id))
    items = list(iter_all_candidates(session, job_id))
    metric_names = sorted({m for c in items for m in c.metrics})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["candidate_id", "iteration", "origin", "pareto_role", "config_hash"]
    header += metric_names + [f"{m}_source" for m in metric_names] + ["config"]
    header += ["ofa_config"] if to_ofa is not None else []
    writer.writerow(header)
    for c in items:
        values = [c.metrics[m].value if m in c.metrics else "" for m in metric_names]
        sources = [c.metrics[m].source if m in c.metrics else "" for m in metric_names]
        writer.writerow(
            [
                c.id,
                c.iteration,
                c.origin,
                c.pareto_role or "",
                c.config_hash,
                *values,
                *sources,
                json.dumps(c.config, sort_keys=True),
                *([json.dumps(to_ofa(c.config))] if to_ofa is not None else []),
            ]
        )
    return buffer.getvalue()
