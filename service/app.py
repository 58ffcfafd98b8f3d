"""`create_app()`: settings, database engine, optional embedded worker, routers, error handlers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api import agents, dashboard, devices, health, jobs, latency_tables, supernets
from service.config import Settings
from service.db.engine import check_schema_current, make_engine, make_session_factory
from service.errors import DomainError


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; refuses to start on an out-of-date schema. Runs a worker thread if configured."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        check_schema_current(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        stop = threading.Event()
        worker_thread = None
        if settings.embedded_worker:
            from service.worker.runner import start_worker_thread

            worker_thread = start_worker_thread(app.state.session_factory, settings, stop)
        try:
            yield
        finally:
            stop.set()
            if worker_thread is not None:
                worker_thread.join(timeout=30)
            engine.dispose()

    app = FastAPI(
        title="hwnas",
        version="0.1.0",
        description="Hardware-aware neural architecture search as a service.",
        lifespan=lifespan,
    )
    for router in (health.router, supernets.router, devices.router, jobs.router):
        app.include_router(router)
    app.include_router(latency_tables.router)
    app.include_router(agents.router)
    dashboard.install(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


def _error(status_code: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": code, "detail": detail})


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return _error(exc.status_code, exc.code, exc.detail)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part != "body")
        problems.append(f"{where}: {error['msg']}")
    return _error(422, "invalid_request", "; ".join(problems))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    return _error(exc.status_code, code, str(exc.detail))
