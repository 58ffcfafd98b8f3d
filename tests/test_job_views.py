"""The read-side views are read from ORM rows (`from_attributes`), the API's JSON unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from service.db.models import Candidate, Job, JobIteration, JobStatus
from service.jobs.views import CandidateOut, IterationOut, JobOut

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _job(validations_used: int, budget: int) -> Job:
    return Job(
        id=7,
        supernet_id=2,
        spec={"objectives": ["accuracy:max"], "latency_sources": {}},
        status=JobStatus.RUNNING,
        budget=budget,
        validations_used=validations_used,
        attempts=1,
        worker_id="w1",
        cancel_requested=False,
        error=None,
        created_at=CREATED,
        started_at=CREATED,
        finished_at=None,
    )


def test_job_view_is_the_row_with_its_progress() -> None:
    out = JobOut.model_validate(_job(validations_used=4, budget=10)).model_dump(mode="json")
    assert out == {
        "id": 7,
        "supernet_id": 2,
        "status": "running",
        "spec": {"objectives": ["accuracy:max"], "latency_sources": {}},
        "budget": 10,
        "validations_used": 4,
        "progress": 0.4,
        "attempts": 1,
        "worker_id": "w1",
        "cancel_requested": False,
        "error": None,
        "created_at": "2026-01-02T03:04:05Z",
        "started_at": "2026-01-02T03:04:05Z",
        "finished_at": None,
        "iterations": [],
    }


def test_progress_is_capped_at_one_and_zero_without_a_budget() -> None:
    assert JobOut.model_validate(_job(validations_used=12, budget=10)).progress == 1.0
    assert JobOut.model_validate(_job(validations_used=0, budget=0)).progress == 0.0


def test_iteration_and_candidate_views_take_the_other_tables_as_updates() -> None:
    row = JobIteration(iteration=1, hypervolume=None, front_size=3, validations_used=8, seconds=2.5)
    scores = {"accuracy": {"model": "ridge", "n_train": 8}}
    iteration = IterationOut.model_validate(row).model_copy(update={"predictor_scores": scores})
    assert iteration.model_dump() == {
        "iteration": 1,
        "hypervolume": None,
        "front_size": 3,
        "validations_used": 8,
        "seconds": 2.5,
        "predictor_scores": scores,
    }
    candidate = Candidate(
        id=5, config={"k": 3}, config_hash="abc", iteration=1, origin="linas", pareto_role="front"
    )
    assert CandidateOut.model_validate(candidate).model_dump() == {
        "id": 5,
        "config": {"k": 3},
        "config_hash": "abc",
        "iteration": 1,
        "origin": "linas",
        "pareto_role": "front",
        "metrics": {},
    }
