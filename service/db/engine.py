"""SQLAlchemy base, engine and session factories, transaction scope and the schema-version check."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

import migrations

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
UPGRADE_COMMAND = "hwnas db upgrade"
log = logging.getLogger("hwnas.db")
T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SchemaOutOfDateError(RuntimeError):
    """The database is not at the migrations' head revision."""


def make_engine(
    url: str, *, pooled: bool = True, pool_size: int = 10, application_name: str = "hwnas"
) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys, and its directory created.
    PostgreSQL connections are named `application_name` in pg_stat_activity and checked before
    each use (`pool_pre_ping`), so one the server dropped while idle is replaced, not used.

    `pool_size` connections are kept, and a few more opened when busy; the API passes its
    concurrency limit, so a request it admits never waits on a connection held by a request
    that itself waits (for a thread, say)."""
    pool: dict[str, Any] = (
        {"pool_size": pool_size, "max_overflow": 4} if pooled else {"poolclass": NullPool}
    )
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        in_memory = not path or path == ":memory:"  # one shared connection: no pool arguments
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **({} if in_memory else pool),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    named = {"connect_args": {"application_name": application_name}}
    return create_engine(url, pool_pre_ping=pooled, **pool, **named)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back when it raises."""
    with factory() as session, session.begin():
        yield session


# A unit of work whose connection dies is run again this many times, waiting a little longer each
# time: long enough for a PostgreSQL restart, short against the heartbeat grace period.
LOST_CONNECTION_ATTEMPTS = 6
LOST_CONNECTION_WAIT_S = 0.5


def in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work(session)` as one transaction, run again when the database connection was lost in
    it (a terminated backend, a restarted server): the server rolled the lost transaction back,
    so running it again stores nothing twice. Other errors, and the last attempt's, propagate."""
    for attempt in range(1, LOST_CONNECTION_ATTEMPTS + 1):
        try:
            with transaction(factory) as session:
                return work(session)
        except DBAPIError as exc:
            lost = exc.connection_invalidated or isinstance(exc, OperationalError)
            if not lost or attempt == LOST_CONNECTION_ATTEMPTS:
                raise
            log.warning(
                "database connection lost (%s); running the transaction again (%d of %d)",
                type(exc.orig).__name__,
                attempt + 1,
                LOST_CONNECTION_ATTEMPTS,
            )
            time.sleep(LOST_CONNECTION_WAIT_S * attempt)
    raise AssertionError("unreachable")


def alembic_config(url: str) -> AlembicConfig:
    """The packaged alembic configuration pointed at `url`."""
    directory = Path(next(iter(migrations.__path__)))  # also right when installed as a namespace
    config = AlembicConfig(str(directory / "alembic.ini"))
    config.set_main_option("script_location", str(directory))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def check_schema_current(engine: Engine) -> None:
    """Refuse to start on a database that is not at head, naming the command that fixes it."""
    head = head_revision(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise SchemaOutOfDateError(
            f"database schema is at revision {current or 'none (empty database)'}, "
            f"the code needs {head}; run `{UPGRADE_COMMAND}` (with the same HWNAS_DATABASE_URL / "
            "HWNAS_DATA_DIR) and start again"
        )
