"""Tokens and scopes: every route answers every kind of caller as docs/security.md says (and that
table is the one the app's routes generate), on SQLite and PostgreSQL; bad, expired and revoked
tokens are 401s; open mode lasts until a token exists. The real-server tests are in
test_auth_server.py."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import factories
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.route_scopes import (
    ALLOWED,
    CALLERS,
    expected_status,
    route_scopes,
    with_security_table,
)
from service.app import create_app
from service.auth import tokens
from service.auth.gate import GRACE_S
from service.config import Settings
from service.db.engine import transaction
from service.db.models import ApiToken

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
ADMIN_ENV_TOKEN = "admin-env-token-0123456789"
ENV_AGENT_TOKEN = "edge-env-token-0123456789"
GOOD_STATS = {
    "median_ms": 1.5,
    "p90_ms": 1.8,
    "mean_ms": 1.6,
    "std_ms": 0.1,
    "cv": 0.06,
    "runs": 50,
    "attempts": 1,
}
# Agent routes are called with valid bodies, so a wrong device is told apart from a bad body.
AGENT_BODIES = {
    "claim": {"agent_id": "probe", "limit": 1},
    "result": {"agent_id": "probe", "stats": GOOD_STATS, "runtime": {}},
    "failure": {"agent_id": "probe", "error": "cannot run it"},
}


def _app(database_url: str, data_dir: Path, **settings: Any) -> TestClient:
    return TestClient(
        create_app(
            Settings(
                data_dir=data_dir, database_url=database_url, embedded_worker=False, **settings
            )
        )
    )


@pytest.fixture
def world(session_factory: sessionmaker[Session]) -> dict[str, Any]:
    """Two agent devices, a task of the first, and a database token of every scope."""
    with transaction(session_factory) as session:
        own = factories.device(session, name="edge-own")
        other = factories.device(session, name="edge-other")
        supernet = factories.supernet(session)
        (task_id,) = factories.tasks(session, own.id, supernet.id, {"h": {"x": 1}}).values()
        secrets = {
            caller: tokens.create_token(session, caller, scope)[1]
            for caller, scope in {
                "read": "read",
                "submit": "submit",
                "admin": "admin",
                "agent:own-device": "agent:edge-own",
                "agent:other-device": "agent:edge-other",
            }.items()
        }
        return {"device_id": own.id, "other_id": other.id, "task_id": task_id, "secrets": secrets}


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """These tests change tokens in the database behind the server's back, as the CLI or another
    server process does: with `auth_recheck_s=0` each change holds from the next request."""
    with _app(database_url, tmp_path, auth_recheck_s=0) as app_client:
        yield app_client


def _bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def test_security_doc_table_is_the_one_the_app_generates() -> None:
    text = DOC.read_text()
    assert with_security_table(text, create_app()) == text, (
        "docs/security.md is out of date: run python scripts/security_table.py"
    )


def test_every_v1_route_needs_a_token_and_health_and_the_dashboard_page_do_not() -> None:
    rows = route_scopes(create_app())
    assert len([r for r in rows if r.path.startswith("/v1")]) >= 24
    for row in rows:
        assert (row.needs == "public") != row.path.startswith("/v1"), row
    needs = {(r.method, r.path): r.needs for r in rows}
    assert needs["GET", "/health"] == needs["GET", "/"] == "public"
    assert needs["POST", "/v1/jobs"] == needs["POST", "/v1/jobs/{job_id}/cancel"] == "submit"
    assert needs["POST", "/v1/supernets"] == needs["POST", "/v1/devices"] == "admin"
    assert needs["GET", "/v1/jobs/{job_id}/pareto"] == "read"
    assert needs["POST", "/v1/tasks/{task_id}/result"] == "agent"


def _call(client: TestClient, method: str, path: str, world: dict[str, Any], caller: str) -> Any:
    # Tokens by a missing id: revoking one of the callers' tokens would change later answers.
    ids = {"device_id": world["device_id"], "task_id": world["task_id"], "token_id": 2**31 - 1}
    if caller == "agent:own-device" and path.endswith("/model.onnx"):
        ids["task_id"] = 2**31 - 1  # the own task would be exported to ONNX: a missing one will do
    url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path)
    url = url.replace("/dashboard/static/1", "/dashboard/static/app.js")
    body = AGENT_BODIES.get(path.rsplit("/", 1)[-1], {}) if method != "GET" else None
    secret = world["secrets"].get(caller)
    return client.request(method, url, json=body, headers=_bearer(secret))


def test_every_route_answers_every_caller_as_the_table_says(
    client: TestClient, world: dict[str, Any]
) -> None:
    checked = 0
    for row in route_scopes(client.app):  # type: ignore[arg-type]
        for caller in CALLERS:
            answer = _call(client, row.method, row.path, world, caller)
            expected, where = expected_status(row.needs, caller), (row, caller, answer.text[:300])
            if expected == ALLOWED:
                assert answer.status_code not in (401, 403), where
                assert answer.status_code < 500, where
            else:
                assert answer.status_code == int(expected), where
                error = {"401": "unauthorized", "403": "forbidden"}[expected]
                assert answer.json()["error"] == error and answer.json()["detail"], where
                if expected == "401":
                    assert answer.headers["WWW-Authenticate"].startswith("Bearer"), where
            checked += 1
    assert checked == len(route_scopes(client.app)) * len(CALLERS)  # type: ignore[arg-type]


def test_unknown_malformed_expired_and_revoked_tokens_are_401(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as session:
        in_an_hour = datetime.now(UTC) + timedelta(hours=1)
        expiring, expiring_secret = tokens.create_token(session, "soon", "read", in_an_hour)
        revoked, revoked_secret = tokens.create_token(session, "gone", "admin")
    assert client.get("/v1/jobs", headers=_bearer(expiring_secret)).status_code == 200
    with transaction(session_factory) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expiring.id)
            .values(expires_at=factories.db_clock(session, -60))
        )
        tokens.revoke_token(session, revoked.id)
    cases = {
        "no token": ({}, "needs a token of scope read"),
        "unknown": (_bearer("hwnas_not-a-real-token-at-all"), "not known"),
        "not bearer": ({"Authorization": f"Basic {revoked_secret}"}, "Bearer <token>"),
        "empty": ({"Authorization": "Bearer "}, "Bearer <token>"),
        "expired": (_bearer(expiring_secret), "expired"),
        "revoked": (_bearer(revoked_secret), "revoked"),
    }
    for name, (headers, says) in cases.items():
        answer = client.get("/v1/jobs", headers=headers)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["error"] == "unauthorized", name
        assert says in answer.json()["detail"], (name, answer.json())
        assert answer.headers["WWW-Authenticate"] == "Bearer", name
        assert revoked_secret not in answer.text and expiring_secret not in answer.text


def test_open_until_a_token_exists_and_agent_routes_always_need_one(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    assert client.get("/v1/supernets").status_code == 200
    assert client.get("/v1/supernets", headers=_bearer("stale-dashboard-token")).status_code == 200
    assert client.get("/v1/agent/device").status_code == 401
    with transaction(session_factory) as session:
        info, secret = tokens.create_token(session, "ci", "submit")
    assert client.get("/v1/supernets").status_code == 401
    assert client.get("/v1/supernets", headers=_bearer(secret)).status_code == 200
    with transaction(session_factory) as session:
        tokens.revoke_token(session, info.id)  # the last token revoked: still on
    assert client.get("/v1/supernets").status_code == 401
    with transaction(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_admin_token_from_the_environment_and_env_agent_tokens(
    database_url: str, tmp_path: Path
) -> None:
    settings = {"admin_token": ADMIN_ENV_TOKEN, "agent_tokens": f"edge-env={ENV_AGENT_TOKEN}"}
    with _app(database_url, tmp_path, **settings) as client:
        assert client.get("/v1/devices").status_code == 401
        device = {"name": "edge-env", "kind": "agent", "descriptor": {}}
        created = client.post("/v1/devices", json=device, headers=_bearer(ADMIN_ENV_TOKEN))
        assert created.status_code == 201, created.text
        mine = client.get("/v1/agent/device", headers=_bearer(ENV_AGENT_TOKEN))
        assert mine.json() == {"id": created.json()["id"], "name": "edge-env", "kind": "agent"}
        read_as_agent = client.get("/v1/devices", headers=_bearer(ENV_AGENT_TOKEN))
        assert read_as_agent.status_code == 403 and "agent:edge-env" in read_as_agent.text
        as_agent = client.get("/v1/agent/device", headers=_bearer(ADMIN_ENV_TOKEN))
        assert as_agent.status_code == 403 and "scope is admin" in as_agent.json()["detail"]


def test_last_use_is_recorded_and_listings_hold_no_secret(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    with transaction(session_factory) as session:
        info, secret = tokens.create_token(session, "dash", "read")
    assert info.last_used_at is None and secret.startswith(info.prefix)
    assert client.get("/v1/jobs", headers=_bearer(secret)).status_code == 200
    with transaction(session_factory) as session:
        (listed,) = tokens.list_tokens(session)
        stored = session.scalars(select(ApiToken)).one()
    assert listed.last_used_at is not None and listed.last_used_at.tzinfo is not None
    assert secret not in repr(listed) and secret not in str(vars(stored))
    assert stored.token_hash == tokens.secret_hash(secret) != secret


def test_an_admin_makes_lists_and_revokes_tokens_over_http(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """With the default recheck window: what this process's API changes holds at once."""
    with transaction(session_factory) as session:
        admin = _bearer(tokens.create_token(session, "root", "admin")[1])
    with _app(database_url, tmp_path) as client:
        _make_list_and_revoke(client, admin)


