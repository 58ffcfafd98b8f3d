"""Shared fixtures: databases built with the real `alembic upgrade head` (SQLite and PostgreSQL),
sessions on them, and the API in process (`api_client`) for tests that need no real server.

Each test gets its own migrated database, copied from one migrated once per test session (a file
copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL); the migrations themselves are tested
from empty databases (`empty_url`) in test_db and test_migrations."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import factories
import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import upgrade_database

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

POSTGRES_URL = os.environ.get(
    "HWNAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _admin_conninfo() -> str:
    url = make_url(POSTGRES_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """An empty SQLite file URL (not migrated)."""
    return f"sqlite:///{tmp_path}/hwnas.db"


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "hwnas.db"
    upgrade_database(f"sqlite:///{path}")  # its engine is disposed: no WAL left beside the file
    return path


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, _migrated_sqlite_file: Path) -> str:
    """A SQLite file at the migrations' head."""
    shutil.copyfile(_migrated_sqlite_file, sqlite_url.removeprefix("sqlite:///"))
    return sqlite_url


@contextmanager
def _postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of `template`), dropped afterwards; fails
    (never skips) when the server is unreachable."""
    name = f"hwnas_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield name
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_url_of(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; fails (never skips) when the server is unreachable."""
    with _postgres_database() as name:
        yield _postgres_url_of(name)


@pytest.fixture(scope="session")
def _migrated_postgres_template() -> Iterator[str]:
    with _postgres_database() as name:
        upgrade_database(_postgres_url_of(name))  # alembic's engine is gone: copyable
        yield name


@pytest.fixture
def migrated_postgres_url(_migrated_postgres_template: str) -> Iterator[str]:
    """A PostgreSQL database at the migrations' head."""
    with _postgres_database(template=_migrated_postgres_template) as name:
        yield _postgres_url_of(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """Each database kind in turn, empty (no migration applied)."""
    return str(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each migrated database kind in turn."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on each migrated database kind in turn."""
    with factories.session_factory(database_url) as factory:
        yield factory


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    """Settings for `api_client` beyond the defaults; a test module overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
def api_client(
    tmp_path_factory: pytest.TempPathFactory, api_settings: dict[str, Any]
) -> Iterator[TestClient]:
    """The API in this process (FastAPI's TestClient, no uvicorn, no worker) on a fresh migrated
    SQLite database, shared by the tests of one module; `api_client.app.state.session_factory`
    reads what the requests stored. End-to-end tests use `service_processes.Server` instead."""
    from fastapi.testclient import TestClient  # imported here: the app loads the whole service

    from service.app import create_app
    from service.config import Settings

    data_dir = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{data_dir}/hwnas.db"
    upgrade_database(url)
    settings = Settings(data_dir=data_dir, database_url=url, embedded_worker=False, **api_settings)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Seeded, untrained weights of the built-in family: the real code path, independent of
    whether the trained checkpoint has landed (accuracy values are meaningless, which is fine)."""
    import torch

    from service.supernets.elastic_mbv3 import ArchSpec, ElasticMobileNetV3

    path = tmp_path_factory.mktemp("checkpoint") / "mbv3_digits_random.pt"
    torch.manual_seed(0)
    torch.save(ElasticMobileNetV3(ArchSpec()).state_dict(), path)
    return str(path)
