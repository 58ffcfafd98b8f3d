"""Request dependencies: one session per request, committed when the endpoint returns cleanly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


def _session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a client that reads right after a
# write sees it.
SessionDep = Annotated[Session, Depends(_session, scope="function")]

# Ids in paths and queries: the range of the database's integer keys (INTEGER on PostgreSQL), so
# an id past it is a 422 on both databases, never a database error.
MAX_DB_ID = 2**31 - 1
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="A row id, 1..2^31-1")]


async def read_in_thread(request: Request, read: Callable[[Session], T]) -> T:
    """`read(session)` on a session of its own, in one trip to the thread pool: a read-only
    route then holds one thread and one connection for one stretch, where `SessionDep` takes
    three trips (open, handler, commit) and keeps its connection between them."""

    def run() -> T:
        factory: sessionmaker[Session] = request.app.state.session_factory
        with factory() as session:
            return read(session)

    return await run_in_threadpool(run)
