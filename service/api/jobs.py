"""`/v1/jobs`: submit, watch, cancel and export searches, and download a candidate's ONNX model."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from service.api.auth import requires
from service.api.deps import MAX_DB_ID, DbId, SessionDep
from service.api.error_responses import errors
from service.api.schemas.jobs import JobIn
from service.catalog import supernets as supernet_catalog
from service.catalog.artifacts import subnet_onnx_file
from service.jobs import queue, results
from service.jobs.specs import check_job_request
from service.jobs.views import CandidatePageOut, JobOut, ParetoOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[requires(write="submit")])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut, responses=errors(413))
def submit_job(body: JobIn, session: SessionDep, response: Response) -> JobOut:
    checked = check_job_request(session, body)
    job = queue.create_job(session, checked.supernet.id, checked.spec_json(), checked.spec.budget)
    session.refresh(job)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return results.job_out(session, job, with_iterations=False)


@router.get("", response_model=list[JobOut])
def list_jobs(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[JobOut]:
    return [
        results.job_out(session, job, with_iterations=False)
        for job in results.list_jobs(session, limit)
    ]


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def show_job(job_id: DbId, session: SessionDep) -> JobOut:
    return results.job_out(session, queue.get_job(session, job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(404, 409),
)
def cancel_job(job_id: DbId, session: SessionDep) -> JobOut:
    return results.job_out(session, queue.request_cancel(session, job_id))


@router.get("/{job_id}/pareto", response_model=ParetoOut, responses=errors(404))
def pareto_front(job_id: DbId, session: SessionDep) -> ParetoOut:
    return results.pareto_out(session, job_id)


@router.get("/{job_id}/candidates", response_model=CandidatePageOut, responses=errors(404))
def list_candidates(
    job_id: DbId,
    session: SessionDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_DB_ID, description="Return candidates with id > after")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CandidatePageOut:
    return results.candidate_page(session, job_id, after, limit)


@router.get("/{job_id}/export", responses={200: {"content": {"text/csv": {}}}, **errors(404)})
def export_job(
    job_id: DbId, session: SessionDep, format: Literal["csv", "json"] = "json"
) -> Response:
    if format == "csv":
        return Response(
            results.export_csv(session, job_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="job-{job_id}.csv"'},
        )
    return Response(results.export_json(session, job_id), media_type="application/json")


@router.get(
    "/{job_id}/candidates/{candidate_id}/model.onnx",
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(404)},
)
def candidate_onnx(
    job_id: DbId, candidate_id: DbId, session: SessionDep, request: Request
) -> Response:
    """The candidate's sub-network with supernet weights, exported to ONNX (batch 1), cached."""
    candidate = results.get_candidate(session, job_id, candidate_id)
    supernet_row = supernet_catalog.get_supernet(
        session, queue.get_job(session, job_id).supernet_id
    )
    path = subnet_onnx_file(
        request.app.state.settings.artifact_dir,
        supernet_row,
        candidate.config,
        candidate.config_hash,
        1,
    )
    return Response(
        path.read_bytes(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="candidate-{candidate_id}.onnx"'},
    )
