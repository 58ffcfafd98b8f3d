"""Migrations: upgrade/downgrade on both databases, no drift between models and migrations, and
every table of the models created by the migrations (upgrades with rows in: test_migrations)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import service.db.models  # noqa: F401  (registers every table on Base.metadata)
from service.db.engine import (
    Base,
    SchemaOutOfDateError,
    check_schema_current,
    downgrade_database,
    make_engine,
    upgrade_database,
)

# Written out on purpose: a table added to the models must be added here too, and then the tests
# below fail until a migration creates it.
TABLES = {
    "supernets",
    "devices",
    "jobs",
    "candidates",
    "metric_values",
    "evaluation_cache",
    "job_iterations",
    "predictor_fits",
    "latency_measurements",
    "measurement_tasks",
    "latency_tables",
    "latency_table_entries",
    "api_tokens",
}


def test_the_table_list_is_every_table_of_the_models() -> None:
    assert set(Base.metadata.tables) == TABLES


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    downgrade_database(empty_url, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade_database(empty_url)
    check_schema_current(engine)
    engine.dispose()


def test_models_match_migrations(empty_url: str) -> None:
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_startup_refuses_an_unmigrated_database(empty_url: str) -> None:
    engine = make_engine(empty_url)
    with pytest.raises(SchemaOutOfDateError, match="hwnas db upgrade"):
        check_schema_current(engine)
    engine.dispose()
