"""`create_app()`: settings, database engine, optional embedded worker, routers, error handlers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import (
    agents,
    dashboard,
    devices,
    health,
    jobs,
    latency_tables,
    supernets,
    tokens,
)
from service.api.auth import auth_enabled
from service.api.error_responses import COMMON as COMMON_ERRORS
from service.api.error_responses import errors
from service.api.front_from_memory import FrontFromMemory
from service.api.overload import ConcurrencyLimit
from service.api.schemas.common import HealthOut
from service.api.storable_text import StorableText
from service.auth.gate import AuthGate
from service.config import Settings
from service.db.engine import (
    check_schema_current,
    head_revision,
    make_engine,
    make_session_factory,
)
from service.errors import DomainError
from service.jobs.fronts import FrontCache

log = logging.getLogger("hwnas.api")
# Longest `detail` of a 422: enough to name every problem, never the whole input echoed back.
MAX_DETAIL_CHARS = 2000


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; refuses to start on an out-of-date schema. Runs a worker thread if configured."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = _open_read_path(app, settings)
        _log_auth_mode(app.state.session_factory, settings)
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
    app.include_router(health.router, responses=COMMON_ERRORS)
    # Every /v1 route wants a token once auth is on: 401 without a valid one, 403 out of scope.
    v1_errors = COMMON_ERRORS | errors(401, 403)
    for router in (supernets.router, devices.router, jobs.router, tokens.router):
        app.include_router(router, responses=v1_errors)
    app.include_router(latency_tables.router, responses=v1_errors)
    app.include_router(agents.router, responses=v1_errors)
    dashboard.install(app, responses=v1_errors)
    app.add_middleware(StorableText)  # inside the size limit: it reads bounded bodies only
    app.add_middleware(BodySizeLimit, settings=settings)
    app.add_middleware(UnexpectedErrorAsJson)
    app.add_middleware(
        ConcurrencyLimit,
        max_running=settings.max_concurrent_requests,
        max_queued=settings.max_queued_requests,
        queue_timeout_s=settings.queue_timeout_s,
    )
    app.add_middleware(FrontFromMemory, guard=jobs.ACCESS)  # outside the limit: no thread, no query
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PoolTimeoutError, _database_busy)
    return app


def _open_read_path(app: FastAPI, settings: Settings) -> Engine:
    """The engine (refused on an out-of-date schema), its sessions, the front cache and the
    /health body. Each admitted request uses one thread and one connection at a time; the
    embedded worker's two threads take their connections from the same pool."""
    engine = make_engine(
        settings.resolved_database_url,
        pool_size=settings.max_concurrent_requests + 2,
        application_name="hwnas-api",
    )
    check_schema_current(engine)
    to_thread.current_default_thread_limiter().total_tokens = settings.max_concurrent_requests
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.front_cache = FrontCache(max_age_s=settings.front_max_age_s)
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app.state.auth_gate = AuthGate(admin_token, settings.agent_tokens, settings.auth_recheck_s)
    app.state.schema_revision = head_revision(settings.resolved_database_url)
    app.state.health_body = HealthOut(
        status="ok", database=engine.dialect.name, schema_revision=app.state.schema_revision
    ).model_dump_json()
    return engine


def _log_auth_mode(factory: sessionmaker[Session], settings: Settings) -> None:
    with factory() as session:
        enabled = auth_enabled(settings, session)
    if enabled:
        log.info("authentication on: every /v1 route needs a bearer token (docs/security.md)")
    else:
        log.warning(
            "authentication OFF (open mode): no HWNAS_ADMIN_TOKEN and no API token, so every /v1 "
            "route but the agents' is open to whoever reaches this port; "
            "`hwnas tokens create --scope admin` turns authentication on"
        )


class UnexpectedErrorAsJson:
    """A bug is logged with its traceback and answered 500 in the JSON error form, without
    internals. Handled here rather than re-raised to the server, so the connection stays open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            if started:  # too late for a response of our own
                raise
            detail = "the server hit an unexpected error; it was logged"
            await _error(500, "internal_error", detail)(scope, receive, send)


class RequestTooLargeError(StarletteHTTPException):
    """Raised while the body is read; an HTTPException so the framework passes it through."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodySizeLimit:
    """413 for a body past HWNAS_MAX_REQUEST_BYTES, told by Content-Length or counted as it
    arrives. Uploads check their own, larger limits: latency tables (HWNAS_MAX_LATENCY_TABLE_BYTES)
    and multipart checkpoint uploads to /v1/supernets (HWNAS_MAX_CHECKPOINT_BYTES).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.limit = app, settings.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _limits_itself(scope):
            await self.app(scope, receive, send)
            return
        detail = f"request bodies are limited to {self.limit} bytes (HWNAS_MAX_REQUEST_BYTES)"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _error(413, "request_too_large", detail)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise RequestTooLargeError(detail)
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except RequestTooLargeError:  # raised in a middleware reading the body, not in a route
            if started:
                raise
            await _error(413, "request_too_large", detail)(scope, receive, send)


def _limits_itself(scope: Scope) -> bool:
    path = scope["path"].rstrip("/")
    if path.endswith("/latency-tables"):
        return True
    content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
    return path == "/v1/supernets" and content_type.startswith(b"multipart/form-data")


def _error(status_code: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": code, "detail": detail})


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    response = _error(exc.status_code, exc.code, exc.detail)
    response.headers.update(exc.headers)
    return response


async def _database_busy(_request: Request, _exc: Exception) -> JSONResponse:
    """Every pooled connection stayed busy for the pool's timeout: ask the client to come back."""
    detail = "the server is at capacity (no database connection free); retry after 1 s"
    response = _error(503, "overloaded", detail)
    response.headers["Retry-After"] = "1"
    return response


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(_short(str(part), 80) for part in error["loc"] if part != "body")
        problems.append(f"{where}: {_short(str(error['msg']), 300)}")
    return _error(422, "invalid_request", _short("; ".join(problems), MAX_DETAIL_CHARS))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # The framework could not parse the body (e.g. JSON nested past the parser's depth).
        return _error(
            422,
            "invalid_request",
            "the request body could not be parsed as JSON (malformed, or nested too deeply)",
        )
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        response = _error(
            405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}"
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    codes = {404: "not_found", 413: "request_too_large"}
    response = _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers: each is tried against the routes, since
    Starlette's own 405 names only the methods of the first route with this path."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed
