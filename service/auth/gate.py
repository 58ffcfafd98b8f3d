"""Who the API lets in, answered from memory between database checks.

A request needs three facts: whether authentication is on, which scope the presented secret
has, and (for a stored token) that it is neither revoked nor expired. Reading them from the
database on every request costs a trip to the thread pool, and on a 2-core host those trips,
not the queries, are what makes a read route slow under load (docs/benchmarks.md, issue 20).

- "On" never turns off (tokens are revoked, never deleted), so once seen it is kept for good.
  "Off" is read again after `recheck_s`: a first token created by another process turns
  authentication on within that time.
- The environment's tokens (admin, agents) are fixed at start-up and compared in memory.
- A stored token found usable is trusted for `recheck_s` (its expiry is checked in memory on
  every request); a revocation by another process takes effect within that time. Refusals are
  never kept, so an unknown secret is always read from the database.

When a fact is due to be read again, one request reads it while the others keep the old
answer for up to `GRACE_S` more, so a crowd of requests never goes to the database at once: a
change made elsewhere takes effect within `recheck_s` (+ the time of that one read).

Creating or revoking a token through this process's API calls `forget`, so its own changes take
effect at once. `recheck_s = 0` reads the database on every request.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from service.auth import tokens

# The most stored tokens kept at once; past it the oldest checks are dropped.
KEPT_TOKENS = 4096
# While one request reads a fact again, the others keep the old answer for at most this long.
GRACE_S = 2.0


@dataclass
class _Trusted:
    scope: str
    expires_at: datetime | None
    checked_at: float
    refreshing: bool = False


class AuthGate:
    """The authentication facts of one server process, shared by its threads."""

    def __init__(
        self, admin_token: str | None, agent_tokens: dict[str, str], recheck_s: float
    ) -> None:
        self._admin = admin_token.encode() if admin_token is not None else None
        self._agents = {device: token.encode() for device, token in agent_tokens.items()}
        self._recheck_s = recheck_s
        self._on_for_good = admin_token is not None
        self._off_checked_at: float | None = None
        self._off_refreshing = False
        self._trusted: dict[str, _Trusted] = {}
        self._lock = threading.Lock()

    def enabled_from_memory(self, *, claim_refresh: bool = True) -> bool | None:
        """True or False when memory knows; None when the caller must `read_enabled`.
        `claim_refresh=False` only looks (for a caller that will not read the database)."""
        if self._on_for_good:
            return True
        with self._lock:
            checked = self._off_checked_at
            if checked is None:
                return None
            if self._may_serve(time.monotonic() - checked, self._off_refreshing):
                return False
            if claim_refresh:
                self._off_refreshing = True
            return None

    def read_enabled(self, session: Session) -> bool:
        try:
            if self._on_for_good or tokens.any_token_exists(session):
                self._on_for_good = True
                return True
            self._off_checked_at = time.monotonic()
            return False
        finally:
            self._off_refreshing = False

    def environment_scope(self, secret: str) -> str | None:
        """`admin` or `agent:DEVICE` for a token set in the environment, else None."""
        # Header values arrive as latin-1 text; compare bytes so any character is a mismatch.
        given = secret.encode("utf-8", "surrogateescape")
        if self._admin is not None and hmac.compare_digest(given, self._admin):
            return "admin"
        matched = None
        for device, token in self._agents.items():  # every one compared: time tells nothing
            if hmac.compare_digest(given, token):
                matched = device
        return tokens.AGENT_SCOPE_PREFIX + matched if matched is not None else None

    def trusted_scope(self, secret: str, *, claim_refresh: bool = True) -> str | None:
        """The scope of a stored token checked usable within `recheck_s` and not yet expired;
        None when the caller must `read_stored_token` (`claim_refresh` as above)."""
        with self._lock:
            trusted = self._trusted.get(tokens.secret_hash(secret))
            if trusted is None:
                return None
            if trusted.expires_at is not None and datetime.now(UTC) >= trusted.expires_at:
                return None  # read again: the database says "expired" in its own words
            if self._may_serve(time.monotonic() - trusted.checked_at, trusted.refreshing):
                return trusted.scope
            if claim_refresh:
                trusted.refreshing = True
            return None

    def read_stored_token(self, session: Session, secret: str) -> tokens.TokenCheck:
        digest = tokens.secret_hash(secret)
        try:
            check = tokens.check_secret(session, secret)
        except BaseException:
            with self._lock:
                self._trusted.pop(digest, None)
            raise
        with self._lock:
            self._trusted.pop(digest, None)
            if check.scope is not None and self._recheck_s > 0:
                self._trusted[digest] = _Trusted(check.scope, check.expires_at, time.monotonic())
                while len(self._trusted) > KEPT_TOKENS:
                    del self._trusted[next(iter(self._trusted))]
        return check

    def forget(self) -> None:
        """Drop what was read from the database (after this process created or revoked a
        token)."""
        with self._lock:
            self._trusted.clear()
            self._off_checked_at = None

    def _may_serve(self, age_s: float, refreshing: bool) -> bool:
        """Whether a fact read `age_s` ago still holds: within `recheck_s`, or a little longer
        while another request is reading it again (so the requests that arrive meanwhile do not
        all go to the database at once)."""
        if self._recheck_s <= 0:
            return False
        return age_s < self._recheck_s or (refreshing and age_s < self._recheck_s + GRACE_S)
