"""What the dashboard plots of a job: its front in full and a bounded sample of the rest.

A job may hold 100,000 candidates; the page needs the front (with configs and metric sources)
and enough of the other points to show the cloud. The sample keeps a candidate when a hash of its
id falls under a threshold (computed in the database over the (job_id, id) index, so no id list
is loaded): the kept set of a growing job only loses points as the threshold falls, so successive
polls show the same cloud. It is sent column-wise (ids, iteration, feasibility, one array per
metric).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Candidate, MetricValue
from service.jobs import results
from service.jobs.views import CandidateOut, ParetoOut
from service.search.spec import parse_constraint

DEFAULT_SAMPLE = 1000
MAX_SAMPLE = 5000


class PointSample(BaseModel):
    """Validated candidates outside the front, column-wise: `values[metric][i]` is point i's."""

    ids: list[int]
    iteration: list[int]
    feasible: list[bool]
    values: dict[str, list[float | None]]


class PlotOut(BaseModel):
    job_id: int
    status: str
    objectives: list[str]
    constraints: list[str]
    feasible: bool = Field(description="False while no validated point meets every constraint")
    total: int = Field(description="Candidates the job has validated")
    front: list[CandidateOut] = Field(description="The front (or the closest points), in full")
    sample: PointSample = Field(description="Up to `sample` other candidates, drawn at random")
    sampled: bool = Field(description="True when `sample` holds fewer than all other candidates")


# id ↦ (id * MULTIPLIER) mod MODULUS: a cheap hash both SQLite and PostgreSQL compute in SQL.
MULTIPLIER, MODULUS = 40503, 65521


def job_plot(session: Session, job_id: int, sample_size: int = DEFAULT_SAMPLE) -> PlotOut:
    pareto: ParetoOut = results.pareto_out(session, job_id)
    front = pareto.points if pareto.feasible else pareto.closest
    front_ids = {c.id for c in front}
    of_job = Candidate.job_id == job_id
    total = int(session.scalar(select(func.count()).select_from(Candidate).where(of_job)) or 0)
    others = total - len(front_ids)
    query = select(Candidate.id).where(of_job)
    if others > sample_size:
        threshold = max(1, MODULUS * sample_size // others)
        query = query.where(Candidate.id * MULTIPLIER % MODULUS < threshold)
    chosen = sorted(set(session.scalars(query)) - front_ids)
    if len(chosen) > sample_size:
        chosen = sorted(random.Random(job_id).sample(chosen, sample_size))
    return PlotOut(
        job_id=job_id,
        status=pareto.status,
        objectives=pareto.objectives,
        constraints=pareto.constraints,
        feasible=pareto.feasible,
        total=total,
        front=front,
        sample=_sample(session, chosen, pareto.constraints),
        sampled=len(chosen) < others,
    )


def _sample(session: Session, ids: list[int], constraints: list[str]) -> PointSample:
    by_candidate: dict[int, dict[str, float]] = defaultdict(dict)
    iterations: dict[int, int] = {}
    for start in range(0, len(ids), 900):  # below every database's bound-parameter limit
        chunk = ids[start : start + 900]
        rows = session.execute(
            select(MetricValue.candidate_id, MetricValue.metric, MetricValue.value).where(
                MetricValue.candidate_id.in_(chunk)
            )
        )
        for candidate_id, metric, value in rows:
            by_candidate[candidate_id][metric] = value
        iterations.update(
            session.execute(
                select(Candidate.id, Candidate.iteration).where(Candidate.id.in_(chunk))
            ).all()
        )
    metrics = sorted({m for values in by_candidate.values() for m in values})
    return PointSample(
        ids=ids,
        iteration=[iterations.get(i, 0) for i in ids],
        feasible=[is_feasible(by_candidate[i], constraints) for i in ids],
        values={m: [by_candidate[i].get(m) for i in ids] for m in metrics},
    )


def is_feasible(values: dict[str, Any], constraints: list[str]) -> bool:
    """Whether metric values (name → number) meet every constraint text."""
    for text in constraints:
        constraint = parse_constraint(text)
        value = values.get(constraint.metric)
        if value is None:
            return False
        if value > constraint.value if constraint.op == "<=" else value < constraint.value:
            return False
    return True


def one_candidate(session: Session, job_id: int, candidate_id: int) -> CandidateOut:
    """One candidate with its config and metrics (the dashboard's hover and selection)."""
    return results.candidates_out(session, [results.get_candidate(session, job_id, candidate_id)])[
        0
    ]
