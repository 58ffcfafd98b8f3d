"""`hwnas tokens create | list | revoke`: the API's bearer tokens, on the server's database.

These act on `HWNAS_DATABASE_URL` directly (run them where `hwnas serve` runs, with its
environment), like `hwnas db`. A new token is printed once; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from service.cli.output import FORMATS, emit
from service.config import Settings
from service.errors import DomainError

COLUMNS = (
    "id",
    "name",
    "scope",
    "prefix",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)
_DURATION = re.compile(r"(\d{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def register(subparsers: argparse._SubParsersAction) -> None:
    tokens = subparsers.add_parser("tokens", help="API tokens (on the server's database)")
    commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = commands.add_parser("create", help="make a token and print it once")
    create.add_argument("--scope", required=True, help="admin | submit | read | agent:DEVICE")
    create.add_argument("--name", default=None, help="a label for listings (default: the scope)")
    create.add_argument(
        "--expires", type=expiry, default=None, help="30d, 12h, 90m or an ISO date/time (UTC)"
    )
    create.set_defaults(handler=_create)
    listing = commands.add_parser("list", help="every token, revoked ones too; never secrets")
    listing.add_argument("-f", "--format", choices=FORMATS, default="table")
    listing.set_defaults(handler=_list)
    revoke = commands.add_parser("revoke", help="revoke a token by its id (see list)")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(handler=_revoke)


def expiry(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `90m` from now, or an ISO 8601 date or time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        return now + timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30d, 12h, 90m) nor an ISO date (2027-01-31)"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise argparse.ArgumentTypeError(f"{text!r} is in the past")
    return when


@contextmanager
def _session() -> Iterator[Session]:
    from service.db.engine import (
        check_schema_current,
        make_engine,
        make_session_factory,
        transaction,
        upgrade_database,
    )

    url = Settings().resolved_database_url
    if url.startswith("sqlite"):  # as `hwnas serve` does: the embedded default creates its file
        upgrade_database(url)
    engine = make_engine(url)
    try:
        check_schema_current(engine)
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _reporting(action: Callable[[Session], tuple[str, str]]) -> int:
    """Run `action` in one transaction; print its (stdout, stderr) texts once it is committed."""
    try:
        with _session() as session:
            out, note = action(session)
    except DomainError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    sys.stderr.write(note)
    return 0


def _create(args: argparse.Namespace) -> int:
    from service.auth import tokens

    def create(session: Session) -> tuple[str, str]:
        info, secret = tokens.create_token(
            session, args.name or args.scope, args.scope, args.expires
        )
        expires = f", expires {info.expires_at.isoformat()}" if info.expires_at else ""
        note = f"token {info.id} ({info.scope}{expires}): shown this once, only its hash is stored"
        return secret + "\n", note + "\n"

    return _reporting(create)


def _list(args: argparse.Namespace) -> int:
    from service.auth import tokens

    def show(session: Session) -> tuple[str, str]:
        rows = [dataclasses.asdict(info) for info in tokens.list_tokens(session)]
        out = io.StringIO()
        emit(args.format, rows, rows, COLUMNS, out)
        return out.getvalue(), ""

    return _reporting(show)


def _revoke(args: argparse.Namespace) -> int:
    from service.auth import tokens

    def revoke(session: Session) -> tuple[str, str]:
        info = tokens.revoke_token(session, args.token_id)
        return f"token {info.id} ({info.name}, {info.scope}) revoked at {info.revoked_at}\n", ""

    return _reporting(revoke)
