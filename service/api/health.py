"""`GET /health`: the process is up (no database work, so it stays cheap under load);
`GET /ready`: the database answers at the schema revision this code needs."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from service.api.schemas.common import ErrorOut, HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
async def health(request: Request) -> Response:
    """The database kind and the schema revision checked when the process started."""
    body: bytes = request.app.state.health_body
    return Response(body, media_type="application/json")


@router.get("/ready", response_model=HealthOut, responses={503: {"model": ErrorOut}})
async def ready(request: Request) -> Response:
    """200 while the database answers at the expected revision; 503 otherwise (a load balancer
    stops sending requests here until it passes again)."""
    engine: Engine = request.app.state.engine
    expected: str = request.app.state.schema_revision
    try:
        revision = await run_in_threadpool(_current_revision, engine)
    except SQLAlchemyError as exc:
        return _not_ready(f"the database does not answer: {type(exc).__name__}")
    if revision != expected:
        return _not_ready(
            f"the database schema is at {revision}, this code needs {expected}; "
            "run `hwnas db upgrade`"
        )
    out = HealthOut(status="ok", database=engine.dialect.name, schema_revision=revision)
    return Response(out.model_dump_json(), media_type="application/json")


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _not_ready(detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"error": "not_ready", "detail": detail},
        headers={"Retry-After": "5"},
    )
