"""The browser dashboard at `/` and its two read-only helpers under `/v1/dashboard`.

`GET /` serves the single page (`service/dashboard/static/index.html`), its scripts under
`/dashboard/static/`. The page reads the documented API; what it cannot read there in bounded size
(a 100,000-candidate job's cloud of points) comes from `GET /v1/dashboard/jobs/{id}/plot`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse

from service.api.auth import requires
from service.api.deps import DbId, SessionDep
from service.api.error_responses import errors
from service.api.packaged_files import PackagedFiles
from service.dashboard import STATIC_DIR
from service.jobs import sampling
from service.jobs.views import CandidateOut

router = APIRouter(
    prefix="/v1/dashboard", tags=["dashboard"], dependencies=[requires(write="admin")]
)
pages = APIRouter(include_in_schema=False)


@router.get("/jobs/{job_id}/plot", response_model=sampling.PlotOut, responses=errors(404))
def job_plot(
    job_id: DbId,
    session: SessionDep,
    sample: Annotated[
        int,
        Query(ge=0, le=sampling.MAX_SAMPLE, description="Most non-front candidates to send"),
    ] = sampling.DEFAULT_SAMPLE,
) -> sampling.PlotOut:
    """The front in full (configs, metric sources) and a seeded sample of the other points."""
    return sampling.job_plot(session, job_id, sample)


@router.get(
    "/jobs/{job_id}/candidates/{candidate_id}", response_model=CandidateOut, responses=errors(404)
)
def job_candidate(job_id: DbId, candidate_id: DbId, session: SessionDep) -> CandidateOut:
    """One candidate with its config and the source of every metric."""
    return sampling.one_candidate(session, job_id, candidate_id)


@pages.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI, responses: dict[int | str, dict[str, Any]]) -> None:
    """Mount the page, its static files and the dashboard's read routes (declaring
    `responses`) on `app`."""
    app.include_router(router, responses=responses)
    app.include_router(pages)
    app.mount("/dashboard/static", PackagedFiles(STATIC_DIR), name="dashboard-static")
