"""Bearer tokens on the HTTP API: who is calling, and whether the token's scope covers the route.

Each `/v1` router states what it needs once: `dependencies=[requires(write="admin")]` (its GETs
need `read`, its other methods `admin`), or `AGENT_ONLY` for the device agents' routes, which need
the agent token of the device the task belongs to (checked again per route, on the task's
device). `route_requirement` reads these declarations back for docs/security.md.

Authentication is on when `HWNAS_ADMIN_TOKEN` is set or any API token was ever created; until
then the non-agent routes are open (loopback only, see `hwnas serve`). Agent routes always need a
token. Secrets are compared with `hmac.compare_digest` (stored tokens by their SHA-256) and never
logged or echoed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Security, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api.deps import SessionDep
from service.auth import tokens
from service.auth.gate import AuthGate
from service.config import Settings
from service.errors import ForbiddenError, UnauthorizedError

READ_METHODS = frozenset({"GET", "HEAD"})
_HOW = "send it as 'Authorization: Bearer <token>'"
_AGENT_HINT = (
    "the agent token of the task's device (HWNAS_AGENT_TOKENS on the server, "
    "or one made with `hwnas tokens create --scope agent:DEVICE`)"
)


def auth_enabled(settings: Settings, session: Session) -> bool:
    """Whether non-agent routes need a token: an admin token is set or any API token exists."""
    return settings.admin_token is not None or tokens.any_token_exists(session)


# Declares the scheme in the OpenAPI document (Swagger UI's "Authorize"); the checks are ours.
_BEARER = HTTPBearer(
    auto_error=False, description="An API token: `hwnas tokens create` (docs/security.md)"
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials.strip() if credentials else ""


def caller_scope(
    request: Request,
    session: Session,
    credentials: HTTPAuthorizationCredentials | None,
    needed: str,
) -> str:
    """The scope of the presented bearer token; 401 when there is none or it is not usable."""
    secret = _secret(credentials)
    if not secret:
        raise UnauthorizedError(f"this route needs {needed}: {_HOW}")
    gate: AuthGate = request.app.state.auth_gate
    scope = gate.environment_scope(secret) or gate.trusted_scope(secret)
    if scope is not None:
        return scope
    check = gate.read_stored_token(session, secret)
    if check.scope is None:
        raise UnauthorizedError(f"{check.refusal}; this route needs {needed}: {_HOW}")
    return check.scope


class ScopeGuard:
    """The dependency of a router: GETs need `read_role` (`read` unless the router says), every
    other method `write_role`."""

    def __init__(self, write_role: str, read_role: str = "read") -> None:
        assert write_role in tokens.ROLES and read_role in tokens.ROLES
        self.write_role, self.read_role = write_role, read_role

    def role_for(self, method: str) -> str:
        return self.read_role if method in READ_METHODS else self.write_role

    async def __call__(self, request: Request, credentials: Credentials) -> None:
        """From memory when the gate knows the answer (no thread, no database); otherwise one
        trip to the thread pool on a session of its own."""
        gate: AuthGate = request.app.state.auth_gate
        enabled = gate.enabled_from_memory()
        if enabled is False:
            return
        secret = _secret(credentials)
        if enabled and not secret:
            role = self.role_for(request.method)
            raise UnauthorizedError(f"this route needs a token of scope {role} or above: {_HOW}")
        scope = (gate.environment_scope(secret) or gate.trusted_scope(secret)) if secret else None
        if enabled is None or scope is None:
            await run_in_threadpool(self._check_reading_the_database, request, credentials)
        else:
            self._check_grant(request, scope)

    def admits_from_memory(self, gate: AuthGate, method: str, authorization: str | None) -> bool:
        """Whether this guard lets the request in on what `gate` remembers, reading nothing and
        claiming no refresh. True only where `__call__` lets it in too; False means "ask
        `__call__`", which may still let it in, or answer 401/403."""
        enabled = gate.enabled_from_memory(claim_refresh=False)
        if enabled is False:
            return True
        if enabled is None:
            return False
        scheme, secret = get_authorization_scheme_param(authorization)  # as HTTPBearer reads it
        if scheme.lower() != "bearer" or not secret:
            return False
        scope = gate.environment_scope(secret) or gate.trusted_scope(secret, claim_refresh=False)
        return scope is not None and tokens.grants(scope, self.role_for(method))

    def _check_reading_the_database(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> None:
        gate: AuthGate = request.app.state.auth_gate
        factory: sessionmaker[Session] = request.app.state.session_factory
        with factory.begin() as session:  # committed: a token's last use is recorded
            if not gate.read_enabled(session):
                return
            role = self.role_for(request.method)
            needed = f"a token of scope {role} or above"
            scope = caller_scope(request, session, credentials, needed)
        self._check_grant(request, scope)

    def _check_grant(self, request: Request, scope: str) -> None:
        role = self.role_for(request.method)
        if not tokens.grants(scope, role):
            raise ForbiddenError(
                f"{request.method} {request.url.path} needs a token of scope {role} or above "
                f"(admin > submit > read); this token's scope is {scope}"
            )


def requires(write: str, read: str = "read") -> Any:
    """`dependencies=[requires(write=ROLE)]` for a router: reads need `read`, writes `ROLE`."""
    return Depends(ScopeGuard(write, read))


def agent_device(request: Request, session: SessionDep, credentials: Credentials) -> str:
    """The device whose agent token was presented: 401 without a usable token, 403 for a token
    that is not an agent token. Routes still check the task's device is this one."""
    scope = caller_scope(request, session, credentials, _AGENT_HINT)
    device = tokens.agent_device(scope)
    if device is None:
        raise ForbiddenError(f"agent routes need {_AGENT_HINT}; this token's scope is {scope}")
    return device


AgentDevice = Annotated[str, Depends(agent_device)]
AGENT_ONLY = Depends(agent_device)


def route_requirement(dependencies: Sequence[params.Depends], method: str) -> str:
    """What a route with these dependencies needs for `method`: `read`, `submit`, `admin`,
    `agent` (its own device's tasks), or `public`."""
    for dependency in dependencies:
        if isinstance(dependency.dependency, ScopeGuard):
            return dependency.dependency.role_for(method)
        if dependency.dependency is agent_device:
            return "agent"
    return "public"
