"""`GET /health`: the process is up and its database answers at the expected schema."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter

from service.api.deps import SessionDep
from service.api.schemas.common import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(session: SessionDep) -> HealthOut:
    connection = session.connection()
    revision = MigrationContext.configure(connection).get_current_revision()
    return HealthOut(status="ok", database=connection.dialect.name, schema_revision=revision)
