"""End to end: `hwnas serve` (uvicorn, SQLite) and real `hwnas agent` processes measuring for a
search whose latency constraint names an agent device; an agent killed mid-task loses nothing."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import factories
import pytest
from service_processes import Server, hwnas, service_env, wait_for
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from latency_tables.shipped import lut_path
from service.agent.device_agent import DeviceAgent
from service.db.engine import transaction
from service.db.models import LatencyMeasurement, MeasurementTask
from service.latency.tasks import enqueue
from service.supernets.elastic_mbv3 import ArchSpec

TOKEN = "test-agent-token-0123456789"
# A second host profile stands in for the remote device: one thread, batch 8, and a one-second
# warm-up so that every measurement takes long enough to kill an agent in the middle of one.
EDGE = {
    "threads": 1,
    "batch_size": 8,
    "warmup_runs": 2,
    "warmup_seconds": 1.0,
    "timed_runs": 10,
    "max_attempts": 1,
    "passes": 1,
}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, random_checkpoint: str) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("agents")
    env = service_env(
        tmp_path,
        agent_tokens=f"edge={TOKEN}",  # the agent token is scoped to its device
        checkpoint_dir=str(Path(random_checkpoint).parent),
        agent_lease_s="600",  # leases run out only when a test says so (`_expire_leases_of`)
        poll_interval_s="0.3",
        heartbeat_interval_s="0.5",
    )
    server = Server(env, tmp_path / "server.log")
    try:
        client = server.client
        checkpoint = Path(random_checkpoint).name  # a name inside the checkpoint directory
        body = {"name": "digits", "family": "mbv3-digits", "checkpoint": checkpoint}
        assert client.post("/v1/supernets", json=body).status_code == 201
        edge = {"name": "edge", "kind": "agent", "descriptor": {**EDGE, "os": "linux"}}
        assert client.post("/v1/devices", json=edge).status_code == 201
        host = {"name": "host", "kind": "host", "descriptor": {"threads": 1}}
        assert client.post("/v1/devices", json=host).status_code == 201
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def factory(server: Server) -> Iterator[sessionmaker[Session]]:
    """Sessions on the server's database: what the requests stored."""
    with factories.session_factory(server.database_url) as sessions:
        yield sessions


def _expire_leases_of(factory: sessionmaker[Session], agent_id: str) -> None:
    """The leases `agent_id` holds ran out a minute ago, by the database clock."""
    with transaction(factory) as session:
        session.execute(
            update(MeasurementTask)
            .where(MeasurementTask.status == "leased", MeasurementTask.agent_id == agent_id)
            .values(lease_expires_at=factories.db_clock(session, -60))
        )


def _agent(server: Server, agent_id: str, log: Path) -> subprocess.Popen[bytes]:
    args = ["agent", "--server", f"http://127.0.0.1:{server.port}", "--device", "edge"]
    args += ["--agent-id", agent_id, "--poll-s", "0.3"]
    env = service_env(server.data_dir, agent_token=TOKEN)
    return hwnas(args, env, log)


