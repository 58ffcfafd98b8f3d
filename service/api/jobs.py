"""`/v1/jobs`: submit, watch, cancel and export searches, and download a candidate's ONNX model."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from service.api.auth import ScopeGuard
from service.api.deps import MAX_DB_ID, DbId, SessionDep, read_in_thread
from service.api.error_responses import errors
from service.api.schemas.jobs import JobIn
from service.catalog import supernets as supernet_catalog
from service.catalog.artifacts import subnet_onnx_file
from service.jobs import queue, results
from service.jobs.fronts import FrontCache, etag_matches
from service.jobs.specs import check_job_request
from service.jobs.views import CandidatePageOut, JobOut, ParetoOut

# Also consulted by `api/front_from_memory.py`, which answers polls of the front before routing.
ACCESS = ScopeGuard(write_role="submit")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(ACCESS)])


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
async def show_job(job_id: DbId, request: Request) -> Response:
    job = await read_in_thread(request, lambda s: results.job_out(s, queue.get_job(s, job_id)))
    cache: FrontCache = request.app.state.front_cache
    cache.seen(job_id, job.status, job.validations_used)
    return _json(job)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(404, 409),
)
def cancel_job(job_id: DbId, session: SessionDep) -> JobOut:
    return results.job_out(session, queue.request_cancel(session, job_id))


@router.get(
    "/{job_id}/pareto",
    response_model=ParetoOut,
    responses={
        304: {"description": "The front named by If-None-Match is still current"},
        **errors(404),
    },
)
async def pareto_front(job_id: DbId, request: Request) -> Response:
    """The front, built once per job version and served with its `ETag`; send it back in
    `If-None-Match` to get a bodiless 304 while the front is unchanged. It may be up to
    `HWNAS_FRONT_MAX_AGE_S` (0.5 s) older than the database; `Cache-Control: no-cache` asks for
    the database's current front."""
    cache: FrontCache = request.app.state.front_cache
    revalidate = "no-cache" in request.headers.get("cache-control", "").lower()
    front = None if revalidate else cache.from_memory(job_id)
    if front is None:
        front = await read_in_thread(request, lambda session: cache.current(session, job_id))
    headers = {"ETag": front.etag, "Cache-Control": "no-cache"}
    wanted = request.headers.get("if-none-match")
    if wanted is not None and etag_matches(wanted, front.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(front.body, media_type="application/json", headers=headers)


@router.get("/{job_id}/candidates", response_model=CandidatePageOut, responses=errors(404))
async def list_candidates(
    job_id: DbId,
    request: Request,
    after: Annotated[
        int, Query(ge=0, le=MAX_DB_ID, description="Return candidates with id > after")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """A keyset page: pass the page's `next_after` as `after` for the next one."""
    page = await read_in_thread(request, lambda s: results.candidate_page(s, job_id, after, limit))
    return _json(page)


@router.get(
    "/{job_id}/export",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}, **errors(404)},
)
async def export_job(
    job_id: DbId, request: Request, format: Literal["csv", "json"] = "json"
) -> Response:
    """Every candidate, streamed a page at a time (a 100,000-candidate job is never held in
    memory whole)."""
    await read_in_thread(request, lambda s: queue.get_job(s, job_id))  # a 404 before streaming
    factory = request.app.state.session_factory
    if format == "csv":
        return StreamingResponse(
            results.export_csv_chunks(factory, job_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="job-{job_id}.csv"'},
        )
    return StreamingResponse(
        results.export_json_chunks(factory, job_id), media_type="application/json"
    )


def _json(model: BaseModel) -> Response:
    """A pydantic body serialised straight to bytes (pydantic-core), skipping FastAPI's
    re-validation through `response_model` (kept on the route for the OpenAPI schema)."""
    return Response(model.model_dump_json(), media_type="application/json")


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
