"""Issue 21.2: only the lease holder's result is stored, and an agent token acts for its own
device only. Real uvicorn over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from service_processes import Server, service_env

from service.config import Settings
from service.db.engine import make_engine, make_session_factory, transaction
from service.db.models import MeasurementTask
from service.latency.tasks import enqueue
from service.supernets.elastic_mbv3 import ArchSpec

TOKEN_A = "token-of-device-a-0123456789"
TOKEN_B = "token-of-device-b-9876543210"
GOOD = {"median_ms": 2.0, "p90_ms": 2.5, "mean_ms": 2.1, "std_ms": 0.2, "cv": 0.1, "runs": 10}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(tmp_path: Path, database_url: str, random_checkpoint: str) -> Iterator[Server]:
    env = service_env(
        tmp_path,
        database_url,
        agent_tokens=f"edge-a={TOKEN_A},edge-b={TOKEN_B}",
        checkpoint_dir=str(Path(random_checkpoint).parent),
    )
    server = Server(env, tmp_path / "server.log", worker=False)
    server.database_url = database_url  # type: ignore[attr-defined]
    try:
        body = {
            "name": "digits",
            "family": "mbv3-digits",
            "checkpoint": random_checkpoint,  # absolute, inside HWNAS_CHECKPOINT_DIR
        }
        assert server.client.post("/v1/supernets", json=body).status_code == 201
        for name in ("edge-a", "edge-b"):
            device = {"name": name, "kind": "agent", "descriptor": {"threads": 1}}
            assert server.client.post("/v1/devices", json=device).status_code == 201
        yield server
    finally:
        server.stop()


def _factory(server: Server) -> Any:
    return make_session_factory(make_engine(server.database_url))  # type: ignore[attr-defined]


def _queued_task(server: Server, device_id: int) -> int:
    space = ArchSpec().search_space()
    config = space.canonical(space.smallest())
    with transaction(_factory(server)) as session:
        ids = enqueue(
            session,
            device_id,
            1,
            None,
            {space.config_hash(config): config},
            {space.config_hash(config): [1, 32, 32]},
            8,
        )
    return next(iter(ids.values()))


def _row(server: Server, task_id: int) -> tuple[str, str | None, Any]:
    with transaction(_factory(server)) as session:
        task = session.get(MeasurementTask, task_id)
        assert task is not None
        return task.status, task.agent_id, task.stats


def test_a_result_from_an_agent_not_holding_the_lease_is_refused(server: Server) -> None:
    client = server.client
    task_id = _queued_task(server, 1)
    claimed = client.post(
        "/v1/devices/1/tasks/claim", json={"agent_id": "agent-A"}, headers=_auth(TOKEN_A)
    )
    assert [t["id"] for t in claimed.json()["tasks"]] == [task_id], claimed.text
    before = _row(server, task_id)
    assert before == ("leased", "agent-A", None)

    spoofed = {"agent_id": "agent-EVIL", "stats": {**GOOD, "median_ms": 0.1}, "runtime": {}}
    refused = client.post(f"/v1/tasks/{task_id}/result", json=spoofed, headers=_auth(TOKEN_A))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "task_not_leased"
    assert "leased to agent agent-A" in refused.json()["detail"]
    assert _row(server, task_id) == before

    genuine = {"agent_id": "agent-A", "stats": GOOD, "runtime": {"runtime": "onnxruntime"}}
    stored = client.post(f"/v1/tasks/{task_id}/result", json=genuine, headers=_auth(TOKEN_A))
    assert stored.status_code == 200, stored.text
    assert (stored.json()["status"], stored.json()["agent_id"]) == ("done", "agent-A")
    assert _row(server, task_id) == ("done", "agent-A", {**GOOD, "attempts": 1})


def test_an_agent_token_acts_for_its_own_device_only(server: Server) -> None:
    client = server.client
    task_id = _queued_task(server, 1)  # a task of edge-a
    claim = {"agent_id": "agent-B"}
    stolen = client.post("/v1/devices/1/tasks/claim", json=claim, headers=_auth(TOKEN_B))
    assert stolen.status_code == 403, stolen.text
    assert stolen.json()["error"] == "forbidden" and "edge-b" in stolen.json()["detail"]
    assert _row(server, task_id) == ("queued", None, None)
    own = client.post("/v1/devices/2/tasks/claim", json=claim, headers=_auth(TOKEN_B))
    assert own.status_code == 200 and own.json()["tasks"] == []

    assert client.post(
        "/v1/devices/1/tasks/claim", json={"agent_id": "agent-A"}, headers=_auth(TOKEN_A)
    ).json()["tasks"]
    for method, path, body in (
        (
            "POST",
            f"/v1/tasks/{task_id}/result",
            {"agent_id": "agent-A", "stats": GOOD, "runtime": {}},
        ),
        ("POST", f"/v1/tasks/{task_id}/failure", {"agent_id": "agent-A", "error": "no"}),
        ("GET", f"/v1/tasks/{task_id}/model.onnx", None),
    ):
        answer = client.request(method, path, json=body, headers=_auth(TOKEN_B))
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"] == "forbidden"
    assert _row(server, task_id) == ("leased", "agent-A", None)

    # Raw header bytes: a non-ASCII token arrives as latin-1 text (it was a 500 before).
    for value in (
        b"Bearer",
        b"Basic " + TOKEN_A.encode(),
        b"Bearer wrong-token-0000000000",
        b"Bearer " + (TOKEN_A + "x").encode(),
        b"Bearer " + "tökén-0123456789".encode("latin-1"),
    ):
        headers = [(b"content-type", b"application/json"), (b"authorization", value)]
        answer = client.post(
            "/v1/devices/1/tasks/claim", content=b'{"agent_id": "x"}', headers=headers
        )
        assert answer.status_code == 401, (value, answer.text)
        assert answer.json()["error"] == "unauthorized"


def test_agent_tokens_are_per_device_and_the_shared_token_is_refused() -> None:
    settings = Settings(agent_tokens="pi=abcdefghijklmnop0123, jetson=qrstuvwxyz0123456789")
    assert settings.agent_tokens == {"pi": "abcdefghijklmnop0123", "jetson": "qrstuvwxyz0123456789"}
    assert "abcdefghijklmnop0123" not in repr(settings)
    for bad in ("pi=short", "pi=abcdefghijklmnop0123,jetson=abcdefghijklmnop0123", "nodevice"):
        with pytest.raises(ValidationError) as refused:
            Settings(agent_tokens=bad)
        assert "abcdefghijklmnop0123" not in str(refused.value)
    with pytest.raises(ValidationError, match="HWNAS_AGENT_TOKENS") as shared:
        Settings(agent_token="one-token-for-every-device-0123")
    assert "one-token-for-every-device-0123" not in str(shared.value)
