"""Issue 21.3-21.6 over real HTTP (uvicorn) on SQLite and PostgreSQL: inputs that used to get a
500 with a plain-text body, or were accepted and broke later, or were echoed back in full, get a
4xx in the JSON error form; timestamps carry their zone; 405 says what is allowed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import POSTGRES_URL, _admin_conninfo
from service_processes import FAST_HOST, Server, service_env
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service.db.engine import Base, make_engine, make_session_factory, transaction, upgrade_database
from service.latency.tasks import enqueue
from service.supernets.elastic_mbv3 import ArchSpec

TOKEN = "strict-input-agent-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOO_BIG_ID = 2**31  # the keys are INTEGER on PostgreSQL: 2^31 is the first id past them
JOB = {"supernet": "digits", "objectives": ["accuracy:max", "macs:min"], "budget": 2}
CONV = "Conv-input:32x32x1-output:16x16x16"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, random_checkpoint: str
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"strict-{request.param}")
    url, pg_name = None, None
    if request.param == "postgres":
        pg_name = f"hwnas_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = make_url(POSTGRES_URL).set(database=pg_name).render_as_string(hide_password=False)
        upgrade_database(url)
    env = service_env(
        data_dir,
        url,
        agent_tokens=f"edge={TOKEN}",
        checkpoint_dir=str(Path(random_checkpoint).parent),
    )
    server = Server(env, data_dir / "server.log", worker=False)
    server.database_url = url or f"sqlite:///{data_dir}/hwnas.db"  # type: ignore[attr-defined]
    server.data_dir = data_dir  # type: ignore[attr-defined]
    try:
        body = {
            "name": "digits",
            "family": "mbv3-digits",
            "checkpoint": random_checkpoint,  # absolute, inside HWNAS_CHECKPOINT_DIR
        }
        assert server.client.post("/v1/supernets", json=body).status_code == 201
        for device in (
            {"name": "host", "kind": "host", "descriptor": FAST_HOST},
            {"name": "edge", "kind": "agent", "descriptor": {"threads": 1}},
            {"name": "npu", "kind": "lut-only", "descriptor": {}},
        ):
            assert server.client.post("/v1/devices", json=device).status_code == 201
        yield server
    finally:
        server.stop()
        if pg_name is not None:
            with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def _row_counts(api: Server) -> dict[str, int]:
    engine = make_engine(api.database_url)  # type: ignore[attr-defined]
    with engine.connect() as connection:
        counts = {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }
    engine.dispose()
    return counts


def _assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> Any:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    error = response.json()
    assert set(error) == {"error", "detail"} and error["detail"], error
    if code is not None:
        assert error["error"] == code, error
    assert len(response.content) < 4000, "the error echoes its input"
    return error


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/jobs/{TOO_BIG_ID}"),
        ("GET", f"/v1/jobs/{TOO_BIG_ID}/pareto"),
        ("GET", f"/v1/jobs/{TOO_BIG_ID}/export"),
        ("GET", f"/v1/jobs/{TOO_BIG_ID}/candidates"),
        ("GET", "/v1/jobs/1/candidates?after=" + str(TOO_BIG_ID)),
        ("GET", f"/v1/jobs/1/candidates/{TOO_BIG_ID}/model.onnx"),
        ("POST", f"/v1/jobs/{TOO_BIG_ID}/cancel"),
        ("GET", f"/v1/supernets/{TOO_BIG_ID}"),
        ("GET", f"/v1/devices/{TOO_BIG_ID}/latency-tables"),
        ("GET", f"/v1/devices/1/latency-tables/{TOO_BIG_ID}"),
        ("POST", f"/v1/devices/{TOO_BIG_ID}/tasks/claim"),
        ("POST", f"/v1/tasks/{TOO_BIG_ID}/result"),
        ("GET", f"/v1/tasks/{TOO_BIG_ID}/model.onnx"),
        ("GET", f"/v1/jobs/{2**63}"),
        ("GET", f"/v1/dashboard/jobs/{2**63}/plot"),
        ("GET", f"/v1/dashboard/jobs/1/candidates/{TOO_BIG_ID}"),
        ("GET", "/v1/jobs/0"),
        ("GET", "/v1/supernets/-1"),
    ],
)
def test_ids_outside_the_database_range_are_a_422(api: Server, method: str, path: str) -> None:
    body = {"agent_id": "a"} if path.endswith("claim") else None
    if path.endswith("result"):
        body = {"agent_id": "a", "stats": {}, "runtime": {}}
    response = api.client.request(method, path, json=body, headers=AUTH)
    _assert_json_error(response, 422, "invalid_request")


def _upload(api: Server, body: str | bytes, content_type: str, query: str = "") -> httpx.Response:
    return api.client.post(
        f"/v1/devices/3/latency-tables{query}", content=body, headers={"Content-Type": content_type}
    )


def _json_table(entry: dict[str, Any]) -> str:
    return json.dumps(
        {
            "device": "npu",
            "descriptor": {"runtime": "tflite"},
            "family": "mbv3-digits",
            "measurement": {"method": "test"},
            "entries": {CONV: entry},
        }
    )


BAD_TABLES = [
    ("json count 10^30", _json_table({"mean_ms": 1.0, "count": 10**30}), "application/json", ""),
    ("json mean_ms true", _json_table({"mean_ms": True}), "application/json", ""),
    ("json mean_ms string", _json_table({"mean_ms": "1.5"}), "application/json", ""),
    ("json nested 1000", "[" * 1000 + "]" * 1000, "application/json", ""),
    ("json nested 100000", "[" * 100_000 + "]" * 100_000, "application/json", ""),
    ("csv count 10^30", f"key,mean_ms,count\n{CONV},1.0,1e30\n", "text/csv", "?family=mbv3-digits"),
    (
        "csv field over 128 KiB",
        f"key,mean_ms\n{CONV},{'1' * (200 * 1024)}\n",
        "text/csv",
        "?family=mbv3-digits",
    ),
    (
        "yaml count 10^30",
        f"{CONV}: {{count: {10**30}, mean: 1, std: 0}}\n",
        "application/yaml",
        "?family=mbv3-digits",
    ),
    (
        "yaml stats with integer keys",
        f"{CONV}: {{1: 2, count: 3}}\n",
        "application/yaml",
        "?family=mbv3-digits",
    ),
    (
        "yaml var table with a non-numeric channel",
        "expanded_conv-input:16x16xQ-output:16x16x16-expand:6-kernel:3-stride:1-idskip:1: "
        "{count: 3, mean: 1, var: 0.1}\n",
        "application/yaml",
        "?family=mbv3-digits",
    ),
    (
        "json NUL in the descriptor",
        _json_table({"mean_ms": 1.0}).replace('"tflite"', '"tfl\\u0000ite"'),
        "application/json",
        "",
    ),
    (
        "csv NUL in the name",
        f"key,mean_ms\n{CONV},1.0\n",
        "text/csv",
        "?family=mbv3-digits&name=a%00",
    ),
    (
        "yaml nested",
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "application/yaml",
        "?family=mbv3-digits",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "query"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_TABLES],
)
def test_bad_latency_tables_are_a_422_and_store_nothing(
    api: Server, body: str, content_type: str, query: str
) -> None:
    before = _row_counts(api)
    _assert_json_error(_upload(api, body, content_type, query), 422)
    assert _row_counts(api) == before


BAD_BODIES = [
    # name, path, raw JSON body (Python's json writes NaN and Infinity literals), code
    (
        "host threads NaN",
        "/v1/devices",
        {"name": "h2", "kind": "host", "descriptor": {"threads": float("nan")}},
        None,
    ),
    (
        "host batch_size 0.5",
        "/v1/devices",
        {"name": "h2", "kind": "host", "descriptor": {"batch_size": 0.5}},
        "invalid_input",
    ),
    (
        "agent batch_size 0.5",
        "/v1/devices",
        {"name": "a2", "kind": "agent", "descriptor": {"batch_size": 0.5}},
        "invalid_input",
    ),
    (
        "host threads 2^70",
        "/v1/devices",
        {"name": "h2", "kind": "host", "descriptor": {"threads": 2**70}},
        "invalid_input",
    ),
    (
        "descriptor nested",
        "/v1/devices",
        {"name": "h2", "kind": "lut-only", "descriptor": {"a": {"b": 1}}},
        "invalid_request",
    ),
    (
        "hv_bounds Infinity",
        "/v1/jobs",
        {**JOB, "hv_bounds": {"accuracy": [0, float("inf")]}},
        "invalid_request",
    ),
    (
        "hv_bounds NaN",
        "/v1/jobs",
        {**JOB, "hv_bounds": {"accuracy": [float("nan"), 1]}},
        "invalid_request",
    ),
    ("budget string", "/v1/jobs", {**JOB, "budget": "12"}, "invalid_request"),
    ("budget true", "/v1/jobs", {**JOB, "budget": True}, "invalid_request"),
    ("budget 2^70", "/v1/jobs", {**JOB, "budget": 2**70}, "budget_out_of_range"),
    ("seed 2^70", "/v1/jobs", {**JOB, "seed": 2**70}, "invalid_request"),
    ("seed float", "/v1/jobs", {**JOB, "seed": 1.5}, "invalid_request"),
    ("batch_size string", "/v1/jobs", {**JOB, "batch_size": "2"}, "invalid_request"),
    ("exact_features 1", "/v1/jobs", {**JOB, "exact_features": 1}, "invalid_request"),
    ("objective not a string", "/v1/jobs", {**JOB, "objectives": [1]}, "invalid_request"),
    (
        "too many objectives",
        "/v1/jobs",
        {**JOB, "objectives": ["accuracy:max"] * 100},
        "invalid_request",
    ),
    ("long supernet name", "/v1/jobs", {**JOB, "supernet": "x" * 500_000}, "invalid_request"),
    ("long objective", "/v1/jobs", {**JOB, "objectives": ["a" * 500_000]}, "invalid_request"),
    ("long constraint", "/v1/jobs", {**JOB, "constraints": ["a" * 500_000]}, "invalid_request"),
    (
        "long hv_bounds key",
        "/v1/jobs",
        {**JOB, "hv_bounds": {"a" * 500_000: [0, 1]}},
        "invalid_request",
    ),
    (
        "long device name",
        "/v1/devices",
        {"name": "d" * 500_000, "kind": "lut-only"},
        "invalid_request",
    ),
    (
        "long descriptor value",
        "/v1/devices",
        {"name": "d", "kind": "lut-only", "descriptor": {"a": "v" * 500_000}},
        "invalid_request",
    ),
    ("long family", "/v1/supernets", {"name": "s", "family": "f" * 500_000}, "invalid_request"),
    (
        "long checkpoint",
        "/v1/supernets",
        {"name": "s", "family": "mbv3-digits", "checkpoint": "c" * 100_000},
        "invalid_request",
    ),
    ("NUL in a supernet name", "/v1/jobs", {**JOB, "supernet": "dig\x00its"}, "invalid_request"),
    ("unpaired surrogate", "/v1/jobs", {**JOB, "objectives": ["\ud800:max"]}, "invalid_request"),
    (
        "NUL in a descriptor key",
        "/v1/devices",
        {"name": "d", "kind": "lut-only", "descriptor": {"a\x00": 1}},
        "invalid_request",
    ),
    (
        "NUL in a result",
        "/v1/tasks/1/failure",
        {"agent_id": "a", "error": "x\x00"},
        "invalid_request",
    ),
    ("slug dot", "/v1/devices", {"name": ".", "kind": "lut-only"}, "invalid_request"),
    ("slug dot dot", "/v1/supernets", {"name": "..", "family": "mbv3-digits"}, "invalid_request"),
    ("name only in case", "/v1/devices", {"name": "HOST", "kind": "lut-only"}, "conflict"),
    (
        "supernet name only in case",
        "/v1/supernets",
        {"name": "DIGITS", "family": "mbv3-digits"},
        "conflict",
    ),
    (
        "claim limit true",
        "/v1/devices/2/tasks/claim",
        {"agent_id": "a", "limit": True},
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "code"), [pytest.param(*case[1:], id=case[0]) for case in BAD_BODIES]
)
def test_bad_values_are_refused_with_a_short_4xx_and_change_nothing(
    api: Server, path: str, body: dict[str, Any], code: str | None
) -> None:
    before = _row_counts(api)
    response = api.client.post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json", **AUTH}
    )
    status = 409 if code == "conflict" else 422
    _assert_json_error(response, status, code)
    assert _row_counts(api) == before


def test_huge_and_deeply_nested_bodies_are_refused_as_json(api: Server) -> None:
    before = _row_counts(api)
    huge = json.dumps({**JOB, "supernet": "x" * (50 * 1024 * 1024)}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    # A connection of its own per huge body: the server answers 413 without reading the rest
    # and closes it, which must not reset the shared client's pooled connection.
    for content in (huge, chunks()):
        with httpx.Client(base_url=str(api.client.base_url), timeout=60) as client:
            refused = client.post(
                "/v1/jobs", content=content, headers={"Content-Type": "application/json"}
            )
        _assert_json_error(refused, 413, "request_too_large")
    for depth in (1_000, 10_000, 100_000):
        nested = '{"supernet": ' + "[" * depth + "]" * depth + "}"
        response = api.client.post(
            "/v1/jobs", content=nested, headers={"Content-Type": "application/json"}
        )
        _assert_json_error(response, 422, "invalid_request")
    assert _row_counts(api) == before


def test_unexpected_failures_are_a_json_500(api: Server) -> None:
    """A real fault: the artifact directory is a file, so the ONNX export cannot be written."""
    space = ArchSpec().search_space()
    config = space.canonical(space.smallest())
    factory = make_session_factory(make_engine(api.database_url))  # type: ignore[attr-defined]
    with transaction(factory) as session:
        [task_id] = enqueue(
            session,
            2,
            1,
            None,
            {space.config_hash(config): config},
            {space.config_hash(config): [1, 32, 32]},
            1,
        ).values()
    artifacts = api.data_dir / "artifacts"  # type: ignore[attr-defined]
    assert not artifacts.exists()
    artifacts.write_text("not a directory")
    try:
        response = api.client.get(f"/v1/tasks/{task_id}/model.onnx", headers=AUTH)
        error = _assert_json_error(response, 500, "internal_error")
        assert "Traceback" not in error["detail"] and "artifacts" not in error["detail"]
    finally:
        artifacts.unlink()
        with transaction(factory) as session:
            from service.db.models import MeasurementTask

            session.execute(MeasurementTask.__table__.delete())


def test_timestamps_have_a_zone_and_405_says_what_is_allowed(api: Server) -> None:
    client = api.client
    stamps = [client.get("/v1/supernets/1").json()["created_at"]]
    stamps += [device["created_at"] for device in client.get("/v1/devices").json()]
    job = {"supernet": "digits", "objectives": ["macs:min"], "budget": 1}
    submitted = client.post("/v1/jobs", json=job)
    assert submitted.status_code == 202, submitted.text
    stamps.append(client.get(submitted.headers["Location"]).json()["created_at"])
    for stamp in stamps:
        parsed = datetime.fromisoformat(stamp)
        assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0, stamp

    for method, path, allowed in (
        ("DELETE", "/v1/jobs", {"GET", "POST"}),
        ("PUT", "/v1/devices", {"GET", "POST"}),
        ("DELETE", "/v1/supernets/1", {"GET"}),
        ("GET", "/v1/jobs/1/cancel", {"POST"}),
    ):
        response = client.request(method, path)
        _assert_json_error(response, 405, "method_not_allowed")
        assert set(response.headers["Allow"].split(", ")) - {"HEAD"} == allowed, response.headers
