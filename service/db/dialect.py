"""What differs between the two supported databases: row locks and the database clock.

Every lease and heartbeat compares times on the database clock, so workers and agents on different
machines agree; PostgreSQL and SQLite spell that clock differently.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal
from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    """True on PostgreSQL (row locks with SKIP LOCKED), False on SQLite (one writer at a time)."""
    return session.get_bind().dialect.name == "postgresql"


def db_now(session: Session) -> ColumnElement[Any]:
    """The database clock, in the form the dialect stores timestamps."""
    return func.now() if is_postgres(session) else func.datetime("now")


def db_now_plus(session: Session, seconds: float) -> ColumnElement[Any]:
    """The database clock plus `seconds`."""
    if is_postgres(session):
        return func.now() + literal(timedelta(seconds=seconds))
    return func.datetime("now", f"+{seconds:.3f} seconds")


def db_now_minus(session: Session, seconds: float) -> ColumnElement[Any]:
    """The database clock minus `seconds`."""
    if is_postgres(session):
        return func.now() - literal(timedelta(seconds=seconds))
    return func.datetime("now", f"-{seconds:.3f} seconds")
