"""API tokens: created with a scope, stored as a SHA-256 only, expired or revoked, looked up.

A token is `hwnas_` + 43 random URL-safe characters (256 bits), shown once when created. Only its
SHA-256 and its first 12 characters (a non-secret prefix to tell tokens apart in a listing) are
stored: a copy of the database gives no usable token. Scopes: `admin` ⊃ `submit` ⊃ `read`, and
`agent:DEVICE`, which acts for that device's measurement tasks only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from service.db.dialect import db_now, db_now_minus
from service.db.models import ApiToken
from service.errors import InvalidInputError, NotFoundError
from service.timestamps import as_utc

TOKEN_PREFIX = "hwnas_"
SHOWN_PREFIX_CHARS = 12
ROLES = ("read", "submit", "admin")  # each grants what the ones before it grant
AGENT_SCOPE_PREFIX = "agent:"
_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
# `last_used_at` is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION_S = 60.0


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as listings show it: never the secret."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class TokenCheck:
    """What a presented secret turned out to be: `scope` when it is usable, else why not."""

    scope: str | None
    refusal: str = ""
    expires_at: datetime | None = None  # UTC, for a usable token that expires


def check_scope(scope: str) -> str:
    """`scope` when it is admin, submit, read or agent:DEVICE; a 422 naming the forms if not."""
    if scope in ROLES:
        return scope
    device = scope.removeprefix(AGENT_SCOPE_PREFIX)
    if scope.startswith(AGENT_SCOPE_PREFIX) and _DEVICE_NAME.fullmatch(device):
        return scope
    raise InvalidInputError(
        f"scope {scope!r} is not one of admin, submit, read or agent:DEVICE "
        "(DEVICE: a device name, letters, digits, '_', '.', '-')"
    )


def grants(scope: str, role: str) -> bool:
    """Whether a token of `scope` may do what `role` (read, submit or admin) may."""
    return scope in ROLES and ROLES.index(scope) >= ROLES.index(role)


def agent_device(scope: str) -> str | None:
    """The device an `agent:DEVICE` scope acts for; None for the other scopes."""
    return scope.removeprefix(AGENT_SCOPE_PREFIX) if scope.startswith(AGENT_SCOPE_PREFIX) else None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(
    session: Session, name: str, scope: str, expires_at: datetime | None = None
) -> tuple[TokenInfo, str]:
    """A new token row; returns it and the secret, which is never stored or shown again."""
    if not 1 <= len(name) <= 100:
        raise InvalidInputError("a token's name is 1..100 characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        scope=check_scope(scope),
        token_hash=secret_hash(secret),
        prefix=secret[:SHOWN_PREFIX_CHARS],
        expires_at=as_utc(expires_at) if expires_at else None,
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    return _info(row), secret


def list_tokens(session: Session) -> list[TokenInfo]:
    return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke_token(session: Session, token_id: int) -> TokenInfo:
    """Revoke a token from now on; revoking it again keeps the first time."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFoundError(f"no API token has id {token_id} (see `hwnas tokens list`)")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.flush()
        session.refresh(row)
    return _info(row)


def any_token_exists(session: Session) -> bool:
    """Whether a token was ever created (revoked ones count: auth never turns itself off)."""
    return bool(session.scalar(select(exists().select_from(ApiToken))))


def check_secret(session: Session, secret: str) -> TokenCheck:
    """The scope of a usable stored token with this secret, or why it is not usable."""
    digest = secret_hash(secret)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # The lookup is by hash; the hashes are compared again in constant time all the same.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return TokenCheck(None, "this token is not known to the server")
    if row.revoked_at is not None:
        return TokenCheck(None, f"token {row.prefix}… (id {row.id}) was revoked")
    now = db_now(session)
    if row.expires_at is not None and not session.scalar(
        select(exists().where(ApiToken.id == row.id, ApiToken.expires_at > now))
    ):
        return TokenCheck(None, f"token {row.prefix}… (id {row.id}) expired at {row.expires_at}")
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == row.id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < db_now_minus(session, LAST_USED_RESOLUTION_S),
            ),
        )
        .values(last_used_at=now)
    )
    expires_at = as_utc(row.expires_at) if row.expires_at is not None else None
    return TokenCheck(row.scope, expires_at=expires_at)


def _info(row: ApiToken) -> TokenInfo:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return TokenInfo(
        id=row.id,
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=as_utc(row.created_at),
        expires_at=utc(row.expires_at),
        revoked_at=utc(row.revoked_at),
        last_used_at=utc(row.last_used_at),
    )