def test_agent_measures_a_search_and_a_killed_agent_loses_nothing(
    server: Server, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    client = server.client
    # edge also has a latency table: its estimate is stored beside every measurement
    table = client.post(
        "/v1/devices/1/latency-tables?family=mbv3-digits",
        content=lut_path("mbv3-digits", "host").read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert table.status_code == 201, table.text
    request = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "macs:min"],
        "constraints": ["latency@edge<=1000"],
        "budget": 6,
        "tactic": "random",
        "batch_size": 3,
    }
    submitted = client.post("/v1/jobs", json=request)
    assert submitted.status_code == 202, submitted.text
    location = submitted.headers["Location"]
    assert submitted.json()["spec"]["latency_sources"] == {"edge": "measured"}

    def leased_by(agent_id: str) -> int | None:
        with transaction(factory) as session:
            return session.scalar(
                select(MeasurementTask.id).where(
                    MeasurementTask.status == "leased", MeasurementTask.agent_id == agent_id
                )
            )

    first = _agent(server, "agent-a", tmp_path / "agent-a.log")
    agents = [first]
    try:
        wait_for(lambda: leased_by("agent-a"), 240, "agent-a to lease", 0.05)
        # agent-b starts up while agent-a dies; it cannot take agent-a's lease before it expires
        agents.append(_agent(server, "agent-b", tmp_path / "agent-b.log"))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_task = leased_by("agent-a")  # what it held when it died, read after the kill
        assert killed_task is not None, "agent-a was killed between two tasks; kill it mid-task"
        _expire_leases_of(factory, "agent-a")

        def finished() -> dict[str, Any] | None:
            job = client.get(location).json()
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, 400, "the job to finish", interval_s=1)
    finally:
        for process in agents:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    assert isinstance(job, dict)
    assert job["status"] == "succeeded", job["error"]
    assert job["validations_used"] == 6

    with transaction(factory) as session:
        all_tasks = list(
            session.scalars(
                select(MeasurementTask)
                .where(MeasurementTask.job_id == job["id"])
                .order_by(MeasurementTask.id)
            )
        )
        measurements = list(session.scalars(select(LatencyMeasurement)))
        re_leased = session.get(MeasurementTask, killed_task)
    assert len(all_tasks) == 6 and {t.status for t in all_tasks} == {"done"}
    assert {t.batch_size for t in all_tasks} == {8}
    assert re_leased is not None
    assert (re_leased.agent_id, re_leased.attempts) == ("agent-b", 2)
    assert len(measurements) == 6 and {m.source for m in measurements} == {"agent"}
    assert {m.runtime["batch_size"] for m in measurements} == {8}
    assert {m.runtime["threads"] for m in measurements} == {1}
    assert {m.predicted_by for m in measurements} == {f"lut-sum:{table.json()['id']}"}
    assert all(m.predicted_ms is not None and m.predicted_ms > 0 for m in measurements)
    by_hash = {t.config_hash: t.stats["median_ms"] for t in all_tasks if t.stats}

    candidates = client.get(f"{location}/candidates").json()["items"]
    assert len(candidates) == 6
    for candidate in candidates:
        latency = candidate["metrics"]["latency@edge"]
        assert (latency["source"], latency["method"], latency["device"]) == (
            "measured",
            "agent",
            "edge",
        )
        assert latency["value"] == pytest.approx(by_hash[candidate["config_hash"]])
    pareto = client.get(f"{location}/pareto").json()
    assert pareto["feasible"] and pareto["points"]
    assert {p["metrics"]["latency@edge"]["method"] for p in pareto["points"]} == {"agent"}


def _leased_task(server: Server, factory: sessionmaker[Session]) -> int:
    """A task queued straight into the server's database and claimed over HTTP."""
    with transaction(factory) as session:
        digest = uuid.uuid4().hex
        ids = enqueue(session, 1, 1, None, {digest: {"x": 1}}, {digest: [1, 32, 32]}, 8)
    [task_id] = ids.values()
    claimed = server.client.post(
        "/v1/devices/1/tasks/claim", json={"agent_id": "probe", "limit": 64}, headers=AUTH
    )
    assert claimed.status_code == 200, claimed.text
    assert task_id in [t["id"] for t in claimed.json()["tasks"]]
    return int(task_id)


def _task_row(factory: sessionmaker[Session], task_id: int) -> tuple[str, Any, int]:
    """The task's status and stats, and how many latency measurements are stored in all."""
    with transaction(factory) as session:
        task = session.get(MeasurementTask, task_id)
        count = session.scalar(select(func.count()).select_from(LatencyMeasurement))
        assert task is not None
        return task.status, task.stats, int(count or 0)