def _make_list_and_revoke(client: TestClient, admin: dict[str, str]) -> None:
    made = client.post("/v1/tokens", json={"scope": "submit", "name": "ci"}, headers=admin)
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"/v1/tokens/{made.json()['id']}"
    secret = made.json()["token"]
    job_writer = _bearer(secret)
    assert client.post("/v1/jobs/1/cancel", headers=job_writer).status_code == 404  # allowed
    assert client.get("/v1/tokens", headers=job_writer).status_code == 403  # listing: admin only
    listed = client.get("/v1/tokens", headers=admin)
    assert [t["name"] for t in listed.json()] == ["root", "ci"] and secret not in listed.text
    assert "token" not in listed.json()[1] and listed.json()[1]["prefix"] == secret[:12]
    revoked = client.post(f"/v1/tokens/{made.json()['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/v1/jobs", headers=job_writer).status_code == 401
    for body, error in (
        ({"scope": "root"}, "invalid_input"),
        ({"scope": "read", "expires_at": "2020-01-01T00:00:00Z"}, "invalid_input"),
        ({"scope": "read", "secret": "mine"}, "invalid_request"),
    ):
        refused = client.post("/v1/tokens", json=body, headers=admin)
        assert (refused.status_code, refused.json()["error"]) == (422, error), refused.text
    assert client.post("/v1/tokens/99/revoke", headers=admin).status_code == 404
    assert len(client.get("/v1/tokens", headers=admin).json()) == 2


