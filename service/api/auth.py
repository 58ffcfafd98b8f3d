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

import hmac
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Security, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.api.deps import SessionDep
from service.auth import tokens
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


def caller_scope(
    request: Request,
    session: Session,
    credentials: HTTPAuthorizationCredentials | None,
    needed: str,
) -> str:
    """The scope of the presented bearer token; 401 when there is none or it is not usable."""
    secret = credentials.credentials.strip() if credentials else ""
    if not secret:
        raise UnauthorizedError(f"this route needs {needed}: {_HOW}")
    settings: Settings = request.app.state.settings
    # Header values arrive as latin-1 text; compare bytes so any character is just a mismatch.
    given = secret.encode("utf-8", "surrogateescape")
    admin = settings.admin_token
    if admin is not None and hmac.compare_digest(given, admin.get_secret_value().encode()):
        return "admin"
    matched = None
    for device, token in settings.agent_tokens.items():  # every one compared: time tells nothing
        if hmac.compare_digest(given, token.encode()):
            matched = device
    if matched is not None:
        return tokens.AGENT_SCOPE_PREFIX + matched
    check = tokens.check_secret(session, secret)
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

    def __call__(self, request: Request, session: SessionDep, credentials: Credentials) -> None:
        if not auth_enabled(request.app.state.settings, session):
            return
        role = self.role_for(request.method)
        scope = caller_scope(request, session, credentials, f"a token of scope {role} or above")
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