GOOD = {"median_ms": 2.0, "p90_ms": 2.5, "mean_ms": 2.1, "std_ms": 0.2, "cv": 0.1, "runs": 10}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"stats": GOOD}, {}, 401, "unauthorized"),
        ({"stats": GOOD}, {"Authorization": "Bearer wrong-token-000000000"}, 401, "unauthorized"),
        ({"stats": {**GOOD, "median_ms": float("nan")}}, AUTH, 422, "invalid_result"),
        ({"stats": {**GOOD, "median_ms": -2.0}}, AUTH, 422, "invalid_result"),
        ({"stats": {**GOOD, "median_ms": 0}}, AUTH, 422, "invalid_result"),
        ({"stats": {**GOOD, "median_ms": 90_000, "p90_ms": 95_000}}, AUTH, 422, "invalid_result"),
        ({"stats": {k: v for k, v in GOOD.items() if k != "cv"}}, AUTH, 422, "invalid_result"),
        ({}, AUTH, 422, "invalid_request"),
    ],
)
def test_bad_agent_results_are_refused_and_change_nothing(
    server: Server,
    factory: sessionmaker[Session],
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    task_id = _leased_task(server, factory)
    before = _task_row(factory, task_id)
    posted = server.client.post(
        f"/v1/tasks/{task_id}/result",
        content=_json({"agent_id": "probe", "runtime": {}, **body}),
        headers={"Content-Type": "application/json", **headers},
    )
    assert posted.status_code == status, posted.text
    assert posted.json()["error"] == code and posted.json()["detail"]
    assert _task_row(factory, task_id) == before
    assert before[:2] == ("leased", None)


def test_second_result_is_refused_and_agent_endpoints_check_device(
    server: Server, factory: sessionmaker[Session]
) -> None:
    client = server.client
    task_id = _leased_task(server, factory)
    body = {"agent_id": "probe", "stats": GOOD, "runtime": {"runtime": "onnxruntime"}}
    assert client.post(f"/v1/tasks/{task_id}/result", json=body, headers=AUTH).status_code == 200
    again = client.post(
        f"/v1/tasks/{task_id}/result",
        json={**body, "stats": {**GOOD, "median_ms": 2.2}},
        headers=AUTH,
    )
    assert again.status_code == 409 and again.json()["error"] == "task_already_done"
    assert _task_row(factory, task_id)[:2] == ("done", {**GOOD, "attempts": 1})

    claim = {"agent_id": "probe"}
    unknown = client.post("/v1/devices/999/tasks/claim", json=claim, headers=AUTH)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_device")
    host = client.post("/v1/devices/2/tasks/claim", json=claim, headers=AUTH)
    assert (host.status_code, host.json()["error"]) == (409, "not_an_agent_device")
    assert client.post("/v1/devices/1/tasks/claim", json=claim).status_code == 401
    missing = client.post("/v1/tasks/999/result", json=body, headers=AUTH)
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_task")
    model = client.get(f"/v1/tasks/{task_id}/model.onnx")
    assert model.status_code == 401


def test_agent_reports_a_network_it_cannot_run_and_the_task_fails_with_its_reason(
    server: Server, factory: sessionmaker[Session]
) -> None:
    space = ArchSpec().search_space()
    config = space.canonical(space.smallest())
    digest = space.config_hash(config)
    with transaction(factory) as session:  # earlier tests' leftovers must not reach this agent
        session.execute(
            update(MeasurementTask)
            .where(MeasurementTask.status.in_(("queued", "leased")))
            .values(status="failed", error="left over by an earlier test")
        )
        [task_id] = enqueue(
            session, 1, 1, None, {digest: config}, {digest: [1, 32, 32]}, 8
        ).values()
    # The fault is real: a corrupt file where the server caches the task's ONNX export.
    artifact = server.data_dir / "artifacts" / "onnx" / "1" / f"{digest}-b8.onnx"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"this is not an ONNX model")

    agent = DeviceAgent(f"http://127.0.0.1:{server.port}", "edge", TOKEN, agent_id="agent-c")
    assert agent.run_once() == 1
    with transaction(factory) as session:
        task = session.get(MeasurementTask, task_id)
        assert task is not None
        assert (task.status, task.agent_id, task.stats) == ("failed", "agent-c", None)
        assert task.error and "agent agent-c could not measure it: onnxruntime" in task.error
        assert "protobuf" in task.error.lower()

    body = {"agent_id": "agent-c", "error": "again"}
    again = server.client.post(f"/v1/tasks/{task_id}/failure", json=body, headers=AUTH)
    assert (again.status_code, again.json()["error"]) == (409, "task_not_leased")
    assert server.client.post(f"/v1/tasks/{task_id}/failure", json=body).status_code == 401


def test_only_the_lease_holder_may_report_a_failure(
    server: Server, factory: sessionmaker[Session]
) -> None:
    task_id = _leased_task(server, factory)
    before = _task_row(factory, task_id)
    other = {"agent_id": "someone-else", "error": "cannot"}
    refused = server.client.post(f"/v1/tasks/{task_id}/failure", json=other, headers=AUTH)
    assert (refused.status_code, refused.json()["error"]) == (409, "task_not_leased")
    assert "leased to agent probe" in refused.json()["detail"]
    empty = {"agent_id": "probe", "error": ""}
    bad = server.client.post(f"/v1/tasks/{task_id}/failure", json=empty, headers=AUTH)
    assert bad.status_code == 422
    assert _task_row(factory, task_id) == before
    holder = {"agent_id": "probe", "error": "needs an NPU driver"}
    stored = server.client.post(f"/v1/tasks/{task_id}/failure", json=holder, headers=AUTH)
    assert stored.status_code == 200 and stored.json()["status"] == "failed"


def _json(value: Any) -> str:
    import json

    return json.dumps(value)  # allow_nan: NaN goes over the wire as the agent would send it