def test_token_changes_made_elsewhere_hold_within_the_recheck_window(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """Between database checks the server answers from memory: a first token made by another
    process turns authentication on, and a revocation there takes effect, within
    `auth_recheck_s` (+ the grace while one request reads it again), not before."""
    window = 1.5
    with _app(database_url, tmp_path, auth_recheck_s=window) as client:
        assert client.get("/v1/supernets").status_code == 200  # open: read and remembered
        with transaction(session_factory) as session:
            info, secret = tokens.create_token(session, "elsewhere", "read")
        assert client.get("/v1/supernets").status_code == 200  # still open, from memory
        _wait_until(lambda: client.get("/v1/supernets").status_code == 401, window + GRACE_S)
        assert client.get("/v1/supernets", headers=_bearer(secret)).status_code == 200
        with transaction(session_factory) as session:
            tokens.revoke_token(session, info.id)
        assert client.get("/v1/supernets", headers=_bearer(secret)).status_code == 200  # kept
        _wait_until(
            lambda: client.get("/v1/supernets", headers=_bearer(secret)).status_code == 401,
            window + GRACE_S,
        )


def test_a_front_answered_from_memory_lets_in_only_whom_the_jobs_router_would(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """Polls of a kept front are answered before routing (`api/front_from_memory.py`), on what
    the auth gate remembers: every caller the route refuses is still refused, by the route."""
    with transaction(session_factory) as session:
        job = factories.job(session, factories.supernet(session).id)
        factories.candidate(session, job.id, {"accuracy": 90.0}, pareto_role="front")
        reader_info, reader = tokens.create_token(session, "reader", "read")
    admin = _bearer(ADMIN_ENV_TOKEN)
    settings = {"admin_token": ADMIN_ENV_TOKEN, "agent_tokens": f"e={ENV_AGENT_TOKEN}"}
    with _app(database_url, tmp_path, auth_recheck_s=60, front_max_age_s=60, **settings) as client:
        url = f"/v1/jobs/{job.id}/pareto"
        front = client.get(url, headers=admin)  # the route builds and keeps the front
        assert front.status_code == 200
        for headers, status in (
            ({}, 401),
            (_bearer("not-a-token-0123456789"), 401),
            ({"Authorization": f"Basic {ADMIN_ENV_TOKEN}"}, 401),
            (_bearer(ENV_AGENT_TOKEN), 403),  # agents read no fronts
        ):
            refused = client.get(url, headers=headers)
            assert refused.status_code == status, headers
            assert refused.json()["error"] in ("unauthorized", "forbidden")
        for _ in range(2):  # read from the database, then remembered
            assert client.get(url, headers=_bearer(reader)).content == front.content
        revoked = client.post(f"/v1/tokens/{reader_info.id}/revoke", headers=admin)
        assert revoked.status_code == 200
        assert client.get(url, headers=_bearer(reader)).status_code == 401
        assert client.get(url, headers=admin).content == front.content


def _wait_until(condition: Callable[[], bool], within_s: float) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within_s + 1.0, f"not within {within_s} s"
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.5  # it did hold from memory for a while


def test_scopes_are_checked_and_secrets_stay_out_of_settings_repr() -> None:
    assert tokens.grants("admin", "read") and tokens.grants("submit", "submit")
    assert not tokens.grants("read", "submit") and not tokens.grants("agent:x", "read")
    assert tokens.agent_device("agent:edge-1") == "edge-1" and tokens.agent_device("admin") is None
    for bad in ("root", "agent:", "agent:../x", "Admin", "agent:a b"):
        with pytest.raises(tokens.InvalidInputError, match="admin, submit, read or agent:DEVICE"):
            tokens.check_scope(bad)
    settings = Settings(admin_token=ADMIN_ENV_TOKEN, agent_tokens=f"e={ENV_AGENT_TOKEN}")
    assert ADMIN_ENV_TOKEN not in repr(settings) and ADMIN_ENV_TOKEN not in str(settings)
    assert ENV_AGENT_TOKEN not in repr(settings)
    with pytest.raises(ValueError, match=r"16\.\.200 printable") as refused:
        Settings(admin_token="short-token")
    assert "short-token" not in str(refused.value)


def test_expiry_takes_a_duration_or_an_iso_time_in_the_future() -> None:
    import argparse

    from service.cli.tokens import expiry

    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert expiry("30d", now) == now + timedelta(days=30)
    assert expiry("12h", now) == now + timedelta(hours=12)
    assert expiry("90m", now) == now + timedelta(minutes=90)
    assert expiry("2027-01-31", now) == datetime(2027, 1, 31, tzinfo=UTC)
    assert expiry("2027-01-31T10:00:00+02:00", now) == datetime(2027, 1, 31, 8, tzinfo=UTC)
    for bad, says in (("2020-01-01", "in the past"), ("soon", "neither a duration"), ("3w", "")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            expiry(bad, now)


def test_an_upload_without_a_token_is_refused_before_its_file_is_read(
    client: TestClient, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with transaction(session_factory) as session:
        reader = _bearer(tokens.create_token(session, "dash", "read")[1])
    form = {"name": "stolen", "family": "mbv3-digits"}
    upload = {"checkpoint": ("weights.pt", b"\0" * 100_000, "application/octet-stream")}
    for headers, status in (({}, 401), (reader, 403)):
        answer = client.post("/v1/supernets", data=form, files=upload, headers=headers)
        assert answer.status_code == status, answer.text
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "hwnas.db" not in p.name] == []
    assert client.get("/v1/supernets", headers=reader).json() == []
