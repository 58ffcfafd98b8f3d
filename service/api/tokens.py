"""`/v1/tokens`: an admin makes, lists and revokes API tokens over HTTP, as `hwnas tokens` does
on the server's database. Every route here needs `admin`, reads included."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.orm import Session

from service.api.auth import requires
from service.api.deps import DbId, SessionDep
from service.api.error_responses import errors
from service.api.schemas.tokens import NewTokenOut, TokenIn, TokenOut
from service.auth import tokens
from service.auth.gate import AuthGate
from service.errors import InvalidInputError

router = APIRouter(
    prefix="/v1/tokens", tags=["tokens"], dependencies=[requires(write="admin", read="admin")]
)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=NewTokenOut, responses=errors(413)
)
def create_token(
    body: TokenIn, session: SessionDep, request: Request, response: Response
) -> NewTokenOut:
    """A new token; its secret is in this answer only (only its SHA-256 is stored)."""
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise InvalidInputError("expires_at is in the past; give a future UTC time")
    info, secret = tokens.create_token(
        session, body.name or body.scope, body.scope, body.expires_at
    )
    _committed_then_forgotten(session, request)
    response.headers["Location"] = f"/v1/tokens/{info.id}"
    return NewTokenOut(**dataclasses.asdict(info), token=secret)


@router.get("", response_model=list[TokenOut])
def list_tokens(session: SessionDep) -> list[TokenOut]:
    """Every token, revoked and expired ones too; never a secret."""
    return [TokenOut(**dataclasses.asdict(info)) for info in tokens.list_tokens(session)]


@router.post("/{token_id}/revoke", response_model=TokenOut, responses=errors(404))
def revoke_token(token_id: DbId, session: SessionDep, request: Request) -> TokenOut:
    """Revoke a token from now on (kept, with `revoked_at`); revoking it again changes nothing."""
    revoked = tokens.revoke_token(session, token_id)
    _committed_then_forgotten(session, request)
    return TokenOut(**dataclasses.asdict(revoked))


def _committed_then_forgotten(session: Session, request: Request) -> None:
    """Commit, then drop this process's remembered token checks, so the change holds for the
    very next request here (other processes see it within `auth_recheck_s`)."""
    session.commit()
    gate: AuthGate = request.app.state.auth_gate
    gate.forget()
