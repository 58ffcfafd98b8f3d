"""schemathesis against a real uvicorn on SQLite and on PostgreSQL (issue 19.4): every operation
of the OpenAPI document with its examples, its boundary cases (the coverage phase: values at and
past each limit, missing and extra parameters, undeclared methods) and fuzzed valid and invalid
requests, with a fixed seed. (The stateful phase along the links was dropped: its generation reads
the live server's answers, and Hypothesis refused it as flaky in the full suite.)

Every check runs but `positive_data_acceptance`: it wants every schema-valid body accepted, and a
body can be valid JSON of the right shape and still name a supernet that is not registered (422
by design; the detail says what to fix). Each operation is a subtest, so one run reports every
failing operation, each failure with its curl command.

Auth is on (HWNAS_ADMIN_TOKEN): generated requests carry the admin token, agent routes the agent
device's token. The server holds rows that the generated requests can reach (id 1 is a boundary
value): a supernet, a host, an agent and a lut-only device, a latency table with a calibration, a
finished job with candidates, a queued job and a measurement task. It runs with no worker, so
generated jobs stay queued and the test measures the API, not searches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import psycopg
import pytest
import schemathesis
from conftest import POSTGRES_URL, _admin_conninfo
from service_processes import FAST_HOST, Server, hwnas, service_env, wait_for
from sqlalchemy.engine import make_url

from service.db.engine import make_engine, make_session_factory, transaction, upgrade_database
from service.latency.tasks import enqueue
from service.supernets.elastic_mbv3 import ArchSpec

AGENT_TOKEN = "schemathesis-agent-token-0123"
ADMIN_TOKEN = "schemathesis-admin-token-0123"
SHIPPED_TABLES = Path(__file__).parents[1] / "latency_tables" / "data"
# Fuzzed cases per operation; the coverage phase adds its boundary cases on top.
MAX_EXAMPLES = 30
SEED = 19
CONFIG = {
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}},
    "checks": {"positive_data_acceptance": {"enabled": False}},
    "warnings": False,
    # An ONNX export on a busy 2-core machine can take longer than schemathesis's default 10 s.
    "request-timeout": 120,
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, random_checkpoint: str
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    url, pg_name = None, None
    if request.param == "postgres":  # fails, never skips, when PostgreSQL is unreachable
        pg_name = f"hwnas_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = make_url(POSTGRES_URL).set(database=pg_name).render_as_string(hide_password=False)
        upgrade_database(url)
    env = service_env(
        data_dir,
        url,
        agent_tokens=f"edge={AGENT_TOKEN}",
        admin_token=ADMIN_TOKEN,
        checkpoint_dir=str(Path(random_checkpoint).parent),
        poll_interval_s="0.2",
    )
    server = Server(env, data_dir / "server.log", worker=False)
    server.client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    try:
        _store_reachable_rows(server, env, random_checkpoint, data_dir)
        yield server
    finally:
        server.stop()
        if pg_name is not None:
            with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def _store_reachable_rows(
    server: Server, env: dict[str, str], checkpoint: str, data_dir: Path
) -> None:
    client = server.client
    supernet = {"name": "digits", "family": "mbv3-digits", "checkpoint": Path(checkpoint).name}
    assert client.post("/v1/supernets", json=supernet).status_code == 201
    for device in (
        {"name": "host", "kind": "host", "descriptor": FAST_HOST},
        {"name": "edge", "kind": "agent", "descriptor": {"threads": 1}},
        {"name": "npu", "kind": "lut-only", "descriptor": {}},
    ):
        assert client.post("/v1/devices", json=device).status_code == 201
    table = (SHIPPED_TABLES / "mbv3-digits__host.lut.json").read_bytes()
    uploaded = client.post(
        "/v1/devices/3/latency-tables", content=table, headers={"Content-Type": "application/json"}
    )
    assert uploaded.status_code == 201, uploaded.text
    calibration = json.loads((SHIPPED_TABLES / "mbv3-digits__host.calibration.json").read_text())
    calibrated = client.put("/v1/devices/3/latency-tables/1/calibration", json=calibration)
    assert calibrated.status_code == 200, calibrated.text
    job = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "macs:min"],
        "budget": 2,
        "tactic": "random",
        "initial_size": 2,
        "batch_size": 2,
    }
    assert client.post("/v1/jobs", json=job).status_code == 202
    worker = hwnas(["worker"], env, data_dir / "worker.log")
    try:
        wait_for(
            lambda: client.get("/v1/jobs/1").json()["status"] == "succeeded",
            240,
            "the seeded job to succeed",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert client.post("/v1/jobs", json={**job, "seed": 1}).status_code == 202  # stays queued
    space = ArchSpec().search_space()
    config = space.canonical(space.smallest())
    factory = make_session_factory(make_engine(server.database_url))
    with transaction(factory) as session:  # a task waiting for the agent device
        key = space.config_hash(config)
        enqueue(session, 2, 1, None, {key: config}, {key: [1, 32, 32]}, 1)


@pytest.fixture
def auth_headers() -> dict[str, str]:
    """Headers every generated request to a non-agent route carries: the admin's bearer token
    (auth is on: the server has HWNAS_ADMIN_TOKEN)."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def agent_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {AGENT_TOKEN}"}


@pytest.fixture(scope="module")
def api_schema(api: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{api.client.base_url}/openapi.json", config=schemathesis.Config.from_dict(CONFIG)
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 renames each operation's subtest through `node._nodeid`, which pytest 9
    no longer sets; give it the node id it expects."""
    request.node._nodeid = request.node.nodeid


@schema.parametrize()
@hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_keeps_to_its_documented_contract(
    case: schemathesis.Case, auth_headers: dict[str, str], agent_headers: dict[str, str]
) -> None:
    case.call_and_validate(headers=_headers_for(case, auth_headers, agent_headers))


def _headers_for(
    case: schemathesis.Case, auth_headers: dict[str, str], agent_headers: dict[str, str]
) -> dict[str, str]:
    return agent_headers if "agents" in (case.operation.tags or []) else auth_headers
